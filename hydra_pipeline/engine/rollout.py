"""Rollout storage: one preallocated tensor per quantity, ``(num_steps, num_envs, ...)``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from hydra_pipeline.engine.distributed import moments
from hydra_pipeline.tasks.observations import (
    Observations,
    ObservationSpace,
    as_observation_space,
    map_observations,
    zeros_for,
)

__all__ = ["Minibatch", "RolloutStorage", "normalized"]


class Minibatch(NamedTuple):
    """What a loss receives: a batch of samples, flattened to ``(batch, ...)``.

    On-policy minibatches fill every field (``expert_actions`` only when the stage needs
    them, ``memory`` and ``episode_starts`` only for a model with memory); off-policy
    demonstration batches carry only ``observations`` and ``expert_actions``. Losses read what
    they need through :meth:`require`.

    For a model with memory, a minibatch holds whole sequences: ``memory`` ``(sequences,
    ...)`` is the memory each starts from, ``episode_starts`` ``(steps, sequences)`` where
    episodes start, and the other fields are ``(steps * sequences, ...)``, step-major (see
    :mod:`hydra_pipeline.models.protocol`).
    """

    observations: Observations
    actions: Tensor | None = None
    old_log_probs: Tensor | None = None
    old_values: Tensor | None = None
    returns: Tensor | None = None
    advantages: Tensor | None = None
    normalized_advantages: Tensor | None = None
    expert_actions: Tensor | None = None
    memory: Tensor | None = None
    episode_starts: Tensor | None = None

    def require(self, *names: str) -> tuple[Tensor, ...]:
        """The named fields, or a ``ValueError`` naming those this batch lacks."""
        values = tuple(getattr(self, name) for name in names)
        missing = [name for name, value in zip(names, values, strict=True) if value is None]
        if missing:
            raise ValueError(
                f"this loss needs {missing}, which the batch does not carry (off-policy batches "
                "carry only observations and expert_actions; expert_actions need a task with an "
                "expert)"
            )
        return values


class RolloutStorage:
    """The experience of one rollout: ``num_steps`` steps of ``num_envs`` environments.

    Row ``t`` holds the observation the policy acted on at step ``t``, the action, its log
    probability and value estimate, and what the task returned for it. ``final_values`` keeps
    the value of the last observation of episodes cut short at step ``t``, to bootstrap them.
    For a model with memory, the rollout is cut into sequences of ``sequence_length`` steps
    of each environment: ``memory`` ``(num_steps / sequence_length, num_envs, ...)`` holds the
    memory each sequence started from (``None`` for a memoryless model) and
    ``episode_starts`` where the policy started episodes, so updates replay each sequence as
    the rollout took it.
    Observations keep the element types of their space: images stay ``uint8`` (a quarter of
    the memory of ``float32`` copies), and ``Dict`` observations are a dict of such tensors.
    ``rewards`` are the task's (scaled, when normalising) until
    :meth:`bootstrap_truncated_episodes` adds the bootstrap of episodes cut short.
    ``has_expert_actions`` says whether the rollout recorded the expert's actions.
    """

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        observation_space: ObservationSpace | Sequence[int],
        action_shape: Sequence[int],
        action_dtype: torch.dtype,
        device: torch.device,
        sequence_length: int | None = None,
    ) -> None:
        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros((num_steps, num_envs, *shape), dtype=dtype, device=device)

        self.num_steps = num_steps
        self.num_envs = num_envs
        self.sequence_length = sequence_length or num_steps
        self.observations = zeros_for(
            as_observation_space(observation_space), (num_steps, num_envs), device
        )
        self.final_values = zeros()
        self.memory: Tensor | None = None
        self.episode_starts = zeros(dtype=torch.bool)
        self.actions = zeros(*action_shape, dtype=action_dtype)
        self.expert_actions = zeros(*action_shape, dtype=action_dtype)
        self.log_probs = zeros()
        self.values = zeros()
        self.rewards = zeros()
        self.terminated = zeros(dtype=torch.bool)
        self.truncated = zeros(dtype=torch.bool)
        self.returns = zeros()
        self.advantages = zeros()
        self.normalized_advantages = zeros()
        self.has_expert_actions = False

    def bootstrap_truncated_episodes(self, gamma: float) -> None:
        """Credit each episode cut short (truncated, not terminated) with the discounted value
        of its last observation (valued during the rollout, with the episode's memory), so a
        time limit is not mistaken for the end of the MDP: ``rewards`` then hold the rewards
        the returns are computed from."""
        cut_short = self.truncated & ~self.terminated
        self.rewards[cut_short] += gamma * self.final_values[cut_short]

    def compute_advantages(self, returns: Tensor) -> None:
        """Store ``returns`` and the advantages ``returns - values``, raw and normalised."""
        self.returns.copy_(returns)
        torch.sub(returns, self.values, out=self.advantages)
        self.normalized_advantages.copy_(normalized(self.advantages))

    def explained_variance(self) -> float:
        """How much of the returns' variance the value estimates explain: ``1 - Var(returns -
        values) / Var(returns)`` (1 is perfect, 0 no better than a constant, negative worse;
        NaN when the returns do not vary, or there is one)."""
        if self.returns.numel() < 2:
            return float("nan")
        variance = float(self.returns.var())
        return float("nan") if variance == 0 else 1.0 - float(self.advantages.var()) / variance

    def minibatches(
        self, num_mini_batch: int, with_expert_actions: bool, split: str = "environments"
    ) -> Iterator[Minibatch]:
        """The rollout in ``num_mini_batch`` random minibatches, each transition in exactly one.

        Args:
            num_mini_batch: How many minibatches.
            with_expert_actions: Whether the minibatches carry the expert's actions.
            split: ``"environments"`` groups whole environments (all steps of each; for a
                model with memory, its sequences of ``sequence_length`` steps);
                ``"transitions"`` shuffles single transitions across environments and steps
                (see ``TrainingSettings.minibatch_split``).

        A model with memory learns from whole sequences: its rollouts are split by
        environments (the engine's fit checks refuse anything else before training).
        """
        memory = self.memory
        take: Callable[[Tensor, Tensor], Tensor]
        if split != "environments":
            count, take = self.num_steps * self.num_envs, _take_transitions
        elif memory is None:
            count, take = self.num_envs, _take_environments
        else:  # sequence u is environment u % num_envs's (u // num_envs)-th
            count, take = memory.shape[0] * self.num_envs, self._take_sequences
            memory = memory.flatten(0, 1)
        groups = torch.tensor_split(
            torch.randperm(count, device=self.rewards.device), num_mini_batch
        )
        for indices in groups:
            yield Minibatch(
                observations=map_observations(
                    lambda tensor: take(tensor, indices),  # noqa: B023 - used at once
                    self.observations,
                ),
                actions=take(self.actions, indices),
                old_log_probs=take(self.log_probs, indices),
                old_values=take(self.values, indices),
                returns=take(self.returns, indices),
                advantages=take(self.advantages, indices),
                normalized_advantages=take(self.normalized_advantages, indices),
                expert_actions=take(self.expert_actions, indices) if with_expert_actions else None,
                memory=None if memory is None else memory[indices],
                episode_starts=None
                if memory is None
                else self._sequences(self.episode_starts)[:, indices],
            )

    def _sequences(self, tensor: Tensor) -> Tensor:
        """``tensor`` ``(num_steps, num_envs, ...)`` as ``(sequence_length, sequences, ...)``:
        the rollout cut into sequences, sequence ``u`` being environment ``u % num_envs``'s
        ``(u // num_envs)``-th."""
        length = self.sequence_length
        cut = tensor.view(self.num_steps // length, length, *tensor.shape[1:]).transpose(0, 1)
        return cut.flatten(1, 2)

    def _take_sequences(self, tensor: Tensor, sequences: Tensor) -> Tensor:
        """Every step of the ``sequences``, flattened to ``(steps * len(sequences), ...)``."""
        return self._sequences(tensor)[:, sequences].flatten(0, 1)


def normalized(advantages: Tensor, *, each_row: bool = False) -> Tensor:
    """``advantages`` shifted to mean 0 and scaled to standard deviation 1 (plus 1e-5).

    In a distributed run, the mean and deviation are those of every rank's advantages (of the
    rollout, or of the minibatch: each rank's share of it), so every rank weighs its samples
    as one process holding them all would. The sample std of a single advantage (one step, one
    environment) is NaN, which would turn the weights into NaN; that lone advantage normalises
    to 0 instead. With ``each_row``, each row of ``advantages`` is normalised over itself
    (several members' minibatches at once, ``(members, batch)``: seeds trained as one batch,
    in one process).
    """
    if each_row:
        mean = advantages.mean(-1, keepdim=True)
        std = advantages.std(-1, keepdim=True) if advantages.shape[-1] > 1 else mean.mul(0)
    else:
        mean, std = moments(advantages)
    return (advantages - mean) / (std + 1e-5)


def _take_environments(tensor: Tensor, envs: Tensor) -> Tensor:
    """Every step of the environments ``envs``, flattened to ``(steps * len(envs), ...)``."""
    return tensor[:, envs].flatten(0, 1)


def _take_transitions(tensor: Tensor, indices: Tensor) -> Tensor:
    """The transitions at ``indices`` of the flattened ``(steps * envs, ...)`` rollout."""
    return tensor.flatten(0, 1)[indices]
