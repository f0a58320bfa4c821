"""Importing the config layer never imports torch (``--help`` and ``--cfg`` stay fast)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Each test starts an interpreter: slow (left out of the quick lane).
pytestmark = pytest.mark.slow

PROBE = (
    "import sys, hydra_pipeline.config; "
    "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
)


@pytest.fixture(scope="module")
def probe() -> subprocess.CompletedProcess[str]:
    """A fresh interpreter that imports hydra_pipeline.config under ``-X importtime``."""
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
    )


class TestImportCost:
    def test_importtime_lists_no_torch_module(
        self, probe: subprocess.CompletedProcess[str]
    ) -> None:
        """python -X importtime shows hydra_pipeline.config loaded and no torch module."""
        imported = [
            line.rsplit("|", 1)[1].strip()
            for line in probe.stderr.splitlines()
            if line.startswith("import time:") and "|" in line
        ]
        assert "hydra_pipeline.config" in imported  # the probe did measure the import
        assert "hydra" in imported and "omegaconf" in imported
        torch_modules = [m for m in imported if m == "torch" or m.startswith("torch.")]
        assert torch_modules == []

    def test_torch_not_in_sys_modules(self, probe: subprocess.CompletedProcess[str]) -> None:
        """After the import, sys.modules holds no torch module."""
        assert probe.stdout.strip() == "[]"
