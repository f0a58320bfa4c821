"""Run callbacks: what happens during training, as plain values, for whatever watches a run.

The engine calls each callback of a run at these points, in this order:

* ``on_run_start``: once, before the first rollout (of this process: a resumed run starts
  again, with ``resumed=True`` and the checkpoint's step count);
* ``on_stage_start``: when a stage begins or resumes;
* ``on_rollout_end``: after each rollout's updates;
* ``on_log``: at each metric point, with the means since the previous one (``mode="train"``)
  and, when the run evaluates, with the evaluation's metrics (``mode="eval"``);
* ``on_video``: after a video of an evaluation's episode is written;
* ``on_checkpoint``: after each checkpoint is written (``best.pt`` included);
* ``on_stage_end``: when a stage completes;
* ``on_run_end``: once, after the summary is written (not when the run fails or is
  interrupted);
* ``close``: last, however the run ended (release files, finish a tracker's run).

Hooks receive keyword arguments only, all plain values (numbers, strings, paths, dicts), never
the engine's objects. Subclass :class:`Callback` and override what you need; accept ``**_``
in your hooks so they keep working when a hook gains an argument. The console, TensorBoard
and the metrics file are callbacks too (:mod:`hydra_pipeline.engine.reporting`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Callback", "CallbackList"]


class Callback:
    """A run callback: every hook does nothing until overridden (see the module docstring)."""

    def on_run_start(
        self,
        *,
        run_dir: Path,
        config: Mapping[str, Any],
        job: Mapping[str, Any],
        total_steps: int,
        resumed: bool,
    ) -> None:
        """The run starts (``total_steps`` > 0 when it resumes from a checkpoint).

        Args:
            run_dir: The run's output folder.
            config: The run's resolved config as plain values (empty outside the app).
            job: Where the run stands in a sweep, as the app knows it: ``name`` (Hydra's job
                name), ``overrides`` (the run's command-line overrides), and in a sweep
                ``sweep_dir`` and ``number`` (the job's number); empty outside the app.
            total_steps: Agent steps already taken.
            resumed: Whether the run continues from a checkpoint.
        """

    def on_stage_start(
        self,
        *,
        stage_index: int,
        stage_count: int,
        loss_names: Sequence[str],
        max_stage_steps: int,
        stage_steps: int,
        total_steps: int,
        planned_total_steps: float,
    ) -> None:
        """A stage begins (``stage_steps`` > 0 when it resumes part-way).

        Args:
            stage_index: The stage's index (from 0).
            stage_count: The pipeline's number of stages.
            loss_names: The stage's losses.
            max_stage_steps: The stage's step limit.
            stage_steps: Steps the stage has taken already.
            total_steps: Steps the run has taken already.
            planned_total_steps: The total step count the run reaches if no stage stops
                early (a progress bar's total; it shrinks when one does).
        """

    def on_rollout_end(self, *, total_steps: int, stage_index: int, stage_steps: int) -> None:
        """A rollout and its updates are done."""

    def on_log(
        self,
        *,
        mode: str,
        total_steps: int,
        stage_index: int,
        stage_steps: int,
        metrics: Mapping[str, float],
        counts: Mapping[str, int],
        steps_per_second: float | None = None,
        recent_return: float | None = None,
    ) -> None:
        """A metric point.

        Args:
            mode: ``"train"`` (training metrics) or ``"eval"`` (an evaluation's).
            metrics: Metric name -> mean since the previous point of the same mode
                (``reward``, ``episode_length``, ``lr``, ``<loss>/<term>``, ...).
            counts: Metric name -> the number of samples behind its mean (for ``reward``,
                the number of finished episodes).
            steps_per_second: Training speed since the previous training point.
            recent_return: The mean return of the run's last ``return_window`` finished
                episodes (what the run's summary reports at its end); ``None`` before the
                first episode ends, and for evaluations.
        """

    def on_video(self, *, mode: str, total_steps: int, path: Path) -> None:
        """A video of an episode of an evaluation (``mode="eval"``) was written to ``path``
        (an MP4 file)."""

    def on_checkpoint(self, *, total_steps: int, stage_index: int, path: Path) -> None:
        """A checkpoint was written to ``path``."""

    def on_stage_end(
        self, *, stage_index: int, total_steps: int, stage_steps: int, early_stopped: bool
    ) -> None:
        """A stage is complete (``early_stopped``: its criterion ended it)."""

    def on_run_end(self, *, total_steps: int, summary: Mapping[str, Any], run_dir: Path) -> None:
        """Every stage is complete; ``summary`` is what ``summary.json`` holds."""

    def close(self) -> None:
        """The run is over, however it ended: release what the callback holds."""


class CallbackList(Callback):
    """Several callbacks called as one, in order (``close`` calls them all, even if some
    raise, then raises the first error)."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)

    def on_run_start(self, **values: Any) -> None:
        for callback in self.callbacks:
            callback.on_run_start(**values)

    def on_stage_start(self, **values: Any) -> None:
        for callback in self.callbacks:
            callback.on_stage_start(**values)

    def on_rollout_end(self, **values: Any) -> None:
        for callback in self.callbacks:
            callback.on_rollout_end(**values)

    def on_log(self, **values: Any) -> None:
        for callback in self.callbacks:
            callback.on_log(**values)

    def on_video(self, **values: Any) -> None:
        for callback in self.callbacks:
            callback.on_video(**values)

    def on_checkpoint(self, **values: Any) -> None:
        for callback in self.callbacks:
            callback.on_checkpoint(**values)

    def on_stage_end(self, **values: Any) -> None:
        for callback in self.callbacks:
            callback.on_stage_end(**values)

    def on_run_end(self, **values: Any) -> None:
        for callback in self.callbacks:
            callback.on_run_end(**values)

    def close(self) -> None:
        errors: list[Exception] = []
        for callback in self.callbacks:
            try:
                callback.close()
            except Exception as error:  # the others must still release what they hold
                errors.append(error)
        if errors:
            raise errors[0]
