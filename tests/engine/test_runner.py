"""OnPolicyRunner: trains a real CartPoleTask through a TrainingPipeline's stages.

Every run here is tiny (a few environments, rollouts of a few steps, an MLP with one hidden
layer of 8 units), so each test takes a fraction of a second.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from hydra_pipeline import (
    Builder,
    CheckpointError,
    EarlyStoppingCriterion,
    InvalidArgumentError,
    LinearDecay,
    OffPolicyPipelineComponent,
    PipelineStage,
    RolloutBlockStorage,
    ScalarMeanTracker,
    StageComponent,
    ThresholdEarlyStopping,
    TrainingPipeline,
    TrainingSettings,
    set_seed,
)
from hydra_pipeline.engine import A2C, PPO, Imitation, Minibatch, OnPolicyRunner
from hydra_pipeline.engine.advantages import compute_returns
from hydra_pipeline.engine.callbacks import Callback
from hydra_pipeline.engine.checkpoint import CHECKPOINT_DIRECTORY, load_checkpoint, save_checkpoint
from hydra_pipeline.engine.evaluation import Evaluator
from hydra_pipeline.engine.learner import clip_gradients
from hydra_pipeline.errors import TrainingInterrupted
from hydra_pipeline.models import ActorCriticOutput, Categorical, MLPActorCritic
from hydra_pipeline.tasks import (
    CartPoleTask,
    ContinuousActions,
    ExpertDemonstrations,
    StepResult,
    Task,
)

GAMMA = 0.99


# --------------------------------------------------------------------------------------------
# Helpers: pipelines, runners, spies


def make_pipeline(
    stages: list[PipelineStage],
    *,
    named_losses: Mapping[str, Any] | None = None,
    num_steps: int = 4,
    num_mini_batch: int = 1,
    update_repeats: int = 1,
    save_interval: int | None = None,
    metric_accumulate_interval: int = 1,
    advance_scene_rollout_period: int | None = None,
    lr_scheduler_builder: Any = None,
    optimizer_builder: Any = None,
) -> TrainingPipeline:
    return TrainingPipeline(
        named_losses=dict(named_losses or {"ppo": PPO()}),
        pipeline_stages=stages,
        optimizer_builder=optimizer_builder or Builder(torch.optim.Adam, {"lr": 1e-3}),
        num_mini_batch=num_mini_batch,
        update_repeats=update_repeats,
        max_grad_norm=0.5,
        num_steps=num_steps,
        gamma=GAMMA,
        use_gae=True,
        gae_lambda=0.95,
        advance_scene_rollout_period=advance_scene_rollout_period,
        save_interval=save_interval,
        metric_accumulate_interval=metric_accumulate_interval,
        lr_scheduler_builder=lr_scheduler_builder,
    )


def make_runner(
    output_dir: Path,
    pipeline: TrainingPipeline,
    *,
    task: Task | None = None,
    num_envs: int = 2,
    max_episode_steps: int = 500,
    seed: int = 0,
    tensorboard: bool = False,
    wrap_model: Callable[[nn.Module], nn.Module] | None = None,
    evaluator_for: Callable[[nn.Module], Evaluator] | None = None,
    **options: Any,
) -> OnPolicyRunner:
    """A runner built as the app builds one: seed, task, then the model (``options``: more
    of the runner's keyword arguments; ``evaluator_for`` makes its evaluator for the model)."""
    set_seed(seed)
    task = task if task is not None else CartPoleTask(num_envs, max_episode_steps)
    model: nn.Module = MLPActorCritic(task.observation_shape, task.action_space, hidden_sizes=(8,))
    if wrap_model is not None:
        model = wrap_model(model)
    if evaluator_for is not None:
        options["evaluator"] = evaluator_for(model)
    return OnPolicyRunner(
        pipeline,
        task,
        model,
        output_dir=output_dir,
        seed=seed,
        tensorboard=tensorboard,
        progress_bar=False,
        **options,
    )


def constant(probability: float) -> LinearDecay:
    return LinearDecay(steps=1, startp=probability, endp=probability)


class SpyCartPole(CartPoleTask):
    """A CartPoleTask that records resets, expert answers and steps.

    With ``random_rewards``, rewards are uniform in [0, 1) instead of 1, so episode returns
    differ from episode lengths.
    """

    def __init__(
        self, num_envs: int, max_episode_steps: int = 500, random_rewards: bool = False
    ) -> None:
        self.resets: list[int | None] = []
        self.reset_observations: list[torch.Tensor] = []
        self.expert_calls: list[torch.Tensor] = []
        self.actions: list[torch.Tensor] = []
        self.results: list[StepResult] = []
        self.random_rewards = random_rewards
        self.reward_generator = torch.Generator().manual_seed(99)
        super().__init__(num_envs, max_episode_steps)

    def reset(self, *, seed: int | None = None) -> torch.Tensor:
        self.resets.append(seed)
        observations = super().reset(seed=seed)
        self.reset_observations.append(observations.clone())
        return observations

    def expert_actions(self) -> torch.Tensor:
        actions = super().expert_actions()
        self.expert_calls.append(actions.clone())
        return actions

    def step(self, actions: torch.Tensor) -> StepResult:
        self.actions.append(actions.clone())
        result = super().step(actions)
        if self.random_rewards:
            result = result._replace(
                rewards=torch.rand(self.num_envs, generator=self.reward_generator)
            )
        self.results.append(result)
        return result


class NoExpertCartPole(CartPoleTask):
    has_expert = False

    def expert_actions(self) -> torch.Tensor:
        raise NotImplementedError("no expert")


class RecordingCategorical(Categorical):
    def __init__(self, logits: torch.Tensor, samples: list[torch.Tensor]) -> None:
        super().__init__(logits)
        self.samples = samples

    def sample(self) -> torch.Tensor:
        actions = super().sample()
        self.samples.append(actions.clone())
        return actions


class SamplingSpy(nn.Module):
    """Wraps a model; remembers every action its policy sampled."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.samples: list[torch.Tensor] = []

    def forward(self, observations: torch.Tensor) -> ActorCriticOutput:
        output: ActorCriticOutput = self.inner(observations)
        assert isinstance(output.distribution, Categorical)
        return ActorCriticOutput(
            RecordingCategorical(output.distribution.logits, self.samples), output.values
        )


class CountingLoss:
    """Wraps a loss; remembers the step count and batch of every call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.needs_expert_actions = inner.needs_expert_actions
        self.calls: list[tuple[int, Minibatch]] = []

    def __call__(
        self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput
    ) -> tuple[torch.Tensor, dict[str, float]]:
        self.calls.append((step_count, batch))
        result: tuple[torch.Tensor, dict[str, float]] = self.inner(
            step_count=step_count, batch=batch, output=output
        )
        return result

    @property
    def step_counts(self) -> list[int]:
        return [step for step, _ in self.calls]


class RecordingCriterion(EarlyStoppingCriterion):
    """Never stops; remembers what every call received."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self, stage_steps: int, total_steps: int, training_metrics: ScalarMeanTracker
    ) -> bool:
        self.calls.append(
            {
                "stage_steps": stage_steps,
                "total_steps": total_steps,
                "means": training_metrics.means(),
                "counts": training_metrics.counts(),
            }
        )
        return False


class TrainingLogs(Callback):
    """Remembers the training metrics of every metric point."""

    def __init__(self) -> None:
        self.points: list[dict[str, float]] = []

    def on_log(self, *, mode: str, metrics: Mapping[str, float], **_: Any) -> None:
        if mode == "train":
            self.points.append(dict(metrics))


class NumberedBatches:
    """An off-policy data source: each call is an iterator over two small batches whose
    observations are filled with ``10 * build + index``."""

    def __init__(self) -> None:
        self.builds = 0

    def __call__(self) -> Iterator[dict[str, torch.Tensor]]:
        build = self.builds
        self.builds += 1
        return iter(
            {
                "observations": torch.full((3, 4), float(10 * build + index)),
                "expert_actions": torch.tensor([0, 1, 0]),
            }
            for index in range(2)
        )


def checkpoint_files(output_dir: Path) -> list[str]:
    folder = output_dir / CHECKPOINT_DIRECTORY
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def weights(runner: OnPolicyRunner) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in runner.model.state_dict().items()}


def assert_same_weights(first: Mapping[str, torch.Tensor], second: Mapping[str, torch.Tensor]):
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def read_summary(output_dir: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((output_dir / "summary.json").read_text())
    return summary


# --------------------------------------------------------------------------------------------


class TestFit:
    def test_more_minibatches_than_environments(self, tmp_path: Path) -> None:
        """num_mini_batch above num_envs is refused: minibatches split the environments."""
        pipeline = make_pipeline([PipelineStage(["ppo"], 8)], num_mini_batch=3)
        with pytest.raises(
            InvalidArgumentError,
            match=r"'num_mini_batch' must be <= the task's num_envs \(2\), because minibatches "
            r"split the environments \(got 3\)",
        ):
            make_runner(tmp_path, pipeline, num_envs=2)

    def test_as_many_minibatches_as_environments(self, tmp_path: Path) -> None:
        """num_mini_batch equal to num_envs trains, one environment per minibatch."""
        loss = CountingLoss(PPO())
        pipeline = make_pipeline(
            [PipelineStage(["ppo"], 8)], named_losses={"ppo": loss}, num_mini_batch=2
        )
        make_runner(tmp_path, pipeline, num_envs=2).run()
        assert [batch.observations.shape[0] for _, batch in loss.calls] == [4, 4]

    def test_expert_needed_without_expert(self, tmp_path: Path) -> None:
        """A stage with teacher forcing or an imitation loss needs a task with an expert."""
        pipeline = make_pipeline(
            [
                PipelineStage(["ppo"], 8),
                PipelineStage(["ppo", "imitation"], 8, teacher_forcing=constant(0.5)),
            ],
            named_losses={"ppo": PPO(), "imitation": Imitation()},
        )
        with pytest.raises(
            InvalidArgumentError,
            match=r"'pipeline_stages.1' uses \['teacher_forcing', 'imitation'\], which need "
            r"expert actions, but the task has no expert \(got \['ppo', 'imitation'\]\)\. Train "
            r"with PPO alone \(pipeline=ppo\), use a task with an expert",
        ):
            make_runner(tmp_path, pipeline, task=NoExpertCartPole(2))

    def test_imitation_alone_without_expert(self, tmp_path: Path) -> None:
        """An imitation loss alone is enough to need an expert."""
        pipeline = make_pipeline([PipelineStage(["bc"], 8)], named_losses={"bc": Imitation()})
        with pytest.raises(InvalidArgumentError, match=r"uses \['bc'\], which need expert"):
            make_runner(tmp_path, pipeline, task=NoExpertCartPole(2))


class TestRollout:
    def test_single_environment_single_step(self, tmp_path: Path) -> None:
        """One environment and rollouts of one step train to finite weights with PPO."""
        pipeline = make_pipeline([PipelineStage(["ppo"], 3)], num_steps=1)
        runner = make_runner(tmp_path, pipeline, num_envs=1)
        summary = runner.run()
        assert summary.total_steps == 3
        assert all(bool(torch.isfinite(w).all()) for w in weights(runner).values())
        assert math.isfinite(summary.final_metrics["ppo/action"])

    def test_storage_holds_the_rollout(self, tmp_path: Path) -> None:
        """With a frozen model, the stored values, log-probs, bootstrapped rewards and returns
        agree with the model and with compute_returns on the stored rollout."""
        pipeline = make_pipeline(
            [PipelineStage(["ppo"], 8)],
            optimizer_builder=Builder(torch.optim.SGD, {"lr": 0.0}),
        )
        task = SpyCartPole(2, max_episode_steps=3)
        runner = make_runner(tmp_path, pipeline, task=task)
        runner.run()
        storage, model = runner.collector.storage, runner.model
        with torch.no_grad():
            output = model(storage.observations.flatten(0, 1))
            values = output.values.view(4, 2)
            log_probs = output.distribution.log_prob(storage.actions.flatten()).view(4, 2)
            final_values = model(task.results[-2].final_observations).values
            next_values = model(runner.collector.stepper.observations).values
        torch.testing.assert_close(storage.values, values)
        torch.testing.assert_close(storage.log_probs, log_probs)
        assert torch.equal(torch.stack(task.actions), storage.actions)
        # Episodes of 3 steps: truncated (not terminated) at step 2, bootstrapped there only.
        assert storage.truncated.tolist() == [[False] * 2, [False] * 2, [True] * 2, [False] * 2]
        assert not bool(storage.terminated.any())
        expected_rewards = torch.ones(4, 2)
        expected_rewards[2] += GAMMA * final_values
        torch.testing.assert_close(storage.rewards, expected_rewards)
        expected_returns = compute_returns(
            expected_rewards,
            values,
            storage.truncated,
            next_values,
            gamma=GAMMA,
            use_gae=True,
            gae_lambda=0.95,
        )
        torch.testing.assert_close(storage.returns, expected_returns)
        torch.testing.assert_close(storage.advantages, expected_returns - values)
        # The episode metrics use the task's rewards, not the bootstrapped ones.
        assert runner.statistics.latest_metrics["reward"] == 3.0
        assert runner.statistics.latest_metrics["episode_length"] == 3.0

    def test_continuous_actions_are_clipped_for_the_task_only(self, tmp_path: Path) -> None:
        """Continuous actions reach the task clipped to its bounds; storage keeps the samples."""
        task = BoundedTask()
        pipeline = make_pipeline([PipelineStage(["ppo"], 8)])
        set_seed(0)
        model = MLPActorCritic((2,), task.action_space, hidden_sizes=(8,), initial_log_std=1.0)
        runner = OnPolicyRunner(
            pipeline, task, model, output_dir=tmp_path, tensorboard=False, progress_bar=False
        )
        runner.run()
        sent = torch.stack(task.received)
        assert sent.shape == (4, 2, 2)
        low, high = torch.tensor([-0.1, -2.0]), torch.tensor([0.1, 2.0])
        assert bool(((sent >= low) & (sent <= high)).all())
        stored = runner.collector.storage.actions
        assert float(stored[..., 0].abs().max()) > 0.1  # the samples themselves are unbounded
        expected = torch.stack(
            (stored[..., 0].clamp(-0.1, 0.1), stored[..., 1].clamp(-2.0, 2.0)), dim=-1
        )
        assert torch.equal(sent, expected)


class BoundedTask:
    """Two environments with 2-dimensional actions in [-0.1, 0.1] x [-2, 2]."""

    num_envs = 2
    observation_shape = (2,)
    action_space = ContinuousActions((2,), (-0.1, -2.0), (0.1, 2.0))
    has_expert = False

    def __init__(self) -> None:
        self.received: list[torch.Tensor] = []

    def reset(self, *, seed: int | None = None) -> torch.Tensor:
        return torch.zeros(2, 2)

    def step(self, actions: torch.Tensor) -> StepResult:
        self.received.append(actions.clone())
        false = torch.zeros(2, dtype=torch.bool)
        return StepResult(
            torch.zeros(2, 2), -actions.square().sum(-1), false, false, torch.zeros(2, 2)
        )

    def expert_actions(self) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None

    def close(self) -> None:
        pass


class TestTeacherForcing:
    def run_forced(self, tmp_path: Path, probability: float) -> tuple[OnPolicyRunner, SpyCartPole]:
        task = SpyCartPole(3)
        pipeline = make_pipeline(
            [PipelineStage(["ppo"], 24, teacher_forcing=constant(probability))]
        )
        runner = make_runner(tmp_path, pipeline, task=task, wrap_model=SamplingSpy)
        runner.run()
        return runner, task

    def test_probability_one_acts_as_the_expert(self, tmp_path: Path) -> None:
        """At probability 1 every action sent and stored is the expert's."""
        runner, task = self.run_forced(tmp_path, 1.0)
        assert len(task.actions) == len(task.expert_calls) == 8
        for sent, expert in zip(task.actions, task.expert_calls, strict=True):
            assert torch.equal(sent, expert)
        assert torch.equal(
            runner.collector.storage.actions, runner.collector.storage.expert_actions
        )
        assert torch.equal(runner.collector.storage.actions, torch.stack(task.expert_calls[-4:]))
        # The policy itself disagreed with the expert somewhere, so forcing did something.
        samples = runner.model.samples  # type: ignore[union-attr]
        assert any(not torch.equal(s, e) for s, e in zip(samples, task.expert_calls, strict=True))
        assert runner.statistics.latest_metrics["teacher_forcing"] == 1.0
        assert runner.statistics.latest_metrics["teacher_forcing_sampled"] == 1.0

    def test_probability_zero_keeps_the_policy(self, tmp_path: Path) -> None:
        """At probability 0 the policy's samples are sent; expert actions are still recorded."""
        runner, task = self.run_forced(tmp_path, 0.0)
        samples = runner.model.samples  # type: ignore[union-attr]
        assert len(samples) == len(task.actions) == 8
        for sent, sampled in zip(task.actions, samples, strict=True):
            assert torch.equal(sent, sampled)
        assert torch.equal(
            runner.collector.storage.expert_actions, torch.stack(task.expert_calls[-4:])
        )
        assert not torch.equal(
            runner.collector.storage.actions, runner.collector.storage.expert_actions
        )
        assert runner.statistics.latest_metrics["teacher_forcing"] == 0.0
        assert runner.statistics.latest_metrics["teacher_forcing_sampled"] == 0.0

    def test_schedule_runs_on_stage_steps(self, tmp_path: Path) -> None:
        """The probability is the schedule at the stage's step count of each step."""
        pipeline = make_pipeline(
            [
                PipelineStage(["ppo"], 8),
                PipelineStage(["ppo"], 24, teacher_forcing=LinearDecay(steps=32)),
            ]
        )
        runner = make_runner(tmp_path, pipeline, num_envs=2)
        runner.run()
        # Last rollout of stage 1: stage steps 16, 18, 20, 22 -> 1 - s/32, averaged.
        expected = sum(1 - s / 32 for s in (16, 18, 20, 22)) / 4
        assert runner.statistics.latest_metrics["teacher_forcing"] == pytest.approx(expected)

    def test_no_expert_calls_without_need(self, tmp_path: Path) -> None:
        """A stage without teacher forcing or imitation never asks the expert."""
        task = SpyCartPole(2)
        runner = make_runner(tmp_path, make_pipeline([PipelineStage(["ppo"], 16)]), task=task)
        runner.run()
        assert task.expert_calls == []
        assert "teacher_forcing" not in runner.statistics.latest_metrics


class TestStageSteps:
    def test_overshoot_skip_and_stage_step_counts(self, tmp_path: Path) -> None:
        """A stage ends on whole rollouts: ceil(max / (T*N)) * T*N steps; max 0 skips the
        stage; total steps sum the stages; losses see the stage's step count."""
        num_steps, num_envs = 4, 3
        per_rollout = num_steps * num_envs
        maxima = [30, 0, 12, 13]
        losses = {name: CountingLoss(PPO()) for name in ("first", "skipped", "third", "fourth")}
        stages = [
            PipelineStage([name], maximum) for name, maximum in zip(losses, maxima, strict=True)
        ]
        pipeline = make_pipeline(
            stages, named_losses=losses, num_steps=num_steps, num_mini_batch=3, update_repeats=2
        )
        task = SpyCartPole(num_envs)
        summary = make_runner(tmp_path, pipeline, task=task).run()
        expected = [math.ceil(m / per_rollout) * per_rollout for m in maxima]
        assert expected == [36, 0, 12, 24]
        assert [stage.steps for stage in summary.stages] == expected
        assert summary.total_steps == sum(expected) == pipeline.total_steps
        assert len(task.actions) == sum(expected) // num_envs
        assert [stage.early_stopped for stage in summary.stages] == [False] * 4
        # 3 minibatches x 2 epochs per rollout, each minibatch one environment's 4 steps.
        for name, steps in zip(losses, expected, strict=True):
            rollouts = steps // per_rollout
            counts = [per_rollout * (r + 1) for r in range(rollouts) for _ in range(6)]
            assert losses[name].step_counts == counts, name
            assert all(batch.observations.shape[0] == 4 for _, batch in losses[name].calls)

    def test_exact_multiple_does_not_overshoot(self, tmp_path: Path) -> None:
        """A max that is a multiple of T*N is reached exactly."""
        summary = make_runner(tmp_path, make_pipeline([PipelineStage(["ppo"], 16)])).run()
        assert summary.total_steps == 16


class TestEarlyStopping:
    def test_the_stop_is_recorded_with_the_numbers_it_was_decided_on(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A stage stopped by a threshold on reward records the step count, the metric and the
        values it decided on: the return over the stage's last episodes, the same number the
        stage's last metric point logged (and, for the last stage, summary.json's final
        return), which reached the threshold; the console says so."""
        pipeline = make_pipeline(
            [
                PipelineStage(
                    ["ppo"], 800, early_stopping_criterion=ThresholdEarlyStopping("reward", 9.0)
                ),
                PipelineStage(
                    ["ppo"], 800, early_stopping_criterion=ThresholdEarlyStopping("reward", 9.0)
                ),
            ],
            metric_accumulate_interval=8,
        )
        logs = TrainingLogs()
        with caplog.at_level("INFO", logger="hydra_pipeline"):
            runner = make_runner(
                tmp_path, pipeline, max_episode_steps=10, callbacks=[logs], return_window=3
            )
            summary = runner.run()
        for stage in summary.stages:
            stop = stage.early_stop
            assert stage.early_stopped and stop is not None and stop["metric"] == "reward"
            assert stop["metrics"]["reward"] >= 9.0 and stop["counts"]["reward"] <= 3
        first, last = summary.stages[0].early_stop, summary.stages[1].early_stop
        assert first is not None and last is not None
        assert first["metrics"] in logs.points and logs.points[-1] == last["metrics"]
        assert summary.final_metrics == last["metrics"]
        assert summary.final_counts == last["counts"]
        assert read_summary(tmp_path)["stages"][1]["early_stop"] == last
        reward, count = last["metrics"]["reward"], last["counts"]["reward"]
        assert (
            f"Stage 2 done after {summary.stages[1].steps} steps: early stopping criterion met "
            f"at reward {reward:.2f} (mean of the stage's last {count} episodes)"
        ) in caplog.text
        assert f"final mean episode return {reward:.2f} (mean of the last {count} episodes" in (
            caplog.text
        )

    def test_threshold_on_reward_ends_stage(self, tmp_path: Path) -> None:
        """ThresholdEarlyStopping on reward ends the stage at the first metric point with a
        finished episode; the next stage then runs."""
        pipeline = make_pipeline(
            [
                PipelineStage(
                    ["ppo"], 800, early_stopping_criterion=ThresholdEarlyStopping("reward", 1.0)
                ),
                PipelineStage(["ppo"], 8),
            ]
        )
        summary = make_runner(tmp_path, pipeline, max_episode_steps=5).run()
        # Rollout 1 covers environment steps 1-4: no episode ends (CartPole cannot fall that
        # fast), so no reward is recorded. Rollout 2 covers step 5, where episodes are cut.
        assert summary.stages[0].early_stopped is True
        assert summary.stages[0].steps == 16 < 800
        assert summary.stages[1].early_stopped is False
        assert summary.stages[1].steps == 8
        assert summary.total_steps == 24
        assert read_summary(tmp_path)["stages"][0]["early_stopped"] is True

    def test_unreachable_threshold_runs_to_max(self, tmp_path: Path) -> None:
        """A threshold never reached lets the stage run its max_stage_steps."""
        criterion = ThresholdEarlyStopping("reward", 1e9)
        pipeline = make_pipeline([PipelineStage(["ppo"], 32, early_stopping_criterion=criterion)])
        summary = make_runner(tmp_path, pipeline, max_episode_steps=5).run()
        assert summary.stages[0].early_stopped is False and summary.stages[0].steps == 32

    def test_criterion_sees_the_return_window_and_the_losses_since_previous_call(
        self, tmp_path: Path
    ) -> None:
        """At each metric point the criterion sees the return and length of the stage's last
        return_window episodes (what the logs and the summary report) and the means of the
        loss terms computed since the previous point."""
        window = 6
        num_steps, num_envs, rollouts_per_point = 8, 4, 2
        per_rollout = num_steps * num_envs
        criterion = RecordingCriterion()
        pipeline = make_pipeline(
            [PipelineStage(["ppo"], 8 * per_rollout, early_stopping_criterion=criterion)],
            num_steps=num_steps,
            num_mini_batch=2,
            update_repeats=2,
            metric_accumulate_interval=rollouts_per_point * per_rollout,
        )
        task = SpyCartPole(num_envs, max_episode_steps=12, random_rewards=True)
        logged = TrainingLogs()
        runner = make_runner(
            tmp_path, pipeline, task=task, return_window=window, callbacks=[logged]
        )
        runner.run()

        # Reference: walk the task's steps, one environment at a time.
        steps_per_point = num_steps * rollouts_per_point
        ended: list[list[tuple[float, int]]] = [[] for _ in range(4)]
        returns, lengths = [0.0] * num_envs, [0] * num_envs
        for t, result in enumerate(task.results):
            dones = result.terminated | result.truncated
            for env in range(num_envs):
                returns[env] += float(result.rewards[env])
                lengths[env] += 1
                if dones[env]:
                    ended[t // steps_per_point].append((returns[env], lengths[env]))
                    returns[env], lengths[env] = 0.0, 0

        # Four metric points; at the last the stage has reached its limit and ends anyway, so
        # the criterion is not consulted.
        assert len(criterion.calls) == 3
        logs = logged.points
        for point, call in enumerate(criterion.calls):
            assert ended[point], "every interval should see episodes end"
            episodes = [episode for interval in ended[: point + 1] for episode in interval]
            episodes = episodes[-window:]
            assert call["stage_steps"] == call["total_steps"] == (point + 1) * 2 * per_rollout
            assert call["counts"]["reward"] == len(episodes) == min(window, len(episodes))
            assert call["means"]["reward"] == pytest.approx(
                sum(r for r, _ in episodes) / len(episodes)
            )
            assert call["means"]["episode_length"] == pytest.approx(
                sum(n for _, n in episodes) / len(episodes)
            )
            # Loss terms: every sample of both rollouts, twice (update_repeats=2).
            assert call["counts"]["ppo/action"] == 2 * rollouts_per_point * per_rollout
            assert call["counts"]["lr"] == rollouts_per_point
            # The logs show the very numbers the criterion decided on.
            assert logs[point] == call["means"]
        assert len(ended[0]) + len(ended[1]) > window  # the window did drop episodes


class TestOffPolicy:
    def test_updates_per_rollout_and_rebuild(self, tmp_path: Path) -> None:
        """Each rollout is followed by exactly ``updates`` off-policy updates, drawn in order
        from the data iterator, which is rebuilt whenever it runs out."""
        data = NumberedBatches()
        offpolicy = CountingLoss(Imitation())
        onpolicy = CountingLoss(PPO())
        stage = PipelineStage(
            ["ppo"],
            24,
            offpolicy_component=OffPolicyPipelineComponent(data, ["bc"], updates=3),
        )
        pipeline = make_pipeline([stage], named_losses={"ppo": onpolicy, "bc": offpolicy})
        runner = make_runner(tmp_path, pipeline)
        runner.run()
        # 3 rollouts of 8 steps, 3 updates after each.
        assert offpolicy.step_counts == [8, 8, 8, 16, 16, 16, 24, 24, 24]
        assert onpolicy.step_counts == [8, 16, 24]
        drawn = [float(batch.observations[0, 0]) for _, batch in offpolicy.calls]
        # Two batches per build: builds 0..4, the last one half used.
        assert drawn == [0, 1, 10, 11, 20, 21, 30, 31, 40]
        assert data.builds == 5
        assert runner.learner.data_streams["pipeline_stages.0.offpolicy_component"].epochs == 4
        assert all(batch.actions is None for _, batch in offpolicy.calls)
        assert "offpolicy/bc/cross_entropy" in runner.statistics.latest_metrics

    def test_offpolicy_only_stage_with_demonstrations(self, tmp_path: Path) -> None:
        """A stage with no on-policy loss trains on ExpertDemonstrations alone, even on a task
        without an expert; it serves every recorded pair once per epoch."""
        demonstrations = ExpertDemonstrations(CartPoleTask(2), num_steps=10, batch_size=8)
        loss = CountingLoss(Imitation())
        stage = PipelineStage(
            [],
            24,
            offpolicy_component=OffPolicyPipelineComponent(demonstrations, ["bc"], updates=2),
        )
        pipeline = make_pipeline([stage], named_losses={"bc": loss})
        runner = make_runner(tmp_path, pipeline, task=NoExpertCartPole(2))
        before = weights(runner)
        summary = runner.run()
        assert summary.total_steps == 24
        sizes = [batch.observations.shape[0] for _, batch in loss.calls]
        assert sizes == [8, 8, 4, 8, 8, 4]
        reference = list(ExpertDemonstrations(CartPoleTask(2), num_steps=10, batch_size=8)())

        def pairs(batches: list[Minibatch] | list[dict[str, torch.Tensor]]) -> list[Any]:
            rows = []
            for batch in batches:
                b = batch._asdict() if isinstance(batch, Minibatch) else batch
                for o, a in zip(b["observations"], b["expert_actions"], strict=True):
                    rows.append((*o.tolist(), int(a)))
            return sorted(rows)

        assert pairs([b for _, b in loss.calls[:3]]) == pairs(reference)
        assert pairs([b for _, b in loss.calls[3:]]) == pairs(reference)
        after = weights(runner)
        assert not torch.equal(before["actor.0.weight"], after["actor.0.weight"])
        # No on-policy update ran, so the critic is untouched.
        assert torch.equal(before["critic.0.weight"], after["critic.0.weight"])


class TestSaveInterval:
    @pytest.mark.parametrize(
        ("save_interval", "expected"),
        [
            (None, []),
            (0, [(0, 24), (1, 48)]),
            (-5, [(0, 24), (1, 48)]),
            (16, [(0, 16), (0, 24), (1, 40), (1, 48)]),
            (1, [(0, s) for s in (8, 16, 24)] + [(1, s) for s in (32, 40, 48)]),
        ],
    )
    def test_files_written(
        self, tmp_path: Path, save_interval: int | None, expected: list[tuple[int, int]]
    ) -> None:
        """None: no checkpoint; <= 0: one per stage end; > 0: every save_interval total steps
        since the last save, and at each stage end."""
        # 8 steps per rollout: stage 0 runs 3 rollouts (24), stage 1 three more (20 -> 24).
        pipeline = make_pipeline(
            [PipelineStage(["ppo"], 24), PipelineStage(["ppo"], 20)], save_interval=save_interval
        )
        make_runner(tmp_path, pipeline).run()
        names = [f"stage_{stage:02d}__steps_{steps:012d}.pt" for stage, steps in expected]
        assert checkpoint_files(tmp_path) == names
        for (stage, steps), name in zip(expected, names, strict=True):
            state = load_checkpoint(tmp_path / CHECKPOINT_DIRECTORY / name)
            assert state["total_steps"] == steps
            saved_stages = state["pipeline"]["stages"]
            assert sum(s["steps_taken_in_stage"] for s in saved_stages) == steps
            assert saved_stages[stage]["steps_taken_in_stage"] > 0


# --------------------------------------------------------------------------------------------
# Resume


def resume_pipeline(save_interval: int | None) -> TrainingPipeline:
    """Two stages exercising every piece of state: a criterion that counts successes, clip
    decay, teacher forcing, an off-policy demonstration stream, an LR schedule, periodic
    environment resets and metric points every other rollout."""
    stages = [
        PipelineStage(
            ["ppo"],
            400,
            early_stopping_criterion=ThresholdEarlyStopping("reward", 1.0, consecutive=3),
        ),
        PipelineStage(
            ["a2c", "imitation"],
            48,
            loss_weights=[1.0, 0.5],
            teacher_forcing=LinearDecay(steps=48),
            offpolicy_component=OffPolicyPipelineComponent(
                ExpertDemonstrations(CartPoleTask(2), num_steps=6, batch_size=5, seed=3),
                ["bc"],
                updates=2,
            ),
        ),
    ]
    return make_pipeline(
        stages,
        named_losses={
            "ppo": PPO(clip_decay=LinearDecay(steps=200)),
            "a2c": A2C(),
            "imitation": Imitation(),
            "bc": Imitation(),
        },
        num_mini_batch=2,
        update_repeats=2,
        save_interval=save_interval,
        metric_accumulate_interval=16,
        advance_scene_rollout_period=3,
        lr_scheduler_builder=Builder(
            torch.optim.lr_scheduler.LambdaLR, {"lr_lambda": LinearDecay(steps=200)}
        ),
    )


def resume_runner(output_dir: Path, save_interval: int | None) -> OnPolicyRunner:
    return make_runner(
        output_dir, resume_pipeline(save_interval), num_envs=2, max_episode_steps=7, seed=5
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run A uninterrupted without checkpoints; run B the same, saving after every
    rollout (8 steps), so that checkpoints fall both on and between metric points."""
    uninterrupted = resume_runner(tmp_path_factory.mktemp("a"), None)
    summary = uninterrupted.run()
    saving_dir = tmp_path_factory.mktemp("b")
    saving = resume_runner(saving_dir, 8)
    saving_summary = saving.run()
    return {
        "summary": summary,
        "weights": weights(uninterrupted),
        "lr": uninterrupted.learner.optimizer.param_groups[0]["lr"],
        "saving_summary": saving_summary,
        "saving_weights": weights(saving),
        "checkpoints": sorted((saving_dir / CHECKPOINT_DIRECTORY).iterdir()),
    }


class TestResume:
    def test_the_run_exercises_early_stopping(self, runs: dict[str, Any]) -> None:
        """The reference run stops stage 0 early, so the criterion's state matters."""
        summary = runs["summary"]
        assert summary.stages[0].early_stopped is True
        assert summary.stages[0].steps < 400
        assert summary.stages[1].steps == 48
        assert len(runs["checkpoints"]) >= 6
        # Some checkpoints fall on rollouts followed by the periodic environment reset.
        counts = [load_checkpoint(c)["pipeline"]["rollout_count"] for c in runs["checkpoints"]]
        assert any(count % 3 == 0 for count in counts)
        # Some fall between metric points, with metrics accumulated but not yet reported.
        pending = [load_checkpoint(c)["ranks"][0]["interval_metrics"] for c in runs["checkpoints"]]
        assert any(state["counts"] for state in pending)
        assert any(not state["counts"] for state in pending)

    def test_saving_does_not_change_training(self, runs: dict[str, Any]) -> None:
        """Writing checkpoints consumes no randomness: same weights and metrics."""
        assert_same_weights(runs["weights"], runs["saving_weights"])
        assert runs["summary"].final_metrics == runs["saving_summary"].final_metrics

    def test_resume_from_every_checkpoint_is_exact(
        self, runs: dict[str, Any], tmp_path: Path
    ) -> None:
        """A fresh runner resumed from any checkpoint ends bitwise equal to the uninterrupted
        run: weights, learning rate, stage steps, early stopping and final metrics."""
        expected = runs["summary"]
        resumed_any_mid_stage = False
        for index, checkpoint in enumerate(runs["checkpoints"]):
            output_dir = tmp_path / str(index)
            runner = resume_runner(output_dir, 8)
            runner.resume(checkpoint)
            state = load_checkpoint(checkpoint)
            assert runner.pipeline.total_steps == state["total_steps"]
            successes = runner.pipeline.pipeline_stages[0].early_stopping_criterion
            assert isinstance(successes, ThresholdEarlyStopping)
            saved = state["pipeline"]["stages"][0]["early_stopping_criterion"]
            assert successes.successes_in_a_row == saved["successes_in_a_row"]
            resumed_any_mid_stage |= 0 < saved["successes_in_a_row"] < 3
            summary = runner.run()
            assert_same_weights(weights(runner), runs["weights"])
            assert runner.learner.optimizer.param_groups[0]["lr"] == runs["lr"]
            assert summary.total_steps == expected.total_steps
            assert summary.stages == expected.stages
            assert summary.final_metrics == expected.final_metrics
            assert read_summary(output_dir)["final_metrics"] == expected.final_metrics
        assert resumed_any_mid_stage

    def test_load_weights_restarts_pipeline(self, runs: dict[str, Any], tmp_path: Path) -> None:
        """load_weights takes only the weights: optimizer state empty, step counts 0, LR at its
        start, and the whole pipeline runs again."""
        checkpoint = runs["checkpoints"][-1]
        runner = resume_runner(tmp_path, None)
        runner.load_weights(checkpoint)
        assert_same_weights(weights(runner), load_checkpoint(checkpoint)["model"])
        assert runner.learner.optimizer.state_dict()["state"] == {}
        assert runner.pipeline.total_steps == 0
        assert runner.pipeline.current_stage_index == 0
        assert runner.learner.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
        assert runner.resumed_from is None
        summary = runner.run()
        assert summary.stages[1].steps == 48
        assert summary.total_steps >= 48 + 16

    def test_load_weights_of_another_model_is_refused(
        self, runs: dict[str, Any], tmp_path: Path
    ) -> None:
        """Weights of a model with other layer sizes do not fit, and the error says so."""
        set_seed(0)
        task = CartPoleTask(2)
        model = MLPActorCritic(task.observation_shape, task.action_space, hidden_sizes=(16,))
        runner = OnPolicyRunner(
            resume_pipeline(None), task, model, output_dir=tmp_path, tensorboard=False
        )
        with pytest.raises(
            CheckpointError,
            match=r"(?s)do not fit the model built here .*size mismatch for actor.0.weight",
        ):
            runner.load_weights(runs["checkpoints"][0])

    def test_different_stage_count_is_refused(self, runs: dict[str, Any], tmp_path: Path) -> None:
        """A checkpoint of a two-stage pipeline does not fit a one-stage one."""
        pipeline = make_pipeline([PipelineStage(["ppo"], 16)])
        runner = make_runner(tmp_path, pipeline, num_envs=2)
        checkpoint = runs["checkpoints"][0]
        with pytest.raises(
            CheckpointError,
            match=rf"Checkpoint '{checkpoint}' does not fit this run: 'pipeline_stages' has 1 "
            r"stages but the saved state has 2",
        ):
            runner.resume(checkpoint)

    def test_different_num_envs_is_refused(self, runs: dict[str, Any], tmp_path: Path) -> None:
        """A checkpoint made with 2 environments does not fit a task with 3."""
        runner = make_runner(tmp_path, resume_pipeline(8), num_envs=3, max_episode_steps=7)
        with pytest.raises(CheckpointError, match=r"does not fit this run: 'num_envs' differs"):
            runner.resume(runs["checkpoints"][0])

    def test_another_number_of_processes_is_refused(
        self, runs: dict[str, Any], tmp_path: Path
    ) -> None:
        """A checkpoint of a run of 2 processes (each one's environments and generators in
        it) does not resume in 1: the message names both numbers and the ways on."""
        state = load_checkpoint(runs["checkpoints"][0])
        state["world_size"], state["ranks"] = 2, state["ranks"] * 2
        path = tmp_path / "two.pt"
        save_checkpoint({k: v for k, v in state.items() if k != "format"}, path)
        runner = make_runner(tmp_path / "run", resume_pipeline(8), num_envs=2, max_episode_steps=7)
        with pytest.raises(
            CheckpointError,
            match=rf"'{path}' was written by a run of 2 process\(es\), and this run has 1: .* "
            r"Resume with distributed.nproc_per_node=2 \(or torchrun --nproc-per-node=2\), or "
            rf"start a new run from its weights with restart_from_weights={path}\.",
        ):
            runner.resume(path)

    def test_a_checkpoint_of_the_previous_format_is_refused(
        self, runs: dict[str, Any], tmp_path: Path
    ) -> None:
        """A format-1 checkpoint (one process's state at the top level) is not resumed, with
        a message; its weights still load."""
        state = load_checkpoint(runs["checkpoints"][0])
        path = tmp_path / "old.pt"
        torch.save({**state, "format": "hydra_pipeline/1"}, path)
        runner = make_runner(tmp_path / "run", resume_pipeline(8), num_envs=2, max_episode_steps=7)
        with pytest.raises(CheckpointError, match=r"earlier version of hydra_pipeline \(format"):
            runner.resume(path)
        runner.load_weights(path)


# --------------------------------------------------------------------------------------------


class TestLRScheduler:
    def test_stepped_with_total_steps(self, tmp_path: Path) -> None:
        """LambdaLR with LinearDecay runs on total steps: after the run the lr is
        base_lr * decay(total_steps), and the logged lr is the one each update used."""
        decay = LinearDecay(steps=100)
        pipeline = make_pipeline(
            [PipelineStage(["ppo"], 16), PipelineStage(["ppo"], 8)],
            optimizer_builder=Builder(torch.optim.Adam, {"lr": 0.01}),
            lr_scheduler_builder=Builder(torch.optim.lr_scheduler.LambdaLR, {"lr_lambda": decay}),
        )
        runner = make_runner(tmp_path, pipeline)
        assert runner.learner.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
        runner.run()
        assert runner.learner.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * decay(24))
        # The last update (in stage 1, at stage step 8) used the lr set after 16 total steps;
        # a stage-step clock would give decay(0) there.
        assert runner.statistics.latest_metrics["lr"] == pytest.approx(0.01 * decay(16))


class TestAdvanceScene:
    def test_resets_every_k_rollouts(self, tmp_path: Path) -> None:
        """advance_scene_rollout_period=k resets the task after every k-th rollout; the next
        rollout acts on the fresh observations and in-progress episodes are dropped."""
        task = SpyCartPole(2)
        pipeline = make_pipeline([PipelineStage(["ppo"], 56)], advance_scene_rollout_period=2)
        runner = make_runner(tmp_path, pipeline, task=task, wrap_model=SamplingSpy)
        runner.run()
        # The task's own reset at construction, the runner's seeded one, then after rollouts
        # 2, 4 and 6 of 7.
        assert task.resets == [None, 0, None, None, None]
        assert len(task.reset_observations) == 5
        # Rollout 7, the last, started from the reset that followed rollout 6, and was not
        # followed by one: the runner's observations came from its last step.
        assert torch.equal(runner.collector.storage.observations[0], task.reset_observations[-1])
        assert torch.equal(runner.collector.storage.observations[1], task.results[-4].observations)
        assert torch.equal(runner.collector.stepper.observations, task.results[-1].observations)

    def test_fresh_observations_are_used(self, tmp_path: Path) -> None:
        """After a reset, the first stored observation of the next rollout is the reset's."""
        task = SpyCartPole(2)
        pipeline = make_pipeline([PipelineStage(["ppo"], 16)], advance_scene_rollout_period=1)
        runner = make_runner(tmp_path, pipeline, task=task)
        runner.run()
        assert task.resets == [None, 0, None, None]
        assert torch.equal(runner.collector.storage.observations[0], task.reset_observations[2])
        assert torch.equal(runner.collector.stepper.observations, task.reset_observations[3])
        assert runner.collector.stepper.episode_returns.tolist() == [0.0, 0.0]
        assert runner.collector.stepper.episode_lengths.tolist() == [0.0, 0.0]

    def test_no_resets_without_period(self, tmp_path: Path) -> None:
        """Without a period the task is reset only once, with the seed."""
        task = SpyCartPole(2)
        make_runner(tmp_path, make_pipeline([PipelineStage(["ppo"], 32)]), task=task).run()
        assert task.resets == [None, 0]


class TestSummary:
    def test_summary_json(self, tmp_path: Path) -> None:
        """summary.json holds seed, total_steps, per-stage results, final metrics with the
        reward, and timings apart from the metrics."""
        pipeline = make_pipeline(
            [PipelineStage(["ppo"], 16), PipelineStage(["a2c", "ppo"], 8)],
            named_losses={"ppo": PPO(), "a2c": A2C()},
        )
        summary = make_runner(tmp_path, pipeline, max_episode_steps=5, seed=7).run()
        data = read_summary(tmp_path)
        assert data == summary.to_dict()
        assert data["seed"] == 7
        assert data["total_steps"] == 24
        assert data["status"] == "completed"
        assert data["stages"] == [
            {
                "index": 0,
                "loss_names": ["ppo"],
                "steps": 16,
                "early_stopped": False,
                "early_stop": None,
            },
            {
                "index": 1,
                "loss_names": ["a2c", "ppo"],
                "steps": 8,
                "early_stopped": False,
                "early_stop": None,
            },
        ]
        metrics = data["final_metrics"]
        assert metrics["reward"] == 5.0 and metrics["episode_length"] == 5.0
        assert {"lr", "a2c/action", "ppo/clip_fraction"} <= metrics.keys()
        speed = data["speed"]
        assert {"steps_per_second", "wall_seconds", "cpu_seconds"} <= speed.keys()
        assert {"first_step_time", "first_update_time"} <= speed.keys()
        assert 0 < speed["cpu_seconds"] <= speed["wall_seconds"] * (os.cpu_count() or 1)
        assert not speed.keys() & metrics.keys()

    def test_same_seed_same_metrics(self, tmp_path: Path) -> None:
        """Two runs with the same seed write identical final metrics and weights; another
        seed gives other weights."""

        def run(name: str, seed: int) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
            pipeline = make_pipeline([PipelineStage(["ppo"], 48)], num_mini_batch=2)
            runner = make_runner(tmp_path / name, pipeline, max_episode_steps=9, seed=seed)
            runner.run()
            return read_summary(tmp_path / name), weights(runner)

        (first, first_weights), (second, second_weights) = run("a", 3), run("b", 3)
        assert first["final_metrics"] == second["final_metrics"]
        assert "reward" in first["final_metrics"]
        assert_same_weights(first_weights, second_weights)
        _, other_weights = run("c", 4)
        assert not torch.equal(first_weights["actor.0.weight"], other_weights["actor.0.weight"])


class TestTensorBoard:
    def test_event_tags(self, tmp_path: Path) -> None:
        """Event files under tensorboard/ hold train/* metrics and loss/<loss>/<term> terms,
        indexed by total steps."""
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        pipeline = make_pipeline(
            [PipelineStage(["ppo"], 24, teacher_forcing=LinearDecay(steps=24))]
        )
        make_runner(tmp_path, pipeline, max_episode_steps=5, tensorboard=True).run()
        folder = tmp_path / "tensorboard"
        assert any(path.name.startswith("events.out.tfevents") for path in folder.iterdir())
        accumulator = EventAccumulator(str(folder))
        accumulator.Reload()
        tags = set(accumulator.Tags()["scalars"])
        assert {
            "train/reward",
            "train/episode_length",
            "train/lr",
            "train/teacher_forcing",
            "train/steps_per_second",
            "loss/ppo/action",
            "loss/ppo/value",
            "loss/ppo/entropy",
            "loss/ppo/clip_fraction",
        } <= tags
        assert [event.step for event in accumulator.Scalars("train/lr")] == [8, 16, 24]
        assert [event.step for event in accumulator.Scalars("train/reward")] == [16, 24]
        assert [e.value for e in accumulator.Scalars("train/reward")] == [5.0, 5.0]
        forcing = [e.value for e in accumulator.Scalars("train/teacher_forcing")]
        expected = [sum(1 - (8 * r + 2 * k) / 24 for k in range(4)) / 4 for r in range(3)]
        assert forcing == pytest.approx(expected)

    def test_off_writes_nothing(self, tmp_path: Path) -> None:
        """tensorboard=False writes no event files."""
        make_runner(tmp_path, make_pipeline([PipelineStage(["ppo"], 8)])).run()
        assert not (tmp_path / "tensorboard").exists()


class TestStopRequest:
    def test_stops_at_the_next_safe_point_with_a_checkpoint(
        self, runs: dict[str, Any], tmp_path: Path
    ) -> None:
        """A stop request (what Ctrl-C and SIGTERM make) ends run() after the current
        rollout's update with a checkpoint, even with save_interval=None; resuming from it
        ends bitwise equal to the uninterrupted run."""
        runner = resume_runner(tmp_path / "stopped", None)

        class StopAtThirdRollout(Callback):
            def on_rollout_end(self, **_: Any) -> None:
                if runner.pipeline.rollout_count == 3:
                    runner.request_stop("SIGTERM")

        runner.callbacks.append(StopAtThirdRollout())
        with pytest.raises(TrainingInterrupted) as caught:
            runner.run()
        interruption = caught.value
        assert (interruption.signal_name, interruption.total_steps) == ("SIGTERM", 24)
        assert interruption.checkpoint.is_file()
        assert checkpoint_files(tmp_path / "stopped") == [interruption.checkpoint.name]
        assert load_checkpoint(interruption.checkpoint)["engine"]["steps_at_last_save"] == 0
        assert not (tmp_path / "stopped" / "summary.json").exists()

        resumed = resume_runner(tmp_path / "stopped", None)
        resumed.resume(interruption.checkpoint)
        summary = resumed.run()
        assert_same_weights(weights(resumed), runs["weights"])
        assert summary.final_metrics == runs["summary"].final_metrics

    def test_a_checkpoint_just_saved_is_reused(self, tmp_path: Path) -> None:
        """Stopping right after a scheduled save writes no second file."""
        pipeline = make_pipeline([PipelineStage(["ppo"], 64)], save_interval=8)
        runner = make_runner(tmp_path, pipeline)
        runner.request_stop("SIGINT")
        with pytest.raises(TrainingInterrupted) as caught:
            runner.run()
        assert caught.value.total_steps == 8
        assert checkpoint_files(tmp_path) == [caught.value.checkpoint.name]


class TestWatchedMetrics:
    @pytest.mark.parametrize(
        ("metric", "suggestion"),
        [("rewad", "reward"), ("ppo/entropi", "ppo/entropy"), ("teacher_forcing", None)],
    )
    def test_a_metric_the_stage_never_logs(
        self, tmp_path: Path, metric: str, suggestion: str | None
    ) -> None:
        """A criterion watching a metric its stage never logs would never fire: refused."""
        criterion = ThresholdEarlyStopping(metric, 1.0)
        pipeline = make_pipeline([PipelineStage(["ppo"], 8, early_stopping_criterion=criterion)])
        with pytest.raises(InvalidArgumentError) as caught:
            make_runner(tmp_path, pipeline)
        assert caught.value.argument == "pipeline_stages.0.early_stopping_criterion.metric"
        assert "ppo/clip_fraction" in caught.value.hint
        if suggestion:
            assert f"Did you mean '{suggestion}'?" in caught.value.hint

    @pytest.mark.parametrize(
        "metric",
        ["reward", "episode_length", "lr", "ppo/value", "teacher_forcing", "mine/anything"],
    )
    def test_metrics_the_stage_logs(self, tmp_path: Path, metric: str) -> None:
        """Episode metrics, the learning rate, declared loss terms, teacher forcing when the
        stage has it, and anything under a loss that does not declare its terms."""

        class Undeclared(A2C):
            terms = None  # type: ignore[assignment]

        pipeline = make_pipeline(
            [
                PipelineStage(
                    ["ppo", "mine"],
                    8,
                    early_stopping_criterion=ThresholdEarlyStopping(metric, 1e9),
                    teacher_forcing=constant(0.5),
                )
            ],
            named_losses={"ppo": PPO(), "mine": Undeclared()},
        )
        make_runner(tmp_path, pipeline).run()


class TestBuilders:
    def test_an_optimizer_torch_rejects_is_named(self, tmp_path: Path) -> None:
        """What torch rejects when the optimizer is built is reported against its argument."""
        pipeline = make_pipeline(
            [PipelineStage(["ppo"], 8)],
            optimizer_builder=Builder(torch.optim.SGD, {"lr": 0.1, "nesterov": True}),
        )
        with pytest.raises(InvalidArgumentError) as caught:
            make_runner(tmp_path, pipeline)
        assert caught.value.argument == "optimizer_builder"
        assert "Nesterov momentum requires a momentum" in caught.value.problem


def test_stale_temporary_checkpoints_are_removed(tmp_path: Path) -> None:
    """A checkpoint write killed midway leaves a temporary file; the next run deletes it
    (those of a process still running are kept)."""
    folder = tmp_path / CHECKPOINT_DIRECTORY
    folder.mkdir()
    dead = folder / ".stage_00__steps_000000000008.pt.999999999.tmp"
    alive = folder / f".stage_00__steps_000000000008.pt.{os.getppid()}.tmp"
    dead.write_bytes(b"half")
    alive.write_bytes(b"half")
    make_runner(tmp_path, make_pipeline([PipelineStage(["ppo"], 8)])).run()
    assert not dead.exists()
    assert alive.exists()


# --------------------------------------------------------------------------------------------
# Per-stage settings and stage components (AllenAct 0.5)


class TestStageSettings:
    def test_each_stage_collects_and_learns_with_its_own_settings(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Rollout length, minibatches, repeats, discounting, GAE and the gradient clip come
        from each stage's settings, falling back to the pipeline's."""
        returns_calls: list[dict[str, Any]] = []
        clip_norms: list[float] = []

        def spy_returns(rewards: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            returns_calls.append({"num_steps": rewards.shape[0], **kwargs})
            return compute_returns(rewards, *args, **kwargs)

        def spy_clip(parameters: Any, max_norm: float) -> torch.Tensor:
            clip_norms.append(max_norm)
            return clip_gradients(parameters, max_norm)

        monkeypatch.setattr("hydra_pipeline.engine.collector.compute_returns", spy_returns)
        monkeypatch.setattr("hydra_pipeline.engine.learner.clip_gradients", spy_clip)
        loss = CountingLoss(A2C())
        own = TrainingSettings(
            num_steps=2,
            num_mini_batch=2,
            update_repeats=3,
            gamma=0.5,
            use_gae=False,
            max_grad_norm=0.25,
        )
        pipeline = make_pipeline(
            [PipelineStage(["a2c"], 16), PipelineStage(["a2c"], 16, training_settings=own)],
            named_losses={"a2c": loss},
        )
        task = SpyCartPole(2)
        runner = make_runner(tmp_path, pipeline, task=task)
        summary = runner.run()
        assert [stage.steps for stage in summary.stages] == [16, 16]
        # Stage 0: two rollouts of 4 steps x 2 environments; stage 1: four of 2 x 2.
        assert len(task.actions) == 2 * 4 + 4 * 2
        assert [call["num_steps"] for call in returns_calls] == [4, 4, 2, 2, 2, 2]
        assert {(c["gamma"], c["use_gae"], c["gae_lambda"]) for c in returns_calls[:2]} == {
            (GAMMA, True, 0.95)
        }
        assert {(c["gamma"], c["use_gae"], c["gae_lambda"]) for c in returns_calls[2:]} == {
            (0.5, False, 0.95)
        }
        # Stage 0: one minibatch of 8 per rollout; stage 1: 3 epochs x 2 minibatches of 2.
        sizes = [batch.observations.shape[0] for _, batch in loss.calls]
        assert sizes == [8, 8] + [2] * (4 * 3 * 2)
        assert clip_norms == [0.5] * 2 + [0.25] * 24
        assert runner.collector.storage is not None and runner.collector.storage.num_steps == 2

    def test_intervals_and_scene_period_of_each_stage(self, tmp_path: Path) -> None:
        """Metrics, checkpoints and environment resets follow the running stage's settings."""
        criteria = [RecordingCriterion(), RecordingCriterion()]
        stages = [
            PipelineStage(["ppo"], 32, early_stopping_criterion=criteria[0]),
            PipelineStage(
                ["ppo"],
                32,
                early_stopping_criterion=criteria[1],
                metric_accumulate_interval=16,
                save_interval=8,
                advance_scene_rollout_period=2,
            ),
        ]
        pipeline = make_pipeline(stages, metric_accumulate_interval=8, save_interval=None)
        task = SpyCartPole(2)
        make_runner(tmp_path, pipeline, task=task).run()
        # 8 steps per rollout: stage 0 is reported after every rollout, stage 1 every other.
        assert [call["total_steps"] for call in criteria[0].calls] == [8, 16, 24]
        assert [call["total_steps"] for call in criteria[1].calls] == [48]
        # Stage 0 never saves (None everywhere); stage 1 every 8 steps.
        assert checkpoint_files(tmp_path) == [
            f"stage_01__steps_{steps:012d}.pt" for steps in (40, 48, 56, 64)
        ]
        # The task's own reset, the runner's, then after rollouts 6 and 8 (stage 1's 2nd, 4th).
        assert task.resets == [None, 0, None, None]

    def test_settings_missing_everywhere_are_refused(self) -> None:
        """A pipeline may leave a setting unset only if each stage that runs sets it."""
        stage = PipelineStage(["ppo"], 8, num_steps=4)
        pipeline = TrainingPipeline(
            named_losses={"ppo": PPO()},
            pipeline_stages=[stage, PipelineStage(["ppo"], 0)],
            optimizer_builder=Builder(torch.optim.Adam),
            num_mini_batch=1,
            update_repeats=1,
            max_grad_norm=0.5,
            gamma=0.99,
            use_gae=True,
            gae_lambda=0.95,
            metric_accumulate_interval=8,
        )
        assert pipeline.num_steps is None and stage.training_settings.num_steps == 4
        with pytest.raises(
            InvalidArgumentError,
            match=r"'pipeline_stages.1.training_settings.num_steps' is not set, neither for the "
            r"stage nor for the pipeline",
        ):
            TrainingPipeline(
                named_losses={"ppo": PPO()},
                pipeline_stages=[PipelineStage(["ppo"], 8, num_steps=4), PipelineStage(["ppo"], 8)],
                optimizer_builder=Builder(torch.optim.Adam),
                training_settings=TrainingSettings(
                    num_mini_batch=1,
                    update_repeats=1,
                    max_grad_norm=0.5,
                    gamma=0.99,
                    use_gae=True,
                    gae_lambda=0.95,
                    metric_accumulate_interval=8,
                ),
            )

    def test_a_stage_with_more_minibatches_than_environments_is_named(self, tmp_path: Path) -> None:
        pipeline = make_pipeline(
            [PipelineStage(["ppo"], 8), PipelineStage(["ppo"], 8, num_mini_batch=3)]
        )
        with pytest.raises(
            InvalidArgumentError,
            match=r"'pipeline_stages.1.training_settings.num_mini_batch' must be <= the task's "
            r"num_envs \(2\)",
        ):
            make_runner(tmp_path, pipeline, num_envs=2)


class TestStageComponents:
    def test_per_loss_update_repeats(self, tmp_path: Path) -> None:
        """A component's update_repeats list gives each loss its own number of epochs."""
        a2c, imitation = CountingLoss(A2C()), CountingLoss(Imitation())
        component = StageComponent(
            uuid="onpolicy",
            storage_uuid="onpolicy",
            loss_names=["a2c", "imitation"],
            training_settings=TrainingSettings(update_repeats=[1, 3]),
        )
        stage = PipelineStage(["a2c", "imitation"], 16, stage_components=[component])
        pipeline = make_pipeline([stage], named_losses={"a2c": a2c, "imitation": imitation})
        make_runner(tmp_path, pipeline).run()
        assert a2c.step_counts == [8, 16]
        assert imitation.step_counts == [8, 8, 8, 16, 16, 16]

    def test_components_on_the_rollout_and_on_a_data_source(self, tmp_path: Path) -> None:
        """Each component learns from its storage, in order, with its own settings and
        weights; the samples drawn from each storage are counted."""
        data = NumberedBatches()
        onpolicy, offpolicy = CountingLoss(PPO()), CountingLoss(Imitation())
        stage = PipelineStage(
            ["ppo"],
            16,
            stage_components=[
                StageComponent(uuid="rl", storage_uuid="onpolicy", loss_names=["ppo"]),
                StageComponent(
                    uuid="bc",
                    storage_uuid="demos",
                    loss_names=["bc"],
                    training_settings=TrainingSettings(num_mini_batch=2, update_repeats=2),
                    loss_weights=[0.5],
                ),
            ],
        )
        pipeline = TrainingPipeline(
            named_losses={"ppo": onpolicy, "bc": offpolicy},
            pipeline_stages=[stage],
            optimizer_builder=Builder(torch.optim.Adam, {"lr": 1e-3}),
            named_storages={"onpolicy": RolloutBlockStorage(), "demos": data},
            training_settings=TrainingSettings(
                num_mini_batch=1,
                update_repeats=1,
                max_grad_norm=0.5,
                num_steps=4,
                gamma=GAMMA,
                use_gae=True,
                gae_lambda=0.95,
                metric_accumulate_interval=8,
            ),
        )
        runner = make_runner(tmp_path, pipeline)
        runner.run()
        assert onpolicy.step_counts == [8, 16]
        assert offpolicy.step_counts == [8] * 4 + [16] * 4
        drawn = [float(batch.observations[0, 0]) for _, batch in offpolicy.calls]
        assert drawn == [0, 1, 10, 11, 20, 21, 30, 31]
        assert stage.storage_uuid_to_steps_taken_in_stage == {"onpolicy": 16, "demos": 8 * 3}
        assert pipeline.storage_uuid_to_total_experiences == {"onpolicy": 16, "demos": 24}
        assert "bc/bc/cross_entropy" in runner.statistics.latest_metrics
        assert "ppo/action" in runner.statistics.latest_metrics

    def test_offpolicy_only_stage_with_zero_minibatches(self, tmp_path: Path) -> None:
        """AllenAct's off-policy tutorial: num_mini_batch=0 and update_repeats=0 for the
        pipeline, one component on expert demonstrations. Rollouts still run (and count);
        only the demonstrations train the model."""
        demonstrations = ExpertDemonstrations(CartPoleTask(2), num_steps=8, batch_size=8)
        loss = CountingLoss(Imitation())
        stage = PipelineStage(
            ["bc"],
            16,
            stage_components=[
                StageComponent(
                    uuid="offpolicy",
                    storage_uuid="demos",
                    loss_names=["bc"],
                    training_settings=TrainingSettings(num_mini_batch=1, update_repeats=2),
                )
            ],
        )
        pipeline = TrainingPipeline(
            named_losses={"bc": loss},
            pipeline_stages=[stage],
            optimizer_builder=Builder(torch.optim.Adam, {"lr": 1e-3}),
            named_storages={"onpolicy": RolloutBlockStorage(), "demos": demonstrations},
            num_mini_batch=0,
            update_repeats=0,
            max_grad_norm=0.5,
            num_steps=4,
            gamma=GAMMA,
            use_gae=True,
            gae_lambda=0.95,
            metric_accumulate_interval=1,
        )
        task = SpyCartPole(2)
        runner = make_runner(tmp_path, pipeline, task=task)
        before = weights(runner)
        summary = runner.run()
        assert summary.total_steps == 16 and len(task.actions) == 8
        assert loss.step_counts == [8, 8, 16, 16]
        assert all(batch.actions is None for _, batch in loss.calls)
        after = weights(runner)
        assert not torch.equal(before["actor.0.weight"], after["actor.0.weight"])
        assert torch.equal(before["critic.0.weight"], after["critic.0.weight"])

    def test_purely_offpolicy_pipeline_collects_nothing(self, tmp_path: Path) -> None:
        """Without a rollout storage the task is never stepped and a stage step is one round
        of updates (as in AllenAct); no expert is needed from the task."""
        loss = CountingLoss(Imitation())
        stage = PipelineStage(
            [],
            3,
            stage_components=[
                StageComponent(
                    uuid="bc", storage_uuid="demos", loss_names=["bc"], loss_weights=[1.0]
                )
            ],
        )
        pipeline = TrainingPipeline(
            named_losses={"bc": loss},
            pipeline_stages=[stage],
            optimizer_builder=Builder(torch.optim.Adam, {"lr": 1e-3}),
            named_storages={"demos": NumberedBatches()},
            num_mini_batch=1,
            update_repeats=1,
            max_grad_norm=0.5,
            metric_accumulate_interval=1,
        )
        assert pipeline.rollout_storage_uuid is None
        task = SpyCartPole(2)
        summary = make_runner(tmp_path, pipeline, task=task).run()
        assert summary.total_steps == 3
        assert task.actions == [] and task.expert_calls == []
        assert loss.step_counts == [1, 2, 3]  # counted before the round, as AllenAct does

    def test_a_storage_that_is_not_a_data_source_is_refused(self, tmp_path: Path) -> None:
        stage = PipelineStage(
            ["ppo"],
            8,
            stage_components=[
                StageComponent(uuid="rl", storage_uuid="onpolicy", loss_names=["ppo"]),
                StageComponent(uuid="x", storage_uuid="numbers", loss_names=["ppo"]),
            ],
        )
        pipeline = TrainingPipeline(
            named_losses={"ppo": PPO()},
            pipeline_stages=[stage],
            optimizer_builder=Builder(torch.optim.Adam),
            named_storages={"onpolicy": RolloutBlockStorage(), "numbers": [1, 2, 3]},
            training_settings=TrainingSettings(
                num_mini_batch=1,
                update_repeats=1,
                max_grad_norm=0.5,
                num_steps=4,
                gamma=GAMMA,
                use_gae=True,
                gae_lambda=0.95,
                metric_accumulate_interval=8,
            ),
        )
        with pytest.raises(
            InvalidArgumentError,
            match=r"'named_storages.numbers' must be the rollout storage \('onpolicy'\) or a "
            r"data source .* as pipeline_stages.0.stage_components.1 learns from it",
        ):
            make_runner(tmp_path, pipeline)


def stage_settings_pipeline(save_interval: int | None) -> TrainingPipeline:
    """Two stages with their own rollout lengths, minibatches, repeats, discounting and
    intervals, a per-loss repeat list, and a demonstration storage."""
    demonstrations = ExpertDemonstrations(CartPoleTask(2), num_steps=6, batch_size=5, seed=3)
    stages = [
        PipelineStage(["ppo"], 24, num_steps=2, update_repeats=2, gamma=0.9),
        PipelineStage(
            ["a2c", "imitation"],
            32,
            stage_components=[
                StageComponent(
                    uuid="rl",
                    storage_uuid="onpolicy",
                    loss_names=["a2c", "imitation"],
                    training_settings=TrainingSettings(update_repeats=[1, 2]),
                ),
                StageComponent(
                    uuid="bc",
                    storage_uuid="demos",
                    loss_names=["bc"],
                    training_settings=TrainingSettings(num_mini_batch=2, update_repeats=1),
                    loss_weights=[0.5],
                ),
            ],
            teacher_forcing=LinearDecay(steps=32),
            training_settings=TrainingSettings(
                num_steps=8, num_mini_batch=2, use_gae=False, metric_accumulate_interval=32
            ),
        ),
    ]
    return TrainingPipeline(
        named_losses={"ppo": PPO(), "a2c": A2C(), "imitation": Imitation(), "bc": Imitation()},
        pipeline_stages=stages,
        optimizer_builder=Builder(torch.optim.Adam, {"lr": 1e-3}),
        named_storages={"onpolicy": RolloutBlockStorage(), "demos": demonstrations},
        num_mini_batch=1,
        update_repeats=1,
        max_grad_norm=0.5,
        num_steps=4,
        gamma=GAMMA,
        use_gae=True,
        gae_lambda=0.95,
        save_interval=save_interval,
        metric_accumulate_interval=8,
        advance_scene_rollout_period=5,
    )


def test_resume_with_stage_settings_and_components_is_exact(tmp_path: Path) -> None:
    """Resumed from a checkpoint in each stage (the rollout storage resized between them, a
    demonstration stream part-way), a run ends bitwise equal to the uninterrupted one."""
    uninterrupted = make_runner(tmp_path / "a", stage_settings_pipeline(None), seed=4)
    expected = uninterrupted.run()
    saving_dir = tmp_path / "b"
    make_runner(saving_dir, stage_settings_pipeline(12), seed=4).run()
    checkpoints = sorted((saving_dir / CHECKPOINT_DIRECTORY).iterdir())
    chosen = [checkpoints[0], checkpoints[-2]]
    assert [load_checkpoint(c)["pipeline"]["current_stage_index"] for c in chosen] == [0, 1]
    assert load_checkpoint(chosen[1])["ranks"][0]["data_streams"]["demos"]["started"]
    for index, checkpoint in enumerate(chosen):
        runner = make_runner(tmp_path / f"r{index}", stage_settings_pipeline(12), seed=4)
        runner.resume(checkpoint)
        summary = runner.run()
        assert_same_weights(weights(runner), weights(uninterrupted))
        assert summary.stages == expected.stages
        assert summary.final_metrics == expected.final_metrics
