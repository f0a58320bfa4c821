"""``python -m hydra_pipeline.report <folder> ...`` (also ``hydra-pipeline-report``): rebuild
the report of a sweep (``sweep_summary.csv``, ``sweep_groups.csv``, ``sweep_curves.png``,
each run's ``curves.png``, and the table on the console) from its job folders, for instance
after a job was resumed; given a single run's folder, draw its ``curves.png``.

A job marked running is counted as killed only if it ran on this machine and its process has
ended: a sweep still running elsewhere keeps its running jobs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def main(arguments: Sequence[str] | None = None) -> int:
    """Rebuild the report of each folder given; the exit status (0, or 1 if a folder is not a
    sweep or a run)."""
    from hydra_pipeline.app.callbacks import write_sweep_summary
    from hydra_pipeline.app.sweep_report import JOB_STATUS_FILE, plot_run
    from hydra_pipeline.engine.reporting import METRICS_FILE

    parser = argparse.ArgumentParser(
        prog="hydra-pipeline-report", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("folders", nargs="+", type=Path, help="sweep or run folders")
    folders = parser.parse_args(arguments).folders
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for folder in folders:
        if any(folder.rglob(JOB_STATUS_FILE)):
            write_sweep_summary(folder, final=True)
        elif (folder / METRICS_FILE).is_file():
            plot_run(folder)
        else:
            print(
                f"Error: '{folder}' is neither a sweep folder (its jobs write {JOB_STATUS_FILE}) "
                f"nor a run folder (with {METRICS_FILE}).",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
