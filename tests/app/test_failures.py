"""An error during training (not a config mistake) ends with one paragraph, the traceback in
the run's log file; and the app leaves the garbage collector on for any task function."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig

from hydra_pipeline.app import pipeline_app

Cli = Any

FAILING_LOSS = '''
class Failing:
    """Trains like no loss at all for a few updates, then fails as a bug would."""
    needs_expert_actions = False
    terms = ()

    def __init__(self, after: int) -> None:
        self.after = after

    def __call__(self, *, step_count, batch, output):
        self.after -= 1
        if self.after < 0:
            raise RuntimeError("the loss went wrong")
        return output.values.sum() * 0.0, {}
'''


@pytest.fixture
def failing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Overrides adding a loss that raises after a few updates to the second stage."""
    (tmp_path / "failing_loss.py").write_text(FAILING_LOSS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "failing_loss", raising=False)
    return [
        "allowed_targets=[failing_loss]",
        "+pipeline.named_losses.failing={_target_:failing_loss.Failing,after:8}",
        "pipeline.pipeline_stages.1.loss_names=[ppo_loss,failing]",
    ]


@pytest.mark.parametrize(("save_interval", "checkpointed"), [("512", True), ("null", False)])
def test_an_error_during_training_is_one_paragraph(
    app: Cli,
    small: list[str],
    tmp_path: Path,
    failing: list[str],
    save_interval: str,
    checkpointed: bool,
) -> None:
    """What failed, the run folder, how to resume (or that there is nothing to resume), and
    where the traceback is: status 1, no traceback on the console."""
    result = app(*small, *failing, f"pipeline.save_interval={save_interval}", "hydra.run.dir=run")
    assert result.returncode == 1
    run = tmp_path / "run"
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Error: training failed with RuntimeError: the loss went wrong"
    assert f"The run's folder is {run}." in lines[1]
    if checkpointed:
        # The program is this test process's; the arguments are what resumes (the allow-list
        # is not stored in checkpoints, so the command repeats it).
        assert lines[1].endswith(f" 'allowed_targets=[failing_loss]' resume={run}")
    else:
        assert "No checkpoint was written" in lines[1]
    assert lines[2] == f"The traceback is in {run / 'app.log'} (HYDRA_FULL_ERROR=1 prints it)."
    assert "Traceback" not in result.stdout + result.stderr
    log = (run / "app.log").read_text()
    assert "Traceback (most recent call last)" in log and "the loss went wrong" in log


def test_a_failing_job_of_a_sweep_is_recorded(
    app: Cli, small: list[str], tmp_path: Path, failing: list[str]
) -> None:
    """In a sweep the failure is recorded with its first line and the sweep ends with it."""
    result = app("-m", *small, *failing, "seed=0", "hydra.sweep.dir=sweep")
    assert result.returncode == 1
    assert "training failed with RuntimeError: the loss went wrong" in result.stderr
    assert "Traceback" not in result.stderr
    summary = (tmp_path / "sweep" / "sweep_summary.csv").read_text()
    assert "failed,TrainingError: training failed with RuntimeError" in summary


def test_other_task_functions_run_with_the_garbage_collector_on(tmp_path: Path) -> None:
    """pipeline_app pauses the collector during startup only: a task function of a user's
    own sees it on (train pauses it again around its own startup)."""
    seen: list[bool] = []

    @pipeline_app(config_path="pkg://hydra_pipeline.conf", config_name="config")
    def task(cfg: DictConfig) -> None:
        seen.append(gc.isenabled())

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        patch.setattr(sys, "argv", ["task", "hydra.run.dir=run"])
        task()
    assert seen == [True]
    assert gc.isenabled()
