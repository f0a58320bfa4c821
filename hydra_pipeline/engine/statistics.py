"""``TrainingStatistics``: what training measures between metric points, and the numbers that
decide.

Between two metric points the collector and the learner add what they measure (episode
returns and lengths, task metrics, teacher forcing, loss terms, the learning rate) to this
rank's *interval*; an evaluation adds its metrics to the *evaluations* since the last point,
which are kept apart (every rank holds the same ones). The last ``return_window`` episodes
that ended in the current stage are kept too (of every rank, in a distributed run): a
stage's return is that of its own policy, not of the previous stage's (or of the expert
that teacher forcing let act).

At a metric point, :meth:`TrainingStatistics.close_interval` merges the interval over the
ranks and tells one story with it: ``reward`` and ``episode_length`` are the means over the
stage's last ``return_window`` episodes (Stable-Baselines3 logs the last 100 too), the other
metrics the interval's means. The logs show those values, the stage's early-stopping
criterion decides on them (with the evaluations' metrics as ``eval/<metric>``), and the run's
summary reports the last of them (with the values each early stop was decided on). A
threshold criterion that stopped a stage at a return of 475 thus never goes with a final
return below 475 for that stage.

This module is also the home of the metric names the engine records, so the fit checks know
what a stage logs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from hydra_pipeline.engine import distributed
from hydra_pipeline.engine.episodes import FinishedEpisodes, RecentEpisodes
from hydra_pipeline.engine.reporting import metric_tag
from hydra_pipeline.pipeline import ScalarMeanTracker

__all__ = [
    "EPISODE_METRICS",
    "TEACHER_FORCING_METRICS",
    "UPDATE_METRICS",
    "MetricPoint",
    "TrainingStatistics",
    "loss_metric_prefix",
]

EPISODE_METRICS = ("reward", "episode_length")
"""The mean return and length of the episodes that ended."""

UPDATE_METRICS = ("lr", "explained_variance")
"""What every update of the rollout records besides its losses' terms."""

TEACHER_FORCING_METRICS = ("teacher_forcing", "teacher_forcing_sampled")
"""A stage with teacher forcing records the scheduled probability and the share of actions
the expert actually took."""


def loss_metric_prefix(component_uuid: str, on_rollout: bool) -> str:
    """What the metric names of a stage component's losses start with: ``<loss>/<term>`` for
    the component learning from the rollout, ``<component>/<loss>/<term>`` for one learning
    from another storage."""
    return "" if on_rollout else f"{component_uuid}/"


class MetricPoint(NamedTuple):
    """What a metric point hands out.

    Attributes:
        metrics: The training metrics over every rank, for the logs: ``reward`` and
            ``episode_length`` over the stage's last ``return_window`` episodes, the others
            (losses, learning rate, task metrics, ...) the interval's means.
        counts: The number of samples behind each of ``metrics`` (episodes, for those two).
        steps_per_second: Agent steps per wall-clock second since the previous point.
        criterion_metrics: ``metrics`` and the evaluations' (as ``eval/<metric>``), for the
            stage's early-stopping criterion.
    """

    metrics: dict[str, float]
    counts: dict[str, int]
    steps_per_second: float
    criterion_metrics: ScalarMeanTracker


class TrainingStatistics:
    """The metrics of the interval in progress, the evaluations since the last metric point,
    the stage's last ``return_window`` episodes, and what the latest metric point reported.

    Args:
        return_window: The training return (``reward``: logged, watched by early-stopping
            criteria, and ``summary.json``'s) is the mean over this many of the last episodes
            that ended in the current stage (of every rank).

    Attributes:
        latest_metrics: What the latest metric point reported (see :class:`MetricPoint`).
        latest_counts: The number of samples (episodes, for the return and length) behind
            each.
        steps_at_last_log: The total step count of the latest metric point.
        stops: For each stage an early-stopping criterion ended (by index): ``total_steps``,
            the ``metric`` the criterion watches (``None`` when it names none), and the
            ``metrics`` and ``counts`` it decided on.
    """

    def __init__(self, return_window: int) -> None:
        self.interval = ScalarMeanTracker()
        self.evaluations = ScalarMeanTracker()
        self.recent_episodes = RecentEpisodes(return_window)
        self.latest_metrics: dict[str, float] = {}
        self.latest_counts: dict[str, int] = {}
        self.steps_at_last_log = 0
        self.stops: dict[int, dict[str, Any]] = {}
        self._clock = (time.perf_counter(), 0)

    def start_stage(self) -> None:
        """A stage begins: its return will be that of the episodes that end in it."""
        self.recent_episodes.clear()

    def start_clock(self, total_steps: int) -> None:
        """Measure the speed of the first interval from now and ``total_steps``."""
        self._clock = (time.perf_counter(), total_steps)

    # ----------------------------------------------------------------------------------------
    # What training measures

    def record(self, values: Mapping[str, float], n: int = 1) -> None:
        """Add ``values``, each the mean of ``n`` samples, to the interval."""
        self.interval.add_scalars(values, n=n)

    def record_episodes(self, episodes: FinishedEpisodes) -> None:
        """Add the episodes that ended in a rollout: their returns and lengths (weighted by
        their number) and the task's metrics of those that report them."""
        self.recent_episodes.add(episodes.returns, episodes.lengths)
        count = episodes.returns.numel()
        if count:
            returns, lengths = float(episodes.returns.mean()), float(episodes.lengths.mean())
            self.record(dict(zip(EPISODE_METRICS, (returns, lengths), strict=True)), n=count)
        for name, values in episodes.metrics.items():
            reported = values[~values.isnan()]
            if reported.numel():
                self.record({name: float(reported.double().mean())}, n=reported.numel())

    def record_evaluation(self, metrics: Mapping[str, float], counts: Mapping[str, int]) -> None:
        """Keep an evaluation's metrics for the criterion at the next metric point."""
        self.evaluations.add_scalars(
            {metric_tag(name, "eval"): value for name, value in metrics.items()},
            n={metric_tag(name, "eval"): count for name, count in counts.items()},
        )

    # ----------------------------------------------------------------------------------------
    # Metric points

    def close_interval(self, total_steps: int) -> MetricPoint:
        """End the interval at ``total_steps``: merge every rank's interval (on every rank,
        so all criteria decide alike), update the latest metrics and start a new interval."""
        merged = distributed.merge_objects(self.interval.state_dict(), _merged_trackers)
        interval = {
            part: {key: value for key, value in merged[part].items() if key not in EPISODE_METRICS}
            for part in ("sums", "counts")
        }
        training = ScalarMeanTracker()
        training.load_state_dict(_merged_trackers([interval, self._recent_episode_sums()]))
        # The logs, the criterion and the summary read these very numbers.
        metrics, counts = training.means(), training.counts()
        self.latest_metrics, self.latest_counts = metrics, counts
        criterion_metrics = ScalarMeanTracker()
        criterion_metrics.load_state_dict(
            _merged_trackers([training.state_dict(), self.evaluations.state_dict()])
        )
        now = time.perf_counter()
        last_time, last_steps = self._clock
        speed = (total_steps - last_steps) / max(now - last_time, 1e-9)
        self._clock = (now, total_steps)
        self.interval.reset()
        self.evaluations.reset()
        self.steps_at_last_log = total_steps
        return MetricPoint(dict(metrics), dict(counts), speed, criterion_metrics)

    def record_stop(
        self, stage_index: int, total_steps: int, criterion: object, point: MetricPoint
    ) -> None:
        """Remember that the stage's ``criterion`` ended it at ``total_steps``, deciding on
        the metric ``point``'s ``criterion_metrics``."""
        metric = getattr(criterion, "metric", None)  # what the built-in criteria watch
        decided_on = point.criterion_metrics
        self.stops[stage_index] = {
            "total_steps": total_steps,
            "metric": metric if isinstance(metric, str) else None,
            "metrics": decided_on.means(),
            "counts": decided_on.counts(),
        }

    def _recent_episode_sums(self) -> dict[str, Any]:
        """The summed returns and lengths of the stage's last ``return_window`` episodes (of
        each rank, in a distributed run) and their number, as a ``ScalarMeanTracker``
        state."""
        kept = distributed.merge_objects(self.recent_episodes.state_dict(), _joined_episodes)
        union = RecentEpisodes(max(1, kept["returns"].numel()))
        union.load_state_dict(kept)
        sums = union.sums()
        return {"sums": sums, "counts": dict.fromkeys(sums, union.count)}

    # ----------------------------------------------------------------------------------------
    # Checkpoints

    def state_dict(self) -> dict[str, Any]:
        """What every rank shares: the latest metric point, the evaluations since, and the
        early stops."""
        return {
            "steps_at_last_log": self.steps_at_last_log,
            "latest_metrics": dict(self.latest_metrics),
            "latest_counts": dict(self.latest_counts),
            "evaluations": self.evaluations.state_dict(),
            "stops": {index: dict(stop) for index, stop in self.stops.items()},
        }

    def rank_state_dict(self) -> dict[str, Any]:
        """This rank's own part: its interval and its last episodes."""
        return {
            "interval_metrics": self.interval.state_dict(),
            "recent_episodes": self.recent_episodes.state_dict(),
        }

    def load_state_dict(self, shared: Mapping[str, Any], own: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` and :meth:`rank_state_dict` returned."""
        self.steps_at_last_log = int(shared["steps_at_last_log"])
        self.latest_metrics = dict(shared["latest_metrics"])
        self.latest_counts = {key: int(n) for key, n in shared["latest_counts"].items()}
        self.evaluations.load_state_dict(shared["evaluations"])
        self.stops = {int(index): dict(stop) for index, stop in shared["stops"].items()}
        self.interval.load_state_dict(own["interval_metrics"])
        self.recent_episodes.load_state_dict(own["recent_episodes"])


def _merged_trackers(states: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One ``ScalarMeanTracker`` state holding the samples of all ``states``."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for state in states:
        for key, value in state["sums"].items():
            sums[key] = sums.get(key, 0.0) + value
            counts[key] = counts.get(key, 0) + state["counts"][key]
    return {"sums": sums, "counts": counts}


def _joined_episodes(states: Iterable[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """The episodes of all ``RecentEpisodes`` states, rank after rank."""
    kept = list(states)
    return {key: torch.cat([state[key] for state in kept]) for key in ("returns", "lengths")}
