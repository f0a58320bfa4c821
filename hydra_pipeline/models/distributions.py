"""Action distributions a model returns: categorical for discrete actions, diagonal Gaussian
for continuous ones.

They are written out instead of using ``torch.distributions`` because the rollout samples from a
fresh distribution at every step: measured here at 64 environments, building a
``torch.distributions.Categorical`` and sampling from it costs about 80 us, the Gumbel-max
sample below about 9 us, and the rollout's whole step budget is a few hundred.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["ActionDistribution", "Categorical", "DiagonalGaussian"]

_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


class ActionDistribution(Protocol):
    """A batch of action distributions, one per row."""

    def sample(self) -> Tensor:
        """One action per row, drawn with torch's global generator."""
        ...

    def mode(self) -> Tensor:
        """The most likely action per row."""
        ...

    def log_prob(self, actions: Tensor) -> Tensor:
        """Log-probability (density) of ``actions``, shape ``(batch,)``."""
        ...

    def entropy(self) -> Tensor:
        """Entropy per row, shape ``(batch,)``."""
        ...


class Categorical:
    """Categorical distributions over ``n`` actions, from unnormalised ``logits (batch, n)``."""

    def __init__(self, logits: Tensor) -> None:
        self.logits = logits
        self.log_probs = logits.log_softmax(dim=-1)

    def sample(self) -> Tensor:
        # Gumbel-max: argmax(logits + Gumbel noise) is an exact categorical sample, and
        # -log(E) with E ~ Exp(1) is Gumbel noise.
        noise = torch.empty_like(self.logits).exponential_()
        return (self.logits - noise.log()).argmax(dim=-1)

    def mode(self) -> Tensor:
        return self.logits.argmax(dim=-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        return self.log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        return -(self.log_probs.exp() * self.log_probs).sum(dim=-1)


class DiagonalGaussian:
    """Independent Gaussians per action entry: ``mean (*batch, *shape)`` and ``log_std``
    broadcastable to it; densities multiply over all entries of an action.

    Args:
        mean: The actions' means.
        log_std: Their log standard deviations.
        batch_dims: How many of ``mean``'s leading dimensions index the batch (2 for several
            members' batches at once, ``(members, batch)``); the rest are one action's.

    Attributes:
        action_dims: How many trailing dimensions an action has (its entries are summed over
            in ``log_prob`` and ``entropy``).
    """

    def __init__(self, mean: Tensor, log_std: Tensor, batch_dims: int = 1) -> None:
        self.mean = mean
        self.log_std = log_std.expand_as(mean)
        self.action_dims = mean.dim() - batch_dims

    def sample(self) -> Tensor:
        return self.mean + self.log_std.exp() * torch.randn_like(self.mean)

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, actions: Tensor) -> Tensor:
        scaled = (actions - self.mean) * torch.exp(-self.log_std)
        log_density = -0.5 * scaled.square() - self.log_std - _HALF_LOG_TWO_PI
        return self._over_actions(log_density)

    def entropy(self) -> Tensor:
        return self._over_actions(self.log_std + 0.5 + _HALF_LOG_TWO_PI)

    def _over_actions(self, entries: Tensor) -> Tensor:
        """``entries`` summed over each action's entries."""
        return entries.flatten(start_dim=entries.dim() - self.action_dims).sum(dim=-1)
