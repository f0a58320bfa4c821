"""``RolloutCollector``: a stage's rollouts, and the returns the learner learns from.

Each call of :meth:`RolloutCollector.collect` acts ``num_steps`` times in every environment
(with the stage's teacher forcing, recording the expert's actions when the stage needs them),
fills the rollout storage, credits the episodes cut short by a time limit with the value of
their last observation, and computes the returns and advantages with the stage's discounting.
The environments, the episodes in progress and the model's memory live here between rollouts,
and go into checkpoints from here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hydra_pipeline.engine import distributed
from hydra_pipeline.engine.acting import Actor, Choice, TaskStepper
from hydra_pipeline.engine.advantages import compute_returns
from hydra_pipeline.engine.checkpoint import restore_normalization
from hydra_pipeline.engine.fit import expert_needs, sequence_steps
from hydra_pipeline.engine.normalization import Normalization
from hydra_pipeline.engine.rollout import RolloutStorage
from hydra_pipeline.engine.statistics import TEACHER_FORCING_METRICS, TrainingStatistics
from hydra_pipeline.models.protocol import ActorCriticOutput
from hydra_pipeline.pipeline import PipelineStage, TrainingPipeline, TrainingSettings
from hydra_pipeline.pipeline.seeding import seed_for_rank
from hydra_pipeline.tasks.observations import (
    assign_observations,
    map_observations,
    observation_space_of,
)
from hydra_pipeline.tasks.protocol import StepResult, Task

__all__ = ["RolloutCollector"]


class RolloutCollector:
    """Collects the rollouts of ``pipeline``'s stages on ``task`` with ``model``.

    Args:
        pipeline: Whose stages are collected for (its step counters advance here).
        task: The environments, reset with ``seed`` when the collector is made.
        model: The policy, on ``device``.
        statistics: Receives the episodes that end and the teacher-forcing metrics.
        device: Where rollouts live.
        normalization: Normalises what the model sees and scales the rewards it learns from,
            updating its statistics with what the rollouts see (``None``: nothing).
        seed: Seeds the task's environments; in a distributed run, rank ``r``'s are seeded
            from ``seed`` and ``r`` (see :func:`~hydra_pipeline.pipeline.seeding.seed_for_rank`).

    In a distributed run, every process collects alike on its own environments, and steps
    count every process's: step limits, intervals and schedules mean agent steps of the whole
    run.

    Attributes:
        storage: The latest rollout, sized to its stage's ``num_steps`` (``None`` before the
            first rollout).
        first_step_time: The Unix time of this process's first environment step (for startup
            benchmarks).
    """

    def __init__(
        self,
        pipeline: TrainingPipeline,
        task: Task,
        model: nn.Module,
        statistics: TrainingStatistics,
        device: torch.device,
        normalization: Normalization | None,
        seed: int,
    ) -> None:
        self.pipeline = pipeline
        self.task = task
        self.device = device
        self.statistics = statistics
        self.normalization = normalization
        ranks = distributed.ranks()
        self.world_size = ranks.world_size
        self.actor = Actor(model, task.action_space, device)
        self.stepper = TaskStepper(task, self.actor, normalization, learning=True)
        self.stepper.reset(seed=seed_for_rank(seed, ranks.rank))
        self.storage: RolloutStorage | None = None
        self.first_step_time: float | None = None
        self._forced_probability = 0.0  # the rollout's teacher forcing, scheduled and sampled
        self._forced_count = torch.zeros((), dtype=torch.int64, device=device)

    def collect(self, stage: PipelineStage) -> RolloutStorage | None:
        """One rollout of ``stage``, with its returns and advantages; ``None`` in a pipeline
        without a rollout storage, where a round of updates counts as one step."""
        storage = self.open_rollout(stage)
        if storage is None:
            return None
        with torch.no_grad():
            for step in range(storage.num_steps):
                choice = self.prepare_step(stage, storage, step)
                result = self.task.step(self.actor.environment_actions(choice.actions))
                self.complete_step(storage, step, choice, result)
        self.close_rollout(stage, storage)
        return storage

    # ----------------------------------------------------------------------------------------
    # A rollout in pieces: :meth:`collect` calls them in turn, and
    # :mod:`~hydra_pipeline.engine.lockstep` calls them for several collectors in step.

    def open_rollout(self, stage: PipelineStage) -> RolloutStorage | None:
        """Start a rollout of ``stage``: its storage (``None`` in a pipeline without one,
        where the round of updates is counted here)."""
        if self.pipeline.rollout_storage_uuid is None:
            self.pipeline.record_update_round()
            return None
        storage = self._storage_for(stage.training_settings)
        storage.has_expert_actions = bool(expert_needs(self.pipeline, stage))
        if self.first_step_time is None:
            self.first_step_time = time.time()
        self.actor.restart_exploration()  # gSDE: new exploration matrices for each rollout
        self._forced_probability = 0.0
        self._forced_count = torch.zeros((), dtype=torch.int64, device=self.device)
        return storage

    def prepare_step(
        self,
        stage: PipelineStage,
        storage: RolloutStorage,
        step: int,
        output: ActorCriticOutput | None = None,
    ) -> Choice:
        """The actions of the rollout's ``step`` (with the stage's teacher forcing; ``output``:
        the model's output on the observations to act on, when computed elsewhere: see
        :meth:`~hydra_pipeline.engine.acting.Actor.act`)."""
        if step % storage.sequence_length == 0:  # the memory the sequence starting here starts from
            self._keep_memory(storage, step // storage.sequence_length)
        probability = 0.0
        teacher_forcing = stage.teacher_forcing
        if teacher_forcing is not None:
            probability = teacher_forcing(stage.steps_taken_in_stage)
            self._forced_probability += probability
        return self.stepper.prepare(
            expert=storage.has_expert_actions, forcing=probability, output=output
        )

    def complete_step(
        self, storage: RolloutStorage, step: int, choice: Choice, result: StepResult
    ) -> None:
        """Keep the task's ``result`` of ``choice``'s actions as the rollout's ``step``."""
        move = self.stepper.complete(choice, result, final_values=True)
        if move.expert_actions is not None:
            storage.expert_actions[step] = move.expert_actions
        if move.episode_starts is not None:
            storage.episode_starts[step] = move.episode_starts
        if move.forced is not None:
            self._forced_count += move.forced.sum()
        result = move.result
        assign_observations(storage.observations, step, move.observations)
        storage.actions[step] = move.actions
        storage.log_probs[step] = move.output.distribution.log_prob(move.actions)
        storage.values[step] = move.output.values
        storage.rewards[step] = result.rewards
        storage.terminated[step] = result.terminated
        storage.truncated[step] = result.truncated
        assert move.final_values is not None  # asked for
        storage.final_values[step] = move.final_values
        self.pipeline.record_rollout_steps(self.task.num_envs * self.world_size)

    def close_rollout(self, stage: PipelineStage, storage: RolloutStorage) -> None:
        """End the rollout: the episodes it ended and its teacher forcing into the
        statistics, then its returns and advantages."""
        self.statistics.record_episodes(self.stepper.finished_episodes())
        if stage.teacher_forcing is not None:
            scheduled = self._forced_probability / storage.num_steps
            sampled = self._forced_count.item() / (self.task.num_envs * storage.num_steps)
            self.statistics.record(
                dict(zip(TEACHER_FORCING_METRICS, (scheduled, sampled), strict=True))
            )
        self._compute_returns(storage, stage.training_settings)

    def reset_environments(self) -> None:
        """Start every episode over (the stage's ``advance_scene_rollout_period``)."""
        self.stepper.reset()

    def _storage_for(self, settings: TrainingSettings) -> RolloutStorage:
        """The rollout storage, reallocated when a stage's rollouts (or, for a model with
        memory, their sequences) are longer or shorter than the previous stage's."""
        num_steps = settings.num_steps
        assert num_steps is not None  # required of every stage that runs
        length = sequence_steps(settings) if self.actor.has_memory else num_steps
        storage = self.storage
        if storage is None or (storage.num_steps, storage.sequence_length) != (num_steps, length):
            self.storage = storage = RolloutStorage(
                num_steps,
                self.task.num_envs,
                observation_space_of(self.task),
                self.actor.action_shape,
                self.actor.action_dtype,
                self.device,
                sequence_length=length,
            )
        return storage

    def _keep_memory(self, storage: RolloutStorage, sequence: int) -> None:
        """Store the model's memory before the first step of each environment's
        ``sequence``-th sequence (nothing for a memoryless model)."""
        memory, _ = self.actor.memory_for(self.task.num_envs)
        if memory is None:
            return
        if storage.memory is None:
            sequences = storage.num_steps // storage.sequence_length
            storage.memory = memory.new_empty((sequences, *memory.shape))
        storage.memory[sequence] = memory

    def _compute_returns(self, storage: RolloutStorage, settings: TrainingSettings) -> None:
        """Bootstrap the episodes cut short, then the returns and advantages of the rollout,
        with the stage's discounting."""
        gamma, use_gae, gae_lambda = settings.gamma, settings.use_gae, settings.gae_lambda
        assert gamma is not None and use_gae is not None and gae_lambda is not None
        with torch.no_grad():
            storage.bootstrap_truncated_episodes(gamma)
            next_values = self.actor.values(self.stepper.observations)
            returns = compute_returns(
                storage.rewards,
                storage.values,
                storage.terminated | storage.truncated,
                next_values,
                gamma=gamma,
                use_gae=use_gae,
                gae_lambda=gae_lambda,
            )
            storage.compute_advantages(returns)

    # ----------------------------------------------------------------------------------------
    # Checkpoints

    def state_dict(self) -> dict[str, Any]:
        """This process's environments, its episodes in progress, the model's memory of them
        and the normalisation statistics (whose discounted returns are this process's own)."""
        stepper = self.stepper
        return {
            "task": self.task.state_dict(),
            "observations": map_observations(Tensor.cpu, stepper.task_observations),
            "episode_returns": stepper.episode_returns,
            "episode_lengths": stepper.episode_lengths,
            "acting": self.actor.state_dict(),
            "normalization": None
            if self.normalization is None
            else self.normalization.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], path: Path) -> None:
        """Restore what :meth:`state_dict` returned, from the checkpoint at ``path``.

        Raises:
            CheckpointError: The checkpoint's run did not normalise, and this one does.
        """
        restore_normalization(self.normalization, state, path)
        restarted = self.task.load_state_dict(state["task"])
        if restarted is None:
            self.stepper.load_state(
                state["observations"], state["episode_returns"], state["episode_lengths"], seen=True
            )
            self.actor.load_state_dict(state["acting"])
        else:  # the task could only restart its environments: fresh episodes
            self.stepper.load_state(restarted)
