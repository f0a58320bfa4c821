"""Helpers shared by the benchmark scripts: timing subprocesses, medians, the result table.

Every figure of the suite is a median over several runs, each measured against a baseline run
of the same invocation (baseline and candidate runs alternate, so that slow phases of a shared
machine hit both), and is printed as a ratio. This module imports neither torch nor
Stable-Baselines3, so that each script pays only for what it measures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: the working directory of every subprocess."""

QUICK_NOTE = "--quick: a smoke run (tiny step counts, single runs); not the benchmark's figures."

A = TypeVar("A")
B = TypeVar("B")


@dataclass
class Row:
    """One line of the result table: a candidate measured against its baseline.

    Attributes:
        name: What is measured.
        baseline: Name of the baseline.
        baseline_value: Median of the baseline runs.
        value: Median of the candidate runs.
        unit: Unit of both values.
        ratio: Median over repetitions of candidate / baseline (paired runs).
        target: The target, in words ("" when there is none).
        met: Whether the target was met (``None`` when there is none).
    """

    name: str
    baseline: str
    baseline_value: float
    value: float
    unit: str
    ratio: float
    target: str = ""
    met: bool | None = None


@dataclass
class Report:
    """What a benchmark script measured: table rows and every per-run number."""

    rows: list[Row] = field(default_factory=list)
    runs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TimedProcess:
    """A finished subprocess and when it ran.

    Attributes:
        start_time: ``time.time()`` just before ``subprocess.Popen``, to compare with
            timestamps the process records itself.
        wall_seconds: From just before ``Popen`` to the process's exit (``perf_counter``).
        returncode: The exit status.
        stdout: Everything it printed (stderr is merged into it).
        cpu_seconds: The user and system CPU time of the process and of the children it
            waited for: less sensitive than wall time to other work sharing the machine
            (measured as what this process's ended children used meanwhile, so no other
            child of it may end while it runs).
    """

    start_time: float
    wall_seconds: float
    returncode: int
    stdout: str
    cpu_seconds: float = math.nan


def run_timed(command: Sequence[str], timeout: float = 600.0) -> TimedProcess:
    """Run ``command`` in the repository root and time it from just before ``Popen`` to exit.

    Output (stdout and stderr) goes to a temporary file read after the process ends, so the
    process never blocks on a full pipe and nothing reads it while it runs.
    """
    with open(os.devnull, "rb") as stdin, tempfile.TemporaryFile() as output:
        before = _children_cpu_seconds()
        start_time = time.time()
        start = time.perf_counter()
        process = subprocess.Popen(
            list(command), cwd=ROOT, stdin=stdin, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        wall_seconds = time.perf_counter() - start
        cpu_seconds = _children_cpu_seconds() - before
        output.seek(0)
        text = output.read().decode(errors="replace")
    return TimedProcess(start_time, wall_seconds, returncode, text, cpu_seconds)


def _children_cpu_seconds() -> float:
    """The user and system CPU seconds of this process's children waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def python_command(*arguments: str) -> list[str]:
    """``python <arguments>`` with this interpreter (the project's virtual environment)."""
    return [sys.executable, *arguments]


def app_config(total_steps: int, seed: int, *overrides: str) -> DictConfig:
    """The app's config composed with ``overrides`` as a benchmark runs it: its first stage of
    ``total_steps``, ``seed``, no TensorBoard, no progress bar; resolved.

    Hydra and the package are imported here, not by this module: scripts that time other
    processes do not pay for them.
    """
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import hydra_pipeline.config  # noqa: F401  (registers the schemas the presets extend)

    arguments = [
        *overrides,
        f"pipeline.pipeline_stages.0.max_stage_steps={total_steps}",
        f"seed={seed}",
        "tensorboard=false",
        "progress_bar=false",
    ]
    with initialize_config_module(config_module="hydra_pipeline.conf", version_base="1.3"):
        cfg = compose("config", overrides=arguments)
    OmegaConf.resolve(cfg)
    return cfg


def interleaved(repeats: int, first: Callable[[], A], second: Callable[[], B]) -> list[tuple[A, B]]:
    """Run ``first`` and ``second`` ``repeats`` times each, alternating which goes first
    (ABBA...), and return the ``(first, second)`` result pairs in order."""
    pairs: list[tuple[A, B]] = []
    for index in range(repeats):
        if index % 2 == 0:
            a = first()
            b = second()
        else:
            b = second()
            a = first()
        pairs.append((a, b))
    return pairs


def timing_pairs_report(
    key: str, name: str, labels: tuple[str, str], pairs: Sequence[tuple[float, float]]
) -> Report:
    """Print each ``(candidate, baseline)`` pair of seconds per step (in microseconds, under
    ``labels``) and return a one-row report of their medians and paired ratio; ``key`` names
    the per-pair numbers in the report's JSON."""
    candidate, baseline = labels
    for first, second in pairs:
        print(f"  {candidate} {first * 1e6:.0f} us, {baseline} {second * 1e6:.0f} us per step")
    report = Report()
    report.rows.append(
        Row(
            name=name,
            baseline=baseline,
            baseline_value=median([second * 1e6 for _, second in pairs]),
            value=median([first * 1e6 for first, _ in pairs]),
            unit="us/step",
            ratio=median([first / second for first, second in pairs]),
        )
    )
    report.runs[key] = [{candidate: first, baseline: second} for first, second in pairs]
    return report


def benchmark_main(
    name: str,
    doc: str,
    measure: Callable[..., Report],
    *,
    repeats: int,
    steps: int,
    quick_steps: int,
    seeded: bool = False,
) -> None:
    """The command line of a benchmark of ``--repeats`` runs of ``--steps`` steps each
    (``--quick``: one run of ``quick_steps``), and with ``seeded``, ``--seed``:
    ``measure(repeats, steps[, seed])`` is printed and saved with :func:`print_report`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=repeats, help=f"default {repeats}")
    parser.add_argument("--steps", type=int, default=steps, help=f"per run; default {steps}")
    if seeded:
        parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny step counts")
    parser.add_argument("--json", type=Path, help="also save every number to this file")
    args = parser.parse_args()
    sizes = (1, quick_steps) if args.quick else (args.repeats, args.steps)
    seed = (args.seed,) if seeded else ()
    print_report(name, measure(*sizes, *seed), args.quick, args.json)


def commit() -> str:
    """The checkout's commit (short), with ``+uncommitted`` when tracked files differ from it:
    what a benchmark's figures were measured on."""

    def git(*arguments: str) -> str:
        return subprocess.run(
            ["git", *arguments], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    head = git("rev-parse", "--short=10", "HEAD")
    return head + ("+uncommitted" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> str:
    """The machine and the versions of Python, torch and Stable-Baselines3, in one line."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        if names:
            cpu = names[0].split(":", 1)[1].strip()
    versions = python_command(
        "-c",
        "import stable_baselines3, torch; print(torch.__version__, stable_baselines3.__version__)",
    )
    torch_version, sb3_version = run_timed(versions).stdout.split()[-2:]
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu}), Python "
        f"{platform.python_version()}, torch {torch_version}, Stable-Baselines3 {sb3_version}"
    )


def table_markers(script: str) -> tuple[str, str]:
    """The comments that surround ``script``'s table in a documentation page."""
    return f"<!-- {script} table: begin -->", f"<!-- {script} table: end -->"


def replace_table(page: Path, script: str, table: str) -> None:
    """Put ``table`` (which starts and ends with ``script``'s markers) in place of the block
    between those markers in ``page``.

    Raises:
        SystemExit: The page lacks the markers.
    """
    begin, end = table_markers(script)
    text = page.read_text()
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise SystemExit(f"{page} has no {begin} ... {end} block to replace.")
    page.write_text(text[:start] + table + text[stop + len(end) :])


def median(values: Sequence[float]) -> float:
    """The median (``nan`` for no values)."""
    return statistics.median(values) if values else float("nan")


def load_average() -> tuple[float, float, float]:
    """The 1-, 5- and 15-minute load averages, as ``uptime`` shows them."""
    return os.getloadavg()


def describe_load() -> str:
    """The load averages in one line, to print before and after measuring."""
    one, five, fifteen = load_average()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} CPUs)"


def wait_for_quiet(threshold: float, max_wait: float, poll: float = 15.0) -> bool:
    """Wait until the 1-minute load average is below ``threshold`` (at most ``max_wait`` s).

    Returns whether the machine became quiet; the benchmarks then run either way.
    """
    deadline = time.monotonic() + max_wait
    while load_average()[0] >= threshold:
        if time.monotonic() >= deadline:
            print(f"still busy after {max_wait:.0f} s: {describe_load()}", flush=True)
            return False
        print(f"waiting for a quiet machine: {describe_load()}", flush=True)
        time.sleep(poll)
    return True


def format_value(value: float, unit: str) -> str:
    """A value with a precision suited to its size, and its unit."""
    if value != value:  # nan
        return "n/a"
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def format_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned plain-text table."""
    header = ("benchmark", "candidate", "baseline", "ratio", "target", "met")
    lines = [header]
    for row in rows:
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        lines.append(
            (
                row.name,
                format_value(row.value, row.unit),
                f"{format_value(row.baseline_value, row.unit)} ({row.baseline})",
                f"{row.ratio:.3f}",
                row.target or "-",
                met,
            )
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    rendered = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    ]
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in rendered)


def write_json(path: Path, reports: dict[str, Report]) -> None:
    """Save every report (rows and per-run numbers) as JSON."""
    data = {
        name: {"rows": [vars(row) for row in report.rows], "runs": report.runs}
        for name, report in reports.items()
    }
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def print_report(name: str, report: Report, quick: bool, json_path: Path | None) -> None:
    """Print a script's table (flagged when it is a --quick smoke run) and save its JSON."""
    if quick:
        print(QUICK_NOTE)
    print(format_table(report.rows))
    if json_path:
        write_json(json_path, {name: report})
