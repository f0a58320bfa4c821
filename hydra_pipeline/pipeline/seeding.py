"""Seeding every random generator, and cuDNN determinism.

torch and NumPy are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import random

from hydra_pipeline.arguments import require_seed

__all__ = ["seed_for_rank", "set_deterministic_cudnn", "set_seed"]


def seed_for_rank(seed: int, rank: int) -> int:
    """The seed of rank ``rank`` of a distributed run seeded with ``seed``: ``seed`` itself for
    rank 0 (so a one-process run is seeded as ever), and for the others one drawn from
    NumPy's ``SeedSequence(seed, spawn_key=(rank,))``, so that no two ranks, nor rank 1 of a
    run seeded ``s`` and rank 0 of one seeded ``s + 1``, share a random stream."""
    if rank == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence(seed, spawn_key=(rank,)).generate_state(1)[0])


def set_seed(seed: int | None = None, rank: int = 0) -> None:
    """Seed Python's ``random``, NumPy's global generator, and torch on the CPU and every GPU.

    Args:
        seed: The seed, in ``[0, 2**32 - 1]``; ``None`` leaves every generator untouched.
        rank: The process's rank in a distributed run: each rank's generators are seeded
            with :func:`seed_for_rank` of ``seed`` and ``rank``.

    Raises:
        InvalidArgumentError: The seed is outside that range.
    """
    if seed is None:
        return
    require_seed("seed", seed)
    seed = seed_for_rank(seed, rank)
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)  # explicit, though manual_seed already covers CUDA


def set_deterministic_cudnn() -> None:
    """Make cuDNN pick deterministic algorithms and stop benchmarking for the fastest one.

    Harmless without a GPU, and in force as soon as one is used.
    """
    import torch

    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
