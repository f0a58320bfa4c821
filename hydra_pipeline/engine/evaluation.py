"""Evaluation: a policy run for a number of episodes on a task of its own, without touching
training.

An :class:`Evaluator` acts with the same :class:`~hydra_pipeline.engine.acting.TaskStepper` as
training rollouts, without teacher forcing, on a separate copy of the task that it resets with
its own seed at every evaluation. Python's, NumPy's and torch's global generators are seeded
with that seed for the evaluation and put back as they were afterwards, and the model is in
``eval()`` mode meanwhile: a run that evaluates trains exactly as the same run without, and
evaluations of the same weights play the same episodes.

Episodes are spread over the environments before any is played (environment ``i`` of ``n``
plays ``episodes // n`` of them, one more for the first ``episodes % n``), and each
environment's first ones count, so short episodes are not favoured over long ones.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hydra_pipeline.arguments import require_at_least, require_seed
from hydra_pipeline.engine.acting import Actor, TaskStepper
from hydra_pipeline.engine.checkpoint import capture_rng_state, restore_rng_state
from hydra_pipeline.engine.distributed import broadcast_object
from hydra_pipeline.engine.normalization import Normalization
from hydra_pipeline.engine.video import (
    check_renders,
    frames_per_second,
    render,
    require_video_support,
    write_video,
)
from hydra_pipeline.pipeline.early_stopping import MetricGoal, metric_goal, metric_name
from hydra_pipeline.pipeline.metrics import EVALUATION_METRICS
from hydra_pipeline.pipeline.seeding import set_seed
from hydra_pipeline.tasks.protocol import Task

__all__ = [
    "EVALUATION_METRICS",
    "BestEvaluation",
    "EvaluationResult",
    "EvaluationSchedule",
    "Evaluator",
    "evaluation_seed",
    "isolated_random_state",
]

log = logging.getLogger("hydra_pipeline")

_EVALUATION_STREAM = 0x5EED_E7A1
"""Mixed with a run's seed into the seed of its evaluations."""


def evaluation_seed(seed: int) -> int:
    """The seed of a run's evaluations, drawn from the run's ``seed`` (so evaluation episodes
    are not the training environments' first episodes, nor another seed's)."""
    sequence = np.random.SeedSequence([require_seed("seed", seed), _EVALUATION_STREAM])
    return int(sequence.generate_state(1)[0])


@contextlib.contextmanager
def isolated_random_state(seed: int | None = None) -> Iterator[None]:
    """Inside the block, the global generators are seeded with ``seed`` (left as they are
    when ``None``); after it, they are exactly as they were before."""
    saved = capture_rng_state()
    try:
        if seed is not None:
            set_seed(seed)
        yield
    finally:
        restore_rng_state(saved)


@contextlib.contextmanager
def _evaluation_mode(model: nn.Module) -> Iterator[None]:
    """The model in ``eval()`` mode and without gradients inside the block."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(training)


@dataclass
class EvaluationResult:
    """The episodes of one evaluation, in the order they ended.

    Attributes:
        returns: Each episode's return.
        lengths: Each episode's length in steps.
        metrics: Task metric name -> its value in each episode (``NaN``: not reported).
        videos: The video files written, one per episode of the first environment.
    """

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    videos: list[Path] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Means over the episodes: ``reward`` (the return), ``reward_std`` (the returns'
        population standard deviation), ``episode_length``, and each task metric (over the
        episodes that report it)."""
        returns = np.asarray(self.returns, dtype=np.float64)
        summary = {
            "reward": float(returns.mean()),
            "reward_std": float(returns.std()),
            "episode_length": float(np.mean(self.lengths)),
        }
        for name, values in self.metrics.items():
            reported = [value for value in values if not math.isnan(value)]
            if reported:
                summary[name] = float(np.mean(reported))
        return summary

    def counts(self) -> dict[str, int]:
        """For each entry of :meth:`summary`, the number of episodes behind it."""
        counts = dict.fromkeys(EVALUATION_METRICS, len(self.returns))
        for name, values in self.metrics.items():
            reported = sum(not math.isnan(value) for value in values)
            if reported:
                counts[name] = reported
        return counts


class Evaluator:
    """Runs a model for ``episodes`` episodes on ``task``, the same ones at every call.

    Args:
        task: The evaluation's own task (not the training task: it is reset and reseeded at
            every evaluation).
        model: The model to evaluate (the training model itself: it is only read).
        episodes: Episodes per evaluation (>= 1), spread over the task's environments.
        deterministic: Act with each action distribution's mode instead of a sample.
        seed: Seeds the task and the global generators at every evaluation.
        device: Where the model lives.
        video_folder: Where to write a video of each episode of the first environment
            (``None``: no videos). Needs PyAV and a task with ``render()``.
        normalization: The statistics the model was trained with (training's own object, or
            a checkpoint's), used as they are; ``None``: the task's observations as they are.

    An evaluation lasts until every environment has played its share of the episodes, so the
    task's episodes must end (a time limit, as Gymnasium's registered environments have).

    Raises:
        InvalidArgumentError: An argument is out of range, or videos are asked of a task that
            cannot render.
        ImportError: Videos are asked for and PyAV is not installed.
    """

    def __init__(
        self,
        task: Task,
        model: nn.Module,
        *,
        episodes: int = 10,
        deterministic: bool = True,
        seed: int = 0,
        device: str | torch.device = "cpu",
        video_folder: Path | None = None,
        normalization: Normalization | None = None,
    ) -> None:
        self.task = task
        self.model = model
        self.episodes = require_at_least("episodes", episodes, 1)
        self.deterministic = bool(deterministic)
        self.seed = require_seed("seed", seed)
        self.video_folder = video_folder
        if video_folder is not None:
            require_video_support()
            check_renders(task)
        actor = Actor(model, task.action_space, torch.device(device))
        self.stepper = TaskStepper(task, actor, normalization)
        num_envs = task.num_envs
        self.quotas = [
            episodes // num_envs + (index < episodes % num_envs) for index in range(num_envs)
        ]

    def evaluate(self, video_name: str = "episode") -> EvaluationResult:
        """Play the episodes and return them.

        Args:
            video_name: The videos' file names start with it: ``<video_name>-<k>.mp4`` for
                the first environment's ``k``-th episode.
        """
        result = EvaluationResult()
        task_metrics: list[dict[str, float]] = []
        played = [0] * self.task.num_envs
        recording = self.video_folder is not None
        frames: list[np.ndarray[Any, Any]] = []
        with isolated_random_state(self.seed), _evaluation_mode(self.model):
            self.stepper.reset(seed=self.seed)
            while len(result.returns) < self.episodes:
                if recording:
                    frames.append(render(self.task))
                self.stepper.step(deterministic=self.deterministic)
                ended = self.stepper.finished_episodes()
                for index, environment in enumerate(ended.environments.tolist()):
                    if played[environment] == self.quotas[environment]:
                        continue
                    played[environment] += 1
                    result.returns.append(float(ended.returns[index]))
                    result.lengths.append(round(float(ended.lengths[index])))
                    task_metrics.append(
                        {name: float(values[index]) for name, values in ended.metrics.items()}
                    )
                    if environment == 0 and recording:
                        result.videos.append(self._write(video_name, played[0], frames))
                        frames = []
                        recording = played[0] < self.quotas[0]
        for name in dict.fromkeys(name for metrics in task_metrics for name in metrics):
            result.metrics[name] = [metrics.get(name, math.nan) for metrics in task_metrics]
        return result

    def _write(self, name: str, number: int, frames: list[np.ndarray[Any, Any]]) -> Path:
        assert self.video_folder is not None  # only called while recording
        path = self.video_folder / f"{name}-{number}.mp4"
        return write_video(path, frames, frames_per_second(self.task))


class BestEvaluation:
    """The best evaluation so far, by one metric.

    Args:
        metric: The evaluation metric that decides (``reward``, ``episode_length``, a task
            metric such as ``success``).
        mode: ``"max"`` (larger is better) or ``"min"``.
    """

    def __init__(self, metric: str = "reward", mode: MetricGoal | str = MetricGoal.MAX) -> None:
        self.metric = metric_name(metric)
        self.mode = metric_goal(mode)
        self.value: float | None = None
        self.total_steps: int | None = None
        self._missing_told = False

    def improved_by(self, metrics: Mapping[str, float], total_steps: int) -> bool:
        """Whether ``metrics`` beat the best so far (then they are the best). An evaluation
        without the metric does not; the first one says so in the log (a task metric that
        no episode reported, or a name the task does not report)."""
        value = metrics.get(self.metric)
        if value is None and not self._missing_told:
            self._missing_told = True
            log.warning(
                "The evaluation at %d steps reports no %r (it reports: %s): it cannot be the "
                "best, and no best checkpoint is kept until one does (evaluation.metric).",
                total_steps,
                self.metric,
                ", ".join(sorted(metrics)),
            )
        if value is None or math.isnan(value):
            return False
        better = self.value is None or (
            value > self.value if self.mode is MetricGoal.MAX else value < self.value
        )
        if better:
            self.value, self.total_steps = value, total_steps
        return better

    def to_dict(self) -> dict[str, Any] | None:
        """The best evaluation for ``summary.json`` (``None`` before any)."""
        if self.value is None:
            return None
        return {
            "metric": self.metric,
            "mode": self.mode.value,
            "value": self.value,
            "total_steps": self.total_steps,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "total_steps": self.total_steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.value = None if state["value"] is None else float(state["value"])
        self.total_steps = None if state["total_steps"] is None else int(state["total_steps"])


class EvaluationSchedule:
    """A training run's evaluations: when they are due, what the latest found, and the best.

    Args:
        evaluator: Evaluates the policy on a task of its own (rank 0 of a distributed run
            evaluates; the other ranks receive its result).
        interval: Evaluate at the first rollout end at or after each multiple of this many
            total steps (>= 1), so that runs with other rollout sizes evaluate at comparable
            points. The run also evaluates after its last stage, unless it just did.
        best: Which evaluation is the best so far (by default the highest ``reward``).

    Attributes:
        steps_at_last_evaluation: The total step count of the latest evaluation.
        latest: The latest evaluation's metrics (empty before the first).
    """

    def __init__(
        self, evaluator: Evaluator, interval: int | None, best: BestEvaluation | None = None
    ) -> None:
        self.evaluator = evaluator
        self.interval = require_at_least("evaluation_interval", interval, 1)
        self.best = best or BestEvaluation()
        self.steps_at_last_evaluation = 0
        self.latest: dict[str, float] = {}

    def due(self, total_steps: int, *, final: bool = False) -> bool:
        """Whether to evaluate at ``total_steps``: when a multiple of ``interval`` has been
        reached since the previous evaluation, or at the end of training (unless just
        evaluated)."""
        if final:
            return total_steps > self.steps_at_last_evaluation
        return total_steps // self.interval > self.steps_at_last_evaluation // self.interval

    def evaluate(
        self, total_steps: int, *, is_main: bool
    ) -> tuple[dict[str, float], dict[str, int], list[Path]]:
        """Evaluate at ``total_steps``: the metrics (the same on every rank), the number of
        episodes behind each, and the videos written (by rank 0, ``is_main``)."""
        self.steps_at_last_evaluation = total_steps
        videos: list[Path] = []
        outcome: tuple[dict[str, float], dict[str, int]] | None = None
        if is_main:
            result = self.evaluator.evaluate(video_name=f"steps_{total_steps:012d}")
            outcome, videos = (result.summary(), result.counts()), result.videos
        metrics, counts = broadcast_object(outcome)  # type: ignore[misc]
        self.latest = metrics
        return metrics, counts, videos

    def state_dict(self) -> dict[str, Any]:
        return {
            "steps_at_last_evaluation": self.steps_at_last_evaluation,
            "latest": dict(self.latest),
            "best": self.best.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.steps_at_last_evaluation = int(state["steps_at_last_evaluation"])
        self.latest = dict(state["latest"])
        self.best.load_state_dict(state["best"])
