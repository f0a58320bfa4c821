"""``seeds=[...]`` with ``vectorize_seeds=true``: the seeds trained as one batch in one process
write exactly the folders and files the seeds trained one after the other write, each seed's
results do not depend on the seeds batched with it, and what cannot be batched is refused."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.app.test_interrupt import RUN, interrupt

App = Any
TIMING_COLUMNS = {"steps_per_second", "time"}


def layout(folder: Path) -> list[str]:
    """Every file under ``folder``, by relative path (TensorBoard's event files, named by
    host and time, as their folder)."""
    return sorted(
        str(path.parent.relative_to(folder) / "<events>")
        if path.name.startswith("events.out.tfevents")
        else str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file()
    )


def summary(run: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((run / "summary.json").read_text())
    return loaded


def metric_rows(run: Path) -> list[dict[str, str]]:
    """``metrics.csv``'s rows without the columns that time the run."""
    with open(run / "metrics.csv", newline="") as file:
        return [
            {key: value for key, value in row.items() if key not in TIMING_COLUMNS}
            for row in csv.DictReader(file)
        ]


def test_the_batch_writes_what_the_seeds_one_after_the_other_write(
    app: App, small: list[str], tmp_path: Path
) -> None:
    """The same files in the same folders, ``seeds.json`` and summaries of the same shape,
    and the same metrics (to float32 precision)."""
    sequential = app(*small, "seeds=[0,1]", "hydra.run.dir=sequential")
    batched = app(*small, "seeds=[0,1]", "vectorize_seeds=true", "hydra.run.dir=batched")
    assert sequential.returncode == 0, sequential.stderr
    assert batched.returncode == 0, batched.stderr
    one, other = tmp_path / "sequential", tmp_path / "batched"
    assert layout(other) == layout(one)
    runs = json.loads((other / "seeds.json").read_text())
    assert runs["seeds"] == [0, 1] and runs["runs"] == ["seed_0", "seed_1"]
    finals = [summary(other / run)["final_metrics"]["reward"] for run in runs["runs"]]
    assert runs["objectives"] == finals
    for run in runs["runs"]:
        assert summary(other / run).keys() == summary(one / run).keys()
        assert summary(other / run)["seed"] == summary(one / run)["seed"]
        # The same random streams as the runs one after the other: the same episodes, and
        # losses equal to float32 precision over this short run.
        for mine, theirs in zip(metric_rows(other / run), metric_rows(one / run), strict=True):
            assert mine.keys() == theirs.keys()
            for key, value in mine.items():
                assert value == theirs[key] or float(value) == pytest.approx(
                    float(theirs[key]), rel=1e-5, abs=1e-6
                ), key


def test_a_seed_learns_the_same_in_any_batch(app: App, small: list[str], tmp_path: Path) -> None:
    """Seed 1 batched with seeds 0 and 2 and with seed 2 alone: the same metrics, bit for bit
    (timings aside). (A batch of one seed takes torch's unbatched matrix products, which
    round differently: it matches to float32 precision, as the sequential runs do.)"""
    three = app(*small, "seeds=[0,1,2]", "vectorize_seeds=true", "hydra.run.dir=three")
    two = app(*small, "seeds=[1,2]", "vectorize_seeds=true", "hydra.run.dir=two")
    assert three.returncode == 0 and two.returncode == 0, three.stderr + two.stderr
    batched, fewer = tmp_path / "three" / "seed_1", tmp_path / "two" / "seed_1"
    assert metric_rows(batched) == metric_rows(fewer)
    assert summary(batched)["final_metrics"] == summary(fewer)["final_metrics"]
    assert summary(batched)["total_steps"] == summary(fewer)["total_steps"]


def test_what_cannot_be_batched_is_refused(app: App, small: list[str]) -> None:
    recurrent = app(*small, "model=gru", "seeds=[0,1]", "vectorize_seeds=true", "hydra.run.dir=a")
    assert recurrent.returncode == 1
    assert "memoryless models only" in recurrent.stderr
    assert "vectorize_seeds=false" in recurrent.stderr
    processes = app(
        *small,
        "seeds=[0,1]",
        "vectorize_seeds=true",
        "distributed.nproc_per_node=2",
        "hydra.run.dir=b",
    )
    assert processes.returncode == 1
    assert "'vectorize_seeds' trains the seeds in one process" in processes.stderr


def test_a_stopped_batch_resumes_by_itself_and_ends_as_the_uninterrupted_one(
    app: App, tmp_path: Path
) -> None:
    """A batch of two seeds stopped by SIGTERM in its second stage and started again with the
    same command (``resume=auto``, as a requeued job is) ends with the very metrics of the
    batch never interrupted, seed by seed."""
    batch = [*RUN, "seeds=[0,1]", "vectorize_seeds=true"]
    straight = app(*batch, "hydra.run.dir=straight")
    assert straight.returncode == 0, straight.stderr
    command = [*batch, "resume=auto", "hydra.run.dir=run"]
    status, stderr = interrupt(tmp_path, command, signal.SIGTERM)
    assert status == 128 + signal.SIGTERM.value, stderr
    for seed in (0, 1):
        assert list((tmp_path / "run" / f"seed_{seed}" / "checkpoints").glob("*.pt"))
        assert not (tmp_path / "run" / f"seed_{seed}" / "summary.json").exists()
    requeued = app(*command)
    assert requeued.returncode == 0, requeued.stderr
    for seed in (0, 1):
        resumed, uninterrupted = (
            tmp_path / "run" / f"seed_{seed}",
            tmp_path / "straight" / f"seed_{seed}",
        )
        assert summary(resumed)["final_metrics"] == summary(uninterrupted)["final_metrics"]
        assert summary(resumed)["total_steps"] == summary(uninterrupted)["total_steps"]


def test_gymnasium_seeds_learn_in_a_batch_as_in_any_batch(app: App, tmp_path: Path) -> None:
    """Gymnasium's CartPole-v1 seeds in a batch (each seed's vector environment stepped in
    turn): the batch runs, and seed 1 ends the same, bit for bit, batched with seed 0 or with
    seeds 0 and 2."""
    gym = [
        "task=gym",
        "task.env_id=CartPole-v1",
        "task.num_envs=4",
        "pipeline=ppo",
        "pipeline.num_steps=32",
        "pipeline.num_mini_batch=2",
        "pipeline.metric_accumulate_interval=256",
        "pipeline.pipeline_stages.0.max_stage_steps=512",
        "vectorize_seeds=true",
    ]
    three = app(*gym, "seeds=[0,1,2]", "hydra.run.dir=three")
    two = app(*gym, "seeds=[0,1]", "hydra.run.dir=two")
    assert three.returncode == 0 and two.returncode == 0, three.stderr + two.stderr
    batched, fewer = tmp_path / "three" / "seed_1", tmp_path / "two" / "seed_1"
    assert summary(batched)["total_steps"] == summary(fewer)["total_steps"] == 512
    assert metric_rows(batched) == metric_rows(fewer)
    assert summary(batched)["final_metrics"] == summary(fewer)["final_metrics"]
