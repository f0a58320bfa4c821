"""The built-in run callbacks: the console, TensorBoard and the metrics file.

This module is the only place that knows the TensorBoard tag names: training metrics appear as
``train/<metric>`` (``train/reward``, ``train/episode_length``, ``train/lr``,
``train/teacher_forcing``, ``train/steps_per_second``), loss terms, whose metric names contain
a slash, as ``loss/<loss name>/<term>``, an evaluation's metrics as ``eval/<metric>`` and its
videos, as animated GIFs, as ``eval/video``. The x-axis is always the total step count. The
metrics file (``metrics.csv``) names its columns with the same tags.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from hydra_pipeline.engine.callbacks import Callback
from hydra_pipeline.files import temporary_path

__all__ = [
    "METRICS_FILE",
    "TENSORBOARD_DIRECTORY",
    "ConsoleReporter",
    "MetricsFile",
    "TensorBoardWriter",
    "metric_tag",
]

TENSORBOARD_DIRECTORY = "tensorboard"
"""Where a run writes its TensorBoard event files, relative to its output folder."""

METRICS_FILE = "metrics.csv"
"""A run's logged metrics, one row per metric point, next to its ``summary.json``."""

log = logging.getLogger("hydra_pipeline")


def metric_tag(metric: str, mode: str = "train") -> str:
    """The TensorBoard tag (and metrics-file column) of a metric of the given mode."""
    if mode != "train":
        return f"{mode}/{metric}"
    return f"loss/{metric}" if "/" in metric else f"train/{metric}"


class ConsoleReporter(Callback):
    """Announces stages and shows progress: one progress bar for the whole run (the stage in
    its description, the time left, the speed and the mean return of the last episodes, as
    the final line reports it), or a log line per metric point.

    The bar's total is the step count the run reaches if no stage stops early; it shrinks to
    the steps really taken when a stage's early-stopping criterion ends it, and grows when a
    stage's last rollout takes it past its limit, so the bar never runs past its total.

    Args:
        progress_bar: A progress bar (``None``: only when stderr is a terminal).
    """

    def __init__(self, progress_bar: bool | None = None) -> None:
        self.progress_bar = sys.stderr.isatty() if progress_bar is None else progress_bar
        self._bar: tqdm[Any] | None = None
        self._redirect: contextlib.ExitStack | None = None
        self._after_stage = 0.0  # the later stages' step limits

    def on_stage_start(
        self,
        *,
        stage_index: int,
        stage_count: int,
        loss_names: Sequence[str],
        max_stage_steps: int,
        stage_steps: int,
        total_steps: int = 0,
        planned_total_steps: float = math.inf,
        **_: Any,
    ) -> None:
        log.info(
            "Stage %d/%d: losses %s, up to %d steps%s",
            stage_index + 1,
            stage_count,
            list(loss_names),
            max_stage_steps,
            f" (resuming at {stage_steps})" if stage_steps else "",
        )
        if not self.progress_bar:
            return
        self._after_stage = planned_total_steps - total_steps
        self._after_stage -= max(0, max_stage_steps - stage_steps)
        description = f"stage {stage_index + 1}/{stage_count}"
        if self._bar is None:
            self._redirect = contextlib.ExitStack()
            self._redirect.enter_context(logging_redirect_tqdm([log]))
            self._bar = tqdm(
                desc=description,
                total=_whole(planned_total_steps),
                initial=total_steps,
                unit="step",
                unit_scale=True,
                dynamic_ncols=True,
            )
        else:
            self._bar.set_description(description, refresh=False)
            self._set_total(planned_total_steps)

    def on_rollout_end(self, *, total_steps: int, **_: Any) -> None:
        if self._bar is not None:
            self._bar.update(total_steps - self._bar.n)
            if self._bar.total is not None and self._bar.total < total_steps + self._after_stage:
                self._set_total(total_steps + self._after_stage)

    def _set_total(self, total: float) -> None:
        assert self._bar is not None
        self._bar.total = _whole(total)
        self._bar.refresh()

    def on_log(
        self,
        *,
        mode: str,
        total_steps: int,
        stage_index: int,
        stage_steps: int,
        metrics: Mapping[str, float],
        steps_per_second: float | None = None,
        recent_return: float | None = None,
        **_: Any,
    ) -> None:
        reward = metrics.get("reward")
        if mode != "train":
            log.info(
                "%s at total steps %d | reward %s | episode length %s",
                mode,
                total_steps,
                _number(reward),
                _number(metrics.get("episode_length")),
            )
        elif self._bar is not None:
            postfix = {"sps": f"{steps_per_second or 0:,.0f}"}
            if recent_return is not None:
                postfix["return"] = f"{recent_return:.1f}"
            self._bar.set_postfix(postfix, refresh=False)
        else:
            log.info(
                "stage %d | stage steps %d | total steps %d | reward %s | episode length %s | "
                "%.0f steps/s",
                stage_index + 1,
                stage_steps,
                total_steps,
                _number(reward),
                _number(metrics.get("episode_length"), ".1f"),
                steps_per_second or 0.0,
            )

    def on_stage_end(
        self, *, stage_index: int, total_steps: int, stage_steps: int, early_stopped: bool, **_: Any
    ) -> None:
        if self._bar is not None:  # what the stage did not use is not left to do
            self._set_total(total_steps + self._after_stage)
        reason = "early stopping criterion met" if early_stopped else "step limit reached"
        log.info("Stage %d done after %d steps: %s", stage_index + 1, stage_steps, reason)

    def on_run_end(
        self, *, total_steps: int, summary: Mapping[str, Any], run_dir: Path, **_: Any
    ) -> None:
        self._close_bar()
        final = summary.get("final_metrics", {})
        episodes = summary.get("final_counts", {}).get("reward")
        log.info(
            "Done after %d steps: final mean episode return %s. Summary: %s",
            total_steps,
            "- (no episode ended)"
            if final.get("reward") is None
            else f"{final['reward']:.2f}" + (f" over {episodes} episodes" if episodes else ""),
            run_dir / "summary.json",
        )

    def close(self) -> None:
        self._close_bar()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._redirect is not None:
            self._redirect.close()
            self._redirect = None


def _whole(steps: float) -> int | None:
    """A step count as a progress bar's total (``None``, no total, when it is unbounded)."""
    return int(steps) if math.isfinite(steps) else None


def _number(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


class TensorBoardWriter(Callback):
    """Writes every metric point to TensorBoard event files in ``<run>/tensorboard``, and the
    run's hyperparameters with its final metrics for the hparams view.

    Args:
        hparams: Hyperparameters recorded at the end of the run (the app passes the run's
            overrides, so a sweep's jobs compare there); empty for none.
    """

    def __init__(self, hparams: Mapping[str, Any] | None = None) -> None:
        self.hparams = dict(hparams or {})
        self._writer: Any = None
        self._folder: Path | None = None
        self._purge_step: int | None = None

    def on_run_start(self, *, run_dir: Path, total_steps: int, resumed: bool, **_: Any) -> None:
        self._folder = run_dir / TENSORBOARD_DIRECTORY
        # On resume, TensorBoard drops what the interrupted run logged after the checkpoint.
        self._purge_step = total_steps if resumed else None

    def _summary_writer(self) -> Any:
        # Imported on first use: TensorBoard's import is not paid by runs that never log.
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            assert self._folder is not None, "on_run_start comes first"
            self._writer = SummaryWriter(log_dir=str(self._folder), purge_step=self._purge_step)
        return self._writer

    def on_log(
        self,
        *,
        mode: str,
        total_steps: int,
        stage_index: int,
        metrics: Mapping[str, float],
        steps_per_second: float | None = None,
        **_: Any,
    ) -> None:
        writer = self._summary_writer()
        for metric, value in metrics.items():
            writer.add_scalar(metric_tag(metric, mode), value, total_steps)
        if mode == "train":
            if steps_per_second is not None:
                writer.add_scalar("train/steps_per_second", steps_per_second, total_steps)
            writer.add_scalar("train/stage", stage_index, total_steps)

    def on_video(self, *, mode: str, total_steps: int, path: Path, **_: Any) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        from hydra_pipeline.engine.video import animated_gif, read_frames

        frames, fps = read_frames(path)
        image = Summary.Image(
            height=frames.shape[1] // 2,
            width=frames.shape[2] // 2,
            colorspace=3,
            encoded_image_string=animated_gif(frames, fps, shrink=2),
        )
        summary = Summary(value=[Summary.Value(tag=metric_tag("video", mode), image=image)])
        # SummaryWriter.add_video needs moviepy 1; the GIF is written as add_video writes it.
        self._summary_writer()._get_file_writer().add_summary(summary, total_steps)

    def on_run_end(self, *, summary: Mapping[str, Any], **_: Any) -> None:
        if self.hparams:
            final = summary.get("final_metrics", {})
            self._summary_writer().add_hparams(
                dict(self.hparams), {f"hparam/{k}": v for k, v in final.items()}, run_name="."
            )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


_FIXED_COLUMNS = ("mode", "total_steps", "stage", "stage_steps", "episodes", "steps_per_second")


class MetricsFile(Callback):
    """Writes every metric point as a row of ``<run>/metrics.csv``, for pandas or a
    spreadsheet: ``mode`` (train or eval), ``total_steps``, ``stage`` (its index),
    ``stage_steps``, ``episodes`` (finished episodes behind the ``reward`` mean),
    ``steps_per_second``, then one column per metric, named as its TensorBoard tag.

    The file is rewritten whole, atomically, at each point (metrics may appear as stages
    change). A resumed run drops the rows the interrupted run wrote after its checkpoint.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.path: Path | None = None

    def on_run_start(self, *, run_dir: Path, total_steps: int, resumed: bool, **_: Any) -> None:
        self.path = run_dir / METRICS_FILE
        self.rows = []
        if resumed and self.path.is_file():
            with open(self.path, newline="") as file:
                self.rows = [
                    row for row in csv.DictReader(file) if int(row["total_steps"]) <= total_steps
                ]

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
        **_: Any,
    ) -> None:
        row: dict[str, Any] = {
            "mode": mode,
            "total_steps": total_steps,
            "stage": stage_index,
            "stage_steps": stage_steps,
            "episodes": counts.get("reward", 0),
            "steps_per_second": "" if steps_per_second is None else steps_per_second,
        }
        row.update({metric_tag(name, mode): value for name, value in metrics.items()})
        self.rows.append(row)
        self._write()

    def _write(self) -> None:
        assert self.path is not None, "on_run_start comes first"
        columns = list(_FIXED_COLUMNS)
        for row in self.rows:
            columns += [key for key in row if key not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        temporary = temporary_path(self.path)
        temporary.write_text(buffer.getvalue())
        os.replace(temporary, self.path)
