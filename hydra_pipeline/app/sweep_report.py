"""What a sweep's folder says once its jobs have run: per job, per configuration, and in
pictures.

* ``sweep_summary.csv``: one row per job (its status, objective, final steps and reward);
* ``sweep_groups.csv``: one row per configuration (a job's overrides without ``seed`` or
  ``seeds``): how many seeds, the mean, standard deviation, interquartile mean and 95%
  percentile-bootstrap interval of the mean of their final objectives, and the jobs behind it
  (see :mod:`hydra_pipeline.seed_statistics`);
* ``sweep_curves.png``: each configuration's learning curve (the mean over seeds on the steps
  where every seed has a value, in a 95% bootstrap band, against total steps), and
  ``curves.png`` in each run's folder (which each run also draws when it ends).

A run's objective is what the app returned for it (by default the last evaluation's mean
return, or the final mean training return of a run that does not evaluate; see ``train``); a
job run with ``seeds=[...]`` counts as one sample per seed. The pictures need Matplotlib
(``pip install "hydra-pipeline[analysis]"``); without it a warning names the extra.
"""

from __future__ import annotations

import csv
import importlib.util
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
from hydra_pipeline.seed_statistics import align_curves, curve_band, summarize_seeds

__all__ = [
    "GROUPS_FILE",
    "JOB_STATUS_FILE",
    "MOST_CURVES",
    "SEEDS_FILE",
    "SUMMARY_CSV",
    "Job",
    "UnreadableFileError",
    "draw_run_curves",
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
    """Count, mean, sample standard deviation, interquartile mean and 95% percentile-bootstrap
    interval of the mean (see :mod:`hydra_pipeline.seed_statistics`; empty where they are
    undefined). A run without a value (-inf) counts as a seed, not in the figures."""
    finite = [value for value in values if math.isfinite(value)]
    row: dict[str, Any] = {"seeds": len(values), "mean": "", "std": "", "iqm": ""}
    row |= {"ci_low": "", "ci_high": ""}
    if not finite:
        return row
    summary = summarize_seeds(finite)
    row |= {"mean": summary.mean, "iqm": summary.iqm}
    if summary.std is not None:
        row["std"] = summary.std
        row["ci_low"], row["ci_high"] = summary.mean_interval
    return row


def short_labels(configurations: Sequence[str]) -> dict[str, str]:
    """Each configuration by the overrides that differ between them (the swept ones), each
    named by its key's last part where that is unambiguous (``lr=...`` for
    ``pipeline.optimizer_builder.lr=...``) and with numbers to 3 significant digits."""
    overrides = [configuration.split() for configuration in configurations]
    common = set.intersection(*map(set, overrides)) if overrides else set()
    swept = {override_key(o) for parts in overrides for o in parts if o not in common}
    last_parts = [key.rpartition(".")[2] for key in swept]
    short = {
        key: key.rpartition(".")[2] if last_parts.count(key.rpartition(".")[2]) == 1 else key
        for key in swept
    }

    def label(override: str) -> str:
        return f"{short[override_key(override)]}={_rounded(override.partition('=')[2])}"

    return {
        configuration: " ".join(label(o) for o in parts if o not in common) or "(as configured)"
        for configuration, parts in zip(configurations, overrides, strict=True)
    }


def _rounded(value: str) -> str:
    """A number that is not an integer to 3 significant digits; anything else as it is."""
    try:
        int(value)
        return value
    except ValueError:
        pass
    try:
        return f"{float(value):.3g}"
    except ValueError:
        return value


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
    figure.savefig(sweep_dir / CURVES_FILE, dpi=100, bbox_inches="tight")
    pyplot.close(figure)


MOST_CURVES = 10
"""The most configurations a sweep's figure draws (the best by their objectives' mean)."""


def sweep_figure(jobs: Sequence[Job], pyplot: Any) -> Any:
    """A figure with the learning curve of each configuration of the completed jobs (the
    :data:`MOST_CURVES` best by the mean of their objectives, best first in the legend): the
    mean return over its seeds, aligned on the steps where every seed has a value, in a 95%
    percentile-bootstrap band (which stays within the seeds' values; none for one seed). The
    return is the evaluations' when every run of the sweep evaluated, else training's; the
    title and the axes say which."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        if job.status == "completed":
            groups.setdefault(job.configuration, []).append(job)
    runs = {
        configuration: [run for job in members for run in job.runs]
        for configuration, members in groups.items()
    }
    evaluated = bool(runs) and all(
        read_curve(run, "eval/reward") for members in runs.values() for run in members
    )
    metric = "eval/reward" if evaluated else "train/reward"
    ranked = sorted(groups, key=lambda configuration: -_mean_objective(groups[configuration]))
    shown = ranked[:MOST_CURVES]
    labels = short_labels(list(groups))
    figure, axes = pyplot.subplots(figsize=(8, 5))
    for configuration in shown:
        curves = [read_curve(run, metric) for run in runs[configuration]]
        with_values = [curve for curve in curves if curve]
        aligned = align_curves(with_values)
        if not aligned.steps.size:
            continue
        seeds = f"{len(with_values)} seed{'s' if len(with_values) != 1 else ''}"
        if len(with_values) < len(curves):
            seeds = f"{len(with_values)} of {len(curves)} seeds"
        band = curve_band(aligned.values)
        mean = aligned.values.mean(axis=0) if band is None else band[0]
        (line,) = axes.plot(
            aligned.steps, mean, label=f"{labels[configuration]} ({seeds})", marker="."
        )
        if band is not None:
            axes.fill_between(aligned.steps, band[1], band[2], alpha=0.2, color=line.get_color())
    title = (
        f"{'Evaluation' if evaluated else 'Training'} return: mean over seeds, 95% bootstrap band"
    )
    if len(shown) < len(groups):
        title += f"\n(the {len(shown)} best of {len(groups)} configurations)"
    axes.set_title(title)
    axes.set_xlabel("total steps")
    axes.set_ylabel(_return_label(evaluated, [run for members in runs.values() for run in members]))
    if axes.get_lines():
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    figure.tight_layout()
    return figure


def _mean_objective(members: Sequence[Job]) -> float:
    """The mean of the finite objectives of a configuration's jobs (-inf without any)."""
    finite = [value for job in members for value in job.objectives if math.isfinite(value)]
    return statistics.fmean(finite) if finite else -math.inf


def _return_label(evaluated: bool, runs: Sequence[Path]) -> str:
    """What the y-axis shows: the evaluations' mean return, or the training return with the
    episodes it averages (as the runs' summaries say)."""
    if evaluated:
        counts = {count for run in runs for count in _evaluation_episodes(run)}
        of = f" of {counts.pop()} episodes" if len(counts) == 1 else ""
        return f"evaluation return (mean{of})"
    windows = {_summary_value(run, "return_window") for run in runs} - {None}
    window = f" ≤{windows.pop()}" if len(windows) == 1 else ""
    return f"training return (mean of the stage's last{window} episodes)"


def _evaluation_episodes(run: Path) -> set[int]:
    """The numbers of episodes behind a run's evaluations (``metrics.csv``'s ``episodes``
    column of its evaluation rows)."""
    path = run / METRICS_FILE
    if not path.is_file():
        return set()
    with open(path, newline="") as file:
        return {
            int(row["episodes"])
            for row in csv.DictReader(file)
            if row.get("mode") == "eval" and (row.get("episodes") or "").isdigit()
        }


def _summary_value(run: Path, key: str) -> Any:
    path = run / SUMMARY_FILE
    if not path.is_file():
        return None
    return _json(path, dict).get(key)


def draw_run_curves(run: Path) -> None:
    """``curves.png`` in a run's folder at the end of the run, when Matplotlib is installed
    (quietly nothing when it is not: the ``analysis`` extra is optional). A picture that
    cannot be drawn is a warning: the run's results are written already."""
    if importlib.util.find_spec("matplotlib") is None:
        return
    try:
        plot_run(run)
    except Exception as error:  # whatever Matplotlib raises, the trained run stands
        log.warning(
            "%s could not be drawn (%s: %s).", run / RUN_CURVES_FILE, type(error).__name__, error
        )


def plot_run(run: Path, pyplot: Any = None) -> None:
    """``curves.png`` in a run's folder: its training return at each metric point, drawn
    stage by stage (each stage's return is that of its own episodes), with dotted lines where
    a stage ends, and its evaluations' mean return, against total steps."""
    pyplot = pyplot or _pyplot()
    if pyplot is None:
        return
    figure, axes = pyplot.subplots(figsize=(7, 4))
    drawn = []
    ends = _stage_ends(run)
    training = read_curve(run, "train/reward")
    if training:
        label = _return_label(False, [run])
        color = None
        for start, end in zip([-1, *ends], [*ends, math.inf], strict=True):
            part = [(step, value) for step, value in training if start < step <= end]
            if part:
                # Marked points: a stage with one metric point is a dot, not nothing.
                (line,) = axes.plot(*zip(*part, strict=True), label=label, color=color, marker=".")
                label, color = "_", line.get_color()  # one legend entry, one colour
        drawn.append("training")
    evaluations = read_curve(run, "eval/reward")
    if evaluations:
        label = _return_label(True, [run])
        axes.plot(*zip(*evaluations, strict=True), label=label, marker=".")
        drawn.append("evaluation")
    for end in ends:
        axes.axvline(end, color="grey", linestyle=":", linewidth=1)
    title = f"Run {run.name}: {' and '.join(drawn) or 'no'} return"
    axes.set_title(title + (" (dotted: stage ends)" if ends else ""))
    axes.set_xlabel("total steps")
    axes.set_ylabel("episode return")
    if axes.get_lines():
        # Below the axes, where it hides no curve.
        axes.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.15))
    figure.tight_layout()
    figure.savefig(run / RUN_CURVES_FILE, dpi=100, bbox_inches="tight")
    pyplot.close(figure)


def _stage_ends(run: Path) -> list[int]:
    """The total step counts at which the run's stages but the last ended (its last training
    metric point of each stage, from ``metrics.csv``)."""
    path = run / METRICS_FILE
    if not path.is_file():
        return []
    last: dict[str, int] = {}
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            if row.get("mode") == "train" and (row.get("total_steps") or "").isdigit():
                last[row.get("stage") or ""] = int(row["total_steps"])
    return sorted(last.values())[:-1]
