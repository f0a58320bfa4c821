"""A new user's first hour, command by command, each run as the user runs it (a process of its
own): every command finds its way, says what it wrote and loaded, and keeps other libraries'
noise out of the console and the log files.

The mistakes' messages (a task without an expert, a mistyped key) and the help screen are in
``test_errors.py``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.app.conftest import SMALL, Cli, wait_for

pytestmark = pytest.mark.slow

TINY = [*SMALL, "progress_bar=false"]
"""The default two-stage run, in a second or so."""


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def python(cwd: Path, *arguments: str, env: dict[str, str] | None = None) -> Any:
    """``python <arguments>`` in ``cwd``; the completed process."""
    environment = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=environment,
    )


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default run that did not evaluate: its checkpoints, but no best.pt."""
    folder = tmp_path_factory.mktemp("first_hour") / "plain"
    result = python(folder.parent, "-m", "hydra_pipeline", *TINY, f"hydra.run.dir={folder}")
    assert result.returncode == 0, result.stderr
    return folder


# --------------------------------------------------------------------------------------------
# Finding the way


def test_a_gymnasium_task_trains_with_ppo_by_default(cli: Cli, tmp_path: Path) -> None:
    """task=gym (no expert) picks pipeline=ppo: the issue's Pendulum command trains, and the
    run says nothing about an objective (a single run is no sweep)."""
    result = cli(
        "task=gym",
        "task.env_id=Pendulum-v1",
        "task.num_envs=2",
        "pipeline.num_steps=32",
        "pipeline.num_mini_batch=1",
        "pipeline.pipeline_stages.0.max_stage_steps=128",
        "hydra.run.dir=run",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [stage["loss_names"] for stage in summary["stages"]] == [["ppo_loss"]]
    assert "objective" not in output(result)


def test_policy_and_evaluate_take_best_else_last_and_say_which(
    plain_run: Path, tmp_path: Path
) -> None:
    """Without best.pt, Policy.from_run and the evaluate command both load the latest
    checkpoint by default, and say so; the evaluate command lists the files it wrote."""
    latest = sorted((plain_run / "checkpoints").glob("stage_*.pt"))[-1]
    script = (
        "import logging\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        "from hydra_pipeline import Policy\n"
        f"print(Policy.from_run({str(plain_run)!r}))\n"
    )
    result = python(tmp_path, "-c", script)
    assert result.returncode == 0, result.stderr
    assert f"loaded '{latest}', the latest checkpoint (the run kept no best.pt" in result.stderr
    assert f"checkpoint='{latest}'" in result.stdout

    result = python(tmp_path, "-m", "hydra_pipeline.evaluate", f"run={plain_run}", "episodes=2")
    assert result.returncode == 0, result.stderr
    assert f"Evaluating '{latest}', the latest checkpoint" in result.stdout
    written = result.stdout.split("Wrote:\n", 1)[1].split()
    assert written == [str(plain_run / "evaluation" / f"{latest.stem}.json")]
    assert Path(written[0]).is_file()


def test_evaluating_a_seeds_job_points_at_its_seed_runs(tmp_path: Path) -> None:
    """A job with seeds=[...] holds one run per seed: the evaluate command names them."""
    job = tmp_path / "job"
    trained = python(tmp_path, "-m", "hydra_pipeline", *TINY, "seeds=[0,1]", f"hydra.run.dir={job}")
    assert trained.returncode == 0, trained.stderr
    result = python(tmp_path, "-m", "hydra_pipeline.evaluate", f"run={job}")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert "holds runs rather than being one" in result.stderr
    assert f"seed_0, seed_1. Give one of them, e.g. run={job / 'seed_0'}" in result.stderr


def test_wandb_without_an_api_key_names_offline_mode(cli: Cli, tmp_path: Path) -> None:
    """callbacks=[wandb] with no W&B login ends with the way to log offline."""
    home = tmp_path / "home"
    home.mkdir()
    isolated = {"HOME": str(home), "WANDB_CONFIG_DIR": str(home), "NETRC": str(home / "netrc")}
    without_key = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    result = subprocess.run(
        [sys.executable, "-m", "hydra_pipeline", *TINY, "callbacks=[wandb]", "hydra.run.dir=run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**without_key, **isolated},
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: callbacks.wandb: W&B has no API key")
    assert "callbacks.wandb.mode=offline" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------------
# Saying what was written


def test_the_report_command_lists_what_it_wrote(plain_run: Path, tmp_path: Path) -> None:
    result = python(tmp_path, "-m", "hydra_pipeline.report", str(plain_run))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Wrote:\n  {plain_run / 'curves.png'}\n"


def test_mlflow_says_where_its_store_is(cli: Cli, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'mlruns.db'}"
    result = cli(*TINY, "callbacks=[mlflow]", f"callbacks.mlflow.tracking_uri={store}")
    assert result.returncode == 0, result.stderr
    started = rf"MLflow: logging run \w+ in experiment 'hydra_pipeline' at {re.escape(store)}"
    assert re.search(started, result.stdout), result.stdout
    assert "MLflow: finished run" in result.stdout
    assert f"--backend-store-uri {store}" in result.stdout


def test_restart_from_weights_names_the_weights(cli: Cli, plain_run: Path) -> None:
    latest = sorted((plain_run / "checkpoints").glob("stage_*.pt"))[-1]
    result = cli(*TINY, f"restart_from_weights={plain_run}", "hydra.run.dir=second")
    assert result.returncode == 0, result.stderr
    assert f"Starting from the model weights of {latest} (trained for 2048 steps)" in result.stdout
    assert "objective" not in output(result)


def test_a_seeds_job_has_its_steps_and_reward_in_the_sweep_summary(
    cli: Cli, tmp_path: Path
) -> None:
    """A sweep job with seeds=[...] gets its seeds' mean steps and return in
    sweep_summary.csv; drawing the sweep's curves (a fresh Matplotlib font cache) adds no
    line of Matplotlib's."""
    result = cli(
        "-m",
        *TINY,
        "seeds=[0,1]",
        "pipeline.gamma=0.99,0.98",
        "hydra.sweep.dir=sweep",
        env={"MPLCONFIGDIR": str(tmp_path / "matplotlib")},
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "sweep" / "sweep_summary.csv").open()))
    for row in rows:
        job = tmp_path / "sweep" / row["job"]
        summaries = [json.loads((job / f"seed_{s}" / "summary.json").read_text()) for s in (0, 1)]
        rewards = [summary["final_metrics"]["reward"] for summary in summaries]
        assert float(row["reward"]) == pytest.approx(sum(rewards) / 2)
        assert int(row["total_steps"]) == 2048  # both seeds trained the whole budget
    assert (tmp_path / "sweep" / "sweep_curves.png").is_file()
    assert "fontManager" not in output(result)


def test_an_evaluate_sweep_leaves_no_empty_job_folders(plain_run: Path, tmp_path: Path) -> None:
    result = python(
        tmp_path,
        "-m",
        "hydra_pipeline.evaluate",
        "-m",
        f"run={plain_run}",
        "checkpoint=last,stage_00__steps_000000001024.pt",
        "episodes=1",
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in (tmp_path / "sweep").iterdir()) == ["multirun.yaml"]
    assert result.stdout.count("Wrote:") == 2


_BAR = re.compile(
    r"(stage \d/\d): +(\d+)%\|[^|]*\| ([\d.]+[kM]?)/([\d.]+[kM]?) .*?(?:return=([\d.-]+))?\]"
)
"""One picture of the progress bar: description, percentage, steps, total, return."""


def _steps(shown: str) -> float:
    """A step count as tqdm shows it (``1.54k``, ``1.00M``)."""
    scale = {"k": 1e3, "M": 1e6}.get(shown[-1], 1)
    return float(shown.rstrip("kM")) * scale


def test_one_progress_bar_for_the_run(cli: Cli) -> None:
    """The bar counts the run's steps against its budget, shrinks its total when early
    stopping ends a stage (100% at the end, never past it), names the stage, and shows the
    return the final line reports."""
    result = cli(
        *SMALL,
        "pipeline.pipeline_stages.1.max_stage_steps=1000000",
        "pipeline.pipeline_stages.1.early_stopping_criterion.threshold=50",
        "progress_bar=true",
        "hydra.run.dir=run",
    )
    assert result.returncode == 0, result.stderr
    frames = _BAR.findall(result.stderr.replace("\r", "\n"))
    assert frames, result.stderr
    for _, _, done, total, _ in frames:
        assert _steps(done) <= _steps(total)
    assert _steps(frames[0][3]) >= 1_000_000  # the budget: both stages' limits
    assert {frame[0] for frame in frames} == {"stage 1/2", "stage 2/2"}
    last = frames[-1]
    assert last[0] == "stage 2/2" and last[1] == "100"
    final = re.search(r"final mean episode return ([\d.-]+)", result.stdout)
    assert final is not None and last[4] == f"{float(final.group(1)):.1f}"


# --------------------------------------------------------------------------------------------
# Quiet logs


def test_an_optuna_sweep_logs_plainly(cli: Cli, root: Path, tmp_path: Path) -> None:
    """No Alembic plugin lines and no ANSI colour codes, on the console or in the job logs."""
    result = cli(
        "--config-dir",
        str(root / "examples" / "optuna"),
        "--config-name",
        "tune",
        "-m",
        "hydra.sweeper.n_trials=2",
        *TINY,
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr
    logs = "".join(path.read_text() for path in (tmp_path / "sweep").glob("*/*.log"))
    everything = output(result) + logs
    assert "A new study created in memory" in everything
    assert "alembic" not in everything and "\x1b[" not in everything


def test_recording_a_gymnasium_video_needs_no_desktop(cli: Cli, tmp_path: Path) -> None:
    """Without XDG_RUNTIME_DIR (a server, a container), pygame draws the video's pictures
    without complaining; the environment variables are left as they were."""
    environment = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hydra_pipeline",
            "pipeline=ppo",
            "task=gym",
            "task.num_envs=2",
            "pipeline.num_steps=32",
            "pipeline.num_mini_batch=1",
            "pipeline.pipeline_stages.0.max_stage_steps=64",
            "evaluation.interval=64",
            "evaluation.episodes=1",
            "evaluation.video=true",
            "hydra.run.dir=run",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "run" / "videos").glob("*.mp4"))
    assert "XDG_RUNTIME_DIR" not in output(result) and "ALSA" not in output(result)


def test_ctrl_c_in_a_distributed_run_is_announced_once(tmp_path: Path) -> None:
    """Every process of the run hears Ctrl-C (the terminal's process group): the run stops
    with a checkpoint and says so once; its start line names the backend in use."""
    command = [
        sys.executable,
        "-m",
        "hydra_pipeline",
        *TINY,
        # A second stage only the signal ends: no length it could reach, no criterion that
        # could end it (a run that solved CartPole first would exit 0 before Ctrl-C).
        "pipeline.pipeline_stages.1.max_stage_steps=10000000",
        "pipeline.pipeline_stages.1.early_stopping_criterion=null",
        "distributed.nproc_per_node=2",
        "hydra.run.dir=run",
    ]
    environment = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "RANK")}
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        start_new_session=True,  # a process group of its own, as a terminal's
    )
    log = tmp_path / "run" / "app.log"
    wait_for(lambda: log.is_file() and "Stage 2/2" in log.read_text(), process, "the second stage")
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGINT, stderr
    assert (stdout + stderr).count("SIGINT received") == 1, stdout + stderr
    assert "Interrupted by SIGINT at step" in stderr
    assert "Starting 2 processes (torch.distributed, gloo)" in stdout


def test_a_sweep_under_torchrun_is_refused_once(tmp_path: Path) -> None:
    """torchrun starts the processes of one run: each would refuse -m; rank 0 alone says so."""
    environment = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "RANK")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "hydra_pipeline",
            "-m",
            "seed=0,1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environment,
    )
    assert result.returncode != 0
    assert output(result).count("A sweep (-m) cannot run under torchrun") == 1
    assert "Stopped by SIGTERM" not in output(result)
