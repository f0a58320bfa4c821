"""Seeding every random generator, and cuDNN determinism.

torch and NumPy are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import random

from hydra_pipeline.pipeline.validation import require_seed

__all__ = ["set_deterministic_cudnn", "set_seed"]


def set_seed(seed: int | None = None) -> None:
    """Seed Python's ``random``, NumPy's global generator, and torch on the CPU and every GPU.

    Args:
        seed: The seed, in ``[0, 2**32 - 1]``; ``None`` leaves every generator untouched.

    Raises:
        InvalidArgumentError: The seed is outside that range.
    """
    if seed is None:
        return
    require_seed("seed", seed)
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
