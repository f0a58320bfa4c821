"""What a sweep's folder says once its jobs have run: per job, per configuration, and in
pictures.

* ``sweep_summary.csv``: one row per job (its status, objective, final steps and reward);
* ``sweep_groups.csv``: one row per configuration (a job's overrides without ``seed`` or
  ``seeds``): how many seeds, the mean, standard deviation, interquartile mean and 95%
  bootstrap confidence interval of their final objective, and the jobs behind it;
* ``sweep_curves.png``: each configuration's learning curve (mean and 95% band over seeds,
  against total steps), and ``curves.png`` in each run's folder.

A run's objective is what the app returned for it (by default the last evaluation's mean
return, or the final mean training return of a run that does not evaluate; see ``train``); a
job run with ``seeds=[...]`` counts as one sample per seed. The statistics use SciPy and the
pictures Matplotlib (``pip install "hydra-pipeline[analysis]"``); without them the files hold
what can be computed without (counts, means, standard deviations) and a warning names the
extra.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import socket
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra_pipeline.app.resume import override_key
from hydra_pipeline.engine.reporting import METRICS_FILE
from hydra_pipeline.engine.summary import SUMMARY_FILE
from hydra_pipeline.errors import RunFolderError
from hydra_pipeline.files import inside, process_is_running, temporary_path

__all__ = [
    "GROUPS_FILE",
    "JOB_STATUS_FILE",
    "SEEDS_FILE",
    "SUMMARY_CSV",
    "Job",
    "UnreadableFileError",
    "plot_run",
    "read_jobs",
    "spreadsheet_safe",
    "sweep_figure",
    "write_report",
]

SUMMARY_CSV = "sweep_summary.csv"
GROUPS_FILE = "sweep_groups.csv"
CURVES_FILE = "sweep_curves.png"
RUN_CURVES_FILE = "curves.png"
JOB_STATUS_FILE = "job_status.json"
SEEDS_FILE = "seeds.json"
"""Written by a job run with ``seeds=[...]``: each seed's run folder and objective."""

_SEED_KEYS = ("seed", "seeds")
_KILLED = "the job's process ended without reporting a result (killed: SIGKILL, out of memory?)"
_ANALYSIS = 'pip install "hydra-pipeline[analysis]"'
log = logging.getLogger("hydra_pipeline")


@dataclass
class Job:
    """One job of a sweep, as its folder tells it.

    Attributes:
        number: Hydra's job number.
        folder: The job's folder.
        overrides: The job's overrides.
        status: running, completed, failed, interrupted or killed.
        error: Why it failed, was interrupted or killed.
        objective: What the app returned (the mean over seeds with ``seeds=[...]``).
        runs: The job's run folders: itself, or one per seed.
        objectives: One objective per run.
    """

    number: int
    folder: Path
    overrides: list[str]
    status: str
    error: str = ""
    objective: float | None = None
    runs: list[Path] = field(default_factory=list)
    objectives: list[float] = field(default_factory=list)

    @property
    def configuration(self) -> str:
        """The job's overrides without its seed: what seeds of one setting share."""
        return " ".join(o for o in self.overrides if override_key(o) not in _SEED_KEYS)

    def summary(self, run: Path) -> dict[str, Any]:
        """The run's ``summary.json`` (empty while it has none).

        Raises:
            UnreadableFileError: It is not a summary hydra_pipeline writes.
        """
        path = run / SUMMARY_FILE
        if not path.is_file():
            return {}
        summary: dict[str, Any] = _json(path, dict)
        if not isinstance(summary.get("final_metrics", {}), dict):
            raise UnreadableFileError(path, "has a 'final_metrics' entry that is not a mapping")
        return summary


class UnreadableFileError(RunFolderError):
    """A file of a sweep's or run's folder is not as hydra_pipeline writes it (truncated,
    changed, or from elsewhere).

    Attributes:
        path: The file.
    """

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"'{path}' {problem}.")
        self.path = path


def read_jobs(
    sweep_dir: Path, *, sweep_over: bool = False, problems: list[str] | None = None
) -> list[Job]:
    """Every job of the sweep that has recorded a status, by job number.

    Args:
        sweep_dir: The sweep's folder.
        sweep_over: Whether the sweep has ended, so that a job still marked running was
            killed (while it runs, a job on this machine whose process has ended was too).
        problems: Where to note, as one message naming the file, each job left out because
            a file of its cannot be read; ``None``: raise instead.

    Raises:
        UnreadableFileError: A job's file cannot be read, and ``problems`` is ``None``.
        RunFolderError: A job's ``seeds.json`` names a run outside the job's folder, and
            ``problems`` is ``None``.
    """
    jobs = []
    for status_file in sweep_dir.rglob(JOB_STATUS_FILE):
        try:
            jobs.append(_read_job(status_file, sweep_over))
        except RunFolderError as error:
            if problems is None:
                raise
            problems.append(f"{error} The job is left out of the report.")
    return sorted(jobs, key=lambda job: job.number)


def _read_job(status_file: Path, sweep_over: bool) -> Job:
    """The job whose status is in ``status_file``, once each of its files reads as
    hydra_pipeline writes it (its summaries and curves included)."""
    record = _json(status_file, dict)
    job = Job(
        number=_field(record, "job", int, status_file),
        folder=status_file.parent,
        overrides=_field(record, "overrides", list, status_file),
        status=_field(record, "status", str, status_file),
        error=_field(record, "error", str, status_file, ""),
        objective=_field(record, "objective", float, status_file, None),
    )
    if not all(isinstance(override, str) for override in job.overrides):
        raise UnreadableFileError(status_file, "lists overrides that are not strings")
    host = record.get("host")
    pid = record.get("pid")
    ended_here = (
        host == socket.gethostname() and isinstance(pid, int) and not process_is_running(pid)
    )
    if job.status == "running" and (sweep_over or ended_here):
        job.status, job.error = "killed", _KILLED
    seeds_file = job.folder / SEEDS_FILE
    if seeds_file.is_file():
        seeds = _json(seeds_file, dict)
        runs = _field(seeds, "runs", list, seeds_file)
        objectives = _field(seeds, "objectives", list, seeds_file)
        if not all(isinstance(run, str) for run in runs) or not all(
            _is_number(value) for value in objectives
        ):
            raise UnreadableFileError(seeds_file, "lists runs or objectives of the wrong type")
        job.runs = [inside(job.folder, run, seeds_file) for run in runs]
        job.objectives = [float(value) for value in objectives]
    else:
        job.runs = [job.folder]
        job.objectives = [] if job.objective is None else [float(job.objective)]
    for run in job.runs:
        job.summary(run)
        read_curve(run, "train/reward")
        read_curve(run, "eval/reward")
    return job


def _json(path: Path, kind: type) -> Any:
    """The JSON value in ``path``, if it is a ``kind``."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UnreadableFileError(path, f"cannot be read as JSON ({reason})") from None
    if not isinstance(value, kind):
        raise UnreadableFileError(path, f"holds a {type(value).__name__}, not a {kind.__name__}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _field(record: dict[str, Any], name: str, kind: type, path: Path, default: Any = ...) -> Any:
    """``record[name]`` read from ``path``, if it is a ``kind`` (a number for ``float``;
    ``None`` allowed when the default is)."""
    if name not in record:
        if default is ...:
            raise UnreadableFileError(path, f"has no '{name}' entry")
        return default
    value = record[name]
    if value is None and default is None:
        return None
    if (kind is float and _is_number(value)) or (
        kind is not float and isinstance(value, kind) and not isinstance(value, bool)
    ):
        return value
    expected = "a number" if kind is float else f"a {kind.__name__}"
    raise UnreadableFileError(path, f"has '{name}': {value!r}, which is not {expected}")


# --------------------------------------------------------------------------------------------
# Files


def write_report(sweep_dir: Path, *, sweep_over: bool = False, final: bool = False) -> list[str]:
    """Rewrite the sweep's files from its job folders; with ``final``, the groups, the
    pictures and a table on the console too (a sweep's end, or the report command). Return
    the problems: one message per job left out because a file of its cannot be read."""
    problems: list[str] = []
    jobs = read_jobs(sweep_dir, sweep_over=sweep_over, problems=problems)
    _write_csv(sweep_dir / SUMMARY_CSV, _SUMMARY_COLUMNS, [_summary_row(job) for job in jobs])
    if final:
        groups = group_statistics(jobs)
        _write_csv(sweep_dir / GROUPS_FILE, _GROUP_COLUMNS, groups)
        log.info("Sweep %s:\n%s", sweep_dir, groups_table(groups))
        _plot(sweep_dir, jobs)
    return problems


_SUMMARY_COLUMNS = ("job", "overrides", "total_steps", "reward", "objective", "status", "error")
_GROUP_COLUMNS = (
    "configuration",
    "seeds",
    "mean",
    "std",
    "iqm",
    "ci_low",
    "ci_high",
    "jobs",
)


def _summary_row(job: Job) -> dict[str, Any]:
    """The job's row: its run's steps and final return, or with ``seeds=[...]`` their means
    over the seeds' runs that have them."""
    summaries = [job.summary(run) for run in job.runs]
    return {
        "job": job.number,
        "overrides": " ".join(job.overrides),
        "total_steps": _mean_of([summary.get("total_steps") for summary in summaries]),
        "reward": _mean_of(
            [summary.get("final_metrics", {}).get("reward") for summary in summaries]
        ),
        "objective": "" if job.objective is None else job.objective,
        "status": job.status,
        "error": job.error,
    }


def _mean_of(values: Sequence[Any]) -> Any:
    """The runs' value when they agree (a single run's), else the mean of their numbers, or
    ``""`` when none has one."""
    numbers = [value for value in values if _is_number(value)]
    if not numbers:
        return ""
    return numbers[0] if len(set(numbers)) == 1 else statistics.fmean(numbers)


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula."""


def spreadsheet_safe(value: Any) -> Any:
    """``value`` as a CSV cell a spreadsheet shows as written: text starting like a formula
    (``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a leading ``'``, as OWASP's
    CSV-injection advice says; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return f"'{value}"
    return value


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write ``rows`` to ``path`` atomically (a reader never sees half a file), each text
    cell spreadsheet-safe (overrides, error messages and names come from elsewhere)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows({key: spreadsheet_safe(value) for key, value in row.items()} for row in rows)
    temporary = temporary_path(path)
    temporary.write_text(buffer.getvalue())
    os.replace(temporary, path)


# --------------------------------------------------------------------------------------------
# Statistics


def group_statistics(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """One row per configuration: the completed jobs' objectives over seeds."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        if job.status == "completed":
            groups.setdefault(job.configuration, []).append(job)
    return [
        {
            "configuration": configuration,
            **_statistics([value for job in members for value in job.objectives]),
            "jobs": " ".join(str(job.number) for job in members),
        }
        for configuration, members in groups.items()
    ]


def _statistics(values: Sequence[float]) -> dict[str, Any]:
    """Count, mean, sample standard deviation, interquartile mean and 95% bootstrap
    confidence interval of the mean (empty where they are undefined or SciPy is missing)."""
    finite = [value for value in values if math.isfinite(value)]
    row: dict[str, Any] = {"seeds": len(values), "mean": "", "std": "", "iqm": ""}
    row |= {"ci_low": "", "ci_high": ""}
    if not finite:
        return row
    row["mean"] = statistics.fmean(finite)
    if len(finite) > 1:
        row["std"] = statistics.stdev(finite)
    stats = _optional("scipy.stats", "interquartile means and confidence intervals")
    if stats is None:
        return row
    import numpy as np

    data = np.asarray(finite)
    row["iqm"] = float(stats.trim_mean(data, 0.25))
    if len(finite) > 1 and float(data.std()) > 0:
        interval = stats.bootstrap(
            (data,), np.mean, confidence_level=0.95, method="percentile", random_state=0
        ).confidence_interval
        row["ci_low"], row["ci_high"] = float(interval.low), float(interval.high)
    elif len(finite) > 1:  # every seed gave the same value
        row["ci_low"] = row["ci_high"] = row["mean"]
    return row


def short_labels(configurations: Sequence[str]) -> dict[str, str]:
    """Each configuration by the overrides that differ between them (the swept ones)."""
    overrides = [configuration.split() for configuration in configurations]
    common = set.intersection(*map(set, overrides)) if overrides else set()
    return {
        configuration: " ".join(o for o in parts if o not in common) or "(as configured)"
        for configuration, parts in zip(configurations, overrides, strict=True)
    }


def groups_table(groups: Sequence[dict[str, Any]]) -> str:
    """The groups as a plain-text table, each named by what differs between them."""
    labels = short_labels([group["configuration"] for group in groups])
    lines = [["configuration", "seeds", "mean", "std", "iqm", "95% CI"]]
    for group in groups:
        interval = (
            f"[{group['ci_low']:.2f}, {group['ci_high']:.2f}]" if group["ci_low"] != "" else "-"
        )
        lines.append(
            [
                labels[group["configuration"]],
                str(group["seeds"]),
                *(_cell(group[key]) for key in ("mean", "std", "iqm")),
                interval,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    )


def _cell(value: Any) -> str:
    return "-" if value == "" else f"{value:.2f}"


def _pyplot() -> Any:
    """Matplotlib's pyplot drawing to files (no window), or ``None`` with a warning."""
    matplotlib = _optional("matplotlib", "learning-curve pictures")
    if matplotlib is None:
        return None
    matplotlib.use("Agg")
    return _optional("matplotlib.pyplot", "learning-curve pictures")


def _optional(module: str, purpose: str) -> Any:
    """An optional module of the ``analysis`` extra, or ``None`` with a warning."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        log.warning("The sweep's %s need %s: %s.", purpose, module.split(".")[0], _ANALYSIS)
        return None


# --------------------------------------------------------------------------------------------
# Pictures


def read_curve(run: Path, metric: str = "train/reward") -> list[tuple[int, float]]:
    """``(total steps, value)`` of ``metric`` at each of a run's metric points.

    Raises:
        UnreadableFileError: ``metrics.csv`` is not as hydra_pipeline writes it.
    """
    path = run / METRICS_FILE
    if not path.is_file():
        return []
    curve = []
    try:
        with open(path, newline="") as file:
            for line, row in enumerate(csv.DictReader(file), start=2):
                if row.get(metric):
                    try:
                        curve.append((int(row["total_steps"]), float(row[metric])))
                    except (KeyError, TypeError, ValueError):
                        raise UnreadableFileError(
                            path,
                            f"has a row (line {line}) without a number of total steps or "
                            f"a number for {metric}",
                        ) from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UnreadableFileError(path, f"cannot be read as CSV ({error})") from None
    return curve


def _plot(sweep_dir: Path, jobs: Sequence[Job]) -> None:
    pyplot = _pyplot()
    if pyplot is None:
        return
    for job in jobs:
        for run in job.runs:
            plot_run(run, pyplot)
    figure = sweep_figure(jobs, pyplot)
    figure.savefig(sweep_dir / CURVES_FILE, dpi=100)
    pyplot.close(figure)


def sweep_figure(jobs: Sequence[Job], pyplot: Any) -> Any:
    """A figure with one learning curve per configuration of the completed jobs: the mean
    return over its seeds at each total step count, in a 95% band (Student's t interval of the
    mean; none without SciPy). The return is the evaluations' where every run of the
    configuration evaluated, else training's."""
    import numpy as np

    stats = _optional("scipy.stats", "confidence bands")
    groups: dict[str, list[Path]] = {}
    for job in jobs:
        if job.status == "completed":
            groups.setdefault(job.configuration, []).extend(job.runs)
    figure, axes = pyplot.subplots(figsize=(8, 5))
    labels = short_labels(list(groups))
    for configuration, runs in groups.items():
        curves = [read_curve(run, "eval/reward") for run in runs]
        metric = "eval" if all(curves) else "train"
        if metric == "train":
            curves = [read_curve(run) for run in runs]
        by_step: dict[int, list[float]] = {}
        for curve in curves:
            for step, value in curve:
                by_step.setdefault(step, []).append(value)
        steps = sorted(by_step)
        if not steps:
            continue
        samples = [np.asarray(by_step[step]) for step in steps]
        means = [float(values.mean()) for values in samples]
        line = axes.plot(
            steps, means, label=f"{labels[configuration]} ({len(runs)} seeds, {metric})"
        )
        if stats is not None:
            bands = [_band(stats, values) for values in samples]
            axes.fill_between(
                steps, *zip(*bands, strict=True), alpha=0.2, color=line[0].get_color()
            )
    axes.set_xlabel("total steps")
    axes.set_ylabel("mean episode return")
    if axes.get_lines():
        axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def _band(stats: Any, values: Any) -> tuple[float, float]:
    """The 95% t interval of the mean of ``values`` (a point where it is undefined)."""
    if len(values) < 2 or float(values.std()) == 0:
        return float(values.mean()), float(values.mean())
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return float(low), float(high)


def plot_run(run: Path, pyplot: Any = None) -> None:
    """``curves.png`` in a run's folder: its training (and evaluation) return."""
    pyplot = pyplot or _pyplot()
    if pyplot is None:
        return
    figure, axes = pyplot.subplots(figsize=(6, 4))
    for metric in ("train/reward", "eval/reward"):
        curve = read_curve(run, metric)
        if curve:
            steps, values = zip(*curve, strict=True)
            axes.plot(steps, values, label=metric)
    axes.set_xlabel("total steps")
    axes.set_ylabel("mean episode return")
    if axes.get_lines():
        axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(run / RUN_CURVES_FILE, dpi=100)
    pyplot.close(figure)
