"""The benchmark scripts keep running: smoke runs of the engine-overhead benchmark and of the
per-step ones.

Only that it runs and reports its ratio; speed is never asserted here (a shared machine's
timings say nothing about the code). The full suite is ``python benchmarks/run_all.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

# Each test runs a benchmark script in a process of its own: slow.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def quick_run(script: str, *arguments: str) -> str:
    """What ``python benchmarks/<script> --quick <arguments>`` prints, once it has exited
    cleanly."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_engine_overhead_quick_run_prints_a_ratio() -> None:
    output = quick_run("engine_overhead.py")
    assert re.search(r"engine/hand-written steps/s ratio: \d+\.\d+", output), output


@pytest.mark.parametrize(
    ("script", "row"),
    [
        ("optimizer_step.py", "fused Adam vs torch's default"),
        ("gradient_exchange.py", "engine vs all-reduce"),
    ],
)
def test_per_step_benchmark_quick_run_prints_a_ratio(script: str, row: str) -> None:
    output = quick_run(script)
    assert re.search(rf"{re.escape(row)} .* \d+\.\d{{3}} ", output), output


def test_zoo_speed_quick_run_prints_the_target_row() -> None:
    """One short pair of ours and SB3 (needs the benchmark extra) gives the training-time row
    with its ratio and target, and the process rows."""
    pytest.importorskip("stable_baselines3")
    output = quick_run("zoo_speed.py", "--envs", "pendulum")
    assert re.search(r"Pendulum-v1 training time .* \d+\.\d{3} +<= 0\.6 ", output), output
    assert "Pendulum-v1 process CPU time" in output, output


@pytest.mark.parametrize(
    ("suite", "results", "page", "rows"),
    [
        (
            "ppo",
            "ppo_zoo.json",
            "benchmarks.md",
            ["| Pendulum-v1 (100k) | 0-4 |", "| MountainCarContinuous-v0 (20k) | 0-4 |"],
        ),
        (
            "recurrent",
            "ppo_zoo_recurrent.json",
            "guides/memory.md",
            ["| CartPoleNoVel-v1 (100k) | 0-2 |", "| PendulumNoVel-v1 (100k) | 0-2 |"],
        ),
    ],
)
def test_the_docs_tables_are_the_scripts_output(
    suite: str, results: str, page: str, rows: list[str]
) -> None:
    """The documentation holds, between its markers, exactly what ppo_zoo.py prints for the
    runs saved in benchmarks/results/: the tables were pasted, not edited."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "ppo_zoo.py"),
            *("--suite", suite, "--json", str(ROOT / "benchmarks" / "results" / results)),
            "--table-only",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    name = "ppo_zoo.py" if suite == "ppo" else f"ppo_zoo.py {suite}"
    begin, end = f"<!-- {name} table: begin -->", f"<!-- {name} table: end -->"
    printed = result.stdout[result.stdout.index(begin) : result.stdout.index(end) + len(end)]
    text = (ROOT / "docs" / page).read_text()
    assert text[text.index(begin) : text.index(end) + len(end)] == printed
    for row in rows:
        assert row in printed


def test_minigrid_presets_quick_run_trains_evaluates_and_tabulates(tmp_path: Path) -> None:
    """A tiny DoorKey run through the app, its checkpoint through the evaluate command both
    ways, and the table row they make (the other presets' tiny runs share the code path)."""
    pytest.importorskip("minigrid")
    output = quick_run(
        "minigrid_presets.py",
        "--presets",
        "doorkey",
        "--seeds",
        "0",
        "--json",
        str(tmp_path / "result.json"),
    )
    assert re.search(
        r"\| ppo_minigrid_doorkey \| 0 \| 32 \| \d+ \| [\d.]+ / [\d.]+ / [\d.]+ ", output
    ), output


def test_seed_batch_quick_run_prints_its_ratios() -> None:
    output = quick_run("seed_batch.py")
    assert re.search(r"2 seeds batched / one seed: \d+\.\d+; batched / one after", output), output
