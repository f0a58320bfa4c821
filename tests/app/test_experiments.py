"""The shipped ``experiment`` presets (rl-baselines3-zoo's tuned PPO per environment): each
composes, starts and learns in a short run. Their full-budget results belong to
``benchmarks/ppo_zoo.py``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.app.conftest import ROOT, App

PRESETS = sorted(
    path.stem
    for path in (ROOT / "conf" / "experiment").glob("ppo_*.yaml")
    if not path.stem.startswith(("ppo_lstm_", "ppo_minigrid_"))
)
"""The zoo's presets of benchmarks/ppo_zoo.py (the MiniGrid ones, which need the minigrid extra,
are tested in tests/config/test_experiments.py)."""
RECURRENT_PRESETS = sorted(
    path.stem for path in (ROOT / "conf" / "experiment").glob("ppo_lstm_*.yaml")
)

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

SHORT_RECURRENT = [
    *SHORT[:2],
    "pipeline.sequence_length=8",
    "pipeline.num_mini_batch=2",
    "model.hidden_size=16",
    *SHORT[3:],
]
"""Two rollouts of 2 x 16 transitions, each cut into 4 sequences of 8 steps, in 2 minibatches,
through a smaller model."""


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


def test_the_zoos_velocity_free_benchmarks_have_presets() -> None:
    assert RECURRENT_PRESETS == ["ppo_lstm_cartpole_novel", "ppo_lstm_pendulum_novel"]


@pytest.mark.parametrize("preset", RECURRENT_PRESETS)
def test_the_recurrent_preset_composes_starts_and_learns(
    app: App, tmp_path: Path, preset: str
) -> None:
    """Each velocity-free preset trains a recurrent policy through the app on observations
    without their velocities."""
    result = app(f"+experiment={preset}", *SHORT_RECURRENT, f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["total_steps"] == 64
    assert summary["final_metrics"]["ppo_loss/approx_kl"] > 0
    resolved = (tmp_path / "run" / ".hydra" / "resolved_config.yaml").read_text()
    assert "hide_observations:" in resolved and "separate_critic: true" in resolved
