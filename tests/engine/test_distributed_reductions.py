"""The engine's reductions across ranks, in two gloo processes: each gives every rank what one
process holding all ranks' data would compute, and the same bits on every rank."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.multiprocessing.spawn import spawn

from hydra_pipeline.engine import distributed

# Starts processes (torch.multiprocessing), which tests/conftest.py cannot see: slow.
pytestmark = pytest.mark.slow

WORLD_SIZE = 2
LARGE = distributed._GATHER_LIMIT // WORLD_SIZE + 1
"""A buffer too large to gather: the all-reduce path."""


def rank_data(rank: int, numel: int) -> torch.Tensor:
    return torch.randn(numel, generator=torch.Generator().manual_seed(rank))


def check_rank(rank: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        outputs: dict[str, torch.Tensor] = {}
        for numel in (10, LARGE):
            mine = rank_data(rank, numel)
            summed = distributed.summed_over_ranks(mine)
            expected = rank_data(0, numel) + rank_data(1, numel)
            torch.testing.assert_close(summed, expected)
            assert torch.equal(mine, rank_data(rank, numel))  # the input is left alone
            outputs[f"summed_{numel}"] = summed

        values = rank_data(rank, 7)
        everything = torch.cat([rank_data(r, 7) for r in range(WORLD_SIZE)])
        mean, std = distributed.moments(values)
        torch.testing.assert_close(mean, everything.mean())
        torch.testing.assert_close(std, everything.std())

        layer = nn.Linear(3, 2)
        nn.init.ones_(layer.weight)
        nn.init.zeros_(layer.bias)
        layer(rank_data(rank, 3)).sum().backward()
        averaged = distributed.average_gradients(list(layer.parameters()), {"kl": float(rank)})
        assert averaged == {"kl": 0.5}
        expected_grad = (rank_data(0, 3) + rank_data(1, 3)) / 2
        assert layer.weight.grad is not None
        torch.testing.assert_close(layer.weight.grad, expected_grad.expand(2, 3))
        outputs["grad"] = layer.weight.grad
        torch.save(outputs, Path(folder) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_reductions_equal_one_process_over_all_data_on_every_rank(tmp_path: Path) -> None:
    spawn(check_rank, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE)  # type: ignore[no-untyped-call]
    first, second = (torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE))
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_without_a_process_group_the_sum_is_a_copy() -> None:
    values = torch.arange(4.0)
    summed = distributed.summed_over_ranks(values)
    assert torch.equal(summed, values) and summed is not values
