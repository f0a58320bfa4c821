"""The documentation site builds without a warning: every page in the navigation, every link
between pages, every API reference page and every cross-reference to a documented object."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BUILD_DOCS = ("mkdocs", "build", "--strict")
"""The build, as ``python -m mkdocs build --strict`` runs it from the repository's root."""


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """``mkdocs build --strict`` (mkdocs.yml sets strict too) fails on any warning: a broken
    link, a page missing from the navigation, a docstring griffe cannot read, a reference to
    an object that is not documented."""
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    result = subprocess.run(
        [sys.executable, "-m", *BUILD_DOCS, "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=environment,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    reference = tmp_path / "site" / "reference" / "hydra_pipeline"
    assert (reference / "pipeline" / "training_pipeline" / "index.html").is_file()
