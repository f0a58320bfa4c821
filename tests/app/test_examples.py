"""The example user project composes the package's groups with its own task and loss."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

Cli = Any


@pytest.mark.parametrize("experiment", ["quick", "value_warmup"])
def test_user_project_trains_its_own_task(
    cli: Cli, root: Path, tmp_path: Path, experiment: str
) -> None:
    """The project's app trains its own task through the package's imitation_then_ppo
    pipeline with adamw, and its experiment presets apply with +experiment=..."""
    script = root / "examples" / "user_project" / "train.py"
    result = cli(f"+experiment={experiment}", "hydra.run.dir=run", script=script)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    resolved = yaml.safe_load((run / ".hydra" / "resolved_config.yaml").read_text())
    assert resolved["task"]["_target_"] == "my_project.tasks.ReachTask"
    assert resolved["pipeline"]["optimizer_builder"]["class_type"] == "torch.optim.AdamW"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_metrics"]["reward"] > 0.5  # most episodes reach the target
    assert 0 <= summary["final_metrics"]["success"] <= 1  # the task's episode metric
    if experiment == "quick":  # it evaluates
        assert 0 <= summary["eval_metrics"]["success"] <= 1
    if experiment == "value_warmup":
        assert summary["stages"][0]["loss_names"] == ["imitation_loss", "value_loss"]
        assert "value_loss/value" in summary["final_metrics"] or summary["stages"][1]["steps"]


def test_user_project_allows_only_its_own_code(cli: Cli, root: Path) -> None:
    """The project allows my_project in its code (its task trains, above); code of any other
    module is still refused, and a config cannot extend the allow-list."""
    script = root / "examples" / "user_project" / "train.py"
    result = cli("+experiment=quick", "task._target_=os.getcwd", "hydra.run.dir=run", script=script)
    assert result.returncode == 1
    assert "'task' names 'os.getcwd'" in result.stderr
    assert "outside the allowed import prefixes ['my_project.']" in result.stderr
