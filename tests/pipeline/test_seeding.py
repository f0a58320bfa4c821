"""set_seed and set_deterministic_cudnn."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from hydra_pipeline import InvalidArgumentError, set_deterministic_cudnn, set_seed


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

    def test_the_range_every_generator_accepts(self) -> None:
        """0 to 2**32 - 1 seeds Python, NumPy's legacy generator, torch and Gymnasium alike."""
        for seed in (0, 2**32 - 1):
            set_seed(seed)
            assert np.random.get_state()[1][0] == np.random.RandomState(seed).get_state()[1][0]

    @pytest.mark.parametrize("seed", [-3, 2**32, 2**40, 1.5, True, "7"])
    def test_other_seeds_are_refused(self, seed: object) -> None:
        """NumPy rejects seeds outside that range, and a bool or a float is not a seed."""
        with pytest.raises(InvalidArgumentError, match=r"^'seed' must be"):
            set_seed(seed)  # type: ignore[arg-type]


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
