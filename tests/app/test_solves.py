"""The default pipeline really trains: it solves the built-in CartPole."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

Cli = Any


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_pipeline_solves_cartpole(cli: Cli, tmp_path: Path, seed: int) -> None:
    """With no overrides but the seed, the run ends its PPO stage early because the mean
    episode return of a metric interval reached 475 (CartPole-v1's threshold); the summary's
    final return is the mean of the last 100 episodes, the early, shorter ones included."""
    result = cli(f"seed={seed}", "hydra.run.dir=run", "progress_bar=false")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stages"][1]["early_stopped"]
    assert summary["stages"][1]["steps"] < 300000
    with open(tmp_path / "run" / "metrics.csv", newline="") as file:
        points = [row for row in csv.DictReader(file) if row["mode"] == "train"]
    assert float(points[-1]["train/reward"]) >= 475
    assert summary["final_counts"]["reward"] <= summary["return_window"] == 100
    assert 200 < summary["final_metrics"]["reward"] <= 500
