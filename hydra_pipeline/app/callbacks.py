"""``SweepSummary``: a Hydra callback writing ``sweep_summary.csv`` into a sweep's folder.

One row per job: its number, its overrides, total steps, final reward and status:
``running``, ``completed``, ``failed`` (with the error), ``interrupted`` (Ctrl-C or SIGTERM,
with the command that resumes it) or ``killed`` (its process ended without a word: SIGKILL, out
of memory). Each job records its status in its own folder when it starts and when it ends, and
then rewrites the CSV from every job folder, under a file lock, so the file is complete even
when jobs run in parallel processes (joblib, Submitit), when a failing job aborts the sweep, and
when a killed job makes the launcher give up: the sweep's own process rewrites it once more
when it exits, however the sweep ended.
"""

from __future__ import annotations

import atexit
import csv
import fcntl
import io
import json
import os
import socket
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from hydra_pipeline.engine.summary import SUMMARY_FILE
from hydra_pipeline.errors import TrainingInterrupted
from hydra_pipeline.files import process_is_running, remove_stale_temporaries, temporary_path

__all__ = [
    "JOB_STATUS_FILE",
    "SWEEP_SUMMARY_FILE",
    "SweepSummary",
    "record_job_status",
    "write_sweep_summary",
]

SWEEP_SUMMARY_FILE = "sweep_summary.csv"
JOB_STATUS_FILE = "job_status.json"
_COLUMNS = ("job", "overrides", "total_steps", "reward", "status", "error")
_KILLED = "the job's process ended without reporting a result (killed: SIGKILL, out of memory?)"


class SweepSummary(Callback):
    """Keeps ``sweep_summary.csv`` up to date during a multirun."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # A launcher that loses a job may abort the sweep before on_multirun_end: the
        # summary is then rewritten when this process exits.
        sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()  # the working folder may change
        atexit.register(write_sweep_summary, sweep_dir, sweep_over=True)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            record_job_status("running")

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        hydra_cfg = job_return.hydra_cfg
        if hydra_cfg is None or hydra_cfg.hydra.mode != RunMode.MULTIRUN:
            return
        if job_return.status is JobStatus.COMPLETED:
            record_job_status("completed")
            return
        error = job_return._return_value
        status = "interrupted" if isinstance(error, TrainingInterrupted) else "failed"
        record_job_status(status, _first_line(error))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        write_sweep_summary(Path(str(config.hydra.sweep.dir)), sweep_over=True)


def _first_line(error: Any) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def record_job_status(status: str, error: str = "") -> None:
    """Record the current job's status in its folder and rewrite the sweep's CSV."""
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    record = {
        "job": hydra_cfg.job.num,
        "overrides": list(hydra_cfg.overrides.task),
        "status": status,
        "error": error,
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / JOB_STATUS_FILE).write_text(json.dumps(record) + "\n")
    # Relative to where the sweep started (a job may run in its own folder, hydra.job.chdir).
    write_sweep_summary(Path(hydra_cfg.runtime.cwd) / hydra_cfg.sweep.dir)


def write_sweep_summary(sweep_dir: Path, *, sweep_over: bool = False) -> Path:
    """Rewrite the sweep's CSV from the job folders (atomically, under a lock).

    Args:
        sweep_dir: The sweep's folder.
        sweep_over: Whether the sweep has ended, so a job still marked running was killed.
    """
    path = sweep_dir / SWEEP_SUMMARY_FILE
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / f".{SWEEP_SUMMARY_FILE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        remove_stale_temporaries(sweep_dir)
        rows = [_row(status_file, sweep_over) for status_file in sweep_dir.rglob(JOB_STATUS_FILE)]
        rows.sort(key=lambda row: int(row["job"]))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        temporary = temporary_path(path)
        temporary.write_text(buffer.getvalue())
        os.replace(temporary, path)
    return path


def _row(status_file: Path, sweep_over: bool) -> dict[str, Any]:
    status = json.loads(status_file.read_text())
    summary_file = status_file.parent / SUMMARY_FILE
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    state, error = status["status"], status["error"]
    if state == "running" and (sweep_over or _ended_here(status)):
        state, error = "killed", _KILLED
    return {
        "job": status["job"],
        "overrides": " ".join(status["overrides"]),
        "total_steps": summary.get("total_steps", ""),
        "reward": summary.get("final_metrics", {}).get("reward", ""),
        "status": state,
        "error": error,
    }


def _ended_here(status: dict[str, Any]) -> bool:
    """Whether the job ran on this machine and its process has ended."""
    return status.get("host") == socket.gethostname() and not process_is_running(
        int(status.get("pid", -1))
    )
