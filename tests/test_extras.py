"""The extras check (``tests/check_extras.py``) covers every extra, and CI runs it."""

from __future__ import annotations

from pathlib import Path

from tests.check_extras import EXTRA_CHECKS, optional_extras

ROOT = Path(__file__).resolve().parents[1]


def test_every_extra_has_checks() -> None:
    """An extra added to pyproject.toml without a check fails here."""
    extras = optional_extras()
    assert "mlflow" in extras and "all" not in extras
    assert sorted(EXTRA_CHECKS) == sorted(extras)
    assert all(EXTRA_CHECKS[extra] for extra in extras)


def test_ci_runs_the_extras_check() -> None:
    """CI checks every extra on its own, in environments of their own."""
    steps = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "python tests/check_extras.py" in steps
