"""Rollout storage: one preallocated tensor per quantity, ``(num_steps, num_envs, ...)``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["Minibatch", "RolloutStorage"]


class Minibatch(NamedTuple):
    """What a loss receives: a batch of samples, flattened to ``(batch, ...)``.

    On-policy minibatches fill every field (``expert_actions`` only when the stage needs
    them); off-policy demonstration batches carry only ``observations`` and
    ``expert_actions``. Losses read what they need through :meth:`require`.
    """

    observations: Tensor
    actions: Tensor | None = None
    old_log_probs: Tensor | None = None
    old_values: Tensor | None = None
    returns: Tensor | None = None
    advantages: Tensor | None = None
    normalized_advantages: Tensor | None = None
    expert_actions: Tensor | None = None

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
    probability and value estimate, and what the task returned for it. ``final_observations``
    keeps the last observation of episodes cut short at step ``t``, to bootstrap them.
    """

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        observation_shape: Sequence[int],
        action_shape: Sequence[int],
        action_dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros((num_steps, num_envs, *shape), dtype=dtype, device=device)

        self.num_steps = num_steps
        self.num_envs = num_envs
        self.observations = zeros(*observation_shape)
        self.final_observations = zeros(*observation_shape)
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

    def compute_advantages(self, returns: Tensor) -> None:
        """Store ``returns`` and the advantages ``returns - values``, raw and normalised."""
        self.returns.copy_(returns)
        torch.sub(returns, self.values, out=self.advantages)
        mean = self.advantages.mean()
        # The sample std of a single advantage (one step, one environment) is NaN, which would
        # turn the weights into NaN; that lone advantage normalises to 0 instead.
        std = self.advantages.std() if self.advantages.numel() > 1 else torch.zeros_like(mean)
        torch.div(self.advantages - mean, std + 1e-5, out=self.normalized_advantages)

    def minibatches(self, num_mini_batch: int, with_expert_actions: bool) -> Iterator[Minibatch]:
        """Split the environments at random into ``num_mini_batch`` groups and yield, for each,
        all steps of its environments (AllenAct splits by environment, not by time)."""
        order = torch.randperm(self.num_envs, device=self.observations.device)
        for envs in torch.tensor_split(order, num_mini_batch):

            def take(tensor: Tensor, envs: Tensor = envs) -> Tensor:
                return tensor[:, envs].flatten(0, 1)

            yield Minibatch(
                observations=take(self.observations),
                actions=take(self.actions),
                old_log_probs=take(self.log_probs),
                old_values=take(self.values),
                returns=take(self.returns),
                advantages=take(self.advantages),
                normalized_advantages=take(self.normalized_advantages),
                expert_actions=take(self.expert_actions) if with_expert_actions else None,
            )
