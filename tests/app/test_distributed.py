"""One run in two processes (gloo on the CPU), started both ways: by the Hydra job
(``distributed.nproc_per_node=2``, here in a sweep of the basic launcher) and by torchrun.

The runs are shared between the tests to keep their cost down: a sweep of two jobs, one that
trains through both stages (the second ends by early stopping) and one whose rank 1 raises;
a torchrun run of the first job's config; and the same run killed with SIGKILL and resumed.
"""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> dict[str, Any]:
    """``-m`` over the fault's rank: job 0 trains (no rank fails), job 1's rank 1 raises."""
    cwd = tmp_path_factory.mktemp("sweep")
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
    return {"result": result, "folder": cwd / "multirun"}


class TestLaunchedByTheHydraJob:
    def test_a_sweep_trains_two_stages_in_two_processes(self, sweep: dict[str, Any]) -> None:
        """Job 0 trains through both stages with 2 x 4 environments (steps count both
        processes'), stops its second stage by early stopping on every rank at the same step
        (the ranks' weights are checked equal at the end), and writes one summary."""
        run = sweep["folder"] / "0"
        summary = json.loads((run / "summary.json").read_text())
        first, second = summary["stages"]
        assert first == {**first, "steps": 512, "early_stopped": False}
        assert second["early_stopped"] and second["steps"] < 8192
        assert second["steps"] % 256 == 0  # whole rollouts of both processes
        assert summary["final_metrics"]["reward"] >= 0
        # Rank 0 alone writes the run's files: one metrics file, without duplicate rows.
        rows = list(csv.DictReader((run / "metrics.csv").open()))
        steps = [int(row["total_steps"]) for row in rows if row["mode"] == "train"]
        assert steps == sorted(set(steps)) and steps[-1] == summary["total_steps"]

    def test_a_failing_rank_ends_its_job_with_a_message(self, sweep: dict[str, Any]) -> None:
        """A rank that raises ends the run (no hang: the sweep ends within the timeout), with
        the rank and its error named; the sweep goes on and records it."""
        result = sweep["result"]
        assert result.returncode == 1
        assert "rank 1 of 2 failed with RuntimeError: rank fault" in result.stderr
        rows = list(csv.DictReader((sweep["folder"] / "sweep_summary.csv").open()))
        assert [row["status"] for row in rows] == ["completed", "failed"]
        assert "rank 1 of 2 failed with RuntimeError: rank fault" in rows[1]["error"]
        assert not (sweep["folder"] / "1" / "summary.json").exists()


def test_a_torchrun_run_killed_then_resumed_ends_as_if_never_stopped(
    tmp_path: Path, env: dict[str, str], sweep: dict[str, Any]
) -> None:
    """``torchrun --nproc-per-node=2 -m hydra_pipeline``: both processes train in one run
    folder (rank 0's, though Hydra's default folder is named by the time of day). SIGKILL of
    every process, then ``resume=`` (here by the Hydra job's own two processes): the run
    ends, with one summary, with the results of the uninterrupted run of the same config and
    seed that the Hydra job started (each rank's environments and generators restored)."""
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    process = subprocess.Popen(
        [sys.executable, *torchrun, "-m", "hydra_pipeline", *TRAINING],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: torchrun and the ranks
    )
    deadline = time.monotonic() + TIMEOUT
    while not list(tmp_path.glob("outputs/*/*/checkpoints/*.pt")) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(TIMEOUT) == -signal.SIGKILL
    runs = list(tmp_path.glob("outputs/*/*"))
    assert len(runs) == 1
    run = runs[0]
    assert not (run / "summary.json").exists(), "the run ended before it was killed"
    resume = [f"resume={run}", "allowed_targets=[rank_fault]", "distributed.nproc_per_node=2"]
    resumed = python(["-m", "hydra_pipeline", *resume], tmp_path, env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert results(run) == results(sweep["folder"] / "0")
    assert list(tmp_path.glob("outputs/*/*")) == [run]
