"""The benchmark scripts keep running: a smoke run of the engine-overhead benchmark.

Only that it runs and reports its ratio; speed is never asserted here (a shared machine's
timings say nothing about the code). The full suite is ``python benchmarks/run_all.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_engine_overhead_quick_run_prints_a_ratio() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "engine_overhead.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"engine/hand-written steps/s ratio: \d+\.\d+", result.stdout), result.stdout
