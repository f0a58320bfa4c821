"""Early-stopping criteria: end the current pipeline stage before ``max_stage_steps``.

The engine calls the current stage's criterion at every metric point (every
``metric_accumulate_interval`` total steps and at the end of a rollout that completes a stage)
with the metrics it logs there: ``reward`` and ``episode_length`` are the means over the
last ``return_window`` episodes that ended in the stage (100 by default: the return
``summary.json`` reports, so a stage stopped at a return of 475 reports at least that), the
other training metrics (losses, task metrics such as ``success``) their means since the
previous call, and the evaluations' metrics since then as ``eval/<metric>``. Called through
the library API
(:meth:`~hydra_pipeline.pipeline.training_pipeline.TrainingPipeline.before_rollout`), a
criterion sees whatever tracker its caller passes, as in AllenAct. A criterion may keep state
between calls; that state is saved in checkpoints through
:meth:`EarlyStoppingCriterion.state_dict`, so a resumed run stops exactly where the
uninterrupted run would have.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from enum import Enum
from typing import Any

from hydra_pipeline.arguments import require_at_least, require_non_negative, require_real
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.pipeline.metrics import ScalarMeanTracker

__all__ = [
    "EarlyStoppingCriterion",
    "MetricGoal",
    "NeverEarlyStoppingCriterion",
    "PlateauEarlyStopping",
    "ThresholdEarlyStopping",
    "metric_goal",
    "metric_name",
]


class EarlyStoppingCriterion(abc.ABC):
    """Decides, from training metrics, whether the current stage should end now.

    Subclasses implement :meth:`__call__`; stateful ones also override :meth:`state_dict` and
    :meth:`load_state_dict` so their state survives a checkpoint.
    """

    @abc.abstractmethod
    def __call__(
        self, stage_steps: int, total_steps: int, training_metrics: ScalarMeanTracker
    ) -> bool:
        """Return True to end the current stage now.

        Args:
            stage_steps: Agent steps taken in the current stage.
            total_steps: Agent steps taken in all stages, the current one included.
            training_metrics: Means of the training metrics (``reward``, ``episode_length``,
                loss terms, ...): from the engine, the return and length over the stage's
                last episodes and the others since the previous call (see the module
                docstring).
        """

    def state_dict(self) -> dict[str, Any]:
        """The criterion's state, made of plain Python values (empty when stateless)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if state:
            raise InvalidArgumentError(
                "state", f"is not a state of the stateless {type(self).__name__}", dict(state)
            )


class NeverEarlyStoppingCriterion(EarlyStoppingCriterion):
    """Never ends a stage early: the stage runs for ``max_stage_steps``."""

    def __call__(
        self, stage_steps: int, total_steps: int, training_metrics: ScalarMeanTracker
    ) -> bool:
        return False


class MetricGoal(str, Enum):
    """Whether a larger (``"max"``) or a smaller (``"min"``) metric value is better."""

    MAX = "max"
    MIN = "min"


def metric_goal(value: MetricGoal | str) -> MetricGoal:
    """``value`` as a :class:`MetricGoal`, or an error naming ``mode``."""
    try:
        return MetricGoal(value)
    except ValueError:
        raise InvalidArgumentError("mode", "must be 'max' or 'min'", value) from None


def metric_name(value: Any) -> str:
    """``value`` if it can name a metric, or an error naming ``metric``."""
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError("metric", "must be a metric name such as 'reward'", value)
    return value


class ThresholdEarlyStopping(EarlyStoppingCriterion):
    """Stops once ``metric`` has reached ``threshold`` at ``consecutive`` metric points in a row.

    A metric point where ``metric`` was not recorded (say, no episode has ended in the stage
    yet, or no evaluation since the previous point for an ``eval/`` metric) neither counts
    nor breaks the run of successes.

    Args:
        metric: Name of the training metric to watch, e.g. ``"reward"`` (mean episode return).
        threshold: Value to reach: ``metric >= threshold`` with ``mode="max"``,
            ``metric <= threshold`` with ``mode="min"``.
        mode: ``"max"`` or ``"min"``.
        consecutive: Number of metric points in a row that must reach the threshold (>= 1).
    """

    def __init__(
        self,
        metric: str = "reward",
        threshold: float = 0.0,
        mode: MetricGoal | str = MetricGoal.MAX,
        consecutive: int = 1,
    ) -> None:
        self.metric = metric_name(metric)
        self.threshold = require_real("threshold", threshold)
        self.mode = metric_goal(mode)
        self.consecutive = require_at_least("consecutive", consecutive, 1)
        self.successes_in_a_row = 0

    def __call__(
        self, stage_steps: int, total_steps: int, training_metrics: ScalarMeanTracker
    ) -> bool:
        value = training_metrics.means().get(self.metric)
        if value is None:
            return self.successes_in_a_row >= self.consecutive
        if self.mode is MetricGoal.MAX:
            reached = value >= self.threshold
        else:
            reached = value <= self.threshold
        self.successes_in_a_row = self.successes_in_a_row + 1 if reached else 0
        return self.successes_in_a_row >= self.consecutive

    def state_dict(self) -> dict[str, Any]:
        return {"successes_in_a_row": self.successes_in_a_row}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.successes_in_a_row = int(state["successes_in_a_row"])


class PlateauEarlyStopping(EarlyStoppingCriterion):
    """Stops when ``metric`` has not improved by more than ``min_delta`` for ``patience`` points.

    Improvement is measured against the best value seen so far in the stage. Metric points where
    ``metric`` was not recorded are ignored.

    Args:
        metric: Name of the training metric to watch, e.g. ``"reward"``.
        patience: Number of metric points without improvement after which the stage ends (>= 1).
        min_delta: Smallest change over the best value that counts as an improvement (>= 0).
        mode: ``"max"`` (larger is better) or ``"min"``.
    """

    def __init__(
        self,
        metric: str = "reward",
        patience: int = 10,
        min_delta: float = 0.0,
        mode: MetricGoal | str = MetricGoal.MAX,
    ) -> None:
        self.metric = metric_name(metric)
        self.patience = require_at_least("patience", patience, 1)
        self.min_delta = require_non_negative("min_delta", min_delta)
        self.mode = metric_goal(mode)
        self.best: float | None = None
        self.points_without_improvement = 0

    def __call__(
        self, stage_steps: int, total_steps: int, training_metrics: ScalarMeanTracker
    ) -> bool:
        value = training_metrics.means().get(self.metric)
        if value is None or math.isnan(value):
            return self.points_without_improvement >= self.patience
        if self.best is None or self._improves(value, self.best):
            self.best = value
            self.points_without_improvement = 0
        else:
            self.points_without_improvement += 1
        return self.points_without_improvement >= self.patience

    def _improves(self, value: float, best: float) -> bool:
        if self.mode is MetricGoal.MAX:
            return value > best + self.min_delta
        return value < best - self.min_delta

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "points_without_improvement": self.points_without_improvement}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        best = state["best"]
        self.best = None if best is None else float(best)
        self.points_without_improvement = int(state["points_without_improvement"])
