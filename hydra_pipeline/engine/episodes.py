"""Episode returns, lengths and task metrics from a rollout, without a Python loop over steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["FinishedEpisodes", "RecentEpisodes", "finished_episodes"]


class FinishedEpisodes(NamedTuple):
    """The episodes that ended in a rollout (in step-major order), and what carries over to
    the next one.

    Attributes:
        returns: Return of each episode that ended.
        lengths: Its length in steps.
        environments: The index of the environment it ran in.
        metrics: Task metric name -> its value for each episode (``NaN``: not reported).
        carried_returns: ``(N,)`` return so far of each episode still in progress.
        carried_lengths: ``(N,)`` their lengths so far.
    """

    returns: Tensor
    lengths: Tensor
    environments: Tensor
    metrics: dict[str, Tensor]
    carried_returns: Tensor
    carried_lengths: Tensor


def finished_episodes(
    rewards: Tensor,
    dones: Tensor,
    carried_returns: Tensor,
    carried_lengths: Tensor,
    metrics: Mapping[str, Tensor] | None = None,
) -> FinishedEpisodes:
    """Split a rollout's rewards into episodes.

    Args:
        rewards: ``(T, N)`` rewards of the rollout.
        dones: ``(T, N)`` True where an episode ended at that step.
        carried_returns: ``(N,)`` return so far of each episode in progress when the rollout
            began (``carried_returns`` of the previous call, zeros at first).
        carried_lengths: ``(N,)`` their lengths so far.
        metrics: Task metric name -> ``(T, N)`` values, read where an episode ended.

    Returns:
        Every episode that ended, and the return and length so far of each episode still in
        progress.
    """
    num_steps = rewards.shape[0]
    # Running totals since the start of the episode in progress when the rollout began.
    running_returns = carried_returns + rewards.cumsum(0)
    if not bool(dones.any()):  # no episode ended (the common case step by step): cheaper
        none = torch.zeros(0, dtype=running_returns.dtype)
        return FinishedEpisodes(
            returns=none,
            lengths=none,
            environments=torch.zeros(0, dtype=torch.int64),
            metrics={name: none for name in metrics or {}},
            carried_returns=running_returns[-1],
            carried_lengths=carried_lengths + num_steps,
        )
    rows = torch.arange(num_steps).unsqueeze(1)
    running_lengths = carried_lengths + (rows + 1).to(running_returns.dtype)
    # For each step, the last step at or before it where an episode ended (-1: none).
    last_end = torch.where(dones, rows, -1).cummax(0).values
    previous_end = torch.cat((torch.full_like(last_end[:1], -1), last_end[:-1]))

    def total_at_end(running: Tensor, end: Tensor) -> Tensor:
        """The running total at step ``end`` (0 where there was no end)."""
        return torch.where(end >= 0, running.gather(0, end.clamp(min=0)), 0.0)

    final_end = last_end[-1:]
    return FinishedEpisodes(
        returns=(running_returns - total_at_end(running_returns, previous_end))[dones],
        lengths=(running_lengths - total_at_end(running_lengths, previous_end))[dones],
        environments=dones.nonzero()[:, 1],
        metrics={name: values[dones] for name, values in (metrics or {}).items()},
        carried_returns=(running_returns[-1:] - total_at_end(running_returns, final_end))[0],
        carried_lengths=(running_lengths[-1:] - total_at_end(running_lengths, final_end))[0],
    )


class RecentEpisodes:
    """The returns and lengths of the last ``window`` finished episodes: the training return
    the logs, the early-stopping criteria and the summary all mean (Stable-Baselines3 also
    reports the mean over the last 100).

    Args:
        window: How many of the latest episodes to keep (>= 1).
    """

    def __init__(self, window: int = 100) -> None:
        self.window = window
        self.returns = torch.zeros(0, dtype=torch.float64)
        self.lengths = torch.zeros(0, dtype=torch.float64)

    def add(self, returns: Tensor, lengths: Tensor) -> None:
        """Add episodes that just ended (oldest first)."""
        self.returns = torch.cat([self.returns, returns.to(torch.float64)])[-self.window :]
        self.lengths = torch.cat([self.lengths, lengths.to(torch.float64)])[-self.window :]

    def clear(self) -> None:
        """Forget every episode kept."""
        self.returns = self.returns[:0]
        self.lengths = self.lengths[:0]

    @property
    def count(self) -> int:
        """Episodes kept (fewer than ``window`` until that many have ended)."""
        return int(self.returns.numel())

    def sums(self) -> dict[str, float]:
        """The sum of the returns (``reward``) and of the lengths (``episode_length``) of the
        episodes kept (empty if none)."""
        if not self.count:
            return {}
        return {"reward": float(self.returns.sum()), "episode_length": float(self.lengths.sum())}

    def means(self) -> dict[str, float]:
        """Mean ``reward`` (return) and ``episode_length`` of the episodes kept (empty if
        none)."""
        return {name: total / self.count for name, total in self.sums().items()}

    def state_dict(self) -> dict[str, Tensor]:
        return {"returns": self.returns.clone(), "lengths": self.lengths.clone()}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        self.returns = state["returns"].to(torch.float64)[-self.window :]
        self.lengths = state["lengths"].to(torch.float64)[-self.window :]
