"""MemberBatch: seeds of one config trained in step, their updates batched; each member's
results are its own (bit for bit whatever it is batched with), it stops alone, and it
resumes exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from hydra_pipeline import PipelineStage, ThresholdEarlyStopping
from hydra_pipeline.engine import OnPolicyRunner
from hydra_pipeline.engine.callbacks import Callback
from hydra_pipeline.engine.checkpoint import capture_rng_state, latest_checkpoint
from hydra_pipeline.engine.members import MemberBatch
from hydra_pipeline.engine.summary import RunSummary
from hydra_pipeline.errors import TrainingInterrupted
from tests.engine.test_runner import make_pipeline, make_runner

STAGE_STEPS = 64


def member(
    folder: Path, seed: int, *, stops_early: bool = False, **options: Any
) -> tuple[OnPolicyRunner, dict[str, Any]]:
    """A runner for ``seed`` (two PPO stages; with ``stops_early``, the first ends once
    episodes of 5 steps end), and the random state its run alone would start from."""
    criterion = ThresholdEarlyStopping("reward", 1.0) if stops_early else None
    pipeline = make_pipeline(
        [
            PipelineStage(["ppo"], STAGE_STEPS, early_stopping_criterion=criterion),
            PipelineStage(["ppo"], 32),
        ],
        num_steps=4,
        num_mini_batch=2,
        update_repeats=2,
        save_interval=options.pop("save_interval", None),
    )
    runner = make_runner(
        folder / f"seed_{seed}", pipeline, max_episode_steps=5, seed=seed, **options
    )
    return runner, capture_rng_state()


def trained(members: list[tuple[OnPolicyRunner, dict[str, Any]]]) -> list[RunSummary]:
    return MemberBatch([m[0] for m in members], [m[1] for m in members]).run()


def weights(runner: OnPolicyRunner) -> list[torch.Tensor]:
    return [value.detach() for value in runner.model.parameters()]


def same(first: OnPolicyRunner, second: OnPolicyRunner) -> bool:
    return all(torch.equal(a, b) for a, b in zip(weights(first), weights(second), strict=True))


def test_each_member_stops_alone_and_learns_as_alone(tmp_path: Path) -> None:
    """Seed 3's criterion ends its first stage early; it goes on into the second stage in a
    batch of its own while seed 7 finishes the first; both end with the weights and step
    counts of their runs in batches of their own, bit for bit, each in its own folder."""
    together = [member(tmp_path / "pair", 3, stops_early=True), member(tmp_path / "pair", 7)]
    summaries = trained(together)
    early, full = summaries
    assert early.stages[0].early_stopped and early.stages[0].steps < STAGE_STEPS
    assert not full.stages[0].early_stopped and full.stages[0].steps == STAGE_STEPS
    assert early.total_steps < full.total_steps
    for seed, (runner, _), summary in zip((3, 7), together, summaries, strict=True):
        alone = member(tmp_path / "alone", seed, stops_early=seed == 3)
        (own,) = trained([alone])
        assert same(runner, alone[0])
        assert (summary.total_steps, summary.final_metrics) == (own.total_steps, own.final_metrics)
        folder = tmp_path / "pair" / f"seed_{seed}"
        assert {"summary.json", "metrics.csv"} <= {path.name for path in folder.iterdir()}


class StopAfter(Callback):
    """Asks every member to stop once ``runner`` has ended ``rollouts`` rollouts."""

    def __init__(self, rollouts: int) -> None:
        self.rollouts = rollouts
        self.runners: list[OnPolicyRunner] = []
        self.seen = 0

    def on_rollout_end(self, *, total_steps: int, stage_index: int, stage_steps: int) -> None:
        self.seen += 1
        if self.seen == self.rollouts:
            for runner in self.runners:
                runner.request_stop("SIGTERM")


def test_a_stopped_batch_resumes_exactly(tmp_path: Path) -> None:
    """Members asked to stop each write a checkpoint; resumed from them, in a batch again,
    they end exactly as the uninterrupted batch does."""
    seeds = (3, 7)
    straight = [member(tmp_path / "straight", seed, stops_early=seed == 3) for seed in seeds]
    trained(straight)
    stop = StopAfter(5)
    stopped = [
        member(tmp_path / "stopped", seed, stops_early=seed == 3, callbacks=[stop])
        for seed in seeds
    ]
    stop.runners = [runner for runner, _ in stopped]
    with pytest.raises(TrainingInterrupted) as caught:
        trained(stopped)
    assert 0 < caught.value.total_steps < STAGE_STEPS
    resumed = []
    for seed, (runner, _) in zip(seeds, stopped, strict=True):
        again, _ = member(tmp_path / "stopped", seed, stops_early=seed == 3)
        checkpoint = latest_checkpoint(runner.output_dir)
        assert checkpoint is not None
        again.resume(checkpoint)
        resumed.append((again, capture_rng_state()))
    summaries = trained(resumed)
    for (first, _), (second, _), summary in zip(straight, resumed, summaries, strict=True):
        assert same(first, second)
        assert summary.total_steps == first.pipeline.total_steps


def test_a_member_whose_pipeline_is_done_only_writes_its_summary(tmp_path: Path) -> None:
    """A finished member (as a run resumed from its last checkpoint is) trains no further in a
    batch: its summary comes back with its steps, beside a member that trains."""
    ((done, state),) = [member(tmp_path / "done", 3)]
    trained([(done, state)])
    steps = done.pipeline.total_steps
    fresh = member(tmp_path / "fresh", 7)
    finished, trained_now = trained([(done, capture_rng_state()), fresh])
    assert finished.total_steps == steps == done.pipeline.total_steps
    assert trained_now.total_steps == fresh[0].pipeline.total_steps > 0
