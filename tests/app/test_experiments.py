"""The shipped ``experiment`` presets (rl-baselines3-zoo's tuned PPO per environment): each
composes, starts and learns in a short run. Their full-budget results belong to
``benchmarks/ppo_zoo.py``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.app.conftest import ROOT, App

PRESETS = sorted(path.stem for path in (ROOT / "conf" / "experiment").glob("ppo_*.yaml"))

SHORT = [
    "task.num_envs=2",
    "pipeline.num_steps=16",
    "pipeline.num_mini_batch=4",
    "pipeline.update_repeats=2",
    "pipeline.pipeline_stages.0.max_stage_steps=64",
    "pipeline.metric_accumulate_interval=32",
    "tensorboard=false",
]
"""Two rollouts of 2 x 16 transitions, each in 4 minibatches of single transitions."""


def test_every_environment_of_the_benchmark_has_a_preset() -> None:
    assert PRESETS == [
        "ppo_acrobot",
        "ppo_cartpole",
        "ppo_lunarlander",
        "ppo_lunarlandercontinuous",
        "ppo_mountaincarcontinuous",
        "ppo_pendulum",
    ]


@pytest.mark.parametrize("preset", PRESETS)
def test_the_preset_composes_starts_and_learns(app: App, tmp_path: Path, preset: str) -> None:
    """The preset trains through the app; its updates moved the policy (a KL above 0) and
    fitted values (a finite explained variance)."""
    result = app(f"+experiment={preset}", *SHORT, f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["total_steps"] == 64
    metrics = summary["final_metrics"]
    assert metrics["ppo_loss/approx_kl"] > 0
    assert math.isfinite(metrics["explained_variance"])
