"""GymTask: Gymnasium environments behind the task protocol."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch

from hydra_pipeline import InvalidArgumentError
from hydra_pipeline.tasks import (
    ContinuousActions,
    DiscreteActions,
    GymTask,
    StepResult,
    Task,
    TensorSpace,
)

ECHO_ENV_ID = "HydraPipelineTests/EchoAction-v0"


class EchoActionEnv(gymnasium.Env[np.ndarray, Any]):
    """Observes the last action it received, so tests see what reached the environment."""

    def __init__(self, action_space: gymnasium.Space[Any]) -> None:
        self.action_space = action_space
        self.size = int(np.prod(action_space.shape or ()))
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, shape=(self.size,))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros(self.size, dtype=np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        observation = np.asarray(action, dtype=np.float32).reshape(-1)
        return observation, 0.0, False, False, {}


@pytest.fixture(scope="module")
def echo_env_id() -> Iterator[str]:
    """The id of :class:`EchoActionEnv`, registered for the tests of this module."""
    gymnasium.register(ECHO_ENV_ID, entry_point=lambda **kwargs: EchoActionEnv(**kwargs))
    yield ECHO_ENV_ID
    del gymnasium.registry[ECHO_ENV_ID]


def push_right_until_an_episode_ends(task: GymTask) -> StepResult:
    """Step CartPole with action 1 until some environment terminates; return that step."""
    for _ in range(100):
        result = task.step(torch.ones(task.num_envs, dtype=torch.int64))
        if result.terminated.any():
            return result
    raise AssertionError("pushing right for 100 steps never toppled the pole")


class TestSpaces:
    def test_discrete_environment_shapes_and_dtypes(self) -> None:
        """CartPole-v1 gives float32 (n, 4) observations, two actions and bool flags."""
        task = GymTask("CartPole-v1", num_envs=3)
        assert isinstance(task, Task)
        assert task.observation_shape == (4,)
        assert task.action_space == DiscreteActions(2)
        observations = task.reset(seed=0)
        assert observations.shape == (3, 4) and observations.dtype == torch.float32
        result = task.step(torch.zeros(3, dtype=torch.int64))
        for field in (result.observations, result.final_observations):
            assert field.shape == (3, 4) and field.dtype == torch.float32
        assert result.rewards.dtype == torch.float32 and torch.equal(result.rewards, torch.ones(3))
        assert result.terminated.dtype == result.truncated.dtype == torch.bool
        assert result.terminated.shape == result.truncated.shape == (3,)
        task.close()

    def test_continuous_environment_shapes_and_dtypes(self) -> None:
        """Pendulum-v1 gives float32 (n, 3) observations and torques bounded by 2."""
        task = GymTask("Pendulum-v1", num_envs=2)
        assert task.observation_shape == (3,)
        assert task.action_space == ContinuousActions(shape=(1,), low=(-2.0,), high=(2.0,))
        task.reset(seed=0)
        result = task.step(torch.zeros(2, 1))
        assert result.observations.shape == (2, 3) and result.observations.dtype == torch.float32
        assert result.rewards.shape == (2,) and (result.rewards <= 0).all()
        task.close()

    def test_unsupported_observation_space_is_refused(self) -> None:
        """Blackjack's Tuple observations are refused, naming the space."""
        with pytest.raises(InvalidArgumentError, match=r"observation space Tuple\(Discrete"):
            GymTask("Blackjack-v1")

    def test_discrete_observations_are_numbers_to_embed(self) -> None:
        """FrozenLake's Discrete(16) observations are int64 numbers 0-15, declared in the
        task's observation_space so that models embed them."""
        task = GymTask("FrozenLake-v1", num_envs=2)
        assert task.observation_space == TensorSpace((), "int64", high=15)
        observations = task.reset(seed=0)
        assert isinstance(observations, torch.Tensor)
        assert observations.dtype == torch.int64 and observations.tolist() == [0, 0]
        task.close()

    @pytest.mark.parametrize(
        ("space", "named"),
        [
            (gymnasium.spaces.MultiBinary(3), r"MultiBinary\(3\)"),
            (gymnasium.spaces.MultiDiscrete([3, 2]), r"MultiDiscrete\(\[3 2\]\)"),
        ],
    )
    def test_unsupported_action_space_is_refused(
        self, echo_env_id: str, space: Any, named: str
    ) -> None:
        """MultiBinary and MultiDiscrete actions are refused, naming the space and the
        supported ones."""
        with pytest.raises(InvalidArgumentError, match=rf"action space {named}; GymTask supports"):
            GymTask(echo_env_id, env_kwargs={"action_space": space})


class TestActions:
    def test_box_actions_are_clipped_to_the_bounds(self, echo_env_id: str) -> None:
        """Out-of-bounds continuous actions reach the environment clipped."""
        bounds = np.array([[-1.0, 0.0], [1.0, 2.0]], dtype=np.float32)
        space = gymnasium.spaces.Box(low=bounds[0], high=bounds[1])
        task = GymTask(echo_env_id, num_envs=2, env_kwargs={"action_space": space})
        assert task.action_space == ContinuousActions(shape=(2,), low=(-1.0, 0.0), high=(1.0, 2.0))
        result = task.step(torch.tensor([[-5.0, 1.0], [0.5, 9.0]]))
        assert result.observations.tolist() == [[-1.0, 1.0], [0.5, 2.0]]

    def test_discrete_actions_count_from_zero(self, echo_env_id: str) -> None:
        """Action i reaches a Discrete(3, start=-1) environment as i - 1."""
        space = gymnasium.spaces.Discrete(3, start=-1)
        task = GymTask(echo_env_id, num_envs=3, env_kwargs={"action_space": space})
        assert task.action_space == DiscreteActions(3)
        result = task.step(torch.tensor([0, 1, 2]))
        assert result.observations.flatten().tolist() == [-1.0, 0.0, 1.0]

    def test_actions_of_the_wrong_shape_are_refused(self) -> None:
        """A (n, 1) batch of discrete actions is an error."""
        task = GymTask("CartPole-v1", num_envs=2)
        with pytest.raises(InvalidArgumentError, match=r"'actions' must have shape \(2,\)"):
            task.step(torch.zeros(2, 1, dtype=torch.int64))


class TestAutoreset:
    @pytest.mark.parametrize(
        "vectorization_mode", ["sync", pytest.param("async", marks=pytest.mark.slow)]
    )
    def test_termination_reports_final_observations(self, vectorization_mode: str) -> None:
        """A toppled pole's last observation is in final_observations; a new episode starts."""
        task = GymTask("CartPole-v1", num_envs=4, vectorization_mode=vectorization_mode)
        task.reset(seed=0)
        result = push_right_until_an_episode_ends(task)
        terminated = result.terminated
        last = result.final_observations[terminated]
        assert ((last[:, 0].abs() > 2.4) | (last[:, 2].abs() > 12 * math.pi / 180)).all()
        assert (result.observations[terminated].abs() <= 0.05).all()
        continuing = result.observations[~terminated]
        assert torch.equal(result.final_observations[~terminated], continuing)
        task.close()

    def test_truncation_reports_final_observations(self) -> None:
        """Pendulum truncates every environment at step 200 and reports the last observations."""
        task = GymTask("Pendulum-v1", num_envs=3)
        task.reset(seed=0)
        for _ in range(199):
            result = task.step(torch.zeros(3, 1))
            assert not result.truncated.any()
        result = task.step(torch.zeros(3, 1))
        assert result.truncated.all() and not result.terminated.any()
        assert not torch.equal(result.final_observations, result.observations)
        cos, sin = result.final_observations[:, 0], result.final_observations[:, 1]
        torch.testing.assert_close(cos**2 + sin**2, torch.ones(3))


class TestHiddenEntries:
    def test_pendulum_without_its_angular_velocity(self) -> None:
        """hide_observations removes entries from fresh and final observations alike (the
        zoo's PendulumNoVel), on the same trajectories as the fully observed task."""
        full = GymTask("Pendulum-v1", num_envs=2)
        hidden = GymTask("Pendulum-v1", num_envs=2, hide_observations=[2])
        assert hidden.observation_shape == (2,)
        assert torch.equal(hidden.reset(seed=4), full.reset(seed=4)[:, :2])
        for _ in range(200):  # through the truncation at step 200
            actions = torch.ones(2, 1)
            seen, shown = full.step(actions), hidden.step(actions)
            assert torch.equal(shown.observations, seen.observations[:, :2])
            assert torch.equal(shown.final_observations, seen.final_observations[:, :2])
        assert bool(shown.truncated.all())
        full.close()
        hidden.close()

    def test_the_expert_still_sees_every_entry(self) -> None:
        seen: list[torch.Tensor] = []

        def expert(observations: torch.Tensor) -> torch.Tensor:
            seen.append(observations)
            return (observations[:, 3] > 0).long()

        task = GymTask("CartPole-v1", num_envs=2, expert=expert, hide_observations=[1, 3])
        observations = task.reset(seed=0)
        task.expert_actions()
        assert observations.shape == (2, 2) and seen[-1].shape == (2, 4)
        assert torch.equal(seen[-1][:, [0, 2]], observations)
        task.close()

    def test_an_index_beyond_the_observation_is_refused(self) -> None:
        with pytest.raises(
            InvalidArgumentError,
            match=r"'hide_observations.0' must be the index of an entry of the 3-entry",
        ):
            GymTask("Pendulum-v1", num_envs=1, hide_observations=[3])


class TestExpert:
    def test_expert_sees_the_current_observations(self) -> None:
        """expert_actions() applies the callable to the observations of the last step."""
        seen: list[torch.Tensor] = []

        def lean_expert(observations: torch.Tensor) -> torch.Tensor:
            seen.append(observations)
            return (observations[:, 2] > 0).long()

        task = GymTask("CartPole-v1", num_envs=4, expert=lean_expert)
        assert task.has_expert
        task.reset(seed=0)
        result = task.step(torch.tensor([0, 1, 0, 1]))
        actions = task.expert_actions()
        assert torch.equal(seen[-1], result.observations)
        assert torch.equal(actions, (result.observations[:, 2] > 0).long())

    def test_no_expert_raises(self) -> None:
        """Without an expert, has_expert is False and expert_actions() raises."""
        task = GymTask("CartPole-v1", num_envs=1)
        assert not task.has_expert
        with pytest.raises(NotImplementedError, match="has no expert"):
            task.expert_actions()


class TestSeedingAndState:
    def trajectory(self, task: GymTask, steps: int) -> list[torch.Tensor]:
        """The observations of ``steps`` steps with alternating actions."""
        actions = torch.arange(task.num_envs) % 2
        return [task.step((actions + step) % 2).observations for step in range(steps)]

    def test_same_seed_same_trajectories(self) -> None:
        """Two tasks reset with the same seed step identically; another seed differs."""
        first, second = GymTask("CartPole-v1", num_envs=3), GymTask("CartPole-v1", num_envs=3)
        assert torch.equal(first.reset(seed=7), second.reset(seed=7))
        for a, b in zip(self.trajectory(first, 30), self.trajectory(second, 30), strict=True):
            assert torch.equal(a, b)
        assert not torch.equal(first.reset(seed=7), second.reset(seed=8))

    def test_state_dict_resumes_reproducibly(self) -> None:
        """Tasks loading one weights_only checkpoint restart identically, on new episodes."""
        task = GymTask("CartPole-v1", num_envs=3)
        task.reset(seed=0)
        self.trajectory(task, 5)
        buffer = io.BytesIO()
        torch.save(task.state_dict(), buffer)
        buffer.seek(0)
        state = torch.load(buffer, weights_only=True)
        assert state == {"seed": 0, "steps_taken": 5}

        resumed = [GymTask("CartPole-v1", num_envs=3) for _ in range(2)]
        for resumed_task in resumed:
            resumed_task.load_state_dict(state)
        first, second = (self.trajectory(resumed_task, 20) for resumed_task in resumed)
        for a, b in zip(first, second, strict=True):
            assert torch.equal(a, b)
        assert not torch.equal(first[0], self.trajectory(task, 1)[0])

    def test_close_twice_is_harmless(self) -> None:
        """close() may be called more than once."""
        task = GymTask("CartPole-v1", num_envs=1)
        task.close()
        task.close()


class TestArguments:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"num_envs": 0}, "'num_envs' must be >= 1 (got 0)."),
            (
                {"vectorization_mode": "threads"},
                "'vectorization_mode' must be one of ['sync', 'async'] (got 'threads').",
            ),
            ({"env_id": 3}, "'env_id' must be a string (got 3)."),
        ],
    )
    def test_bad_arguments_are_refused(self, kwargs: dict[str, Any], message: str) -> None:
        """Out-of-range arguments raise the project's validation message."""
        with pytest.raises(InvalidArgumentError) as error:
            GymTask(**{"env_id": "CartPole-v1", **kwargs})
        assert str(error.value) == message

    @pytest.mark.parametrize("env_id", ["CartPole-v9", "cartpole-v1", "CartPol-v1"])
    def test_unknown_env_id_suggests_close_matches(self, env_id: str) -> None:
        """An unknown id is refused with "did you mean 'CartPole-v1'"."""
        with pytest.raises(InvalidArgumentError) as error:
            GymTask(env_id)
        message = str(error.value)
        assert message.startswith(
            f"'env_id' is not a registered Gymnasium environment (got {env_id!r})."
        )
        assert "Did you mean 'CartPole-v1'" in message

    def test_module_prefixed_env_id_is_accepted(self) -> None:
        """'module:EnvId' imports the module, as gymnasium.make does."""
        task = GymTask("gymnasium.envs.classic_control:CartPole-v1", num_envs=1)
        assert task.observation_shape == (4,)


class TestImports:
    def test_missing_gymnasium_says_how_to_install_it(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without Gymnasium, building a GymTask names the pip extra to install."""
        monkeypatch.setitem(sys.modules, "gymnasium", None)
        with pytest.raises(ImportError, match=r'pip install "hydra-pipeline\[gym\]"'):
            GymTask("CartPole-v1")

    @pytest.mark.slow  # starts an interpreter
    def test_importing_the_tasks_does_not_import_gymnasium(self) -> None:
        """hydra_pipeline.tasks and GymTask import without loading Gymnasium."""
        code = (
            "import sys\nfrom hydra_pipeline.tasks import GymTask\n"
            "print('gymnasium' in sys.modules)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert result.stdout.strip() == "False"


SCORED_ENV_ID = "HydraPipelineTests/Scored-v0"


class ScoredEnv(gymnasium.Env[np.ndarray, Any]):
    """Ends every episode after 2 steps, with a numeric, a boolean, a text and a nested info
    entry at the end."""

    observation_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(1,))
    action_space = gymnasium.spaces.Discrete(2)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.steps = 0
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.steps += 1
        info: dict[str, Any] = {}
        if self.steps == 2:
            info = {"is_success": bool(action), "score": 0.5, "note": "x", "nested": {"a": 1}}
        return np.zeros(1, dtype=np.float32), 1.0, self.steps == 2, False, info


class TestEpisodeMetricsAndRendering:
    def test_numeric_infos_of_ended_episodes_are_episode_metrics(self) -> None:
        """At an episode's end its numeric info entries are reported; text and nested ones
        are not, and steps where no episode ends report none."""
        gymnasium.register(SCORED_ENV_ID, entry_point=ScoredEnv)
        try:
            task = GymTask(SCORED_ENV_ID, num_envs=2)
            assert task.step(torch.tensor([1, 0])).episode_metrics == {}
            metrics = task.step(torch.tensor([1, 0])).episode_metrics
            task.close()
        finally:
            del gymnasium.registry[SCORED_ENV_ID]
        assert set(metrics) == {"is_success", "score"}
        assert metrics["is_success"].tolist() == [1.0, 0.0]
        assert metrics["score"].tolist() == [0.5, 0.5]

    def test_rgb_array_pictures_of_the_first_environment(self) -> None:
        task = GymTask("CartPole-v1", num_envs=2)
        frame = task.render()
        task.close()
        assert frame.dtype == torch.uint8 and frame.shape == (400, 600, 3)
        assert task.render_fps == 50

    def test_an_environment_without_pictures_cannot_be_watched(self, echo_env_id: str) -> None:
        task = GymTask(echo_env_id, env_kwargs={"action_space": gymnasium.spaces.Discrete(2)})
        with pytest.raises(InvalidArgumentError, match="renders no 'rgb_array' pictures"):
            task.render()
        task.close()
