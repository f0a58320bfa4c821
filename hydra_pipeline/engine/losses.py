"""Losses and the loss protocol.

A loss is any callable object with this signature, selected in a config by ``_target_`` under
``pipeline.named_losses``::

    def __call__(self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput)
        -> tuple[Tensor, dict[str, float]]

``step_count`` is the number of agent steps taken so far in the current stage (schedules such as
PPO's clip decay run on it), ``batch`` the :class:`~hydra_pipeline.engine.rollout.Minibatch`,
and ``output`` the model's output on ``batch.observations``. It returns the scalar loss to
minimise and the terms to log, which appear in TensorBoard as ``loss/<loss name>/<term>``. A
loss that needs the expert's actions (``batch.expert_actions``) sets the class attribute
``needs_expert_actions = True``; the engine then records them during rollouts. A loss may
declare the names of the terms it returns in a ``terms`` class attribute: an early-stopping
criterion watching ``<loss name>/<term>`` is then checked against them at startup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from hydra_pipeline.engine.rollout import Minibatch
from hydra_pipeline.models.protocol import ActorCriticOutput
from hydra_pipeline.pipeline.validation import require_non_negative, require_positive

__all__ = ["A2C", "PPO", "Imitation", "Loss"]


class Loss(Protocol):
    """A training loss (see the module docstring)."""

    needs_expert_actions: bool

    def __call__(
        self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput
    ) -> tuple[Tensor, dict[str, float]]: ...


class PPO:
    """Proximal Policy Optimization: the clipped surrogate objective plus value and entropy
    terms (Schulman et al. 2017, https://arxiv.org/abs/1707.06347).

    Args:
        clip_param: The surrogate's clipping range epsilon (> 0).
        value_loss_coef: Weight of the value loss.
        entropy_coef: Weight of the entropy bonus (subtracted from the loss).
        use_clipped_value_loss: Clip the value update to ``clip_param`` around the old value
            estimate and take the worse of the clipped and unclipped errors.
        clip_decay: Multiplies ``clip_param`` as a function of the stage's step count
            (typically a ``LinearDecay``); ``None`` keeps it constant.
        normalize_advantage: Use advantages normalised over the rollout.
    """

    needs_expert_actions = False
    terms = ("action", "value", "entropy", "clip_fraction")

    def __init__(
        self,
        clip_param: float = 0.1,
        value_loss_coef: float = 0.5,
        entropy_coef: float = 0.01,
        use_clipped_value_loss: bool = True,
        clip_decay: Callable[[float], float] | None = None,
        normalize_advantage: bool = True,
    ) -> None:
        self.clip_param = require_positive("clip_param", clip_param)
        self.value_loss_coef = require_non_negative("value_loss_coef", value_loss_coef)
        self.entropy_coef = require_non_negative("entropy_coef", entropy_coef)
        self.use_clipped_value_loss = bool(use_clipped_value_loss)
        self.clip_decay = clip_decay
        self.normalize_advantage = bool(normalize_advantage)

    def __call__(
        self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput
    ) -> tuple[Tensor, dict[str, float]]:
        advantage_field = "normalized_advantages" if self.normalize_advantage else "advantages"
        actions, old_log_probs, old_values, returns, advantages = batch.require(
            "actions", "old_log_probs", "old_values", "returns", advantage_field
        )
        clip = self.clip_param * (1.0 if self.clip_decay is None else self.clip_decay(step_count))
        log_probs = output.distribution.log_prob(actions)
        ratio = torch.exp(log_probs - old_log_probs)
        surrogate = torch.min(ratio * advantages, ratio.clamp(1.0 - clip, 1.0 + clip) * advantages)
        action_loss = -surrogate.mean()
        values = output.values
        if self.use_clipped_value_loss:
            clipped = old_values + (values - old_values).clamp(-clip, clip)
            value_loss = 0.5 * torch.max((values - returns).square(), (clipped - returns).square())
        else:
            value_loss = 0.5 * (values - returns).square()
        value_loss = value_loss.mean()
        entropy = output.distribution.entropy().mean()
        total = action_loss + self.value_loss_coef * value_loss - self.entropy_coef * entropy
        with torch.no_grad():
            clip_fraction = ((ratio - 1.0).abs() > clip).float().mean()
        return total, {
            "action": action_loss.item(),
            "value": value_loss.item(),
            "entropy": entropy.item(),
            "clip_fraction": clip_fraction.item(),
        }


class A2C:
    """Advantage actor-critic: policy gradient weighted by raw advantages, plus value and
    entropy terms (Mnih et al. 2016, https://arxiv.org/abs/1602.01783).

    Args:
        value_loss_coef: Weight of the value loss.
        entropy_coef: Weight of the entropy bonus (subtracted from the loss).
    """

    needs_expert_actions = False
    terms = ("action", "value", "entropy")

    def __init__(self, value_loss_coef: float = 0.5, entropy_coef: float = 0.01) -> None:
        self.value_loss_coef = require_non_negative("value_loss_coef", value_loss_coef)
        self.entropy_coef = require_non_negative("entropy_coef", entropy_coef)

    def __call__(
        self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput
    ) -> tuple[Tensor, dict[str, float]]:
        actions, returns, advantages = batch.require("actions", "returns", "advantages")
        action_loss = -(advantages * output.distribution.log_prob(actions)).mean()
        value_loss = 0.5 * (output.values - returns).square().mean()
        entropy = output.distribution.entropy().mean()
        total = action_loss + self.value_loss_coef * value_loss - self.entropy_coef * entropy
        return total, {
            "action": action_loss.item(),
            "value": value_loss.item(),
            "entropy": entropy.item(),
        }


class Imitation:
    """Behaviour cloning: the negative log-likelihood of the expert's actions under the policy
    (the cross-entropy against the expert for discrete actions)."""

    needs_expert_actions = True
    terms = ("cross_entropy",)

    def __call__(
        self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput
    ) -> tuple[Tensor, dict[str, float]]:
        (expert_actions,) = batch.require("expert_actions")
        loss = -output.distribution.log_prob(expert_actions).mean()
        return loss, {"cross_entropy": loss.item()}
