"""finished_episodes: episode returns and lengths split out of rollouts, carried across them."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hydra_pipeline.engine.episodes import finished_episodes


def reference(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    carried_returns: list[float],
    carried_lengths: list[int],
) -> tuple[list[float], list[int], list[float], list[int]]:
    """Walk the steps in order, accumulating per environment; emit at every done."""
    returns, lengths = list(carried_returns), list(carried_lengths)
    ended_returns: list[float] = []
    ended_lengths: list[int] = []
    num_steps, num_envs = rewards.shape
    for t in range(num_steps):
        for env in range(num_envs):
            returns[env] += float(rewards[t, env])
            lengths[env] += 1
            if dones[t, env]:
                ended_returns.append(returns[env])
                ended_lengths.append(lengths[env])
                returns[env], lengths[env] = 0.0, 0
    return ended_returns, ended_lengths, returns, lengths


def random_rollout(
    seed: int, num_steps: int, num_envs: int, done_probability: float
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    rewards = torch.randn(num_steps, num_envs, generator=generator, dtype=torch.float64)
    dones = torch.rand(num_steps, num_envs, generator=generator) < done_probability
    return rewards, dones


def zeros(num_envs: int) -> torch.Tensor:
    return torch.zeros(num_envs, dtype=torch.float64)


class TestHandComputed:
    def test_small_example(self) -> None:
        """Two environments, three steps: the episodes and what carries over, by hand."""
        rewards = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]], dtype=torch.float64)
        dones = torch.tensor([[False, True], [True, False], [True, False]])
        carried_returns = torch.tensor([5.0, 7.0], dtype=torch.float64)
        carried_lengths = torch.tensor([4.0, 1.0], dtype=torch.float64)
        episodes = finished_episodes(rewards, dones, carried_returns, carried_lengths)
        # Step-major order: (t=0, env 1): 7 + 10 = 17 over 2 steps; (t=1, env 0): 5 + 1 + 2 = 8
        # over 6 steps; (t=2, env 0): 3 over 1 step. Env 1 carries 20 + 30 over 2 steps.
        assert episodes.returns.tolist() == [17.0, 8.0, 3.0]
        assert episodes.lengths.tolist() == [2.0, 6.0, 1.0]
        assert episodes.carried_returns.tolist() == [0.0, 50.0]
        assert episodes.carried_lengths.tolist() == [0.0, 2.0]

    def test_no_done(self) -> None:
        """Without a done, nothing ends and everything is carried over."""
        rewards = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
        dones = torch.zeros(2, 2, dtype=torch.bool)
        carried = torch.tensor([1.0, 1.0], dtype=torch.float64)
        episodes = finished_episodes(rewards, dones, carried, torch.tensor([3.0, 0.0]).double())
        assert episodes.returns.numel() == 0 and episodes.lengths.numel() == 0
        assert episodes.carried_returns.tolist() == [5.0, 7.0]
        assert episodes.carried_lengths.tolist() == [5.0, 2.0]

    def test_done_every_step(self) -> None:
        """A done at every step makes one-step episodes; the carried return joins the first."""
        rewards = torch.tensor([[1.0], [2.0], [4.0]], dtype=torch.float64)
        dones = torch.ones(3, 1, dtype=torch.bool)
        episodes = finished_episodes(
            rewards, dones, torch.tensor([0.5]).double(), torch.tensor([9.0]).double()
        )
        assert episodes.returns.tolist() == [1.5, 2.0, 4.0]
        assert episodes.lengths.tolist() == [10.0, 1.0, 1.0]
        assert episodes.carried_returns.tolist() == [0.0]
        assert episodes.carried_lengths.tolist() == [0.0]


class TestAgainstReference:
    @settings(max_examples=60, deadline=None)
    @given(
        seed=st.integers(0, 2**31 - 1),
        num_steps=st.integers(1, 12),
        num_envs=st.integers(1, 5),
        done_probability=st.sampled_from([0.0, 0.1, 0.4, 0.9, 1.0]),
    )
    def test_one_rollout(
        self, seed: int, num_steps: int, num_envs: int, done_probability: float
    ) -> None:
        """Episodes (in step-major order) and carries equal those of a per-step loop."""
        rewards, dones = random_rollout(seed, num_steps, num_envs, done_probability)
        generator = torch.Generator().manual_seed(seed + 1)
        carried_returns = torch.randn(num_envs, generator=generator, dtype=torch.float64)
        carried_lengths = torch.randint(0, 50, (num_envs,), generator=generator).double()
        episodes = finished_episodes(rewards, dones, carried_returns, carried_lengths)
        returns, lengths, next_returns, next_lengths = reference(
            rewards, dones, carried_returns.tolist(), [int(x) for x in carried_lengths]
        )
        torch.testing.assert_close(episodes.returns, torch.tensor(returns, dtype=torch.float64))
        assert episodes.lengths.tolist() == [float(x) for x in lengths]
        torch.testing.assert_close(
            episodes.carried_returns, torch.tensor(next_returns, dtype=torch.float64)
        )
        assert episodes.carried_lengths.tolist() == [float(x) for x in next_lengths]

    @settings(max_examples=60, deadline=None)
    @given(
        seed=st.integers(0, 2**31 - 1),
        num_steps=st.integers(1, 8),
        num_envs=st.integers(1, 4),
        done_probability=st.sampled_from([0.0, 0.15, 0.5]),
    )
    def test_consecutive_rollouts(
        self, seed: int, num_steps: int, num_envs: int, done_probability: float
    ) -> None:
        """Two rollouts chained through the carries give the episodes of their concatenation,
        including those spanning the boundary."""
        rewards, dones = random_rollout(seed, 2 * num_steps, num_envs, done_probability)
        first = finished_episodes(
            rewards[:num_steps], dones[:num_steps], zeros(num_envs), zeros(num_envs)
        )
        second = finished_episodes(
            rewards[num_steps:], dones[num_steps:], first.carried_returns, first.carried_lengths
        )
        returns, lengths, carried_returns, carried_lengths = reference(
            rewards, dones, [0.0] * num_envs, [0] * num_envs
        )
        torch.testing.assert_close(
            torch.cat((first.returns, second.returns)), torch.tensor(returns, dtype=torch.float64)
        )
        assert torch.cat((first.lengths, second.lengths)).tolist() == [float(x) for x in lengths]
        torch.testing.assert_close(
            second.carried_returns, torch.tensor(carried_returns, dtype=torch.float64)
        )
        assert second.carried_lengths.tolist() == [float(x) for x in carried_lengths]

    def test_episode_spanning_the_boundary(self) -> None:
        """An episode begun in one rollout and ended in the next is counted once, whole."""
        rewards = torch.ones(3, 1, dtype=torch.float64)
        not_done = torch.zeros(3, 1, dtype=torch.bool)
        done_at_1 = torch.tensor([[False], [True], [False]])
        first = finished_episodes(rewards, not_done, zeros(1), zeros(1))
        second = finished_episodes(
            2 * rewards, done_at_1, first.carried_returns, first.carried_lengths
        )
        assert first.returns.numel() == 0
        assert second.returns.tolist() == [3.0 + 4.0]
        assert second.lengths.tolist() == [5.0]
        assert second.carried_returns.tolist() == [2.0]
        assert second.carried_lengths.tolist() == [1.0]
