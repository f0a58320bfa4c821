"""set_seed and set_deterministic_cudnn."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from hydra_pipeline import InvalidArgumentError, set_deterministic_cudnn, set_seed
from hydra_pipeline.pipeline.seeding import seed_for_rank


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


class TestSeedForRank:
    def test_rank_zero_keeps_the_seed_and_other_ranks_differ(self) -> None:
        """Rank 0 is seeded as a one-process run; every other rank gets a seed of its own,
        none equal to a neighbouring run's rank-0 seed."""
        assert seed_for_rank(7, 0) == 7
        seeds = [seed_for_rank(7, rank) for rank in range(8)]
        assert len(set(seeds)) == 8
        assert not {6, 8} & set(seeds[1:])
        assert all(0 <= seed < 2**32 for seed in seeds)

    def test_set_seed_with_a_rank_draws_that_ranks_stream(self) -> None:
        """``set_seed(s, rank=r)`` seeds every generator as ``set_seed(seed_for_rank(s, r))``,
        reproducibly."""
        set_seed(3, rank=2)
        first = draw()
        set_seed(seed_for_rank(3, 2))
        assert draw() == first
        set_seed(3)
        assert draw() != first
