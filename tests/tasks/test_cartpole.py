"""CartPoleTask: Gymnasium's CartPole-v1 dynamics, autoreset, expert, seeding and state."""

from __future__ import annotations

import io
import math

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from hydra_pipeline import InvalidArgumentError
from hydra_pipeline.tasks import CartPoleTask, DiscreteActions, Task

ANGLE_LIMIT = 12 * 2 * math.pi / 360


def with_states(task: CartPoleTask, states: torch.Tensor) -> CartPoleTask:
    """Put ``task``'s environments in ``states`` at the start of an episode."""
    saved = task.state_dict()
    task.load_state_dict({**saved, "state": states, "steps": torch.zeros_like(saved["steps"])})
    return task


def gymnasium_steps(
    states: np.ndarray, actions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gymnasium's next states, observations, rewards and terminations, one state at a time."""
    env = gymnasium.make("CartPole-v1")
    cartpole = env.unwrapped
    assert isinstance(cartpole, CartPoleEnv)
    next_states, observations, rewards, terminations = [], [], [], []
    for state, action in zip(states, actions, strict=True):
        env.reset()
        cartpole.state = state.copy()
        observation, reward, terminated, _, _ = env.step(int(action))
        next_states.append(cartpole.state)
        observations.append(observation)
        rewards.append(reward)
        terminations.append(terminated)
    env.close()
    return np.array(next_states), np.array(observations), np.array(rewards), np.array(terminations)


def run_expert(task: CartPoleTask, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps driven by the expert; returns terminated and truncated, stacked over time."""
    terminated, truncated = [], []
    for _ in range(steps):
        result = task.step(task.expert_actions())
        terminated.append(result.terminated)
        truncated.append(result.truncated)
    return torch.stack(terminated), torch.stack(truncated)


class TestDynamics:
    def test_step_matches_gymnasium_from_random_states(self) -> None:
        """From the same states and actions, one step agrees with Gymnasium's CartPole-v1."""
        rng = np.random.default_rng(0)
        bounds = np.array([2.6, 3.0, 0.25, 3.5])
        states = rng.uniform(-bounds, bounds, size=(2000, 4))
        actions = rng.integers(0, 2, size=2000)
        task = with_states(CartPoleTask(num_envs=2000), torch.from_numpy(states))
        result = task.step(torch.from_numpy(actions))
        next_states, observations, rewards, terminations = gymnasium_steps(states, actions)

        assert 100 < terminations.sum() < 1900  # both outcomes are exercised
        torch.testing.assert_close(
            result.final_observations, torch.from_numpy(observations), rtol=1e-6, atol=1e-7
        )
        torch.testing.assert_close(result.rewards, torch.from_numpy(rewards).float())
        assert torch.equal(result.terminated, torch.from_numpy(terminations))
        continuing = ~result.terminated
        torch.testing.assert_close(
            task.state_dict()["state"][continuing],
            torch.from_numpy(next_states)[continuing],
            rtol=1e-12,
            atol=1e-12,
        )

    @pytest.mark.parametrize(
        ("state", "terminated"),
        [
            ((2.39, 1.0, 0.0, 0.0), True),
            ((-2.39, -1.0, 0.0, 0.0), True),
            ((2.39, -1.0, 0.0, 0.0), False),
            ((2.4, 0.0, 0.0, 0.0), False),
            ((0.0, 0.0, ANGLE_LIMIT - 0.001, 1.0), True),
            ((0.0, 0.0, -ANGLE_LIMIT + 0.001, -1.0), True),
            ((0.0, 0.0, ANGLE_LIMIT - 0.001, -1.0), False),
        ],
    )
    def test_terminates_beyond_position_and_angle_limits(
        self, state: tuple[float, ...], terminated: bool
    ) -> None:
        """Crossing |x| > 2.4 or |theta| > 12 degrees terminates, exactly as in Gymnasium."""
        states = np.array([state, state])
        actions = np.array([0, 1])
        task = with_states(CartPoleTask(num_envs=2), torch.tensor(states))
        result = task.step(torch.from_numpy(actions))
        _, _, _, expected = gymnasium_steps(states, actions)
        assert result.terminated.tolist() == expected.tolist() == [terminated, terminated]
        assert not result.truncated.any()


class TestEpisodes:
    def test_truncates_exactly_at_max_episode_steps(self) -> None:
        """Step 500 truncates every balanced environment; no step before it ends any."""
        task = CartPoleTask(num_envs=64)
        task.reset(seed=0)
        terminated, truncated = run_expert(task, 500)
        assert not terminated.any()
        assert not truncated[:-1].any()
        assert truncated[-1].all()

    def test_short_time_limit_restarts_the_step_count(self) -> None:
        """With max_episode_steps=3, steps 3 and 6 truncate and the others do not."""
        task = CartPoleTask(num_envs=4, max_episode_steps=3)
        task.reset(seed=0)
        _, truncated = run_expert(task, 7)
        assert truncated.all(dim=1).tolist() == [False, False, True, False, False, True, False]
        assert truncated.any(dim=1).tolist() == truncated.all(dim=1).tolist()

    def test_autoreset_returns_fresh_and_final_observations(self) -> None:
        """Ended environments restart in the reset box and report their last observation."""
        task = CartPoleTask(num_envs=16)
        task.reset(seed=0)
        pushes = torch.arange(16) % 2  # half push left forever, half right
        seen_ends = 0
        for _ in range(100):
            result = task.step(pushes)
            ended = result.terminated | result.truncated
            seen_ends += int(ended.sum())
            last = result.final_observations[ended]
            assert ((last[:, 0].abs() > 2.4) | (last[:, 2].abs() > ANGLE_LIMIT)).all()
            assert (result.observations[ended].abs() <= 0.05).all()
            assert torch.equal(result.final_observations[~ended], result.observations[~ended])
        assert seen_ends >= 16

    def test_hidden_velocities_show_position_and_angle_only(self) -> None:
        """With hide_velocities, observations (fresh and final) are (x, theta) of the same
        trajectories as the fully observed task's, and the expert still balances."""
        full, hidden = CartPoleTask(num_envs=8), CartPoleTask(num_envs=8, hide_velocities=True)
        assert hidden.observation_shape == (2,)
        assert torch.equal(hidden.reset(seed=3), full.reset(seed=3)[:, [0, 2]])
        for _ in range(60):
            actions = hidden.expert_actions()
            assert torch.equal(actions, full.expert_actions())
            seen, shown = full.step(actions), hidden.step(actions)
            assert torch.equal(shown.observations, seen.observations[:, [0, 2]])
            assert torch.equal(shown.final_observations, seen.final_observations[:, [0, 2]])
            assert not bool(shown.terminated.any())

    def test_hide_velocities_is_hiding_entries_1_and_3(self) -> None:
        """The general option hides any entries; hide_velocities is the case of both
        velocities, and the two agree."""
        shorthand = CartPoleTask(num_envs=4, hide_velocities=True)
        general = CartPoleTask(num_envs=4, hide_observations=[3, 1])
        angle_only = CartPoleTask(num_envs=4, hide_observations=[0, 1, 3])
        assert general.observation_shape == (2,) and angle_only.observation_shape == (1,)
        assert torch.equal(shorthand.reset(seed=5), general.reset(seed=5))
        full = CartPoleTask(num_envs=4).reset(seed=5)
        assert torch.equal(angle_only.reset(seed=5), full[:, [2]])

    @pytest.mark.parametrize(
        ("hidden", "message"),
        [
            ([4], r"'hide_observations.0' must be the index of an entry of the 4-entry"),
            ([1, 1], r"'hide_observations' lists an entry more than once"),
            ([0, 1, 2, 3], r"'hide_observations' hides every entry"),
        ],
    )
    def test_hidden_entries_are_checked(self, hidden: list[int], message: str) -> None:
        with pytest.raises(InvalidArgumentError, match=message):
            CartPoleTask(num_envs=1, hide_observations=hidden)

    def test_spaces_shapes_and_dtypes_follow_the_protocol(self) -> None:
        """The task is a Task, with float32 observations and bool flags of batch shape."""
        task = CartPoleTask(num_envs=5)
        assert isinstance(task, Task)
        assert task.observation_shape == (4,)
        assert task.action_space == DiscreteActions(2)
        observations = task.reset(seed=1)
        assert observations.shape == (5, 4) and observations.dtype == torch.float32
        result = task.step(torch.ones(5, dtype=torch.int64))
        for field in (result.observations, result.final_observations):
            assert field.shape == (5, 4) and field.dtype == torch.float32
        assert result.rewards.dtype == torch.float32 and torch.equal(result.rewards, torch.ones(5))
        assert result.terminated.dtype == result.truncated.dtype == torch.bool
        assert result.terminated.shape == result.truncated.shape == (5,)


class TestExpert:
    @pytest.mark.parametrize("seed", [0, 1, 2, 3])
    def test_expert_balances_for_whole_episodes(self, seed: int) -> None:
        """From 1024 random starts the expert keeps pole up and cart on track for 500 steps."""
        task = CartPoleTask(num_envs=1024)
        task.reset(seed=seed)
        terminated, truncated = run_expert(task, 500)
        assert not terminated.any()
        assert truncated[-1].all()

    def test_expert_keeps_the_cart_on_track_beyond_the_time_limit(self) -> None:
        """Balanced for 2000 steps: the expert recentres the cart rather than letting it drift."""
        task = CartPoleTask(num_envs=1024, max_episode_steps=2000)
        task.reset(seed=4)
        terminated, _ = run_expert(task, 2000)
        assert not terminated.any()

    def test_expert_actions_are_discrete_actions(self) -> None:
        """Expert actions are int64 in {0, 1}, one per environment, and both occur."""
        task = CartPoleTask(num_envs=256)
        task.reset(seed=0)
        actions = task.expert_actions()
        assert actions.dtype == torch.int64 and actions.shape == (256,)
        assert set(actions.tolist()) == {0, 1}


class TestSeedingAndState:
    def record(self, task: CartPoleTask, steps: int, seed: int) -> list[torch.Tensor]:
        """Every tensor ``steps`` random-action steps return, actions drawn from ``seed``."""
        actions = torch.Generator().manual_seed(seed)
        tensors: list[torch.Tensor] = []
        for _ in range(steps):
            result = task.step(torch.randint(0, 2, (task.num_envs,), generator=actions))
            tensors.extend(result[:5])  # CartPole reports no episode metrics
            assert not result.episode_metrics
        return tensors

    def test_same_seed_same_trajectories(self) -> None:
        """Two tasks reset with the same seed return identical tensors, restarts included."""
        first, second = CartPoleTask(num_envs=8), CartPoleTask(num_envs=8)
        assert torch.equal(first.reset(seed=3), second.reset(seed=3))
        for a, b in zip(self.record(first, 200, 0), self.record(second, 200, 0), strict=True):
            assert torch.equal(a, b)

    def test_different_seeds_differ(self) -> None:
        """Different seeds give different first observations."""
        assert not torch.equal(CartPoleTask().reset(seed=3), CartPoleTask().reset(seed=4))

    def test_unseeded_reset_continues_the_generator(self) -> None:
        """reset() without a seed draws new states; reseeding replays them."""
        task = CartPoleTask(num_envs=8)
        first = task.reset(seed=5)
        second = task.reset()
        assert not torch.equal(first, second)
        assert torch.equal(task.reset(seed=5), first)

    def test_state_dict_round_trip_continues_bit_identically(self) -> None:
        """A task restored from a weights_only checkpoint continues exactly like the original."""
        task = CartPoleTask(num_envs=8, max_episode_steps=50)
        task.reset(seed=0)
        self.record(task, 30, 1)
        buffer = io.BytesIO()
        torch.save(task.state_dict(), buffer)
        expected = self.record(task, 200, 2)

        buffer.seek(0)
        restored = CartPoleTask(num_envs=8, max_episode_steps=50)
        restored.load_state_dict(torch.load(buffer, weights_only=True))
        for a, b in zip(self.record(restored, 200, 2), expected, strict=True):
            assert torch.equal(a, b)

    def test_state_dict_is_a_snapshot(self) -> None:
        """Stepping after state_dict() leaves the returned tensors unchanged."""
        task = CartPoleTask(num_envs=4)
        state = task.state_dict()
        saved = {key: value.clone() for key, value in state.items()}
        self.record(task, 5, 0)
        for key, value in state.items():
            assert torch.equal(value, saved[key])

    def test_loading_another_num_envs_is_refused(self) -> None:
        """A state saved with 4 environments does not load into a task with 8."""
        with pytest.raises(InvalidArgumentError, match="differs from the saved state's 4"):
            CartPoleTask(num_envs=8).load_state_dict(CartPoleTask(num_envs=4).state_dict())


class TestArguments:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"num_envs": 0}, "'num_envs' must be >= 1 (got 0)."),
            ({"num_envs": 2.5}, "'num_envs' must be an integer (got 2.5)."),
            ({"max_episode_steps": 0}, "'max_episode_steps' must be >= 1 (got 0)."),
        ],
    )
    def test_bad_arguments_are_refused(self, kwargs: dict[str, float], message: str) -> None:
        """Out-of-range constructor arguments raise the project's validation message."""
        with pytest.raises(InvalidArgumentError) as error:
            CartPoleTask(**kwargs)  # type: ignore[arg-type]
        assert str(error.value) == message

    def test_actions_of_the_wrong_shape_are_refused(self) -> None:
        """One action for four environments is an error, not a silent broadcast."""
        with pytest.raises(InvalidArgumentError, match=r"'actions' must have shape \(4,\)"):
            CartPoleTask(num_envs=4).step(torch.ones(1, dtype=torch.int64))


class TestRender:
    def test_pictures_follow_the_state(self) -> None:
        """The picture shows the first environment: the cart moves with its position, and
        the pole leans with its angle."""
        task = CartPoleTask(num_envs=2)

        def picture(position: float, angle: float) -> torch.Tensor:
            task._state[0] = torch.tensor([position, 0.0, angle, 0.0], dtype=torch.float64)
            return task.render()

        upright = picture(0.0, 0.0)
        assert upright.dtype == torch.uint8 and upright.shape == (240, 400, 3)
        black = (upright == 0).all(dim=-1)
        assert black[172, 200] and not black[172, 100]  # the cart at the centre of the track
        moved = (picture(1.0, 0.0) == 0).all(dim=-1)
        assert moved[172, 283] and not moved[172, 200]
        pole = torch.tensor([202, 152, 101], dtype=torch.uint8)
        leaning = picture(0.0, 0.5)
        assert (upright[100, 200] == pole).all() and not (leaning[100, 200] == pole).all()
        assert task.render_fps == 50
