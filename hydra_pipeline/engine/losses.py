"""Losses and the loss protocol.

A loss is any object that satisfies :class:`Loss`: a callable with this signature, selected in
a config by ``_target_`` under ``pipeline.named_losses``::

    def __call__(self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput)
        -> tuple[Tensor, dict[str, float]]

``step_count`` is the number of agent steps taken so far in the current stage (schedules such as
PPO's clip decay run on it), ``batch`` the :class:`~hydra_pipeline.engine.rollout.Minibatch`,
and ``output`` the model's output on ``batch.observations``. It returns the scalar loss to
minimise and the terms to log, which appear in TensorBoard as ``loss/<loss name>/<term>``.

A loss may also declare any of three optional members, each a protocol of its own:

* ``needs_expert_actions = True`` (:class:`NeedsExpertActions`): it reads
  ``batch.expert_actions``, so the engine records the expert's actions during rollouts.
* ``terms`` (:class:`DeclaresTerms`): the names of the terms it returns; an early-stopping
  criterion watching ``<loss name>/<term>`` is then checked against them at startup.
* ``stops_update(info)`` (:class:`StopsUpdate`): called with the terms of each minibatch
  before stepping on it; a true answer ends the update's epochs there (PPO's ``target_kl``).
* ``member_losses(*, step_count, batch, output)`` (:class:`MemberLosses`): the loss of
  several members at once (seeds trained as one batch, see
  :mod:`~hydra_pipeline.engine.batched`), each field of ``batch`` and of ``output`` with a
  leading member axis; it returns the loss and each term per member, as tensors. The built-in
  losses derive from :class:`BatchableLoss`, which computes ``__call__`` through it.

:func:`needs_expert_actions`, :func:`declared_terms` and :func:`update_stopper` read them, with
their defaults for a loss that does not declare them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from hydra_pipeline.arguments import require_name, require_non_negative, require_positive
from hydra_pipeline.engine.rollout import Minibatch, normalized
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.models.protocol import ActorCriticOutput

__all__ = [
    "A2C",
    "PPO",
    "A2CConfig",
    "BatchableLoss",
    "DeclaresTerms",
    "Imitation",
    "Loss",
    "MemberLosses",
    "NeedsExpertActions",
    "PPOConfig",
    "StopsUpdate",
    "declared_terms",
    "needs_expert_actions",
    "update_stopper",
]

ADVANTAGE_NORMALIZATIONS = ("rollout", "minibatch")
"""Over what PPO normalises advantages (see :class:`PPO`)."""

PPOConfig: dict[str, Any] = {"clip_param": 0.1, "value_loss_coef": 0.5, "entropy_coef": 0.01}
"""AllenAct's PPO defaults, for ``PPO(**PPOConfig)`` as its experiment configs write it."""

A2CConfig: dict[str, Any] = {"value_loss_coef": 0.5, "entropy_coef": 0.01}
"""AllenAct's A2C defaults, for ``A2C(**A2CConfig)``."""


class Loss(Protocol):
    """A training loss: the one required member (see the module docstring)."""

    def __call__(
        self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput
    ) -> tuple[Tensor, dict[str, float]]: ...


@runtime_checkable
class NeedsExpertActions(Protocol):
    """Optional: whether the loss reads the expert's actions (``False`` when undeclared)."""

    needs_expert_actions: bool


@runtime_checkable
class DeclaresTerms(Protocol):
    """Optional: the names of the terms the loss returns (any names when undeclared or
    ``None``)."""

    terms: tuple[str, ...] | None


@runtime_checkable
class StopsUpdate(Protocol):
    """Optional: whether the update stops before stepping on a minibatch with terms ``info``
    (never, when undeclared)."""

    def stops_update(self, info: Mapping[str, float]) -> bool: ...


@runtime_checkable
class MemberLosses(Protocol):
    """Optional: the loss of one member, or of several at once (see the module docstring).

    ``batch``'s fields are ``(batch, ...)``, or ``(members, batch, ...)`` for several
    members, and ``output`` covers the same rows; the loss and each term are scalars, or
    ``(members,)``, each member's computed from its rows alone.
    """

    def member_losses(
        self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput
    ) -> tuple[Tensor, dict[str, Tensor]]: ...


class BatchableLoss(ABC):
    """A loss written once for one member and for several at once: subclasses define
    :meth:`member_losses` (see :class:`MemberLosses`), and calling the loss (the
    :class:`Loss` protocol) returns its result for one member with the terms as numbers."""

    def __call__(
        self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput
    ) -> tuple[Tensor, dict[str, float]]:
        loss, terms = self.member_losses(step_count=step_count, batch=batch, output=output)
        return loss, {name: value.item() for name, value in terms.items()}

    @abstractmethod
    def member_losses(
        self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss and its terms, scalars or one per member (see :class:`MemberLosses`)."""


def needs_expert_actions(loss: Loss) -> bool:
    """Whether ``loss`` reads the expert's actions."""
    return isinstance(loss, NeedsExpertActions) and bool(loss.needs_expert_actions)


def declared_terms(loss: Loss) -> tuple[str, ...] | None:
    """The names of the terms ``loss`` returns, or ``None`` when it does not declare them."""
    terms = loss.terms if isinstance(loss, DeclaresTerms) else None
    return None if terms is None else tuple(terms)


def update_stopper(loss: Loss) -> Callable[[Mapping[str, float]], bool] | None:
    """``loss``'s ``stops_update``, or ``None`` when it never stops an update."""
    return loss.stops_update if isinstance(loss, StopsUpdate) else None


class PPO(BatchableLoss):
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
        entropy_method_name: The method of the model's action distribution that gives the
            entropy bonus, called with no arguments (AllenAct names ``conditional_entropy``
            for its sequential distributions; this project's distributions have ``entropy``).
        normalize_advantage: Use normalised advantages (zero mean, unit standard deviation).
        show_ratios: Also log the mean probability ratio (``ratio``), its clamped value
            (``ratio_clamped``) and the one the surrogate used (``ratio_used``), as AllenAct
            does.
        advantage_normalization: Over what advantages are normalised: ``"rollout"`` (the
            whole rollout at once, as AllenAct does) or ``"minibatch"`` (each minibatch on
            its own, as Stable-Baselines3 and CleanRL do).
        target_kl: Stop the update's remaining epochs (before the step of the minibatch that
            shows it) once the approximate KL divergence between the rollout's policy and the
            current one exceeds ``1.5 * target_kl`` (Stable-Baselines3's rule); ``None``
            never stops early.

    Besides the loss terms it logs ``approx_kl`` (the estimator ``mean((r - 1) - log r)`` of
    the ratio ``r``, http://joschu.net/blog/kl-approx.html) and ``clip_fraction``. The defaults
    are AllenAct's ``PPOConfig`` and the defaults of its ``PPO``.
    """

    needs_expert_actions = False
    terms: tuple[str, ...] = ("action", "value", "entropy", "clip_fraction", "approx_kl")

    def __init__(
        self,
        clip_param: float = 0.1,
        value_loss_coef: float = 0.5,
        entropy_coef: float = 0.01,
        use_clipped_value_loss: bool = True,
        clip_decay: Callable[[float], float] | None = None,
        entropy_method_name: str = "entropy",
        normalize_advantage: bool = True,
        show_ratios: bool = False,
        advantage_normalization: str = "rollout",
        target_kl: float | None = None,
    ) -> None:
        self.clip_param = require_positive("clip_param", clip_param)
        self.value_loss_coef = require_non_negative("value_loss_coef", value_loss_coef)
        self.entropy_coef = require_non_negative("entropy_coef", entropy_coef)
        self.use_clipped_value_loss = bool(use_clipped_value_loss)
        if clip_decay is not None and not callable(clip_decay):
            raise InvalidArgumentError(
                "clip_decay",
                "must map a step count to a multiplier of clip_param",
                clip_decay,
                "In a config, select a schedule into it: "
                "+schedule@<loss key>.clip_decay=linear_decay <loss key>.clip_decay.steps=...",
            )
        self.clip_decay = clip_decay
        self.entropy_method_name = require_name("entropy_method_name", entropy_method_name)
        self.normalize_advantage = bool(normalize_advantage)
        self.show_ratios = bool(show_ratios)
        if advantage_normalization not in ADVANTAGE_NORMALIZATIONS:
            raise InvalidArgumentError(
                "advantage_normalization",
                f"must be one of {list(ADVANTAGE_NORMALIZATIONS)}",
                advantage_normalization,
            )
        self.advantage_normalization = advantage_normalization
        self.target_kl = None if target_kl is None else require_positive("target_kl", target_kl)
        if self.show_ratios:
            self.terms = (*PPO.terms, "ratio", "ratio_clamped", "ratio_used")

    def member_losses(
        self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss and its terms, of one member or of several at once (see
        :class:`MemberLosses`): every mean is over the last axis, a member's rows."""
        per_rollout = self.normalize_advantage and self.advantage_normalization == "rollout"
        advantage_field = "normalized_advantages" if per_rollout else "advantages"
        actions, old_log_probs, old_values, returns, advantages = batch.require(
            "actions", "old_log_probs", "old_values", "returns", advantage_field
        )
        if self.normalize_advantage and not per_rollout:
            advantages = normalized(advantages, each_row=advantages.dim() > 1)
        clip = self.clip_param * (1.0 if self.clip_decay is None else self.clip_decay(step_count))
        log_probs = output.distribution.log_prob(actions)
        ratio = torch.exp(log_probs - old_log_probs)
        clamped_ratio = ratio.clamp(1.0 - clip, 1.0 + clip)
        surrogate = torch.min(ratio * advantages, clamped_ratio * advantages)
        action_loss = -surrogate.mean(-1)
        values = output.values
        if self.use_clipped_value_loss:
            clipped = old_values + (values - old_values).clamp(-clip, clip)
            value_loss = 0.5 * torch.max((values - returns).square(), (clipped - returns).square())
        else:
            value_loss = 0.5 * (values - returns).square()
        value_loss = value_loss.mean(-1)
        total = action_loss + self.value_loss_coef * value_loss
        if self.entropy_coef > 0:
            entropy = self._entropy(output).mean(-1)
            total = total - self.entropy_coef * entropy
        else:  # only logged: its graph would add nothing but zeros to the gradients
            with torch.no_grad():
                entropy = self._entropy(output).mean(-1)
        with torch.no_grad():
            terms = {
                "action": action_loss.detach(),
                "value": value_loss.detach(),
                "entropy": entropy.detach(),
                "clip_fraction": ((ratio - 1.0).abs() > clip).float().mean(-1),
                "approx_kl": ((ratio - 1.0) - (log_probs - old_log_probs)).mean(-1),
            }
            if self.show_ratios:
                used = torch.where(
                    clamped_ratio * advantages < ratio * advantages, clamped_ratio, ratio
                )
                terms["ratio"] = ratio.mean(-1)
                terms["ratio_clamped"] = clamped_ratio.mean(-1)
                terms["ratio_used"] = used.mean(-1)
        return total, terms

    def stops_update(self, info: Mapping[str, float]) -> bool:
        """Whether the update should stop before stepping on the minibatch whose terms are
        ``info`` (its approximate KL divergence is past ``1.5 * target_kl``)."""
        return self.target_kl is not None and info["approx_kl"] > 1.5 * self.target_kl

    def _entropy(self, output: ActorCriticOutput) -> Tensor:
        """The entropy of each row's action distribution, by ``entropy_method_name``."""
        method = getattr(output.distribution, self.entropy_method_name, None)
        if not callable(method):
            raise ValueError(
                f"PPO's entropy_method_name is {self.entropy_method_name!r}, but the model's "
                f"action distribution ({type(output.distribution).__name__}) has no such "
                "method; use 'entropy'"
            )
        entropy: Tensor = method()
        return entropy


class A2C(BatchableLoss):
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

    def member_losses(
        self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss and its terms, of one member or of several at once (see
        :class:`MemberLosses`)."""
        actions, returns, advantages = batch.require("actions", "returns", "advantages")
        action_loss = -(advantages * output.distribution.log_prob(actions)).mean(-1)
        value_loss = 0.5 * (output.values - returns).square().mean(-1)
        entropy = output.distribution.entropy().mean(-1)
        total = action_loss + self.value_loss_coef * value_loss - self.entropy_coef * entropy
        terms = {"action": action_loss, "value": value_loss, "entropy": entropy}
        return total, {name: value.detach() for name, value in terms.items()}


class Imitation(BatchableLoss):
    """Behaviour cloning: the negative log-likelihood of the expert's actions under the policy
    (the cross-entropy against the expert for discrete actions).

    The expert's actions come from the task (``Task.expert_actions``, recorded in the batch as
    ``expert_actions``), or from a data source's minibatches.

    Args:
        expert_sensor: Accepted so that AllenAct configs port unchanged, and kept as an
            attribute, but not used: AllenAct reads expert actions from an expert sensor's
            observations and needs the sensor only to split grouped actions, while here the
            task supplies the expert's actions and actions are not grouped.
    """

    needs_expert_actions = True
    terms = ("cross_entropy",)

    def __init__(self, expert_sensor: Any = None) -> None:
        self.expert_sensor = expert_sensor

    def member_losses(
        self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss and its term, of one member or of several at once (see
        :class:`MemberLosses`)."""
        (expert_actions,) = batch.require("expert_actions")
        loss = -output.distribution.log_prob(expert_actions).mean(-1)
        return loss, {"cross_entropy": loss.detach()}
