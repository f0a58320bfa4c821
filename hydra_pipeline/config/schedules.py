"""Schema of ``LinearDecay``, used by teacher forcing, PPO's clip decay and the LR schedule."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

__all__ = ["LinearDecayConf"]


@dataclass
class LinearDecayConf:
    """A ``LinearDecay``: a value moving linearly from ``startp`` to ``endp``.

    Attributes:
        steps: Steps over which the value moves (>= 1).
        startp: Value at step 0.
        endp: Value at ``steps`` and after.
    """

    _target_: str = "hydra_pipeline.LinearDecay"
    steps: int = MISSING
    startp: float = 1.0
    endp: float = 0.0
