"""``SweepSummary``: a Hydra callback writing ``sweep_summary.csv`` into a sweep's folder.

One row per job: its number, its overrides, total steps, final reward and status (``completed``
or ``failed``, with the error). Each job records its own status in its folder when it ends and
then rewrites the CSV from every job folder, under a file lock, so the file is complete even
when a failing job aborts the sweep or jobs run in parallel processes (joblib, Submitit).
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from hydra_pipeline.engine.summary import SUMMARY_FILE

__all__ = ["JOB_STATUS_FILE", "SWEEP_SUMMARY_FILE", "SweepSummary", "write_sweep_summary"]

SWEEP_SUMMARY_FILE = "sweep_summary.csv"
JOB_STATUS_FILE = "job_status.json"
_COLUMNS = ("job", "overrides", "total_steps", "reward", "status", "error")


class SweepSummary(Callback):
    """Keeps ``sweep_summary.csv`` up to date during a multirun."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        hydra_cfg = job_return.hydra_cfg
        if hydra_cfg is None or hydra_cfg.hydra.mode != RunMode.MULTIRUN:
            return
        job_dir = Path(hydra_cfg.hydra.runtime.output_dir)
        failed = job_return.status is not JobStatus.COMPLETED
        status = {
            "job": hydra_cfg.hydra.job.num,
            "overrides": list(job_return.overrides or []),
            "status": "failed" if failed else "completed",
            "error": _first_line(job_return._return_value) if failed else "",
        }
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / JOB_STATUS_FILE).write_text(json.dumps(status) + "\n")
        write_sweep_summary(Path(hydra_cfg.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        write_sweep_summary(Path(config.hydra.sweep.dir))


def _first_line(error: Any) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def write_sweep_summary(sweep_dir: Path) -> Path:
    """Rewrite the sweep's CSV from the job folders (atomically, under a lock)."""
    path = sweep_dir / SWEEP_SUMMARY_FILE
    with open(sweep_dir / f".{SWEEP_SUMMARY_FILE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = [_row(status_file) for status_file in sweep_dir.rglob(JOB_STATUS_FILE)]
        rows.sort(key=lambda row: int(row["job"]))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(buffer.getvalue())
        os.replace(temporary, path)
    return path


def _row(status_file: Path) -> dict[str, Any]:
    status = json.loads(status_file.read_text())
    summary_file = status_file.parent / SUMMARY_FILE
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    return {
        "job": status["job"],
        "overrides": " ".join(status["overrides"]),
        "total_steps": summary.get("total_steps", ""),
        "reward": summary.get("final_metrics", {}).get("reward", ""),
        "status": status["status"],
        "error": status["error"],
    }
