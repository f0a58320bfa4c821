"""Step-indexed schedules: teacher-forcing probability, PPO clip decay, LR multiplier."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from hydra_pipeline.arguments import require_real
from hydra_pipeline.errors import InvalidArgumentError

__all__ = ["LinearDecay", "MultiLinearDecay"]


@dataclass(frozen=True)
class LinearDecay:
    """A value moving linearly from ``startp`` to ``endp`` over ``steps`` steps, then constant.

    The value at step ``epoch`` is ``startp + (endp - startp) * (e / steps)`` with ``e`` the
    step clamped to ``[0, steps]``, computed in that order, so every value is the float AllenAct
    0.5.4 computes: ``startp`` at and before step 0, ``startp + (endp - startp) * 1.0`` at and
    after ``steps`` (which can differ from ``endp`` in the last bit), never extrapolated. It may
    increase (``startp < endp``) as well as decrease.

    ``steps`` may be any non-zero number: a float (``1.2e6``) works as its value, and a negative
    ``steps`` clamps every step to 0, so the value is ``startp`` throughout (AllenAct's
    behaviour-cloning configs write ``LinearDecay(steps=-1)`` for a constant). ``steps=0`` is
    refused: AllenAct divides by zero at every call.

    >>> decay = LinearDecay(steps=100)
    >>> decay(0), decay(25), decay(100), decay(1000)
    (1.0, 0.75, 0.0, 0.0)
    >>> LinearDecay(steps=-1, startp=0.3)(500)
    0.3

    Attributes:
        steps: Number of steps over which the value moves; any number but 0.
        startp: Value at step 0.
        endp: Value at ``steps`` and after.
    """

    steps: float
    startp: float = 1.0
    endp: float = 0.0

    def __post_init__(self) -> None:
        steps = require_real("steps", self.steps)
        if steps == 0:
            raise InvalidArgumentError(
                "steps",
                "must not be 0",
                self.steps,
                "A decay over 0 steps has no slope (AllenAct divides by zero); for a constant "
                "value use steps=-1 or startp == endp.",
            )
        require_real("startp", self.startp)
        require_real("endp", self.endp)

    def __call__(self, epoch: float) -> float:
        """The value at step ``epoch`` (any real number; clamped to [0, steps])."""
        clamped = max(min(epoch, self.steps), 0)
        return self.startp + (self.endp - self.startp) * (clamped / float(self.steps))


@dataclass(frozen=True)
class MultiLinearDecay:
    """Several :class:`LinearDecay` pieces one after the other: a piecewise-linear schedule.

    Piece ``k`` covers the steps from the sum of the earlier pieces' ``steps`` to that sum plus
    its own, and is evaluated at the step counted from its start; before step 0 the first piece
    gives its start, after the last piece its end. At a boundary the next piece starts. For
    steps that never decrease (the engine's step counts) every value equals AllenAct 0.5.4's;
    AllenAct's object remembers its current piece and gives wrong values for an earlier step,
    this one does not.

    >>> warmup_then_decay = MultiLinearDecay(
    ...     [LinearDecay(steps=10, startp=0.0, endp=1.0), LinearDecay(steps=90, startp=1.0)]
    ... )
    >>> warmup_then_decay(5), warmup_then_decay(10), warmup_then_decay(55), warmup_then_decay(500)
    (0.5, 1.0, 0.5, 0.0)

    Attributes:
        stages: The pieces, in order; each must span a positive number of steps.
        steps: Where each piece ends: the running sums of the pieces' ``steps``.
        total_steps: Where the last piece ends.
    """

    stages: Sequence[LinearDecay]
    steps: tuple[float, ...] = field(init=False, repr=False, compare=False)
    total_steps: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.stages, str) or not isinstance(self.stages, Sequence) or not self.stages:
            raise InvalidArgumentError(
                "stages", "must be a non-empty list of LinearDecay", self.stages
            )
        for index, piece in enumerate(self.stages):
            if not isinstance(piece, LinearDecay):
                raise InvalidArgumentError(f"stages.{index}", "must be a LinearDecay", piece)
            if not piece.steps > 0 or math.isinf(piece.steps):
                raise InvalidArgumentError(
                    f"stages.{index}.steps",
                    "must be a positive, finite number of steps",
                    piece.steps,
                    "Each piece of a MultiLinearDecay covers its own span of steps.",
                )
        object.__setattr__(self, "stages", tuple(self.stages))
        ends = tuple(accumulate(piece.steps for piece in self.stages))
        object.__setattr__(self, "steps", ends)
        object.__setattr__(self, "total_steps", ends[-1])

    def __call__(self, epoch: float) -> float:
        """The value at step ``epoch`` (clamped to [0, total_steps])."""
        clamped = max(min(epoch, self.total_steps), 0)
        start: float = 0
        for piece, end in zip(self.stages[:-1], self.steps[:-1], strict=True):
            if clamped < end:
                return piece(clamped - start)
            start = end
        return self.stages[-1](clamped - start)
