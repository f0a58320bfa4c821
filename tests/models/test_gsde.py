"""gSDE: when exploration matrices are drawn, the distribution's log-probabilities and
entropy against hand-computed values, its samples, the options, the models' use_sde, and
exact resume of a run that explores with it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from hydra_pipeline import InvalidArgumentError, PipelineStage, set_seed
from hydra_pipeline.engine import OnPolicyRunner
from hydra_pipeline.engine.acting import Actor
from hydra_pipeline.engine.checkpoint import CHECKPOINT_DIRECTORY, load_checkpoint
from hydra_pipeline.models import MLPActorCritic, RecurrentActorCritic
from hydra_pipeline.models.gsde import (
    ExplorationMatrices,
    StateDependentGaussian,
    StateDependentNoise,
)
from hydra_pipeline.tasks import ContinuousActions, DiscreteActions, StepResult
from tests.engine.test_runner import assert_same_weights, make_pipeline, weights

ACTIONS = ContinuousActions((2,), (-1.0, -1.0), (1.0, 1.0))


class TestExplorationMatrices:
    def test_drawn_every_sample_freq_draws(self) -> None:
        """With sample_freq 3, the matrices are drawn at draws 0, 3 and 6 and kept between."""
        exploration = ExplorationMatrices()
        std = torch.ones(4, 2)
        torch.manual_seed(0)
        drawn = [exploration.draw(std, 5, 3).clone() for _ in range(7)]
        assert drawn[0].shape == (5, 4, 2)
        same = [torch.equal(drawn[i], drawn[i - 1]) for i in range(1, 7)]
        assert same == [True, True, False, True, True, False]

    def test_once_per_rollout_with_minus_one(self) -> None:
        """sample_freq -1 keeps the matrices until restart() (the start of a rollout)."""
        exploration = ExplorationMatrices()
        std = torch.ones(4, 2)
        first = exploration.draw(std, 2, -1).clone()
        for _ in range(10):
            assert torch.equal(exploration.draw(std, 2, -1), first)
        exploration.restart()
        assert not torch.equal(exploration.draw(std, 2, -1), first)

    def test_new_batch_size_draws_anew(self) -> None:
        exploration = ExplorationMatrices()
        std = torch.ones(4, 2)
        exploration.draw(std, 2, -1)
        assert exploration.draw(std, 3, -1).shape == (3, 4, 2)

    def test_entries_have_the_learned_deviations(self) -> None:
        """Entry (j, k) of every matrix is N(0, std[j, k]^2)."""
        torch.manual_seed(1)
        std = torch.tensor([[0.5, 2.0], [1.0, 0.1]])
        matrices = ExplorationMatrices().draw(std, 20_000, -1)
        torch.testing.assert_close(matrices.std(dim=0), std, rtol=0.03, atol=0.0)
        torch.testing.assert_close(matrices.mean(dim=0), torch.zeros(2, 2), rtol=0, atol=0.04)

    def test_state_round_trip(self) -> None:
        exploration = ExplorationMatrices()
        exploration.draw(torch.ones(3, 1), 2, 4)
        exploration.draw(torch.ones(3, 1), 2, 4)
        copy = ExplorationMatrices()
        copy.load_state_dict(exploration.state_dict(), torch.device("cpu"))
        assert copy.draws == 2
        assert copy.matrices is not None and exploration.matrices is not None
        assert torch.equal(copy.matrices, exploration.matrices)
        # Both draw the same from here on (the third draw keeps the matrices).
        assert torch.equal(copy.draw(torch.ones(3, 1), 2, 4), exploration.matrices)


class TestStateDependentGaussian:
    def test_log_prob_and_entropy_by_hand(self) -> None:
        """Action k of a row has variance sum_j f_j^2 std_jk^2 (+ epsilon): with features
        (1, 2) and std ((1, 0.5), (0.5, 1)) the variances are 1 + 1 = 2 and 0.25 + 4 = 4.25."""
        mean = torch.tensor([[0.5, -1.0]])
        features = torch.tensor([[1.0, 2.0]])
        std = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
        distribution = StateDependentGaussian(mean, features, std, -1, epsilon=0.0)
        action = torch.tensor([[1.5, 0.0]])
        variances = (2.0, 4.25)
        expected = sum(
            -0.5 * (a - m) ** 2 / v - 0.5 * math.log(2 * math.pi * v)
            for a, m, v in zip((1.5, 0.0), (0.5, -1.0), variances, strict=True)
        )
        assert float(distribution.log_prob(action)) == pytest.approx(expected, rel=1e-6)
        entropy = sum(0.5 * math.log(2 * math.pi * math.e * v) for v in variances)
        assert float(distribution.entropy()) == pytest.approx(entropy, rel=1e-6)
        assert torch.equal(distribution.mode(), mean)

    def test_samples_through_the_matrices(self) -> None:
        """sample_with gives mean + features @ matrix, row by row, and its actions spread as
        the log-probabilities say."""
        torch.manual_seed(2)
        rows = 4_000
        mean = torch.zeros(rows, 2)
        features = torch.tensor([[1.0, 2.0]]).expand(rows, 2)
        std = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
        distribution = StateDependentGaussian(mean, features, std, -1, epsilon=0.0)
        exploration = ExplorationMatrices()
        actions = distribution.sample_with(exploration)
        assert exploration.matrices is not None
        expected = torch.bmm(features.unsqueeze(1), exploration.matrices).squeeze(1)
        torch.testing.assert_close(actions, expected)
        torch.testing.assert_close(actions.var(dim=0), torch.tensor([2.0, 4.25]), rtol=0.06, atol=0)

    def test_noise_is_smooth_between_draws(self) -> None:
        """Between two draws the noise is a fixed linear function of the features: the same
        features give the same action."""
        noise = StateDependentNoise(3, (1,), sample_freq=-1)
        features = torch.tensor([[0.2, -0.4, 0.9]])
        exploration = ExplorationMatrices()
        first = noise.distribution(torch.zeros(1, 1), features).sample_with(exploration)
        again = noise.distribution(torch.zeros(1, 1), features).sample_with(exploration)
        assert torch.equal(first, again)


class TestStateDependentNoise:
    def test_full_std_shapes(self) -> None:
        assert StateDependentNoise(5, (3,)).log_std.shape == (5, 3)
        shared = StateDependentNoise(5, (3,), full_std=False, initial_log_std=-1.0)
        assert shared.log_std.shape == (5, 1)
        torch.testing.assert_close(shared.std(), torch.full((5, 3), math.exp(-1.0)))

    def test_expln(self) -> None:
        """expln: exp(x) up to 0, log(1 + x) + 1 above, with finite gradients everywhere."""
        noise = StateDependentNoise(3, (1,), use_expln=True)
        with torch.no_grad():
            noise.log_std.copy_(torch.tensor([[-1.0], [0.0], [2.0]]))
        std = noise.std()
        torch.testing.assert_close(
            std.flatten(), torch.tensor([math.exp(-1.0), 1.0, math.log(3.0) + 1.0])
        )
        std.sum().backward()
        assert noise.log_std.grad is not None and torch.isfinite(noise.log_std.grad).all()

    @pytest.mark.parametrize("learn_features", [False, True])
    def test_learn_features(self, learn_features: bool) -> None:
        """Only with learn_features does the log-probability's gradient reach the features."""
        noise = StateDependentNoise(3, (2,), learn_features=learn_features)
        features = torch.randn(4, 3, requires_grad=True)
        distribution = noise.distribution(torch.zeros(4, 2), features)
        distribution.log_prob(torch.ones(4, 2)).sum().backward()
        assert (features.grad is not None) is learn_features
        assert noise.log_std.grad is not None

    def test_sample_freq_zero_is_refused(self) -> None:
        with pytest.raises(InvalidArgumentError, match="'sde_sample_freq' must be a number"):
            StateDependentNoise(3, (1,), sample_freq=0)


class TestMLPActorCritic:
    def test_use_sde(self) -> None:
        """use_sde: the noise reads the actor's last hidden layer; no state-independent
        log_std; the mean is the usual head's."""
        torch.manual_seed(0)
        model = MLPActorCritic((3,), ACTIONS, hidden_sizes=(8, 6), use_sde=True, sde_sample_freq=4)
        assert model.log_std is None and model.noise is not None
        assert model.noise.log_std.shape == (6, 2) and model.noise.sample_freq == 4
        observations = torch.randn(5, 3)
        output = model(observations)
        assert isinstance(output.distribution, StateDependentGaussian)
        assert output.distribution.features.shape == (5, 6)
        torch.testing.assert_close(output.distribution.mean, model.actor(observations))

    def test_discrete_actions_are_refused(self) -> None:
        with pytest.raises(InvalidArgumentError, match="'use_sde' applies to continuous actions"):
            MLPActorCritic((3,), DiscreteActions(2), use_sde=True)

    def test_the_actor_draws_matrices_per_environment(self) -> None:
        """An Actor acting stochastically keeps one matrix per environment, drawn anew every
        sde_sample_freq acts and after restart_exploration; acting deterministically takes
        the mean and draws nothing."""
        torch.manual_seed(0)
        model = MLPActorCritic((3,), ACTIONS, hidden_sizes=(8,), use_sde=True, sde_sample_freq=2)
        actor = Actor(model, ACTIONS, torch.device("cpu"))
        observations = torch.randn(4, 3)
        actions, output = actor.act(observations, deterministic=True)
        assert torch.equal(actions, output.distribution.mode()) and actor.exploration.draws == 0
        first, _ = actor.act(observations)
        second, _ = actor.act(observations)
        third, _ = actor.act(observations)
        assert actor.exploration.matrices is not None
        assert actor.exploration.matrices.shape == (4, 8, 2)
        assert torch.equal(first, second) and not torch.equal(second, third)
        actor.restart_exploration()
        assert not torch.equal(actor.act(observations)[0], third)


class TestRecurrentActorCritic:
    def test_use_sde(self) -> None:
        """use_sde on a model with memory: the noise reads the actor head's last hidden layer
        after the core, and the actor draws one matrix per environment while its memory
        carries on."""
        torch.manual_seed(0)
        model = RecurrentActorCritic(
            (3,), ACTIONS, hidden_size=8, head_hidden_sizes=(6,), use_sde=True, sde_sample_freq=2
        )
        assert model.log_std is None and model.noise is not None
        assert model.noise.log_std.shape == (6, 2)
        memory, starts = model.initial_memory(4), torch.zeros(3, 4, dtype=torch.bool)
        output, _ = model(torch.randn(12, 3), memory, starts)
        assert isinstance(output.distribution, StateDependentGaussian)
        assert output.distribution.features.shape == (12, 6)
        actor = Actor(model, ACTIONS, torch.device("cpu"))
        observations = torch.randn(4, 3)
        actor.act(observations)
        assert actor.exploration.matrices is not None
        assert actor.exploration.matrices.shape == (4, 6, 2)
        assert actor.memory is not None and bool(actor.memory.any())

    def test_discrete_actions_are_refused(self) -> None:
        with pytest.raises(InvalidArgumentError, match="'use_sde' applies to continuous actions"):
            RecurrentActorCritic((3,), DiscreteActions(2), use_sde=True)


class DriftTask:
    """Two points on a line pushed by 1-dimensional actions in [-1, 1], rewarded for staying
    near 0, in 5-step episodes starting at random places; its state saves exactly."""

    num_envs = 2
    observation_shape = (2,)
    action_space = ContinuousActions((1,), (-1.0,), (1.0,))
    has_expert = False

    def __init__(self) -> None:
        self.generator = torch.Generator().manual_seed(0)
        self.position = torch.zeros(2)
        self.steps = torch.zeros(2)

    def _observations(self) -> torch.Tensor:
        return torch.stack((self.position, self.steps / 5), dim=-1)

    def reset(self, *, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        self.position = torch.rand(2, generator=self.generator) * 2 - 1
        self.steps = torch.zeros(2)
        return self._observations()

    def step(self, actions: torch.Tensor) -> StepResult:
        self.position = self.position + 0.3 * actions[:, 0]
        self.steps += 1
        rewards = -self.position.square()
        truncated = self.steps >= 5
        final = self._observations()
        fresh = torch.rand(2, generator=self.generator) * 2 - 1
        self.position = torch.where(truncated, fresh, self.position)
        self.steps = torch.where(truncated, 0.0, self.steps)
        return StepResult(self._observations(), rewards, torch.zeros(2, dtype=torch.bool),
                          truncated, final)  # fmt: skip

    def expert_actions(self) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "position": self.position.clone(),
                "steps": self.steps.clone()}  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.position, self.steps = state["position"].clone(), state["steps"].clone()

    def close(self) -> None:
        pass


def gsde_runner(output_dir: Path, save_interval: int | None, memory: bool) -> OnPolicyRunner:
    """PPO with gSDE on a task whose state saves exactly, new matrices every 3 steps of
    8-step rollouts (so rollouts end between two draws), checkpoints every rollout; with
    ``memory``, of a GRU model."""
    set_seed(3)
    task = DriftTask()
    model: torch.nn.Module
    if memory:
        model = RecurrentActorCritic(
            task.observation_shape, task.action_space, hidden_size=8, use_sde=True,
            sde_sample_freq=3,
        )  # fmt: skip
    else:
        model = MLPActorCritic(
            task.observation_shape, task.action_space, hidden_sizes=(8,), use_sde=True,
            sde_sample_freq=3,
        )  # fmt: skip
    pipeline = make_pipeline([PipelineStage(["ppo"], 96)], num_steps=8, save_interval=save_interval)
    return OnPolicyRunner(
        pipeline, task, model, output_dir=output_dir, seed=3, tensorboard=False,
        progress_bar=False,
    )  # fmt: skip


class TestResume:
    def test_an_actor_continues_with_its_saved_matrices(self) -> None:
        """An actor restored from another's state acts with that actor's matrices: the next
        actions are the same, with no draw in between."""
        torch.manual_seed(0)
        model = MLPActorCritic((3,), ACTIONS, hidden_sizes=(8,), use_sde=True)
        observations = torch.randn(4, 3)
        actor = Actor(model, ACTIONS, torch.device("cpu"))
        actor.act(observations)
        copy = Actor(model, ACTIONS, torch.device("cpu"))
        copy.load_state_dict(actor.state_dict())
        torch.manual_seed(1)  # a draw would use other numbers than the first did
        assert torch.equal(copy.act(observations)[0], actor.act(observations)[0])

    @pytest.mark.parametrize("memory", [False, True], ids=["mlp", "gru"])
    def test_resume_from_every_checkpoint_is_exact(self, tmp_path: Path, memory: bool) -> None:
        """A run exploring with gSDE, resumed from any of its checkpoints (which hold the
        matrices, the draws since they were drawn and the random generators that draw the
        next), ends bitwise equal to the uninterrupted run, with memory or without."""
        whole = gsde_runner(tmp_path / "whole", None, memory)
        expected = whole.run()
        saving = gsde_runner(tmp_path / "saving", 16, memory)
        saving.run()
        checkpoints = sorted((tmp_path / "saving" / CHECKPOINT_DIRECTORY).iterdir())
        assert len(checkpoints) == 6
        acting: dict[str, Any] = load_checkpoint(checkpoints[0])["ranks"][0]["acting"]
        assert acting["exploration"]["matrices"].shape == (2, 8, 1)
        assert acting["exploration"]["draws"] == 8
        for index, checkpoint in enumerate(checkpoints[:-1]):
            resumed = gsde_runner(tmp_path / str(index), 16, memory)
            resumed.resume(checkpoint)
            summary = resumed.run()
            assert_same_weights(weights(resumed), weights(whole))
            assert summary.final_metrics == expected.final_metrics
