"""Running statistics, observation normalisation and reward scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hydra_pipeline import InvalidArgumentError
from hydra_pipeline.engine.normalization import Normalization, RunningMeanStd


def stream(seed: int = 0) -> list[torch.Tensor]:
    """Batches of 3-dimensional rows of different sizes, means and spreads."""
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(size, 3, generator=generator, dtype=torch.float64) * scale + shift
        for size, scale, shift in ((5, 1.0, 0.0), (1, 3.0, 2.0), (17, 0.5, -1.0), (2, 10.0, 5.0))
    ]


class TestRunningMeanStd:
    def test_equals_numpy_over_the_whole_stream(self) -> None:
        """Batch by batch, the statistics are NumPy's mean and population variance of every
        row so far (exactly, when the prior weight is 0)."""
        statistics = RunningMeanStd((3,), count=0)
        seen: list[np.ndarray] = []
        for batch in stream():
            statistics.update(batch)
            seen.append(batch.numpy())
            rows = np.concatenate(seen)
            assert np.allclose(statistics.mean.numpy(), rows.mean(axis=0), rtol=1e-12, atol=1e-12)
            assert np.allclose(statistics.var.numpy(), rows.var(axis=0), rtol=1e-12, atol=1e-12)
            assert statistics.count == len(rows)

    def test_the_prior_weighs_almost_nothing(self) -> None:
        """SB3's prior (mean 0, variance 1, weight 1e-4) barely moves the first batch's."""
        statistics = RunningMeanStd((3,))
        batch = stream()[0]
        statistics.update(batch)
        assert torch.allclose(statistics.mean, batch.mean(0), atol=1e-4)

    def test_state_round_trip(self) -> None:
        statistics = RunningMeanStd((3,))
        for batch in stream():
            statistics.update(batch)
        copy = RunningMeanStd((3,))
        copy.load_state_dict(statistics.state_dict())
        assert torch.equal(copy.mean, statistics.mean) and torch.equal(copy.var, statistics.var)
        assert copy.count == statistics.count


class TestNormalization:
    def test_observations(self) -> None:
        """Normalised by the statistics including the batch, clipped; frozen when not
        updating (evaluation, policies)."""
        normalization = Normalization(observations=True, clip_observations=3.0)
        batches = stream()
        for batch in batches[:-1]:
            normalization.observe(batch.float(), update=True)
        rows = torch.cat(batches[:-1])
        frozen = normalization.observe(batches[-1].float(), update=False)
        mean, std = rows.mean(0), torch.sqrt(rows.var(0, unbiased=False) + 1e-8)
        expected = ((batches[-1] - mean) / std).clamp(-3, 3).float()
        assert torch.allclose(frozen, expected, atol=1e-3)
        assert frozen.abs().max() <= 3.0
        assert normalization.observation_statistics is not None
        assert normalization.observation_statistics.count == pytest.approx(len(rows), abs=1e-3)

    def test_rewards_scaled_by_the_discounted_returns_spread(self) -> None:
        """As SB3: the return accumulates with gamma, restarts where an episode ends, and the
        reward is divided by the running std of those returns."""
        normalization = Normalization(rewards=True, gamma=0.9)
        rewards = [torch.tensor([1.0, 2.0]), torch.tensor([1.0, -1.0]), torch.tensor([3.0, 0.5])]
        dones = [
            torch.tensor([False, False]),
            torch.tensor([True, False]),
            torch.tensor([False, False]),
        ]
        returns, seen, scaled = np.zeros(2), [], []
        for reward, done in zip(rewards, dones, strict=True):
            scaled.append(normalization.reward(reward, done))
            returns = returns * 0.9 + reward.numpy()
            seen.append(returns.copy())
            returns[done.numpy()] = 0.0
            all_returns = np.concatenate(seen)
            std = np.sqrt(all_returns.var() + 1e-8)
            assert np.allclose(scaled[-1].numpy(), reward.numpy() / std, rtol=1e-3)

    def test_nothing_by_default(self) -> None:
        normalization = Normalization()
        observations = torch.randn(4, 3)
        assert normalization.observe(observations, update=True) is observations
        rewards = torch.ones(4)
        assert normalization.reward(rewards, torch.zeros(4, dtype=torch.bool)) is rewards
        assert not normalization.active

    def test_state_round_trip_continues_identically(self) -> None:
        """Saved mid-stream and loaded into a new object, both continue bit-identically."""
        generator = torch.Generator().manual_seed(3)
        steps = [torch.randn(4, 3, generator=generator) * 2 + 1 for _ in range(6)]
        first = Normalization(observations=True, rewards=True)
        for batch in steps[:3]:
            first.observe(batch, update=True)
            first.reward(batch[:, 0], batch[:, 1] > 0)
        second = Normalization(observations=True, rewards=True)
        second.load_state_dict(first.state_dict())
        for batch in steps[3:]:
            assert torch.equal(
                first.observe(batch, update=True), second.observe(batch, update=True)
            )
            dones = batch[:, 1] > 0
            assert torch.equal(first.reward(batch[:, 0], dones), second.reward(batch[:, 0], dones))

    @pytest.mark.parametrize(
        ("arguments", "argument"),
        [
            ({"clip_observations": 0.0}, "clip_observations"),
            ({"gamma": 1.5}, "gamma"),
            ({"epsilon": -1.0}, "epsilon"),
        ],
    )
    def test_arguments_are_checked(self, arguments: dict[str, float], argument: str) -> None:
        with pytest.raises(InvalidArgumentError) as caught:
            Normalization(**arguments)  # type: ignore[arg-type]
        assert caught.value.argument == argument
