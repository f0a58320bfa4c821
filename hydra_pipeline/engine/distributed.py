"""Data-parallel training with ``torch.distributed``: the process group, this process's rank,
and the reductions that keep the ranks in step.

Every rank steps its own environments and runs the same updates on the same weights; what
crosses processes is listed here, and nothing else in the engine calls ``torch.distributed``:

* :func:`average_gradients`: the learning step's gradients, averaged over the ranks before
  every optimizer step, with the loss terms that may end an update (the approximate KL
  divergence behind PPO's ``target_kl``): one exchange per minibatch;
* :func:`summed_over_ranks`: the sum every average and moment here is built on (an
  all-gather of small CPU buffers, an all-reduce otherwise);
* :func:`moments`, :func:`merged_moments`: statistics over every rank's data (advantage
  normalisation, the running statistics of observation and reward normalisation);
* :func:`merge_objects`, :func:`broadcast_object`, :func:`gather_objects`: the statistics that
  decide (metrics for early stopping and logs, evaluation results, stop requests) and the
  per-rank state of checkpoints;
* :func:`broadcast_module`: rank 0's weights at the start, so every rank starts identical.

Each function is the identity (or its single-process equivalent) when no process group is
initialised, so the engine reads the same with one process or many.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.distributed_c10d import PrefixStore, Store
from torch.distributed.rendezvous import rendezvous

__all__ = [
    "Ranks",
    "average_gradients",
    "backend_for",
    "broadcast_module",
    "broadcast_object",
    "check_same_weights",
    "environment_ranks",
    "gather_objects",
    "init_process_group",
    "merge_objects",
    "merged_moments",
    "moments",
    "ranks",
    "rendezvous_store",
    "shutdown",
    "summed_over_ranks",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in a distributed run.

    Attributes:
        rank: This process's rank, in ``[0, world_size)``.
        world_size: The number of processes training together.
        local_rank: This process's rank on its machine (its GPU's index).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that writes the run's outputs."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether more than one process trains."""
        return self.world_size > 1


SINGLE = Ranks()
"""A run of one process."""


def environment_ranks() -> Ranks | None:
    """The ranks ``torchrun`` (or ``torch.distributed``'s elastic launch, or a SLURM task set
    up by Submitit) put in this process's environment: ``RANK``, ``WORLD_SIZE`` and
    ``LOCAL_RANK``; ``None`` when they are not set."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    return Ranks(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


_STORE: Store | None = None


def rendezvous_store(ranks: Ranks, timeout_s: float | None = None) -> Store:
    """The run's key-value store, from the environment's rendezvous (``MASTER_ADDR`` and
    ``MASTER_PORT``; torchrun's agent hosts it, or else rank 0), connected once per process:
    the process group is built on it, and rank 0 publishes the run folder there."""
    global _STORE
    if _STORE is None:
        options = {} if timeout_s is None else {"timeout": datetime.timedelta(seconds=timeout_s)}
        store, _, _ = next(rendezvous("env://", ranks.rank, ranks.world_size, **options))
        _STORE = store
    return _STORE


def backend_for(device: torch.device) -> str:
    """The process group's backend for ranks that train on ``device``: NCCL on GPUs, gloo on
    the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_process_group(ranks: Ranks, device: torch.device, *, timeout_s: float) -> None:
    """Join the process group of ``ranks``: NCCL on GPUs, gloo on the CPU.

    Args:
        ranks: This process's place (see :func:`environment_ranks`).
        device: Where this rank trains; a GPU must already be this rank's own.
        timeout_s: How long a collective waits for the other ranks before failing.
    """
    if dist.is_initialized():
        return
    backend = backend_for(device)
    timeout = datetime.timedelta(seconds=timeout_s)
    dist.init_process_group(
        backend,
        # As init_method="env://" would, on the store this process may already use.
        store=PrefixStore("default_pg", rendezvous_store(ranks, timeout_s)),
        rank=ranks.rank,
        world_size=ranks.world_size,
        timeout=timeout,
    )


def shutdown() -> None:
    """Leave the process group (if any), releasing its connections."""
    global _STORE
    if dist.is_initialized():
        dist.destroy_process_group()
    _STORE = None


def ranks() -> Ranks:
    """This process's place in the initialised process group (:data:`SINGLE` without one)."""
    if not dist.is_initialized():
        return SINGLE
    return Ranks(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def _active() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


def average_gradients(
    parameters: Sequence[nn.Parameter], statistics: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Replace every parameter's gradient by its mean over the ranks, and return
    ``statistics`` (the same keys on every rank) averaged over the ranks too.

    One :func:`summed_over_ranks` of all gradients and the statistics flattened into one
    buffer: the update's only traffic, the size of the model, and one synchronisation per
    minibatch. A parameter without a gradient on this rank (a head no loss of the step used)
    counts as zero, so every rank steps the same parameters.
    """
    statistics = dict(statistics or {})
    if not _active():
        return statistics
    grads = []
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        grads.append(parameter.grad)
    keys = list(statistics)
    flat = torch.cat(
        [grad.reshape(-1) for grad in grads]
        + [grads[0].new_tensor([statistics[key] for key in keys])]
    )
    flat = summed_over_ranks(flat) / dist.get_world_size()
    offset = 0
    for grad in grads:
        count = grad.numel()
        grad.copy_(flat[offset : offset + count].view_as(grad))
        offset += count
    return dict(zip(keys, flat[offset:].tolist(), strict=True))


_GATHER_LIMIT = 1 << 20
"""The most elements (the buffer's, times the number of ranks) :func:`summed_over_ranks`
gathers rather than all-reduces on the CPU."""


def summed_over_ranks(flat: Tensor) -> Tensor:
    """The element-wise sum of the 1-D tensor ``flat`` over every rank, the same bits on every
    rank: the one reduction the engine's averages and moments are built on.

    On the CPU (gloo), a small buffer is all-gathered and summed in rank order rather than
    all-reduced: gloo's all-reduce of a model-sized buffer is a chain of messages whose
    latency, not its bandwidth, sets its cost, and with the all-gather a minibatch's step
    takes about 0.8x the time (``benchmarks/gradient_exchange.py``); the gathered copy, the
    buffer times the number of ranks, is capped at ``_GATHER_LIMIT`` elements. On GPUs
    (NCCL) and for larger buffers, the all-reduce. A copy of ``flat`` in one process.
    """
    if not _active():
        return flat.clone()
    world_size = dist.get_world_size()
    if flat.device.type == "cpu" and world_size * flat.numel() <= _GATHER_LIMIT:
        gathered = flat.new_empty((world_size, flat.numel()))
        dist.all_gather(list(gathered.unbind()), flat)
        return gathered.sum(dim=0)
    summed = flat.clone()
    dist.all_reduce(summed)
    return summed


def moments(values: Tensor) -> tuple[Tensor, Tensor]:
    """The mean and the (sample) standard deviation of ``values`` over every rank's values,
    as if all were one tensor (in float64 across ranks; computed as torch does on one)."""
    if not _active():
        mean = values.mean()
        std = values.std() if values.numel() > 1 else torch.zeros_like(mean)
        return mean, std
    flat = values.detach().reshape(-1).to(torch.float64)
    totals = torch.stack([flat.new_tensor(flat.numel()), flat.sum(), flat.square().sum()])
    count, total, squares = summed_over_ranks(totals).unbind()
    mean = total / count
    variance = (squares - count * mean.square()) / (count - 1).clamp(min=1)
    std = variance.clamp(min=0).sqrt() if bool(count > 1) else torch.zeros_like(mean)
    return mean.to(values.dtype), std.to(values.dtype)


def merged_moments(batch: Tensor) -> tuple[int, Tensor, Tensor]:
    """The row count, mean and (population) variance of ``batch``'s rows (shape ``(N,
    *shape)``) together with every other rank's batch, in float64: what running statistics
    are updated with so that every rank's stay the same."""
    rows = batch.detach().to("cpu", torch.float64)
    if not _active():
        return rows.shape[0], rows.mean(dim=0), rows.var(dim=0, unbiased=False)
    flat = rows.reshape(rows.shape[0], -1)
    totals = summed_over_ranks(
        torch.cat([flat.new_tensor([flat.shape[0]]), flat.sum(0), flat.square().sum(0)])
    )
    count = totals[0]
    size = flat.shape[1]
    mean = totals[1 : 1 + size] / count
    variance = (totals[1 + size :] / count - mean.square()).clamp(min=0)
    shape = rows.shape[1:]
    return int(count), mean.reshape(shape), variance.reshape(shape)


def gather_objects(value: T) -> list[T]:
    """Every rank's ``value`` (picklable), in rank order; ``[value]`` in one process."""
    if not _active():
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def merge_objects(value: T, merge: Callable[[Iterable[T]], T]) -> T:
    """``merge`` of every rank's ``value``, in rank order, the same on every rank (``value``
    itself in one process)."""
    if not _active():
        return value
    return merge(gather_objects(value))


def broadcast_object(value: T, source: int = 0) -> T:
    """Rank ``source``'s ``value`` on every rank (``value`` itself in one process)."""
    if not _active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=source)
    return box[0]


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers into ``module`` on every rank."""
    if not _active():
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def check_same_weights(module: nn.Module) -> None:
    """Check that every rank holds the same parameters as rank 0, bit for bit.

    Raises:
        RuntimeError: A rank's weights differ (the ranks would be training different models:
            an update or a decision not taken on every rank); the message names the ranks.
    """
    if not _active():
        return
    with torch.no_grad():
        flat = torch.cat([p.detach().reshape(-1).to(torch.float64) for p in module.parameters()])
        digest = (flat * torch.arange(1, flat.numel() + 1, dtype=torch.float64)).sum()
    digests = gather_objects(float(digest))
    differing = [rank for rank, value in enumerate(digests) if value != digests[0]]
    if differing:
        raise RuntimeError(
            f"the model's weights on rank(s) {differing} differ from rank 0's: the ranks did not "
            "take the same updates"
        )
