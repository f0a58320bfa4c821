"""Schemas of the schedules (group ``schedule``): teacher forcing, PPO's clip decay and the LR
multiplier.

The fields that take a schedule (``teacher_forcing``, ``clip_decay``, ``lr_lambda``) accept any
``_target_`` node, so a ``LinearDecay`` or a ``MultiLinearDecay`` fits each; under a dict key a
schedule can be selected into a null field, e.g.
``+schedule@pipeline.named_losses.ppo_loss.clip_decay=linear_decay``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from omegaconf import MISSING

__all__ = ["LinearDecayConf", "MultiLinearDecayConf"]


@dataclass
class LinearDecayConf:
    """A ``LinearDecay``: a value moving linearly from ``startp`` to ``endp``.

    Attributes:
        steps: Steps over which the value moves; any number but 0 (a negative one keeps
            ``startp`` throughout, as in AllenAct).
        startp: Value at step 0.
        endp: Value at ``steps`` and after.
    """

    _target_: str = "hydra_pipeline.LinearDecay"
    steps: float = MISSING
    startp: float = 1.0
    endp: float = 0.0


@dataclass
class MultiLinearDecayConf:
    """A ``MultiLinearDecay``: ``LinearDecay`` pieces one after the other.

    Attributes:
        stages: The pieces, in order, each with its ``steps`` (> 0), ``startp`` and ``endp``.
    """

    _target_: str = "hydra_pipeline.MultiLinearDecay"
    stages: List[LinearDecayConf] = MISSING
