"""``python -m hydra_pipeline.report <folder> ...`` (also ``hydra-pipeline-report``): rebuild
the report of a sweep (``sweep_summary.csv``, ``sweep_groups.csv``, ``sweep_curves.png``,
each run's ``curves.png``, and the table on the console) from its job folders, for instance
after a job was resumed; given a single run's folder, draw its ``curves.png``.

A job marked running is counted as killed only if it ran on this machine and its process has
ended: a sweep still running elsewhere keeps its running jobs. A folder from elsewhere is data:
one holding a symbolic link is refused (the report is written into it), and a job whose files
cannot be read is left out of the report with a message naming the file.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def main(arguments: Sequence[str] | None = None) -> int:
    """Rebuild the report of each folder given; the exit status (0, or 1 if a folder is not a
    sweep or a run, holds a symbolic link, or has a file that cannot be read)."""
    from hydra_pipeline.app.callbacks import write_sweep_summary
    from hydra_pipeline.app.quiet import quiet_chatty_loggers
    from hydra_pipeline.app.sweep_report import JOB_STATUS_FILE, plot_run
    from hydra_pipeline.engine.reporting import METRICS_FILE
    from hydra_pipeline.errors import RunFolderError
    from hydra_pipeline.files import refuse_links

    parser = argparse.ArgumentParser(
        prog="hydra-pipeline-report", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("folders", nargs="+", type=Path, help="sweep or run folders")
    folders = parser.parse_args(arguments).folders
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_chatty_loggers()
    status = 0
    for folder in folders:
        problems: list[str] = []
        started = time.time()
        try:
            if any(folder.rglob(JOB_STATUS_FILE)):
                refuse_links(folder, "the report command")
                problems = write_sweep_summary(folder, final=True)
            elif (folder / METRICS_FILE).is_file():
                refuse_links(folder, "the report command")
                plot_run(folder)
            else:
                problems = [
                    f"'{folder}' is neither a sweep folder (its jobs write {JOB_STATUS_FILE}) "
                    f"nor a run folder (with {METRICS_FILE})."
                ]
        except RunFolderError as error:
            problems = [str(error)]
        written = _written_since(folder, started)
        if written:
            print(f"Wrote:\n{written}")
        for problem in problems:
            print(f"Error: {problem}", file=sys.stderr)
        status = max(status, int(bool(problems)))
    return status


def _written_since(folder: Path, started: float) -> str:
    """The report's files that were written in ``folder`` since ``started`` (the run's
    pictures counted, not listed, when there are more than a few), one per line."""
    from hydra_pipeline.app.sweep_report import (
        CURVES_FILE,
        GROUPS_FILE,
        RUN_CURVES_FILE,
        SUMMARY_CSV,
    )

    def fresh(path: Path) -> bool:
        return path.is_file() and path.stat().st_mtime >= started - 1

    lines = [
        f"  {path}"
        for path in (folder / name for name in (SUMMARY_CSV, GROUPS_FILE, CURVES_FILE))
        if fresh(path)
    ]
    pictures = sorted(path for path in folder.rglob(RUN_CURVES_FILE) if fresh(path))
    if len(pictures) > 3:
        lines.append(f"  {RUN_CURVES_FILE} of {len(pictures)} runs under {folder}")
    else:
        lines += [f"  {path}" for path in pictures]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
