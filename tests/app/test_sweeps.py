"""Multiruns: the basic launcher, joblib, Submitit, Optuna, and the sweep summary."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.app.conftest import SMALL, run_in_process, wait_for

Cli = Any


def rows(sweep: Path) -> list[dict[str, str]]:
    with open(sweep / "sweep_summary.csv") as file:
        return list(csv.DictReader(file))


def final_metrics(folder: Path) -> Any:
    return json.loads((folder / "summary.json").read_text())["final_metrics"]


ENDING = "task.max_episode_steps=64"
"""Episodes that end within the small runs however well the policy balances, so that every
job reports a return."""


@pytest.fixture(scope="module")
def single_seed_1(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The final metrics of the small run with seed 1, run on its own (in this process): what
    each sweep's job with the same overrides must reproduce."""
    folder = tmp_path_factory.mktemp("single")
    result = run_in_process([*SMALL, ENDING, "seed=1", "hydra.run.dir=run"], folder)
    assert result.returncode == 0, result.stderr
    return final_metrics(folder / "run")


def test_basic_multirun_one_folder_per_job_and_same_result_as_a_single_run(
    cli: Cli, small: list[str], tmp_path: Path, single_seed_1: Any
) -> None:
    """A 2x2 sweep runs 4 seeded jobs, summarised in sweep_summary.csv, each equal to the
    single run with the same overrides."""
    result = cli(
        "-m",
        *small,
        ENDING,
        "pipeline.pipeline_stages.1.max_stage_steps=512,1024",
        "seed=0,1",
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "sweep"
    table = rows(sweep)
    assert [row["job"] for row in table] == ["0", "1", "2", "3"]
    assert all(row["status"] == "completed" for row in table)
    assert [row["total_steps"] for row in table] == ["1536", "1536", "2048", "2048"]
    assert "seed=1" in table[1]["overrides"]
    for job in range(4):
        summary = json.loads((sweep / str(job) / "summary.json").read_text())
        assert float(table[job]["reward"]) == summary["final_metrics"]["reward"]
    assert final_metrics(sweep / "3") == single_seed_1


def test_multirun_records_hparams_for_tensorboard(
    cli: Cli, small: list[str], tmp_path: Path
) -> None:
    """Each job's event files carry its swept values and final metrics for the hparams view."""
    result = cli("-m", *small, "pipeline.gamma=0.9,0.99", "hydra.sweep.dir=sweep")
    assert result.returncode == 0, result.stderr
    events = EventAccumulator(str(tmp_path / "sweep" / "1" / "tensorboard"))
    events.Reload()
    plugins = events.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in plugins and "_hparams_/session_start_info" in plugins
    session = plugins["_hparams_/session_start_info"].decode(errors="ignore")
    assert "pipeline.gamma" in session and "0.99" in session


def test_failed_job_is_recorded_and_others_keep_their_results(
    cli: Cli, small: list[str], tmp_path: Path
) -> None:
    """A job failing a config check is marked failed; the others complete; exit status 1."""
    result = cli("-m", *small, "pipeline.gamma=0.9,1.5,0.95", "hydra.sweep.dir=sweep")
    assert result.returncode == 1
    assert "'pipeline.gamma' must be in [0, 1] (got 1.5)" in result.stderr
    assert "Traceback" not in result.stderr
    table = rows(tmp_path / "sweep")
    assert [row["status"] for row in table] == ["completed", "failed", "completed"]
    assert "must be in [0, 1]" in table[1]["error"]
    assert (tmp_path / "sweep" / "2" / "summary.json").is_file()


LAUNCHER_SETTINGS = {
    "joblib": ["hydra.launcher.n_jobs=2"],
    "submitit_local": [],
    # The cluster preset on a fresh local Ray instance of this machine's 2 cores, its workers
    # at normal priority (Ray's nice 15 starves them beside the other tests, minutes here).
    "ray_cluster": [
        "hydra.launcher.ray.init.address=null",
        "+hydra.launcher.ray.init.num_cpus=2",
        "+hydra.launcher.ray.init.include_dashboard=false",
        "+hydra.launcher.ray.init._system_config={worker_niceness:0}",
        "hydra.launcher.ray.remote.num_cpus=1",
        "hydra.launcher.ray.remote.num_gpus=0",
    ],
}


@pytest.mark.parametrize("launcher", list(LAUNCHER_SETTINGS))
def test_parallel_launchers(
    cli: Cli, small: list[str], tmp_path: Path, launcher: str, single_seed_1: Any
) -> None:
    """joblib, Submitit and Ray run the jobs in other processes, with the same seeded
    results."""
    result = cli(
        "-m",
        *small,
        ENDING,
        "seed=0,1",
        f"hydra/launcher={launcher}",
        *LAUNCHER_SETTINGS[launcher],
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr
    table = rows(tmp_path / "sweep")
    assert [row["status"] for row in table] == ["completed", "completed"]
    assert final_metrics(tmp_path / "sweep" / "1") == single_seed_1


def test_optuna_example_runs_two_trials(
    cli: Cli, small: list[str], root: Path, tmp_path: Path
) -> None:
    """The Optuna example tunes the learning rate and a stage length; the objective is the
    final mean episode return (of the PPO stage's own episodes: it runs 512 steps per
    environment, so that CartPole's at most 500-step episodes end in it)."""
    result = cli(
        "--config-dir",
        str(root / "examples" / "optuna"),
        "--config-name",
        "tune",
        "-m",
        "hydra.sweeper.n_trials=2",
        *[o for o in small if "pipeline_stages" not in o],
        "pipeline.pipeline_stages.1.max_stage_steps=4096",
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "sweep"
    optimization = (sweep / "optimization_results.yaml").read_text()
    assert "pipeline.optimizer_builder.lr" in optimization
    assert "pipeline.pipeline_stages.0.max_stage_steps" in optimization
    table = rows(sweep)
    assert len(table) == 2 and all(row["status"] == "completed" for row in table)
    best = max(float(row["reward"]) for row in table)
    assert f"best_value: {best}" in optimization


def job_status(sweep: Path, job: int) -> dict[str, Any]:
    path = sweep / str(job) / "job_status.json"
    try:
        status: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return status


def test_an_interrupted_sweep_says_which_job_to_resume(small: list[str], tmp_path: Path) -> None:
    """SIGTERM to a sweep stops its running job at a safe point with a checkpoint, marks it
    interrupted with the command that resumes it, and ends the sweep."""
    sweep = tmp_path / "sweep"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "hydra_pipeline", "-m", *small,
            "pipeline.pipeline_stages.1.max_stage_steps=1024,100000000",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    log = sweep / "1" / "app.log"
    wait_for(
        lambda: log.is_file() and "stage 2 | stage steps" in log.read_text(),
        process,
        "job 1 to train",
    )
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM.value
    assert f"Resume with: python -m hydra_pipeline resume={sweep / '1'}" in stderr
    table = rows(sweep)
    assert [row["status"] for row in table] == ["completed", "interrupted"]
    assert "Interrupted by SIGTERM" in table[1]["error"]
    assert list((sweep / "1" / "checkpoints").glob("*.pt"))
