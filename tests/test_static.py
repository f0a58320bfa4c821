"""The code passes the project's linters: ruff on the tree, mypy --strict on the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

STATIC_CHECKS = [
    ("ruff", "check", "."),
    ("ruff", "format", "--check", "."),
    ("mypy", "--strict", "hydra_pipeline", "hydra_plugins"),
]
"""Each check as ``python -m <check>`` runs it from the repository's root."""


@pytest.mark.parametrize("check", STATIC_CHECKS, ids=" ".join)
def test_static_check_is_clean(check: tuple[str, ...]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *check], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
