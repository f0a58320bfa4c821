"""``MemberBatch``: several runs (the seeds of one config) trained in step in one process,
their updates batched (see :mod:`~hydra_pipeline.engine.batched`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from hydra_pipeline.engine import distributed
from hydra_pipeline.engine.batched import MemberUpdate, RandomStreams, update_members
from hydra_pipeline.engine.lockstep import Collecting, MemberTasks, collect_in_step
from hydra_pipeline.engine.rollout import RolloutStorage
from hydra_pipeline.engine.runner import OnPolicyRunner
from hydra_pipeline.engine.stacked import StackedModels
from hydra_pipeline.engine.summary import RunSummary
from hydra_pipeline.errors import InvalidArgumentError, TrainingInterrupted
from hydra_pipeline.pipeline import PipelineStage

__all__ = ["MemberBatch"]


class MemberBatch:
    """Trains several runners (the seeds of one config) in step: they collect their rollouts
    in lockstep, their tasks stepped together
    (:func:`~hydra_pipeline.engine.lockstep.collect_in_step`, members grouped by rollout
    length), each with its own model and random streams; their updates run as one batched
    computation (:func:`update_members`, members grouped by stage); and each does the rest of its
    rollouts' work itself (evaluations, metrics, its early-stopping criterion, checkpoints),
    into its own folder. A member whose pipeline ends (its criterion met in the last stage)
    stops collecting and learning while the others go on; a member whose criterion ends an
    earlier stage learns in its own batch from then on.

    Args:
        runners: The members, on one process; memoryless models of one architecture.
        random_states: Each member's generator state to start from (as
            :func:`~hydra_pipeline.engine.checkpoint.capture_rng_state` gives it after the
            member was built, or resumed: what its run alone would start from).

    Raises:
        InvalidArgumentError: No runners, a number of states that differs, a distributed
            run, or models that cannot be stacked (see
            :class:`~hydra_pipeline.engine.stacked.StackedModels`).
    """

    def __init__(
        self, runners: Sequence[OnPolicyRunner], random_states: Sequence[dict[str, Any]]
    ) -> None:
        if not runners or len(random_states) != len(runners):
            raise InvalidArgumentError(
                "random_states", f"must hold one state per runner ({len(runners)})", "differs"
            )
        if distributed.ranks().world_size > 1:
            raise InvalidArgumentError(
                "runners",
                "train in a distributed run; seeds trained in one batch run in one process",
                distributed.ranks().world_size,
            )
        if any(runner.pipeline.rollout_storage_uuid is None for runner in runners):
            raise InvalidArgumentError(
                "pipeline",
                "has no rollout storage; seeds trained in one batch learn from rollouts",
                None,
            )
        self.runners = list(runners)
        self.random = [RandomStreams(state) for state in random_states]
        everyone = tuple(range(len(runners)))  # checked here, before anything trains
        self._stacks = {everyone: StackedModels([runner.learner for runner in runners])}
        self._tasks: dict[tuple[int, ...], MemberTasks] = {}
        self._joined_in: dict[int, tuple[int, ...]] = {}  # the group whose tasks a task is in

    def run(self) -> list[RunSummary]:
        """Train every member through its stages; their summaries, in member order.

        Raises:
            TrainingInterrupted: The members were asked to stop (see
                :meth:`~hydra_pipeline.engine.runner.OnPolicyRunner.request_stop`): each
                stopped after the current rollout, with a checkpoint.
        """
        runners, random = self.runners, self.random
        summaries: dict[int, RunSummary] = {}
        loops: dict[int, Iterator[PipelineStage]] = {}
        stages: dict[int, PipelineStage] = {}
        try:
            for member, runner in enumerate(runners):
                with random[member]:
                    runner.open()
                    loops[member] = runner.rollouts()
            self._advance(range(len(runners)), loops, stages, summaries)
            while stages:
                storages: dict[int, RolloutStorage] = {}
                for group in self._collecting(stages):
                    storages.update(zip(group, self._collect(group, stages), strict=True))
                for group in self._groups(stages):
                    self._update(group, stages, storages)
                for member in stages:
                    runners[member].learner.step_lr_scheduler(runners[member].pipeline.total_steps)
                self._advance(list(stages), loops, stages, summaries)
        finally:
            for runner in runners:
                runner.events.close()
        return [summaries[member] for member in range(len(runners))]

    def _advance(
        self,
        members: Iterable[int],
        loops: Mapping[int, Iterator[PipelineStage]],
        stages: dict[int, PipelineStage],
        summaries: dict[int, RunSummary],
    ) -> None:
        """Let each of ``members`` finish its rollout and hand out its next stage, or, at the
        end of its pipeline, its summary. Asked to stop, every member stops (each with its
        checkpoint) before the first stop is raised."""
        stopped: TrainingInterrupted | None = None
        for member in members:
            with self.random[member]:
                try:
                    stages[member] = next(loops[member])
                except StopIteration:
                    stages.pop(member, None)  # not there yet when its pipeline was done
                    summaries[member] = self.runners[member].finish()
                except TrainingInterrupted as interrupted:
                    stages.pop(member, None)
                    stopped = stopped or interrupted
        if stopped is not None:
            raise stopped

    def _collecting(self, stages: Mapping[int, PipelineStage]) -> list[tuple[int, ...]]:
        """The members collecting now, grouped by the length of their rollouts (members of a
        group collect in lockstep)."""
        groups: dict[int | None, list[int]] = {}
        for member, stage in stages.items():
            groups.setdefault(stage.training_settings.num_steps, []).append(member)
        return [tuple(sorted(group)) for group in groups.values()]

    def _collect(
        self, group: tuple[int, ...], stages: Mapping[int, PipelineStage]
    ) -> list[RolloutStorage]:
        """A rollout of each of ``group``'s members, in lockstep with their tasks stepped
        together (see :mod:`~hydra_pipeline.engine.lockstep`)."""
        collecting = [
            Collecting(self.runners[m].collector, stages[m], self.random[m]) for m in group
        ]
        stack = self._stack(group)
        if not stack.stacks_members:
            return collect_in_step(collecting, self._tasks_of(group))
        stack.pull_weights()
        return collect_in_step(collecting, self._tasks_of(group), stack.outputs)

    def _tasks_of(self, group: tuple[int, ...]) -> MemberTasks:
        """``group``'s tasks, stepped together; joined anew when one of them was last joined
        in another group (a joined task shares its tasks' states: each task is in one)."""
        tasks = self._tasks.get(group)
        if tasks is None or any(self._joined_in.get(member) != group for member in group):
            tasks = MemberTasks([self.runners[member].collector.task for member in group])
            self._tasks[group] = tasks
            self._joined_in.update(dict.fromkeys(group, group))
        return tasks

    def _stack(self, group: tuple[int, ...]) -> StackedModels:
        """The stacked models of ``group``'s members (made at the first use)."""
        if group not in self._stacks:
            self._stacks[group] = StackedModels([self.runners[m].learner for m in group])
        return self._stacks[group]

    def _groups(self, stages: Mapping[int, PipelineStage]) -> list[tuple[int, ...]]:
        """The members learning now, grouped by the index of their stage (members in one
        stage learn in one batch)."""
        groups: dict[int | None, list[int]] = {}
        for member in stages:
            groups.setdefault(self.runners[member].pipeline.current_stage_index, []).append(member)
        return [tuple(group) for group in groups.values()]

    def _update(
        self,
        group: tuple[int, ...],
        stages: Mapping[int, PipelineStage],
        storages: Mapping[int, RolloutStorage],
    ) -> None:
        """The updates of each of ``group``'s stage components, batched over its members."""
        updates = [
            MemberUpdate(self.runners[m].learner, stages[m], storages[m], self.random[m])
            for m in group
        ]
        for component in range(len(stages[group[0]].stage_components)):
            update_members(self._stack(group), updates, component)
