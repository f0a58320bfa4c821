"""The default pipeline really trains: it solves the built-in CartPole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

Cli = Any


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_pipeline_solves_cartpole(cli: Cli, tmp_path: Path, seed: int) -> None:
    """With no overrides but the seed, the run ends its PPO stage early because the mean
    episode return reached 475 (CartPole-v1's threshold)."""
    result = cli(f"seed={seed}", "hydra.run.dir=run", "progress_bar=false")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["final_metrics"]["reward"] >= 475
    assert summary["stages"][1]["early_stopped"]
    assert summary["stages"][1]["steps"] < 300000
