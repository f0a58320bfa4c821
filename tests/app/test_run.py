"""The command line trains: the default run, its outputs, and each override family."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

Cli = Any


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_default_run_trains_and_writes_its_outputs(
    cli: Cli, small: list[str], tmp_path: Path
) -> None:
    """A short default run prints its stages and result and fills the run folder."""
    result = cli(*small, "hydra.run.dir=run")
    assert result.returncode == 0, result.stderr
    log = result.stdout + result.stderr
    assert "Stage 1/2: losses ['imitation_loss']" in log
    assert "Stage 2/2: losses ['ppo_loss']" in log
    assert "stage 2 |" in log and "reward" in log
    assert "Done after 2048 steps: final mean episode return" in log
    run = tmp_path / "run"
    summary = read_json(run / "summary.json")
    assert summary["seed"] == 0
    assert summary["total_steps"] == 2048
    assert [s["loss_names"] for s in summary["stages"]] == [["imitation_loss"], ["ppo_loss"]]
    assert [s["steps"] for s in summary["stages"]] == [1024, 1024]
    assert summary["final_metrics"]["reward"] > 0
    assert "steps_per_second" in summary["speed"]
    assert "steps_per_second" not in summary["final_metrics"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "stage_00__steps_000000001024.pt",
        "stage_01__steps_000000002048.pt",
    ]
    resolved = yaml.safe_load((run / ".hydra" / "resolved_config.yaml").read_text())
    assert resolved["pipeline"]["lr_scheduler_builder"]["lr_lambda"]["steps"] == 2048
    choices = yaml.safe_load((run / ".hydra" / "choices.yaml").read_text())
    assert choices == {
        "callbacks": None,
        "pipeline": "imitation_then_ppo",
        "optimizer": "adam_cartpole",
        "lr_scheduler": "linear_decay",
        "schedule@pipeline.lr_scheduler_builder.lr_lambda": "linear_decay",
        "task": "cartpole",
        "model": "mlp",
        "loss@pipeline.named_losses.imitation_loss": "imitation",
        "loss@pipeline.named_losses.ppo_loss": "ppo_cartpole",
    }
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/reward", "train/lr", "train/teacher_forcing", "train/episode_length"} <= tags
    assert {"loss/imitation_loss/cross_entropy", "loss/ppo_loss/action"} <= tags


def test_same_seed_same_result_different_seed_differs(
    app: Cli, small: list[str], tmp_path: Path
) -> None:
    """Runs are seeded: equal seeds give equal final metrics, another seed does not (in this
    process, one after the other: nothing carries over; the sweep tests compare runs made in
    other processes)."""
    metrics = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        result = app(*small, f"seed={seed}", f"hydra.run.dir={name}")
        assert result.returncode == 0, result.stderr
        metrics.append(read_json(tmp_path / name / "summary.json")["final_metrics"])
    assert metrics[0] == metrics[1]
    assert metrics[0] != metrics[2]


def test_override_families_reach_the_objects(cli: Cli, small: list[str], tmp_path: Path) -> None:
    """Stage, pipeline, optimizer and scheduler overrides change what is trained."""
    result = cli(
        *small,
        "pipeline.gamma=0.95",
        "pipeline.pipeline_stages.1.max_stage_steps=2000",
        "pipeline.pipeline_stages.0.teacher_forcing.steps=512",
        "optimizer=sgd",
        "pipeline.optimizer_builder.lr=0.01",
        "lr_scheduler=cosine",
        "model.hidden_sizes=[16]",
        "hydra.run.dir=run",
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    resolved = yaml.safe_load((run / ".hydra" / "resolved_config.yaml").read_text())
    pipeline = resolved["pipeline"]
    assert pipeline["gamma"] == 0.95
    assert pipeline["pipeline_stages"][0]["teacher_forcing"]["steps"] == 512
    assert pipeline["optimizer_builder"]["class_type"] == "torch.optim.SGD"
    assert pipeline["lr_scheduler_builder"]["class_type"].endswith("CosineAnnealingLR")
    assert pipeline["lr_scheduler_builder"]["T_max"] == 1024 + 2000
    summary = read_json(run / "summary.json")
    assert [s["steps"] for s in summary["stages"]] == [1024, 2048]  # a whole number of rollouts
    checkpoint = torch.load(
        sorted((run / "checkpoints").iterdir())[-1], weights_only=True, map_location="cpu"
    )
    assert checkpoint["optimizer"]["param_groups"][0]["initial_lr"] == 0.01
    assert checkpoint["model"]["actor.0.weight"].shape == (16, 4)


def test_console_script_is_the_same_app(tmp_path: Path) -> None:
    """The hydra-pipeline command runs the same application."""
    executable = Path(sys.executable).parent / "hydra-pipeline"
    result = subprocess.run(
        [str(executable), "--cfg", "job"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "pipeline_stages:" in result.stdout and "imitation_loss" in result.stdout


def test_progress_bar_and_determinism_flags(cli: Cli, small: list[str], tmp_path: Path) -> None:
    """deterministic_cudnn (torch's deterministic mode) and the progress bar work on the CPU,
    without changing the result."""
    plain = cli(*small, "hydra.run.dir=plain")
    flags = cli(*small, "deterministic_cudnn=true", "progress_bar=true", "hydra.run.dir=flags")
    assert plain.returncode == 0 and flags.returncode == 0, flags.stderr
    assert "stage 2/2: 100%" in flags.stderr
    assert (
        read_json(tmp_path / "flags" / "summary.json")["final_metrics"]
        == read_json(tmp_path / "plain" / "summary.json")["final_metrics"]
    )


def test_gymnasium_continuous_task(cli: Cli, tmp_path: Path) -> None:
    """PPO trains on a Gymnasium environment with continuous actions (Pendulum-v1)."""
    result = cli(
        "pipeline=ppo",
        "task=gym",
        "task.env_id=Pendulum-v1",
        "task.num_envs=4",
        "pipeline.num_steps=64",
        "pipeline.num_mini_batch=2",
        "pipeline.pipeline_stages.0.max_stage_steps=2048",
        "pipeline.metric_accumulate_interval=1024",
        "hydra.run.dir=run",
    )
    assert result.returncode == 0, result.stderr
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["total_steps"] == 2048
    assert summary["final_metrics"]["episode_length"] == 200  # Pendulum's time limit
    checkpoint = torch.load(
        sorted((tmp_path / "run" / "checkpoints").iterdir())[-1], weights_only=True
    )
    assert checkpoint["model"]["log_std"].shape == (1,)
