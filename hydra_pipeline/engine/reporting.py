"""Where training metrics go: the console (a progress bar or log lines) and TensorBoard.

This module is the only place that knows the TensorBoard tag names: training metrics appear as
``train/<metric>`` (``train/reward``, ``train/episode_length``, ``train/lr``,
``train/teacher_forcing``, ``train/steps_per_second``) and loss terms, whose metric names
contain a slash, as ``loss/<loss name>/<term>``. The x-axis is always the total step count.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

__all__ = ["TENSORBOARD_DIRECTORY", "TrainingReporter", "tensorboard_tag"]

TENSORBOARD_DIRECTORY = "tensorboard"
"""Where a run writes its TensorBoard event files, relative to its output folder."""

log = logging.getLogger("hydra_pipeline")


def tensorboard_tag(metric: str) -> str:
    """The TensorBoard tag of a metric name from the engine's metric tracker."""
    return f"loss/{metric}" if "/" in metric else f"train/{metric}"


class TrainingReporter:
    """Shows training progress and writes metrics to TensorBoard.

    Args:
        output_dir: The run's output folder; event files go to its ``tensorboard/``.
        enabled: ``False`` silences the console and TensorBoard (``pipeline.should_log``).
        tensorboard: Whether to write TensorBoard event files.
        progress_bar: A progress bar per stage (``None``: only when stderr is a terminal);
            otherwise one log line per metric point.
        purge_step: On resume, the total step count of the checkpoint: TensorBoard then drops
            events logged after it by the interrupted run.
    """

    def __init__(
        self,
        output_dir: Path,
        *,
        enabled: bool = True,
        tensorboard: bool = True,
        progress_bar: bool | None = None,
        purge_step: int | None = None,
    ) -> None:
        self.output_dir = output_dir
        self.enabled = enabled
        self.tensorboard = enabled and tensorboard
        self.progress_bar = enabled and (
            sys.stderr.isatty() if progress_bar is None else progress_bar
        )
        self.purge_step = purge_step
        self._writer: Any = None
        self._bar: tqdm[Any] | None = None
        self._redirect: contextlib.ExitStack | None = None

    def _summary_writer(self) -> Any:
        # Imported on first use: TensorBoard's import is not paid by runs that never log.
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(
                log_dir=str(self.output_dir / TENSORBOARD_DIRECTORY), purge_step=self.purge_step
            )
        return self._writer

    def start_stage(
        self, index: int, count: int, loss_names: list[str], max_steps: float, steps_taken: int
    ) -> None:
        """Announce a stage and open its progress bar."""
        if not self.enabled:
            return
        log.info(
            "Stage %d/%d: losses %s, up to %d steps%s",
            index + 1,
            count,
            loss_names,
            max_steps,
            f" (resuming at {steps_taken})" if steps_taken else "",
        )
        if self.progress_bar:
            self._redirect = contextlib.ExitStack()
            self._redirect.enter_context(logging_redirect_tqdm([log]))
            self._bar = tqdm(
                total=max_steps,
                initial=steps_taken,
                desc=f"stage {index + 1}/{count}",
                unit="step",
                unit_scale=True,
                dynamic_ncols=True,
            )

    def advance(self, stage_steps: int) -> None:
        """Move the progress bar to ``stage_steps``."""
        if self._bar is not None:
            self._bar.update(stage_steps - self._bar.n)

    def log(
        self,
        *,
        total_steps: int,
        stage_index: int,
        stage_steps: int,
        metrics: Mapping[str, float],
        steps_per_second: float,
    ) -> None:
        """Report the metrics of one metric point."""
        if not self.enabled:
            return
        if self.tensorboard:
            writer = self._summary_writer()
            for metric, value in metrics.items():
                writer.add_scalar(tensorboard_tag(metric), value, total_steps)
            writer.add_scalar("train/steps_per_second", steps_per_second, total_steps)
            writer.add_scalar("train/stage", stage_index, total_steps)
        reward = metrics.get("reward")
        if self._bar is not None:
            postfix = {"sps": f"{steps_per_second:,.0f}"}
            if reward is not None:
                postfix["reward"] = f"{reward:.1f}"
            self._bar.set_postfix(postfix, refresh=False)
        else:
            log.info(
                "stage %d | stage steps %d | total steps %d | reward %s | episode length %s | "
                "%.0f steps/s",
                stage_index + 1,
                stage_steps,
                total_steps,
                "-" if reward is None else f"{reward:.2f}",
                "-" if "episode_length" not in metrics else f"{metrics['episode_length']:.1f}",
                steps_per_second,
            )

    def _close_progress_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._redirect is not None:
            self._redirect.close()
            self._redirect = None

    def end_stage(self, index: int, steps: int, early_stopped: bool) -> None:
        """Close the stage's progress bar and say how the stage ended."""
        self._close_progress_bar()
        if self.enabled:
            reason = "early stopping criterion met" if early_stopped else "step limit reached"
            log.info("Stage %d done after %d steps: %s", index + 1, steps, reason)

    def finish(self, total_steps: int, final_metrics: Mapping[str, float], summary: Path) -> None:
        """Say how the run ended and where its summary is."""
        if not self.enabled:
            return
        reward = final_metrics.get("reward")
        log.info(
            "Done after %d steps: final mean episode return %s. Summary: %s",
            total_steps,
            "- (no episode ended)" if reward is None else f"{reward:.2f}",
            summary,
        )

    def write_hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Record the run's hyperparameters and final metrics for TensorBoard's hparams view."""
        if not self.tensorboard:
            return
        self._summary_writer().add_hparams(
            dict(hparams), {f"hparam/{k}": v for k, v in metrics.items()}, run_name="."
        )

    def close(self) -> None:
        """Flush and close everything."""
        self._close_progress_bar()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> TrainingReporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
