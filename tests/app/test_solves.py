"""The default pipeline really trains: it solves the built-in CartPole, and says so the same
way everywhere."""

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
    return of the stage's last (up to) 100 episodes reached 475 (CartPole-v1's threshold;
    episodes of the imitation stage, played with the expert's help, do not count), and the
    console, metrics.csv and summary.json all report that very return: the stop, the last
    metric point and the final return are one number, over the same episodes. (Before they
    were one story, seed 1 stopped on an interval's 32 episodes and reported 335.6 over 100.)"""
    result = cli(f"seed={seed}", "hydra.run.dir=run", "progress_bar=false")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    stage = summary["stages"][1]
    assert stage["early_stopped"] and stage["steps"] < 300000
    stop = stage["early_stop"]
    assert stop["metric"] == "reward" and stop["total_steps"] == summary["total_steps"]
    assert stop["metrics"]["reward"] >= 475
    episodes = stop["counts"]["reward"]
    assert 0 < episodes <= summary["return_window"] == 100
    final = summary["final_metrics"]["reward"]
    assert final == stop["metrics"]["reward"]
    assert summary["final_counts"]["reward"] == episodes
    with open(tmp_path / "run" / "metrics.csv", newline="") as file:
        points = [row for row in csv.DictReader(file) if row["mode"] == "train"]
    assert float(points[-1]["train/reward"]) == pytest.approx(final, rel=1e-12)
    assert points[-1]["episodes"] == str(episodes)
    output = result.stdout + result.stderr
    assert f"criterion met at reward {final:.2f} (mean of the stage's last {episodes} " in output
    assert f"final mean episode return {final:.2f} (mean of the last {episodes} " in output
