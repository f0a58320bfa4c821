"""A stop request that reaches a rank while the ranks agree on whether to stop is not lost.

In a run started with ``distributed.nproc_per_node``, each rank's polling thread asks its
runner to stop whenever it finds the relayed request, so a request can arrive while the rank's
main thread waits in the rollout's stop agreement for a slower rank. Here, in two gloo
processes, rank 1 is slow at the periodic environment reset that comes just before that
agreement, and a timer thread on rank 0 asks to stop while rank 0 waits for it: the request
must survive that agreement (which saw none) and stop both ranks at the next rollout.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist
from torch import Tensor
from torch.multiprocessing.spawn import spawn

from hydra_pipeline import PipelineStage
from hydra_pipeline.engine.callbacks import Callback
from hydra_pipeline.errors import TrainingInterrupted
from hydra_pipeline.tasks import CartPoleTask, StepResult
from tests.engine.test_distributed_reductions import free_port
from tests.engine.test_runner import make_pipeline, make_runner

# Starts processes (torch.multiprocessing), which tests/conftest.py cannot see: slow.
pytestmark = pytest.mark.slow

WORLD_SIZE = 2
STEPS_PER_ROLLOUT = 8
"""num_steps=4 of make_pipeline times 2 environments, on each rank."""
SLOW_RESET_SECONDS = 3.0
"""How long rank 1's first periodic reset takes: rank 0 waits that long in the agreement."""
REQUEST_AFTER_SECONDS = 0.5
"""When rank 0's timer asks to stop, after its first rollout: well inside that wait."""


class SlowFirstPeriodicReset(CartPoleTask):
    """CartPole whose first reset after a step (the first periodic one, after the first
    rollout) takes ``SLOW_RESET_SECONDS`` on the ranks it is slow on."""

    def __init__(self, *, slow: bool) -> None:
        self.slow = slow
        self.stepped = False
        super().__init__(2, 500)

    def step(self, actions: Tensor) -> StepResult:
        self.stepped = True
        return super().step(actions)

    def reset(self, *, seed: int | None = None) -> Tensor:
        if self.slow and self.stepped:
            self.slow = False
            time.sleep(SLOW_RESET_SECONDS)
        return super().reset(seed=seed)


class RequestStopDuringAgreement(Callback):
    """After the first rollout, asks the runner to stop from another thread, as the polling
    thread of :func:`~hydra_pipeline.app.signals.polled_stop_requests` does."""

    def __init__(self) -> None:
        self.runner: Any = None

    def on_rollout_end(self, **_: Any) -> None:
        if self.runner.pipeline.rollout_count == 1:
            timer = threading.Timer(REQUEST_AFTER_SECONDS, self.runner.request_stop, ["SIGTERM"])
            timer.daemon = True
            timer.start()


def train_rank(rank: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        pipeline = make_pipeline(
            [PipelineStage(["ppo"], 64 * STEPS_PER_ROLLOUT)],
            advance_scene_rollout_period=1,
            metric_accumulate_interval=10**6,
        )
        request = RequestStopDuringAgreement()
        runner = make_runner(
            Path(folder) / "run",
            pipeline,
            task=SlowFirstPeriodicReset(slow=rank == 1),
            callbacks=[request],  # run on rank 0 only, as every callback
        )
        request.runner = runner
        try:
            runner.run()
            outcome: dict[str, Any] = {"stopped": False, "total_steps": runner.pipeline.total_steps}
        except TrainingInterrupted as stopped:
            outcome = {"stopped": True, "total_steps": stopped.total_steps}
        (Path(folder) / f"rank{rank}.json").write_text(json.dumps(outcome))
    finally:
        dist.destroy_process_group()


def test_a_request_during_the_stop_agreement_stops_every_rank_at_the_next_rollout(
    tmp_path: Path,
) -> None:
    spawn(train_rank, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE)  # type: ignore[no-untyped-call]
    outcomes = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    # The agreement after the first rollout saw no request; the one after the second does.
    second_rollout = 2 * WORLD_SIZE * STEPS_PER_ROLLOUT
    assert outcomes == [{"stopped": True, "total_steps": second_rollout}] * WORLD_SIZE
