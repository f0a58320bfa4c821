"""Observation normalisation and reward scaling with running statistics.

What Stable-Baselines3's ``VecNormalize`` does, for a task of any kind: observations are
shifted and scaled by the running mean and variance of every observation seen in training,
then clipped; rewards are divided by the running standard deviation of the discounted return,
then clipped (their mean is left alone, so their sign is kept). The statistics are part of the
training state (checkpoints, exact resume), keep still during evaluation, and travel with a
trained policy, so it sees what it was trained on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from hydra_pipeline.arguments import require_positive, require_unit_interval
from hydra_pipeline.engine.distributed import merged_moments

__all__ = ["Normalization", "RunningMeanStd"]


class RunningMeanStd:
    """The mean and (population) variance of every row seen so far, updated a batch at a time
    (the parallel algorithm of Chan, Golub and LeVeque), in float64.

    Args:
        shape: The shape of one row.
        count: The weight of the initial mean 0 and variance 1 (SB3 starts at 1e-4), so the
            first batch decides the statistics almost alone.
    """

    def __init__(self, shape: Sequence[int], count: float = 1e-4) -> None:
        self.mean = torch.zeros(tuple(shape), dtype=torch.float64)
        self.var = torch.ones(tuple(shape), dtype=torch.float64)
        self.count = count

    def update(self, batch: Tensor) -> None:
        """Add the rows of ``batch`` (shape ``(N, *shape)``)."""
        # In a distributed run, the rows of every rank's batch: every rank keeps the same
        # statistics.
        batch_count, batch_mean, batch_var = merged_moments(batch)
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        moments = self.var * self.count + batch_var * batch_count
        self.var = (moments + delta.square() * self.count * batch_count / total) / total
        self.count = total

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.mean = state["mean"].to(torch.float64).clone()
        self.var = state["var"].to(torch.float64).clone()
        self.count = float(state["count"])


class Normalization:
    """Normalises a task's observations and scales its rewards, from running statistics.

    Args:
        observations: Normalise observations: ``(x - mean) / sqrt(var + epsilon)``, clipped to
            ``[-clip_observations, clip_observations]``.
        rewards: Scale rewards by the running standard deviation of the discounted return
            (``gamma``), clipped to ``[-clip_rewards, clip_rewards]``. Episode returns in the
            metrics stay the task's own.
        clip_observations: Bound of normalised observations (> 0).
        clip_rewards: Bound of scaled rewards (> 0).
        epsilon: Added to variances before the square root (> 0).
        gamma: Discount of the return whose spread scales the rewards, in [0, 1]; usually the
            pipeline's ``gamma``.
    """

    def __init__(
        self,
        observations: bool = False,
        rewards: bool = False,
        clip_observations: float = 10.0,
        clip_rewards: float = 10.0,
        epsilon: float = 1e-8,
        gamma: float = 0.99,
    ) -> None:
        self.observations = bool(observations)
        self.rewards = bool(rewards)
        self.clip_observations = require_positive("clip_observations", clip_observations)
        self.clip_rewards = require_positive("clip_rewards", clip_rewards)
        self.epsilon = require_positive("epsilon", epsilon)
        self.gamma = require_unit_interval("gamma", gamma)
        self.observation_statistics: RunningMeanStd | None = None
        self.return_statistics = RunningMeanStd(())
        self.discounted_returns: Tensor | None = None

    @property
    def active(self) -> bool:
        """Whether anything is normalised."""
        return self.observations or self.rewards

    def observe(self, observations: Tensor, *, update: bool) -> Tensor:
        """``observations`` normalised (float32, on their device); with ``update``, first add
        them to the statistics (training rollouts do; evaluation and policies do not)."""
        if not self.observations:
            return observations
        if self.observation_statistics is None:
            self.observation_statistics = RunningMeanStd(observations.shape[1:])
        statistics = self.observation_statistics
        if update:
            statistics.update(observations)
        mean = statistics.mean.to(observations.device, torch.float32)
        std = torch.sqrt(statistics.var + self.epsilon).to(observations.device, torch.float32)
        normalised = (observations.to(torch.float32) - mean) / std
        return normalised.clamp(-self.clip_observations, self.clip_observations)

    def reward(self, rewards: Tensor, dones: Tensor) -> Tensor:
        """``rewards`` of one step of every environment, scaled for learning; ``dones`` marks
        the environments whose episode ended at this step (their return restarts)."""
        if not self.rewards:
            return rewards
        if self.discounted_returns is None:
            self.discounted_returns = torch.zeros(rewards.shape[0], dtype=torch.float64)
        returns = self.discounted_returns * self.gamma + rewards.to("cpu", torch.float64)
        self.return_statistics.update(returns)
        self.discounted_returns = torch.where(dones.cpu(), 0.0, returns)
        std = float(torch.sqrt(self.return_statistics.var + self.epsilon))
        return (rewards / std).clamp(-self.clip_rewards, self.clip_rewards)

    def state_dict(self) -> dict[str, Any]:
        """The statistics, and the discounted returns of the episodes in progress."""
        observations = self.observation_statistics
        return {
            "observations": None if observations is None else observations.state_dict(),
            "returns": self.return_statistics.state_dict(),
            "discounted_returns": None
            if self.discounted_returns is None
            else self.discounted_returns.clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["observations"] is not None:
            self.observation_statistics = RunningMeanStd(state["observations"]["mean"].shape)
            self.observation_statistics.load_state_dict(state["observations"])
        self.return_statistics.load_state_dict(state["returns"])
        returns = state["discounted_returns"]
        self.discounted_returns = None if returns is None else returns.to(torch.float64).clone()
