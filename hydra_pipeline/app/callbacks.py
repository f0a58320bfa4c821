"""``SweepSummary``: a Hydra callback keeping a sweep's report up to date.

Each job records its status in its own folder when it starts and when it ends (``running``,
then ``completed`` with its objective, ``failed`` with the error, ``interrupted`` with the
command that resumes it, or ``killed``, in a joblib sweep, with the command that reruns it)
and rewrites ``sweep_summary.csv`` from every job folder, under a file lock, so the file is
complete even when jobs run in parallel processes (joblib, Submitit), when a failing job aborts
the sweep, and when a killed job makes the launcher give up: the sweep's own process rewrites
it once more when it exits, however the sweep ended, marking a job still running as
``killed``. At the sweep's end the groups over seeds, the learning curves and a
table follow (see :mod:`hydra_pipeline.app.sweep_report`).
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import math
import os
import socket
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from hydra_pipeline.app.isolation import JobKilled
from hydra_pipeline.app.quiet import plain_optuna_logs
from hydra_pipeline.app.sweep_report import JOB_STATUS_FILE, SUMMARY_CSV, write_report
from hydra_pipeline.errors import TrainingInterrupted
from hydra_pipeline.files import remove_stale_temporaries

__all__ = ["SweepSummary", "record_job_status", "write_sweep_summary"]

log = logging.getLogger("hydra_pipeline")


class SweepSummary(Callback):
    """Keeps ``sweep_summary.csv`` up to date during a multirun, and writes the groups, the
    curves and a table when it ends."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # A launcher that loses a job may abort the sweep before on_multirun_end: the
        # summary is then rewritten when this process exits.
        sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()  # the working folder may change
        atexit.register(_write_and_warn, sweep_dir, sweep_over=True)
        if "optuna" in str(config.hydra.sweeper.get("_target_", "")):
            plain_optuna_logs()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            record_job_status("running")

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        hydra_cfg = job_return.hydra_cfg
        if hydra_cfg is None or hydra_cfg.hydra.mode != RunMode.MULTIRUN:
            return
        if job_return.status is JobStatus.COMPLETED:
            value = job_return.return_value
            objective = float(value) if isinstance(value, (int, float)) else None
            record_job_status("completed", objective=objective)
            return
        error = job_return._return_value
        status = "failed"
        if isinstance(error, TrainingInterrupted):
            status = "interrupted"
        elif isinstance(error, JobKilled):
            status = "killed"
        record_job_status(status, _first_line(error))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        _write_and_warn(Path(str(config.hydra.sweep.dir)), sweep_over=True, final=True)


def _first_line(error: Any) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def record_job_status(status: str, error: str = "", objective: float | None = None) -> None:
    """Record the current job's status in its folder and rewrite the sweep's CSV."""
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    record = {
        "job": hydra_cfg.job.num,
        "overrides": list(hydra_cfg.overrides.task),
        "status": status,
        "error": error,
        "objective": objective if objective is None or math.isfinite(objective) else None,
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / JOB_STATUS_FILE).write_text(json.dumps(record) + "\n")
    # Relative to where the sweep started (a job may run in its own folder, hydra.job.chdir).
    _write_and_warn(Path(hydra_cfg.runtime.cwd) / hydra_cfg.sweep.dir)


def _write_and_warn(sweep_dir: Path, *, sweep_over: bool = False, final: bool = False) -> None:
    """:func:`write_sweep_summary`, its problems logged as warnings (the sweep goes on)."""
    for problem in write_sweep_summary(sweep_dir, sweep_over=sweep_over, final=final):
        log.warning(problem)


def write_sweep_summary(
    sweep_dir: Path, *, sweep_over: bool = False, final: bool = False
) -> list[str]:
    """Rewrite the sweep's files from the job folders, under the sweep's lock; return the
    problems (one message per job left out because a file of its cannot be read), which a
    sweep in progress logs as warnings.

    Args:
        sweep_dir: The sweep's folder.
        sweep_over: Whether the sweep has ended, so a job still marked running was killed.
        final: Also the groups over seeds, the curves and the table (the sweep's end).
    """
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / f".{SUMMARY_CSV}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        remove_stale_temporaries(sweep_dir)
        return write_report(sweep_dir, sweep_over=sweep_over, final=final)
