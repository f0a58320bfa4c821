"""One run in two processes (gloo on the CPU), started both ways: by the Hydra job
(``distributed.nproc_per_node=2``, here in a sweep of the basic launcher) and by torchrun.

One test, to keep the cost down: a sweep of two jobs, one that trains through both stages
(the second ends by early stopping) and one whose rank 1 raises; then a torchrun run of the
first job's config, killed with SIGKILL and resumed, compared with the first job.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hydra_pipeline.files import process_is_running
from tests.app.conftest import descendants

# A loss that adds nothing to the gradients, and raises on rank ``rank`` (-1: on none) after
# ``after`` updates: a bug in one process of a run.
RANK_FAULT = """
import os


class FailOnRank:
    needs_expert_actions = False
    terms = ()

    def __init__(self, rank: int, after: int) -> None:
        self.rank, self.after = rank, after

    def __call__(self, *, step_count, batch, output):
        self.after -= 1
        if self.after < 0 and int(os.environ["RANK"]) == self.rank:
            raise RuntimeError("rank fault")
        return output.values.sum() * 0.0, {}
"""

TRAINING = [
    "task.num_envs=4",
    "pipeline.num_steps=32",
    "pipeline.num_mini_batch=2",
    "pipeline.metric_accumulate_interval=256",
    "pipeline.save_interval=256",
    "pipeline.pipeline_stages.0.max_stage_steps=512",
    "pipeline.pipeline_stages.1.max_stage_steps=8192",
    # Reached after a few PPO rollouts: the stage ends by early stopping, well before its limit.
    "pipeline.pipeline_stages.1.early_stopping_criterion.threshold=90",
    # Statistics that decide, merged over the processes: observation and reward
    # normalisation, PPO's target_kl.
    "normalization.observations=true",
    "normalization.rewards=true",
    "pipeline.named_losses.ppo_loss.target_kl=0.005",
    "progress_bar=false",
    "tensorboard=false",
    "allowed_targets=[rank_fault]",
    "+pipeline.named_losses.fault={_target_:rank_fault.FailOnRank,rank:-1,after:2}",
    "pipeline.pipeline_stages.1.loss_names=[ppo_loss,fault]",
]
"""Two stages, a rollout of 2 x 4 environments x 32 steps (256 steps) at a time."""

RESULTS = ("total_steps", "stages", "final_metrics", "final_counts")
"""What two runs of the same config and seed agree on (not their timings)."""

TIMEOUT = 300


def python(
    arguments: list[str], cwd: Path, env: dict[str, str], **options: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        **options,
    )


def results(run: Path) -> dict[str, Any]:
    summary = json.loads((run / "summary.json").read_text())
    return {key: summary[key] for key in RESULTS}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of the runs: the fault module on the path, no inherited ranks."""
    folder = tmp_path_factory.mktemp("modules")
    (folder / "rank_fault.py").write_text(RANK_FAULT)
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HYDRA_FULL_ERROR", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")
    }
    environment["PYTHONPATH"] = os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])
    return environment


def test_one_run_in_two_processes_started_both_ways(tmp_path: Path, env: dict[str, str]) -> None:
    """Both ways to start a distributed run, in one test (the runs are compared with each
    other, and pytest-xdist must not repeat them in two workers):

    1. a sweep of the basic launcher over two ``distributed.nproc_per_node=2`` jobs: one
       trains through both stages, one has a rank that raises (see the checks below);
    2. torchrun with the first job's config, killed with SIGKILL, then resumed: it ends with
       the first job's results.
    """
    uninterrupted = check_a_sweep_of_distributed_jobs(tmp_path / "sweep", env)
    check_a_killed_torchrun_run_resumes_exactly(tmp_path / "torchrun", env, uninterrupted)


def check_a_sweep_of_distributed_jobs(cwd: Path, env: dict[str, str]) -> Path:
    """``-m`` over the fault's rank. Job 0 trains through both stages with 2 x 4
    environments (steps count both processes'), ends its second stage by early stopping on
    every rank at the same step (the ranks' weights are checked equal at the end of the run),
    and rank 0 alone writes one summary and one metrics file. Job 1's rank 1 raises: the job
    ends (no hang: within the timeout) with a message naming the rank and its error, and the
    sweep goes on and records it. Returns job 0's run folder."""
    cwd.mkdir()
    result = python(
        [
            "-m",
            "hydra_pipeline",
            "-m",
            *TRAINING,
            "distributed.nproc_per_node=2",
            "pipeline.named_losses.fault.rank=-1,1",
            "hydra.sweep.dir=multirun",
        ],
        cwd,
        env,
    )
    folder = cwd / "multirun"
    run = folder / "0"
    summary = json.loads((run / "summary.json").read_text())
    first, second = summary["stages"]
    assert first == {**first, "steps": 512, "early_stopped": False}
    assert second["early_stopped"] and second["steps"] < 8192
    assert second["steps"] % 256 == 0  # whole rollouts of both processes
    assert summary["final_metrics"]["reward"] >= 0
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    steps = [int(row["total_steps"]) for row in rows if row["mode"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == summary["total_steps"]

    assert result.returncode == 1
    assert "rank 1 of 2 failed with RuntimeError: rank fault" in result.stderr
    jobs = list(csv.DictReader((folder / "sweep_summary.csv").open()))
    assert [job["status"] for job in jobs] == ["completed", "failed"]
    assert "rank 1 of 2 failed with RuntimeError: rank fault" in jobs[1]["error"]
    assert not (folder / "1" / "summary.json").exists()
    return run


def check_a_killed_torchrun_run_resumes_exactly(
    cwd: Path, env: dict[str, str], uninterrupted: Path
) -> None:
    """``torchrun --nproc-per-node=2 -m hydra_pipeline``: both processes train in one run
    folder (rank 0's, though Hydra's default folder is named by the time of day). SIGKILL of
    every process, then ``resume=`` (here by the Hydra job's own two processes): the run
    ends, with one summary, with the results of the uninterrupted run of the same config and
    seed (each rank's environments and generators restored)."""
    cwd.mkdir()
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    process = subprocess.Popen(
        [sys.executable, *torchrun, "-m", "hydra_pipeline", *TRAINING],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: torchrun and what it runs itself
    )
    deadline = time.monotonic() + TIMEOUT
    while not list(cwd.glob("outputs/*/*/checkpoints/*.pt")) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # torch's agent starts each rank in a session of its own, out of torchrun's group: a rank
    # left alive trains on, holding the run folder, until it notices torchrun is gone.
    ranks = descendants(process.pid)
    assert len(ranks) >= 2, ranks  # the two ranks, at least
    os.killpg(process.pid, signal.SIGKILL)
    for pid in ranks:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert process.wait(TIMEOUT) == -signal.SIGKILL
    while any(process_is_running(pid) for pid in ranks):
        assert time.monotonic() < deadline, "a rank outlived its SIGKILL"
        time.sleep(0.02)
    runs = list(cwd.glob("outputs/*/*"))
    assert len(runs) == 1
    run = runs[0]
    assert not (run / "summary.json").exists(), "the run ended before it was killed"
    resume = [f"resume={run}", "allowed_targets=[rank_fault]", "distributed.nproc_per_node=2"]
    resumed = python(["-m", "hydra_pipeline", *resume], cwd, env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert results(run) == results(uninterrupted)
    assert list(cwd.glob("outputs/*/*")) == [run]
