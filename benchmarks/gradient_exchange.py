"""The engine's per-minibatch gradient exchange on the CPU against a plain all-reduce, 2 processes.

Each step is what a rank of a 2-process run does per minibatch on the CPU: the model's forward
and backward pass on its minibatch, then the exchange that averages the gradients over the
ranks. The model and minibatch are those of ``benchmarks/distributed.py``'s LunarLander run
(``pipeline=ppo``: actor and critic MLPs of [64, 64], 8 observations, 4 actions, minibatches of
256). The candidate is the engine's :func:`~hydra_pipeline.engine.distributed.average_gradients`
(on the CPU, an all-gather of the flattened gradients, summed in rank order); the baseline is
the same buffer through gloo's all-reduce. Two processes (gloo, one torch thread each) run
blocks of both alternately; the figure is the median of the paired ratios of rank 0's time per
step.

    python benchmarks/gradient_exchange.py [--repeats 7] [--steps 500] [--quick]
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from common import Report, benchmark_main, describe_load, timing_pairs_report
from torch.multiprocessing.spawn import spawn

from hydra_pipeline.engine.acting import model_output
from hydra_pipeline.engine.distributed import average_gradients
from hydra_pipeline.models import MLPActorCritic
from hydra_pipeline.tasks.protocol import DiscreteActions

BATCH = 256
PROCESSES = 2


def all_reduce_gradients(parameters: list[torch.nn.Parameter]) -> None:
    """The baseline: every gradient flattened into one buffer, all-reduced, averaged."""
    grads = [parameter.grad for parameter in parameters if parameter.grad is not None]
    flat = torch.cat([grad.reshape(-1) for grad in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def worker(rank: int, port: int, repeats: int, steps: int, results: str) -> None:
    """One rank: ``repeats`` pairs of blocks of ``steps`` steps, each exchange in turn; rank 0
    writes its seconds per step (engine, baseline) for each pair to ``results``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=PROCESSES)
    torch.manual_seed(rank)
    model = MLPActorCritic(
        [8], DiscreteActions(n=4), actor_hidden_sizes=[64, 64], critic_hidden_sizes=[64, 64]
    )
    parameters = list(model.parameters())
    observations = torch.randn(BATCH, 8)
    actions = torch.randint(4, (BATCH,))

    def block(engine: bool) -> float:
        dist.barrier()
        start = time.perf_counter()
        for _ in range(steps):
            output, _ = model_output(model, observations)
            loss = output.values.square().mean() - output.distribution.log_prob(actions).mean()
            model.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if engine:
                average_gradients(parameters)
            else:
                all_reduce_gradients(parameters)
        return (time.perf_counter() - start) / steps

    block(True), block(False)  # warm-up: connections, allocations
    pairs = [(block(True), block(False)) for _ in range(repeats)]
    if rank == 0:
        Path(results).write_text("\n".join(f"{engine} {baseline}" for engine, baseline in pairs))
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def measure(repeats: int, steps: int) -> Report:
    """The engine's exchange against the all-reduce: one table row."""
    print(f"gradient exchange: {repeats} pairs of {steps} steps, 2 processes; {describe_load()}")
    with tempfile.TemporaryDirectory() as folder:
        results = Path(folder) / "pairs.txt"
        spawn(worker, args=(free_port(), repeats, steps, str(results)), nprocs=PROCESSES)  # type: ignore[no-untyped-call]
        pairs = [
            (float(engine), float(baseline))
            for engine, baseline in map(str.split, results.read_text().splitlines())
        ]
    return timing_pairs_report(
        "gradient_exchange",
        "minibatch step + gradient exchange, 2 processes (gloo), engine vs all-reduce",
        ("engine", "gloo all-reduce"),
        pairs,
    )


if __name__ == "__main__":
    benchmark_main("gradient_exchange", __doc__, measure, repeats=7, steps=500, quick_steps=20)
