"""Returns for a rollout: generalized advantage estimation or plain discounting."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["compute_returns"]


def compute_returns(
    rewards: Tensor,
    values: Tensor,
    dones: Tensor,
    next_values: Tensor,
    *,
    gamma: float,
    use_gae: bool,
    gae_lambda: float,
) -> Tensor:
    """Value targets for every step of a rollout.

    Args:
        rewards: ``(T, N)`` rewards; a truncated step's reward already includes the discounted
            value of its final observation.
        values: ``(T, N)`` value estimates of the observations acted on.
        dones: ``(T, N)`` True where the episode ended at that step (terminated or truncated),
            so nothing after it is credited to it.
        next_values: ``(N,)`` value estimates of the observations after the last step.
        gamma: Discount factor.
        use_gae: With GAE (Schulman et al. 2016) the returns are ``advantages + values`` where
            ``A_t = delta_t + gamma * lambda * A_{t+1}`` and
            ``delta_t = r_t + gamma * V_{t+1} - V_t``; without it, discounted sums of rewards
            bootstrapped from ``next_values``.
        gae_lambda: GAE's lambda.

    Returns:
        ``(T, N)`` returns.
    """
    discounts = gamma * (~dones).to(rewards.dtype)
    returns = torch.empty_like(rewards)
    if use_gae:
        following_values = torch.cat((values[1:], next_values.unsqueeze(0)))
        deltas = rewards + discounts * following_values - values
        decays = gae_lambda * discounts
        advantage = torch.zeros_like(next_values)
        for t in reversed(range(rewards.shape[0])):
            advantage = torch.addcmul(deltas[t], decays[t], advantage)
            returns[t] = advantage
        returns += values
    else:
        running = next_values
        for t in reversed(range(rewards.shape[0])):
            running = torch.addcmul(rewards[t], discounts[t], running)
            returns[t] = running
    return returns
