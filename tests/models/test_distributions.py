"""Categorical and DiagonalGaussian against torch.distributions; Gumbel-max sampling."""

from __future__ import annotations

import math

import pytest
import torch

from hydra_pipeline.models import Categorical, DiagonalGaussian


def random_logits(seed: int, batch: int, n: int) -> torch.Tensor:
    return torch.randn(batch, n, generator=torch.Generator().manual_seed(seed)) * 3.0


class TestCategorical:
    @pytest.mark.parametrize(("batch", "n"), [(1, 2), (7, 3), (16, 10)])
    def test_log_prob_matches_torch(self, batch: int, n: int) -> None:
        """log_prob of every action equals torch.distributions.Categorical's."""
        logits = random_logits(batch * n, batch, n)
        ours = Categorical(logits)
        reference = torch.distributions.Categorical(logits=logits)
        for action in range(n):
            actions = torch.full((batch,), action, dtype=torch.int64)
            torch.testing.assert_close(ours.log_prob(actions), reference.log_prob(actions))
        mixed = torch.randint(0, n, (batch,), generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(ours.log_prob(mixed), reference.log_prob(mixed))
        assert ours.log_prob(mixed).shape == (batch,)

    def test_log_prob_accepts_float_actions(self) -> None:
        """Actions stored as floats are read as indices."""
        logits = random_logits(0, 4, 3)
        actions = torch.tensor([0, 2, 1, 2])
        torch.testing.assert_close(
            Categorical(logits).log_prob(actions.float()), Categorical(logits).log_prob(actions)
        )

    @pytest.mark.parametrize(("batch", "n"), [(1, 2), (7, 3), (16, 10)])
    def test_entropy_matches_torch(self, batch: int, n: int) -> None:
        """entropy equals torch.distributions.Categorical's."""
        logits = random_logits(batch + n, batch, n)
        torch.testing.assert_close(
            Categorical(logits).entropy(), torch.distributions.Categorical(logits=logits).entropy()
        )

    def test_entropy_of_uniform_and_certain(self) -> None:
        """Uniform logits have entropy ln n; one dominant logit has entropy near 0."""
        assert Categorical(torch.zeros(1, 5)).entropy().item() == pytest.approx(math.log(5))
        certain = Categorical(torch.tensor([[0.0, 100.0, 0.0]])).entropy().item()
        assert 0.0 <= certain < 1e-10

    def test_sampling_frequencies_match_probabilities(self) -> None:
        """Gumbel-max samples follow softmax(logits): chi-square test on 40,000 draws per row."""
        torch.manual_seed(1234)
        probabilities = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.7, 0.05, 0.05, 0.2]])
        draws = 40_000
        logits = probabilities.log().repeat_interleave(draws, dim=0) + 5.0  # shift-invariant
        samples = Categorical(logits).sample().view(2, draws)
        assert samples.dtype == torch.int64
        for row in range(2):
            counts = torch.bincount(samples[row], minlength=4).double()
            expected = probabilities[row].double() * draws
            chi_square = float(((counts - expected) ** 2 / expected).sum())
            # 3 degrees of freedom: P(chi2 > 16.27) = 0.001.
            assert chi_square < 16.27, (row, counts.tolist(), expected.tolist())

    def test_sampling_never_picks_impossible_actions(self) -> None:
        """An action with logit -inf is never sampled."""
        torch.manual_seed(0)
        logits = torch.tensor([[0.0, -math.inf, 0.0]]).repeat(5000, 1)
        samples = Categorical(logits).sample()
        assert not bool((samples == 1).any())
        assert set(samples.tolist()) == {0, 2}

    def test_sampling_uses_global_generator(self) -> None:
        """Reseeding torch's global generator reproduces the samples."""
        logits = random_logits(3, 64, 5)
        torch.manual_seed(7)
        first = Categorical(logits).sample()
        torch.manual_seed(7)
        assert torch.equal(Categorical(logits).sample(), first)

    def test_mode(self) -> None:
        """mode is the most likely action of each row."""
        logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 2.9], [-5.0, -4.0, -3.0]])
        assert Categorical(logits).mode().tolist() == [1, 0, 2]


class TestDiagonalGaussian:
    @pytest.mark.parametrize("action_shape", [(1,), (3,), (2, 3)])
    def test_log_prob_and_entropy_match_torch(self, action_shape: tuple[int, ...]) -> None:
        """log_prob and entropy equal torch Normal's, summed over every action entry."""
        generator = torch.Generator().manual_seed(len(action_shape) * 10 + action_shape[-1])
        batch = 5
        mean = torch.randn(batch, *action_shape, generator=generator)
        log_std = torch.randn(*action_shape, generator=generator) * 0.5
        actions = torch.randn(batch, *action_shape, generator=generator) * 2.0
        ours = DiagonalGaussian(mean, log_std)
        reference = torch.distributions.Normal(mean, log_std.exp().expand_as(mean))
        dims = tuple(range(1, 1 + len(action_shape)))
        torch.testing.assert_close(ours.log_prob(actions), reference.log_prob(actions).sum(dims))
        torch.testing.assert_close(ours.entropy(), reference.entropy().sum(dims))
        assert ours.log_prob(actions).shape == (batch,)
        assert ours.entropy().shape == (batch,)

    def test_per_row_log_std(self) -> None:
        """A log_std with the batch dimension gives each row its own spread."""
        mean = torch.zeros(2, 2)
        log_std = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
        actions = torch.tensor([[1.0, -1.0], [0.5, 0.25]])
        reference = torch.distributions.Normal(mean, log_std.exp())
        torch.testing.assert_close(
            DiagonalGaussian(mean, log_std).log_prob(actions), reference.log_prob(actions).sum(-1)
        )

    def test_mode_is_mean(self) -> None:
        """mode is the mean."""
        mean = torch.randn(3, 2)
        assert torch.equal(DiagonalGaussian(mean, torch.zeros(2)).mode(), mean)

    def test_samples_have_mean_and_std(self) -> None:
        """Samples have the given mean and standard deviation per entry."""
        torch.manual_seed(5)
        draws = 20_000
        mean = torch.tensor([1.0, -2.0]).repeat(draws, 1)
        log_std = torch.log(torch.tensor([0.5, 2.0]))
        samples = DiagonalGaussian(mean, log_std).sample()
        assert samples.shape == (draws, 2)
        torch.testing.assert_close(samples.mean(0), torch.tensor([1.0, -2.0]), atol=0.05, rtol=0)
        torch.testing.assert_close(samples.std(0), torch.tensor([0.5, 2.0]), atol=0.05, rtol=0)

    def test_gradients_reach_mean_and_log_std(self) -> None:
        """log_prob is differentiable in mean and log_std (the policy gradient needs both)."""
        mean = torch.zeros(1, 1, requires_grad=True)
        log_std = torch.zeros(1, requires_grad=True)
        DiagonalGaussian(mean, log_std).log_prob(torch.tensor([[2.0]])).sum().backward()  # type: ignore[no-untyped-call]
        assert mean.grad is not None and log_std.grad is not None
        # d/dmu = (a - mu) / sigma^2 = 2; d/dlog_sigma = z^2 - 1 = 3.
        assert mean.grad.item() == pytest.approx(2.0)
        assert log_std.grad.item() == pytest.approx(3.0)
