"""compute_returns: GAE and discounted returns, against hand-computed numbers and a reference."""

from __future__ import annotations

import pytest
import torch

from hydra_pipeline.engine.advantages import compute_returns

# T=3 steps, N=2 environments; environment 0's episode ends at step 1.
REWARDS = torch.tensor([[1.0, 2.0], [0.0, 1.0], [2.0, 0.0]], dtype=torch.float64)
VALUES = torch.tensor([[0.5, 1.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
DONES = torch.tensor([[False, False], [True, False], [False, False]])
NEXT_VALUES = torch.tensor([1.0, 0.5], dtype=torch.float64)


def returns_of(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    next_values: torch.Tensor,
    *,
    gamma: float,
    use_gae: bool,
    gae_lambda: float = 0.95,
) -> torch.Tensor:
    return compute_returns(
        rewards, values, dones, next_values, gamma=gamma, use_gae=use_gae, gae_lambda=gae_lambda
    )


def reference_returns(
    rewards: list[list[float]],
    values: list[list[float]],
    dones: list[list[bool]],
    next_values: list[float],
    gamma: float,
    use_gae: bool,
    gae_lambda: float,
) -> list[list[float]]:
    """The textbook recursions, one environment and one step at a time, in plain Python."""
    num_steps, num_envs = len(rewards), len(next_values)
    out = [[0.0] * num_envs for _ in range(num_steps)]
    for env in range(num_envs):
        if use_gae:
            advantage = 0.0
            for t in reversed(range(num_steps)):
                following = next_values[env] if t == num_steps - 1 else values[t + 1][env]
                if dones[t][env]:
                    delta = rewards[t][env] - values[t][env]
                    advantage = delta
                else:
                    delta = rewards[t][env] + gamma * following - values[t][env]
                    advantage = delta + gamma * gae_lambda * advantage
                out[t][env] = advantage + values[t][env]
        else:
            running = next_values[env]
            for t in reversed(range(num_steps)):
                running = rewards[t][env] + (0.0 if dones[t][env] else gamma * running)
                out[t][env] = running
    return out


def monte_carlo_returns(
    rewards: torch.Tensor, dones: torch.Tensor, next_values: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Forward sums ``sum_k gamma^k r_{t+k}`` up to the episode's end, plus the discounted
    bootstrap value when the rollout ends first."""
    num_steps, num_envs = rewards.shape
    out = torch.zeros_like(rewards)
    for env in range(num_envs):
        for t in range(num_steps):
            total, discount = 0.0, 1.0
            for k in range(t, num_steps):
                total += discount * float(rewards[k, env])
                discount *= gamma
                if dones[k, env]:
                    break
            else:
                total += discount * float(next_values[env])
            out[t, env] = total
    return out


def random_rollout(
    seed: int, num_steps: int, num_envs: int, done_probability: float = 0.3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    rewards = torch.randn(num_steps, num_envs, generator=generator, dtype=torch.float64)
    values = torch.randn(num_steps, num_envs, generator=generator, dtype=torch.float64)
    dones = torch.rand(num_steps, num_envs, generator=generator) < done_probability
    next_values = torch.randn(num_envs, generator=generator, dtype=torch.float64)
    return rewards, values, dones, next_values


class TestHandComputed:
    def test_gae(self) -> None:
        """GAE on T=3, N=2 with a done at step 1 of environment 0 gives the numbers by hand."""
        # gamma 0.9, lambda 0.8, so gamma * lambda = 0.72.
        # env 0: A2 = 2 + 0.9*1.0 - 0 = 2.9; A1 = 0 - 1.0 = -1.0 (done: no bootstrap, no carry);
        #        A0 = (1 + 0.9*1.0 - 0.5) + 0.72*(-1.0) = 0.68. Returns = A + V.
        # env 1: A2 = 0 + 0.9*0.5 - 2.0 = -1.55; A1 = (1 + 0.9*2.0 - 0) + 0.72*(-1.55) = 1.684;
        #        A0 = (2 + 0.9*0.0 - 1.0) + 0.72*1.684 = 2.21248.
        expected = torch.tensor(
            [[0.68 + 0.5, 2.21248 + 1.0], [-1.0 + 1.0, 1.684 + 0.0], [2.9 + 0.0, -1.55 + 2.0]],
            dtype=torch.float64,
        )
        returns = returns_of(
            REWARDS, VALUES, DONES, NEXT_VALUES, gamma=0.9, use_gae=True, gae_lambda=0.8
        )
        torch.testing.assert_close(returns, expected)

    def test_discounted(self) -> None:
        """Without GAE, returns are discounted reward sums bootstrapped from next_values."""
        # env 0: R2 = 2 + 0.9*1.0 = 2.9; R1 = 0 (done); R0 = 1 + 0.9*0 = 1.0.
        # env 1: R2 = 0 + 0.9*0.5 = 0.45; R1 = 1 + 0.9*0.45 = 1.405; R0 = 2 + 0.9*1.405 = 3.2645.
        expected = torch.tensor([[1.0, 3.2645], [0.0, 1.405], [2.9, 0.45]], dtype=torch.float64)
        returns = returns_of(REWARDS, VALUES, DONES, NEXT_VALUES, gamma=0.9, use_gae=False)
        torch.testing.assert_close(returns, expected)

    def test_values_do_not_affect_discounted_returns(self) -> None:
        """Plain discounting ignores the value estimates of the rollout's steps."""
        first = returns_of(REWARDS, VALUES, DONES, NEXT_VALUES, gamma=0.9, use_gae=False)
        second = returns_of(REWARDS, VALUES * 7 - 3, DONES, NEXT_VALUES, gamma=0.9, use_gae=False)
        torch.testing.assert_close(first, second)

    def test_shape_and_dtype_follow_rewards(self) -> None:
        """Returns have the rewards' (T, N) shape and dtype."""
        rewards, values, dones, next_values = random_rollout(0, 5, 3)
        for use_gae in (True, False):
            returns = returns_of(
                rewards.float(),
                values.float(),
                dones,
                next_values.float(),
                gamma=0.99,
                use_gae=use_gae,
            )
            assert returns.shape == (5, 3)
            assert returns.dtype == torch.float32


class TestAgainstReference:
    @pytest.mark.parametrize("use_gae", [True, False])
    @pytest.mark.parametrize(("num_steps", "num_envs"), [(1, 1), (1, 4), (7, 1), (16, 5)])
    @pytest.mark.parametrize(("gamma", "gae_lambda"), [(0.99, 0.95), (0.5, 0.0), (1.0, 1.0)])
    def test_random_rollouts(
        self, use_gae: bool, num_steps: int, num_envs: int, gamma: float, gae_lambda: float
    ) -> None:
        """On random rollouts, returns equal those of the per-step reference recursions."""
        for seed in range(3):
            rewards, values, dones, next_values = random_rollout(seed, num_steps, num_envs)
            expected = reference_returns(
                rewards.tolist(),
                values.tolist(),
                dones.tolist(),
                next_values.tolist(),
                gamma,
                use_gae,
                gae_lambda,
            )
            returns = returns_of(
                rewards,
                values,
                dones,
                next_values,
                gamma=gamma,
                use_gae=use_gae,
                gae_lambda=gae_lambda,
            )
            torch.testing.assert_close(returns, torch.tensor(expected, dtype=torch.float64))

    @pytest.mark.parametrize("gamma", [0.0, 0.7, 0.99, 1.0])
    def test_lambda_one_is_monte_carlo(self, gamma: float) -> None:
        """GAE with lambda=1 gives discounted Monte-Carlo returns bootstrapped from next_values,
        whatever the value estimates."""
        for seed in range(4):
            rewards, values, dones, next_values = random_rollout(seed, 9, 4)
            expected = monte_carlo_returns(rewards, dones, next_values, gamma)
            gae = returns_of(
                rewards, values, dones, next_values, gamma=gamma, use_gae=True, gae_lambda=1.0
            )
            plain = returns_of(rewards, values, dones, next_values, gamma=gamma, use_gae=False)
            torch.testing.assert_close(gae, expected)
            torch.testing.assert_close(plain, expected)

    def test_lambda_zero_is_one_step_td_target(self) -> None:
        """GAE with lambda=0 gives r_t + gamma * V_{t+1} (no bootstrap after a done)."""
        rewards, values, dones, next_values = random_rollout(5, 6, 3)
        following = torch.cat((values[1:], next_values.unsqueeze(0)))
        expected = rewards + 0.9 * following * (~dones)
        returns = returns_of(
            rewards, values, dones, next_values, gamma=0.9, use_gae=True, gae_lambda=0.0
        )
        torch.testing.assert_close(returns, expected)


class TestEpisodeBoundaries:
    @pytest.mark.parametrize("use_gae", [True, False])
    def test_done_cuts_credit(self, use_gae: bool) -> None:
        """Rewards and values after a done do not change the returns at or before it."""
        rewards, values, _, next_values = random_rollout(1, 6, 2)
        dones = torch.zeros(6, 2, dtype=torch.bool)
        dones[2, 0] = True
        base = returns_of(rewards, values, dones, next_values, gamma=0.95, use_gae=use_gae)
        changed_rewards = rewards.clone()
        changed_rewards[3:, 0] += 100.0
        changed_values = values.clone()
        changed_values[3:, 0] -= 50.0
        changed_next = next_values.clone()
        changed_next[0] += 1000.0
        after = returns_of(
            changed_rewards, changed_values, dones, changed_next, gamma=0.95, use_gae=use_gae
        )
        torch.testing.assert_close(after[:3, 0], base[:3, 0])
        assert not torch.allclose(after[3:, 0], base[3:, 0])
        # Only environment 0's data changed, so environment 1 is untouched.
        torch.testing.assert_close(after[:, 1], base[:, 1])

    @pytest.mark.parametrize("use_gae", [True, False])
    def test_done_at_last_step_ignores_next_values(self, use_gae: bool) -> None:
        """A done at the last step makes next_values irrelevant to that environment."""
        rewards, values, _, next_values = random_rollout(2, 4, 2)
        dones = torch.zeros(4, 2, dtype=torch.bool)
        dones[-1, 0] = True
        base = returns_of(rewards, values, dones, next_values, gamma=0.9, use_gae=use_gae)
        moved = returns_of(rewards, values, dones, next_values + 10.0, gamma=0.9, use_gae=use_gae)
        torch.testing.assert_close(moved[:, 0], base[:, 0])
        # Environment 1 has no done, so its returns move by gamma^(T - t) * 10.
        shifts = torch.tensor([0.9**4, 0.9**3, 0.9**2, 0.9], dtype=torch.float64) * 10.0
        if use_gae:
            # With GAE the bootstrap reaches step t with weight (gamma * lambda)^(T-1-t) * gamma.
            shifts = (
                torch.tensor([0.9 * (0.9 * 0.95) ** k for k in (3, 2, 1, 0)], dtype=torch.float64)
                * 10.0
            )
        torch.testing.assert_close(moved[:, 1] - base[:, 1], shifts)
