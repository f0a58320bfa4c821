"""Resume after a crash, refusal of shape changes, restart from weights, bad checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from hydra_pipeline.app.run_folder import LOCK_FILE

Cli = Any

# Long enough (a few seconds) to be killed after its first checkpoint.
RUN = [
    "task.num_envs=16",
    "pipeline.num_steps=64",
    "pipeline.save_interval=2048",
    "pipeline.pipeline_stages.0.max_stage_steps=4096",
    "pipeline.pipeline_stages.1.max_stage_steps=24576",
    "pipeline.pipeline_stages.1.early_stopping_criterion=null",
]


def last_checkpoint(run: Path) -> dict[str, Any]:
    path = sorted((run / "checkpoints").iterdir())[-1]
    checkpoint: dict[str, Any] = torch.load(path, weights_only=True, map_location="cpu")
    return checkpoint


def final_metrics(run: Path) -> Any:
    return json.loads((run / "summary.json").read_text())["final_metrics"]


def test_resume_after_sigkill_matches_the_uninterrupted_run(app: Cli, tmp_path: Path) -> None:
    """Killed after its first checkpoint and resumed, a run ends with the same metrics and
    bit-identical weights as the run never interrupted, in its own folder."""
    full = app(*RUN, "hydra.run.dir=full")
    assert full.returncode == 0, full.stderr

    process = subprocess.Popen(
        [sys.executable, "-m", "hydra_pipeline", *RUN, "hydra.run.dir=killed"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"},
    )
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.monotonic() + 120
    while not (checkpoints.is_dir() and any(checkpoints.glob("*.pt"))):
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "summary.json").exists(), "killed too late to test resume"

    resumed = app(f"resume={tmp_path / 'killed'}")
    assert resumed.returncode == 0, resumed.stderr
    assert final_metrics(tmp_path / "killed") == final_metrics(tmp_path / "full")
    weights = last_checkpoint(tmp_path / "killed")["model"]
    expected = last_checkpoint(tmp_path / "full")["model"]
    assert all(torch.equal(weights[name], expected[name]) for name in expected)
    original = yaml.safe_load((tmp_path / "killed" / ".hydra" / "overrides.yaml").read_text())
    assert original == RUN
    assert list((tmp_path / "killed" / ".hydra").glob("resume_*/overrides.yaml"))


def test_resume_refuses_a_change_of_pipeline_shape(
    app: Cli, small: list[str], tmp_path: Path
) -> None:
    """An override changing the stages on resume is refused, naming what differs."""
    first = app("pipeline=ppo", *[o for o in small if "stages.1" not in o], "hydra.run.dir=run")
    assert first.returncode == 0, first.stderr
    result = app(f"resume={tmp_path / 'run'}", "pipeline=imitation_then_ppo")
    assert result.returncode == 1
    assert "'pipeline.named_losses.imitation_loss._target_' is " in result.stderr
    assert "A resumed run keeps its pipeline" in result.stderr
    assert "Traceback" not in result.stderr


def test_resume_explains_overrides_that_no_longer_compose(
    app: Cli, small: list[str], tmp_path: Path
) -> None:
    """When the run's own overrides do not fit the new ones, the message says so."""
    first = app(*small, "hydra.run.dir=run")
    assert first.returncode == 0, first.stderr
    result = app(f"resume={tmp_path / 'run'}", "pipeline=ppo")
    assert result.returncode == 1
    assert "'pipeline.pipeline_stages.1' is out of range" in result.stderr
    assert "This run resumes from" in result.stderr
    assert "the overrides it stores (task.num_envs=8 " in result.stderr
    assert "then this command's (resume=" in result.stderr
    assert "Traceback" not in result.stderr


def test_resume_can_extend_a_finished_stage(app: Cli, small: list[str], tmp_path: Path) -> None:
    """Value overrides apply on resume: a longer last stage continues the finished run. How
    torch computes the optimizer's step may change too (the run started with torch's default
    Adam, as runs of earlier versions did, and resumes with the fused one)."""
    first = app(*small, "pipeline.optimizer_builder.fused=null", "hydra.run.dir=run")
    assert first.returncode == 0, first.stderr
    result = app(
        f"resume={tmp_path / 'run'}",
        "pipeline.pipeline_stages.1.max_stage_steps=2048",
        "pipeline.optimizer_builder.fused=true",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [stage["steps"] for stage in summary["stages"]] == [1024, 2048]


def test_restart_from_weights_starts_the_pipeline_over(
    app: Cli, small: list[str], tmp_path: Path
) -> None:
    """restart_from_weights loads only the model: a new run, in a new folder, from step 0."""
    first = app(*small, "hydra.run.dir=first")
    assert first.returncode == 0, first.stderr
    second = app(*small, f"restart_from_weights={tmp_path / 'first'}", "hydra.run.dir=second")
    assert second.returncode == 0, second.stderr
    summary = json.loads((tmp_path / "second" / "summary.json").read_text())
    assert summary["total_steps"] == 2048
    assert [stage["steps"] for stage in summary["stages"]] == [1024, 1024]


def test_corrupt_checkpoint_is_reported_clearly(app: Cli, small: list[str], tmp_path: Path) -> None:
    """A truncated checkpoint gives a message naming the file and what to do."""
    first = app(*small, "hydra.run.dir=run")
    assert first.returncode == 0, first.stderr
    latest = sorted((tmp_path / "run" / "checkpoints").iterdir())[-1]
    latest.write_bytes(latest.read_bytes()[:100])
    result = app(f"resume={tmp_path / 'run'}")
    assert result.returncode == 1
    assert f"'{latest}' is corrupt or truncated" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("overrides", "difference"),
    [
        (
            ["optimizer=sgd"],
            "'pipeline.optimizer_builder.class_type' is 'torch.optim.SGD' here but "
            "'torch.optim.Adam' in the checkpoint's run",
        ),
        (
            ["pipeline.optimizer_builder.lr=0.1"],
            "'pipeline.optimizer_builder.lr' is 0.1 here but 0.003",
        ),
        (["model.activation=relu"], "'model.activation' is 'relu' here but 'tanh'"),
        (["model.hidden_sizes=[32,32]"], "'model.hidden_sizes' is [32, 32] here but [64, 64]"),
        (
            ["task=gym", "pipeline=imitation_then_ppo", "task.num_envs=8"],
            "'task._target_' is 'hydra_pipeline.tasks.GymTask' here but "
            "'hydra_pipeline.tasks.CartPoleTask'",
        ),
        (["task.max_episode_steps=200"], "'task.max_episode_steps' is 200 here but 500"),
        (
            ["loss@pipeline.named_losses.ppo_loss=a2c"],
            "'pipeline.named_losses.ppo_loss._target_' is 'hydra_pipeline.engine.losses.A2C'",
        ),
    ],
)
def test_resume_refuses_another_structure_before_touching_anything(
    app: Cli, small: list[str], tmp_path: Path, overrides: list[str], difference: str
) -> None:
    """A different optimizer, model, task or loss class is refused with the rule and what
    differs, before anything in the run folder changes."""
    first = app(*small, "hydra.run.dir=run")
    assert first.returncode == 0, first.stderr
    files = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    result = app(f"resume={tmp_path / 'run'}", *overrides)
    assert result.returncode == 1
    assert "does not fit this run" in result.stderr and difference in result.stderr
    assert "A resumed run keeps its pipeline" in result.stderr
    assert "Traceback" not in result.stderr
    new = {p for p in (tmp_path / "run").rglob("*") if p.is_file()} - set(files)
    assert all(".hydra/resume_" in str(p) for p in new)
    # The job log and the lock (which names the last process holding the folder) may change.
    kept = {p: content for p, content in files.items() if p.name not in ("app.log", LOCK_FILE)}
    assert all(p.read_bytes() == content for p, content in kept.items())


@pytest.mark.parametrize(
    "name",
    [
        "lr=0.1,seed=2",  # Hydra's own override_dirname pattern
        "with spaces and 'quotes'",
        'double"quote',
        "back\\slash",
    ],
)
def test_resume_in_a_folder_named_like_overrides(
    app: Cli, small: list[str], tmp_path: Path, name: str
) -> None:
    """A run folder whose name holds =, commas, spaces, quotes or backslashes resumes."""
    from hydra_pipeline.app.resume import hydra_quote

    folder = tmp_path / "runs" / name
    first = app(*small, f"hydra.run.dir={hydra_quote(str(folder))}")
    assert first.returncode == 0, first.stderr
    assert (folder / "summary.json").is_file()
    result = app(f"resume={folder}", "pipeline.pipeline_stages.1.max_stage_steps=2048")
    assert result.returncode == 0, result.stderr
    summary = json.loads((folder / "summary.json").read_text())
    assert [stage["steps"] for stage in summary["stages"]] == [1024, 2048]
