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


def quick_run(script: str) -> str:
    """What ``python benchmarks/<script> --quick`` prints, once it has exited cleanly."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
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


def test_seed_batch_quick_run_prints_its_ratios() -> None:
    output = quick_run("seed_batch.py")
    assert re.search(r"2 seeds batched / one seed: \d+\.\d+; batched / one after", output), output
