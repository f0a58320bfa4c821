"""Callbacks from the command line: the trackers (W&B offline, MLflow locally), a user's own
callback (held to the allow-list), and what each reads back with its own library's reader."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

Cli = Any

# A user's callback module, importable from the run's folder.
RECORDER = '''
import json
from pathlib import Path
from hydra_pipeline.engine.callbacks import Callback

class Recorder(Callback):
    """Writes each hook's name and a few of its values to calls.jsonl."""
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def write(self, hook, **values):
        with open(self.path, "a") as file:
            file.write(json.dumps({"hook": hook, **values}) + "\\n")

    def on_run_start(self, *, config, job, total_steps, **_):
        self.write("on_run_start", seed=config["seed"], job=job, total_steps=total_steps)

    def on_log(self, *, mode, total_steps, metrics, counts, **_):
        self.write("on_log", mode=mode, total_steps=total_steps, metrics=sorted(metrics),
                   episodes=counts.get("reward", 0))

    def on_checkpoint(self, *, total_steps, path, **_):
        self.write("on_checkpoint", total_steps=total_steps, exists=Path(path).is_file())

    def on_stage_end(self, *, stage_index, **_):
        self.write("on_stage_end", stage_index=stage_index)

    def on_run_end(self, *, summary, **_):
        self.write("on_run_end", total_steps=summary["total_steps"])

    def close(self):
        self.write("close")

class NotACallback:
    pass
'''


@pytest.fixture
def recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The module name of a user's recording callback, importable as in a real run."""
    (tmp_path / "recording_callbacks.py").write_text(RECORDER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "recording_callbacks", raising=False)
    return "recording_callbacks"


def test_a_users_callback_sees_each_hook_in_order(
    app: Cli, small: list[str], tmp_path: Path, recorder: str
) -> None:
    calls_file = tmp_path / "calls.jsonl"
    result = app(
        *small,
        f"allowed_targets=[{recorder}]",
        f"+callbacks.mine={{_target_:{recorder}.Recorder,path:'{calls_file}'}}",
        "seed=3",
        "hydra.run.dir=run",
    )
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in calls_file.read_text().splitlines()]
    hooks = [call["hook"] for call in calls]
    assert hooks == [
        "on_run_start",
        "on_log", "on_log", "on_checkpoint", "on_stage_end",
        "on_log", "on_log", "on_checkpoint", "on_stage_end",
        "on_run_end",
        "close",
    ]  # fmt: skip
    assert calls[0]["seed"] == 3 and calls[0]["total_steps"] == 0
    assert calls[0]["job"]["overrides"][-1] == "seed=3"
    logs = [call for call in calls if call["hook"] == "on_log"]
    assert [log["total_steps"] for log in logs] == [512, 1024, 1536, 2048]
    assert "ppo_loss/value" in logs[-1]["metrics"] and logs[-1]["episodes"] > 0
    assert all(call["exists"] for call in calls if call["hook"] == "on_checkpoint")
    assert calls[-2] == {"hook": "on_run_end", "total_steps": 2048}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("+callbacks.mine={_target_:recording_callbacks.Recorder,path:x}", "names 'recording"),
        ("+callbacks.mine={_target_:hydra_pipeline.config.builder.get_object}", "not an object"),
    ],
)
def test_callbacks_pass_the_trust_gate(
    app: Cli, small: list[str], recorder: str, override: str, expected: str
) -> None:
    """A callback is a _target_ like any other: outside the allow-list, refused."""
    result = app(*small, override, "hydra.run.dir=run")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: 'callbacks.mine'") and expected in result.stderr


def test_a_callback_must_be_a_callback(app: Cli, small: list[str], recorder: str) -> None:
    result = app(
        *small,
        f"allowed_targets=[{recorder}]",
        f"+callbacks.mine={{_target_:{recorder}.NotACallback}}",
        "hydra.run.dir=run",
    )
    assert result.returncode == 1
    assert "'callbacks.mine' builds a NotACallback, which is not a run callback" in result.stderr


def test_the_trackers_log_what_their_readers_read_back(
    app: Cli, small: list[str], tmp_path: Path
) -> None:
    """W&B (offline) and MLflow (a local database) hold the resolved config and every metric
    point against total steps; read back with W&B's transaction-log reader and MLflow's
    client."""
    from mlflow.tracking import MlflowClient

    database = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = app(
        *small,
        "callbacks=[wandb,mlflow]",
        "callbacks.wandb.mode=offline",
        f"callbacks.mlflow.tracking_uri={database}",
        "callbacks.mlflow.log_checkpoints=true",
        "seed=5",
        "hydra.run.dir=run",
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    with open(run / "metrics.csv", newline="") as file:
        logged = [
            (int(row["total_steps"]), float(row["train/reward"] or "nan"))
            for row in csv.DictReader(file)
        ]

    # W&B: the run's records, as `wandb leet inspect --json` prints them.
    (offline,) = (run / "wandb").glob("offline-run-*")
    records = subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--json", str(offline)],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    parsed = [json.loads(line) for line in records.splitlines() if line.startswith("{")]
    (start,) = [record["run"] for record in parsed if record["type"] == "run"]
    assert start["config"]["update"]["seed"] == 5
    assert start["config"]["update"]["pipeline"]["gamma"] == 0.99
    history = [record["history"] for record in parsed if record["type"] == "history"]
    assert [h["step"]["num"] for h in history] == [step for step, _ in logged]
    assert "loss/ppo_loss/value" in history[-1]["item"]
    assert [record["exit"]["exit_code"] for record in parsed if record["type"] == "exit"] == [0]

    # MLflow: parameters, the metric history, the tags and the artifacts.
    client = MlflowClient(tracking_uri=database)
    (tracked,) = client.search_runs([client.get_experiment_by_name("hydra_pipeline").experiment_id])
    assert tracked.info.status == "FINISHED"
    assert tracked.data.params["seed"] == "5"
    assert tracked.data.params["pipeline.gamma"] == "0.99"
    rewards = client.get_metric_history(tracked.info.run_id, "train/reward")
    assert [(m.step, m.value) for m in rewards] == [(s, r) for s, r in logged if r == r]
    artifacts = {a.path for a in client.list_artifacts(tracked.info.run_id)}
    assert {"summary.json", "checkpoints"} <= artifacts


def test_a_missing_tracker_extra_names_it(
    app: Cli, small: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    result = app(*small, "callbacks=[wandb]", "hydra.run.dir=run")
    assert result.returncode == 1
    assert "Cannot build 'callbacks.wandb'" in result.stderr
    assert 'pip install "hydra-pipeline[wandb]"' in result.stderr
