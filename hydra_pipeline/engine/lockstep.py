"""Several members' rollouts (the seeds of one config) collected in lockstep, their tasks
stepped together.

At each step of :func:`collect_in_step`, each member chooses its actions with its own model
and its own random generators (its samples, teacher forcing and gSDE matrices, as in a
process of its own), then the members' tasks step: as one task when their class can join them
(the built-in CartPole: ``CartPoleTask.joined``, one call per step for all members' 64
environments each, every member's episodes still its own), else each its own (Gymnasium's
vector environments: stepping those is inherent). Everything else is each member's own
collector's: its observation and reward normalisation, episode statistics, teacher-forcing
metrics, rollout storage, final values of the episodes cut short, and returns. A member's
rollouts are thus those of its run alone, bit for bit, whatever it is batched with.

The policies act with one forward of all members' models when their architecture runs
members in one computation (:class:`~hydra_pipeline.models.protocol.StacksMembers`, the MLPs
of vector observations: ``forward`` below), else each with its own forward: the stacked
models under ``vmap`` cost as much as the separate forwards or more on the CPU (``vmap``
spends about as long per operation as the small operations take). Either way each member
samples from its own distribution with its own generators.

Only torch's generators are a member's own during a step of the batch (swapping Python's and
NumPy's too costs more than the step, see
:meth:`~hydra_pipeline.engine.batched.RandomStreams.torch_draws`): the engine and the built-in
tasks draw from nothing else while collecting.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from hydra_pipeline.engine.batched import RandomStreams
from hydra_pipeline.engine.collector import RolloutCollector
from hydra_pipeline.engine.rollout import RolloutStorage
from hydra_pipeline.models.protocol import ActorCriticOutput
from hydra_pipeline.pipeline import PipelineStage
from hydra_pipeline.tasks.observations import Observations, map_observations
from hydra_pipeline.tasks.protocol import StepResult, Task

__all__ = ["Collecting", "MemberTasks", "collect_in_step"]


class Collecting(NamedTuple):
    """A member collecting a rollout.

    Attributes:
        collector: The member's collector (its task, actor, normalisation, storage).
        stage: The member's current stage.
        random: The member's random generators.
    """

    collector: RolloutCollector
    stage: PipelineStage
    random: RandomStreams


class MemberTasks:
    """The members' tasks, stepped together: as one joined task when there are several and
    their class offers ``joined(tasks)`` (see ``CartPoleTask.joined``), else each its own.

    Args:
        tasks: One per member, in member order.

    Attributes:
        joint: The joined task (``None``: each task steps on its own).
    """

    def __init__(self, tasks: Sequence[Task]) -> None:
        self.tasks = list(tasks)
        kind = type(self.tasks[0])
        join: Callable[[list[Task]], Task] | None = getattr(kind, "joined", None)
        alike = all(type(task) is kind for task in self.tasks)
        self.joint: Task | None = None
        if join is not None and alike and len(self.tasks) > 1:
            self.joint = join(self.tasks)
        bounds = [0, *itertools.accumulate(task.num_envs for task in self.tasks)]
        self._rows = [slice(start, stop) for start, stop in itertools.pairwise(bounds)]

    def step(self, actions: Sequence[Tensor], random: Sequence[RandomStreams]) -> list[StepResult]:
        """Each task's result of its ``actions``; a task stepping on its own draws from its
        member's torch generators (``random``)."""
        if self.joint is None:
            results = []
            for task, own, streams in zip(self.tasks, actions, random, strict=True):
                with streams.torch_draws(own.device):
                    results.append(task.step(own))
            return results
        joint = self.joint.step(torch.cat(list(actions)))
        return [_rows_of(joint, rows) for rows in self._rows]


def _rows_of(result: StepResult, rows: slice) -> StepResult:
    """A block of environments' part of a joined task's ``result``."""

    def block(tensor: Tensor) -> Tensor:
        return tensor[rows]

    return StepResult(
        observations=map_observations(block, result.observations),
        rewards=result.rewards[rows],
        terminated=result.terminated[rows],
        truncated=result.truncated[rows],
        final_observations=map_observations(block, result.final_observations),
        episode_metrics={name: value[rows] for name, value in result.episode_metrics.items()},
    )


def collect_in_step(
    members: Sequence[Collecting],
    tasks: MemberTasks,
    forward: Callable[[list[Observations]], list[ActorCriticOutput]] | None = None,
) -> list[RolloutStorage]:
    """One rollout of each member's stage, collected in lockstep; each member's storage, with
    its returns, as its collector's
    :meth:`~hydra_pipeline.engine.collector.RolloutCollector.collect` fills it.

    Args:
        members: The members collecting, of one rollout length.
        tasks: Their tasks (in the same order).
        forward: Each member's model output on its observations, for all members at once
            (:meth:`~hydra_pipeline.engine.stacked.StackedModels.outputs`, weights current);
            ``None``: each member's actor calls its own model.
    """
    storages = []
    for member in members:
        storage = member.collector.open_rollout(member.stage)
        assert storage is not None  # the batch refuses pipelines without a rollout storage
        storages.append(storage)
    with torch.no_grad():
        for step in range(storages[0].num_steps):
            outputs: Sequence[ActorCriticOutput | None] = (
                [None] * len(members)
                if forward is None
                else forward([member.collector.stepper.observations for member in members])
            )
            choices = []
            for member, storage, output in zip(members, storages, outputs, strict=True):
                with member.random.torch_draws(member.collector.device):
                    choices.append(
                        member.collector.prepare_step(member.stage, storage, step, output)
                    )
            results = tasks.step(
                [
                    member.collector.actor.environment_actions(choice.actions)
                    for member, choice in zip(members, choices, strict=True)
                ],
                [member.random for member in members],
            )
            for member, storage, choice, result in zip(
                members, storages, choices, results, strict=True
            ):
                member.collector.complete_step(storage, step, choice, result)
    for member, storage in zip(members, storages, strict=True):
        member.collector.close_rollout(member.stage, storage)
    return storages
