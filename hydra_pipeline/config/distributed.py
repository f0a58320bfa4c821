"""The ``distributed`` node: one run trained by several processes with torch.distributed."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DistributedConf"]


@dataclass
class DistributedConf:
    """How many processes train one run (data parallel: each steps its own task.num_envs
    environments, and gradients are averaged over all of them every minibatch).

    Attributes:
        nproc_per_node: Processes this job starts on its machine (through torch.distributed's
            elastic launch, gloo on the CPU, NCCL with one GPU each under device=cuda); 1
            trains in the job's own process. Ignored in a process that torchrun (or a SLURM
            launcher) already started as one rank of a run.
        timeout_s: Seconds a rank waits for the others at a collective before the run fails
            with an error (rather than hanging on a rank that stopped answering).
        oversubscribe: Start more processes on the CPU than this machine has cores (they
            then take turns on the cores: slower; for trying a distributed setup out).
    """

    nproc_per_node: int = 1
    timeout_s: int = 1800
    oversubscribe: bool = False
