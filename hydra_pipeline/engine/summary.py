"""``RunSummary``: what a training run reports when it ends, written as ``summary.json``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hydra_pipeline.engine.evaluation import EvaluationSchedule
    from hydra_pipeline.engine.statistics import TrainingStatistics
    from hydra_pipeline.pipeline import TrainingPipeline

__all__ = ["SUMMARY_FILE", "RunSummary", "StageSummary", "summarize_run"]

SUMMARY_FILE = "summary.json"
"""The summary's file name in the run's output folder."""


@dataclass
class StageSummary:
    """How one stage went.

    Attributes:
        index: The stage's index.
        loss_names: Its losses.
        steps: Agent steps taken in it.
        early_stopped: Whether its early-stopping criterion ended it.
        early_stop: What that criterion decided on (``None`` unless ``early_stopped``):
            ``total_steps``, the ``metric`` it watches (``None`` when it names none), and the
            ``metrics`` and ``counts`` it saw, ``reward`` being the mean of the last
            ``counts["reward"]`` episodes that ended in the stage (see
            ``RunSummary.return_window``).
    """

    index: int
    loss_names: list[str]
    steps: int
    early_stopped: bool
    early_stop: dict[str, Any] | None = None


@dataclass
class RunSummary:
    """The outcome of a run.

    Attributes:
        seed: The run's seed.
        total_steps: Agent steps taken over all stages.
        stages: One entry per stage.
        final_metrics: The latest value of every training metric: ``reward`` and
            ``episode_length`` are the means over the last ``return_window`` episodes that
            ended in the last stage (fewer if fewer ended; none if none did), the others
            their means over the
            last metric interval; the values the last metric point logged, and an
            early-stopping criterion of the last stage decided on. Results only, no timings,
            so two runs with the same seed write identical ``final_metrics``.
        final_counts: For each final metric, the number of samples behind its mean (for
            ``reward``, the number of episodes).
        return_window: The most episodes behind the training ``reward`` (the last that
            ended in the stage).
        speed: Timings of this process: ``steps_per_second`` over the run, ``wall_seconds``,
            ``cpu_seconds`` (the process's CPU time over the run: what other work on a shared
            machine disturbs least), and the Unix times of the first environment step
            (``first_step_time``) and of the first gradient update (``first_update_time``).
        status: ``"completed"`` when every stage is complete.
        eval_metrics: The last evaluation's metrics (``reward``, ``reward_std``,
            ``episode_length`` and the task's episode metrics; empty when the run does not
            evaluate): that of the trained policy, as the run evaluates once more at its end.
        best: The best evaluation: ``metric``, ``mode``, ``value`` and its ``total_steps``,
            whose checkpoint is ``checkpoints/best.pt`` (``None`` when there was none).
    """

    seed: int
    total_steps: int
    stages: list[StageSummary]
    final_metrics: dict[str, float]
    final_counts: dict[str, int] = field(default_factory=dict)
    return_window: int = 100
    speed: dict[str, float] = field(default_factory=dict)
    status: str = "completed"
    eval_metrics: dict[str, float] = field(default_factory=dict)
    best: dict[str, Any] | None = None

    def write(self, path: Path) -> None:
        """Write the summary as JSON."""
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize_run(
    *,
    seed: int,
    pipeline: TrainingPipeline,
    statistics: TrainingStatistics,
    evaluation: EvaluationSchedule | None,
    speed: dict[str, float],
) -> RunSummary:
    """The summary of a run of ``pipeline`` at its end: its stages, what ``statistics`` last
    reported, the evaluations' latest and best results, and its ``speed``."""
    return RunSummary(
        seed=seed,
        total_steps=pipeline.total_steps,
        stages=[
            StageSummary(
                index=index,
                loss_names=list(stage.loss_names),
                steps=stage.steps_taken_in_stage,
                early_stopped=stage.early_stopping_criterion_met,
                early_stop=statistics.stops.get(index),
            )
            for index, stage in enumerate(pipeline.pipeline_stages)
        ],
        final_metrics=dict(statistics.latest_metrics),
        final_counts=dict(statistics.latest_counts),
        return_window=statistics.recent_episodes.window,
        speed=speed,
        eval_metrics={} if evaluation is None else dict(evaluation.latest),
        best=None if evaluation is None else evaluation.best.to_dict(),
    )
