"""Step-indexed schedules: teacher-forcing probability, PPO clip decay, LR multiplier."""

from __future__ import annotations

from dataclasses import dataclass

from hydra_pipeline.pipeline.validation import require_at_least, require_real

__all__ = ["LinearDecay"]


@dataclass(frozen=True)
class LinearDecay:
    """A value moving linearly from ``startp`` to ``endp`` over ``steps`` steps, then constant.

    ``decay(i) = startp + (endp - startp) * clamp(i, 0, steps) / steps``: ``startp`` at and
    before step 0, exactly ``endp`` at and after ``steps``, never extrapolated. It may increase
    (``startp < endp``) as well as decrease.

    >>> decay = LinearDecay(steps=100)
    >>> decay(0), decay(25), decay(100), decay(1000)
    (1.0, 0.75, 0.0, 0.0)

    Attributes:
        steps: Number of steps over which the value moves; must be >= 1.
        startp: Value at step 0.
        endp: Value at ``steps`` and after.
    """

    steps: int
    startp: float = 1.0
    endp: float = 0.0

    def __post_init__(self) -> None:
        require_at_least("steps", self.steps, 1)
        require_real("startp", self.startp)
        require_real("endp", self.endp)

    def __call__(self, epoch: float) -> float:
        """The value at step ``epoch`` (any real number; clamped to [0, steps])."""
        if epoch >= self.steps:
            return float(self.endp)
        if epoch <= 0:
            return float(self.startp)
        return self.startp + (self.endp - self.startp) * epoch / self.steps
