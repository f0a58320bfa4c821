"""set_seed and set_deterministic_cudnn."""

from __future__ import annotations

import random

import numpy as np
import torch

from hydra_pipeline import set_deterministic_cudnn, set_seed


def draw() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


class TestSetSeed:
    def test_same_seed_same_draws_from_every_generator(self) -> None:
        set_seed(123)
        first = draw()
        set_seed(123)
        assert draw() == first
        set_seed(124)
        assert all(a != b for a, b in zip(draw(), first, strict=True))

    def test_none_leaves_generators_untouched(self) -> None:
        set_seed(5)
        states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
        set_seed(None)
        assert random.getstate() == states[0]
        assert (np.random.get_state()[1] == states[1]).all()
        assert torch.equal(torch.get_rng_state(), states[2])

    def test_large_and_negative_seeds_are_accepted(self) -> None:
        set_seed(2**40)
        set_seed(-3)


class TestDeterministicCudnn:
    def test_sets_flags_without_a_gpu(self) -> None:
        old = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
        try:
            torch.backends.cudnn.benchmark = True
            set_deterministic_cudnn()
            assert torch.backends.cudnn.deterministic is True
            assert torch.backends.cudnn.benchmark is False
        finally:
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old
