"""The runner's PPO options: minibatches of transitions, ``target_kl``, the diagnostics it
logs, and observation/reward normalisation through rollouts, evaluation and resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hydra_pipeline import CheckpointError, InvalidArgumentError, PipelineStage, TrainingPipeline
from hydra_pipeline.engine import PPO, OnPolicyRunner
from hydra_pipeline.engine.checkpoint import (
    CHECKPOINT_DIRECTORY,
    load_checkpoint,
    restore_normalization,
)
from hydra_pipeline.engine.evaluation import Evaluator
from hydra_pipeline.engine.normalization import Normalization
from hydra_pipeline.tasks import CartPoleTask
from tests.engine.test_callbacks import read_metrics
from tests.engine.test_runner import CountingLoss, make_pipeline, make_runner


def counting_optimizer_steps(runner: OnPolicyRunner) -> list[int]:
    """Count ``runner.learner.optimizer.step`` calls in the returned one-element list."""
    count = [0]
    step = runner.learner.optimizer.step

    def counted(*args: object, **kwargs: object) -> object:
        count[0] += 1
        return step(*args, **kwargs)  # type: ignore[arg-type]

    runner.learner.optimizer.step = counted  # type: ignore[method-assign]
    return count


class TestTransitionMinibatches:
    def test_the_runner_splits_single_transitions(self, tmp_path: Path) -> None:
        """With minibatch_split=transitions, 2 environments x 4 steps give 4 minibatches of
        2 transitions (more minibatches than environments)."""
        loss = CountingLoss(PPO())
        pipeline = make_pipeline(
            [PipelineStage(["ppo"], 8, minibatch_split="transitions")],
            named_losses={"ppo": loss},
            num_mini_batch=4,
        )
        make_runner(tmp_path, pipeline, num_envs=2).run()
        assert [batch.observations.shape[0] for _, batch in loss.calls] == [2, 2, 2, 2]

    def test_more_minibatches_than_transitions_are_refused(self, tmp_path: Path) -> None:
        pipeline = make_pipeline([PipelineStage(["ppo"], 8)], num_mini_batch=9, num_steps=4)
        pipeline.training_settings.minibatch_split = "transitions"
        with pytest.raises(
            InvalidArgumentError,
            match=r"'num_mini_batch' must be <= the transitions in a rollout \(num_steps \* "
            r"num_envs = 8\) \(got 9\)",
        ):
            make_runner(tmp_path, pipeline, num_envs=2)

    def test_the_environment_split_suggests_transitions(self, tmp_path: Path) -> None:
        pipeline = make_pipeline([PipelineStage(["ppo"], 8)], num_mini_batch=3)
        with pytest.raises(InvalidArgumentError, match="minibatch_split=transitions"):
            make_runner(tmp_path, pipeline, num_envs=2)


class TestTargetKL:
    def run_counting_steps(self, tmp_path: Path, target_kl: float | None) -> tuple[int, int]:
        """Optimizer steps and loss calls of one rollout with 4 epochs of 2 minibatches."""
        loss = PPO(target_kl=target_kl)
        pipeline = make_pipeline(
            [PipelineStage(["ppo"], 8)],
            named_losses={"ppo": loss},
            num_mini_batch=2,
            update_repeats=4,
        )
        runner = make_runner(tmp_path, pipeline, num_envs=2)
        steps = counting_optimizer_steps(runner)
        runner.run()
        return steps[0], int(runner.statistics.latest_counts["ppo/approx_kl"])

    def test_a_tiny_target_ends_the_update_after_one_step(self, tmp_path: Path) -> None:
        """The first minibatch has a KL of exactly 0 (nothing has moved yet) and is stepped;
        the second, after the policy moved, passes 1.5 x 1e-12 and ends the update unstepped."""
        steps, counted = self.run_counting_steps(tmp_path, target_kl=1e-12)
        assert steps == 1
        assert counted == 2 * 4  # both minibatches were measured, 4 transitions each

    def test_without_a_target_every_epoch_runs(self, tmp_path: Path) -> None:
        steps, _ = self.run_counting_steps(tmp_path, target_kl=None)
        assert steps == 4 * 2


def test_the_diagnostics_are_logged(tmp_path: Path) -> None:
    """approx_kl, clip_fraction and explained_variance reach the metrics and summary.json."""
    pipeline = make_pipeline([PipelineStage(["ppo"], 64)], num_steps=16)
    runner = make_runner(tmp_path, pipeline, num_envs=4)
    summary = runner.run()
    metrics = summary.final_metrics
    assert {"ppo/approx_kl", "ppo/clip_fraction", "explained_variance"} <= set(metrics)
    assert 0.0 <= metrics["ppo/clip_fraction"] <= 1.0
    assert metrics["explained_variance"] <= 1.0


# --------------------------------------------------------------------------------------------
# Normalisation


def normalized_runner(
    output_dir: Path, *, save_interval: int | None = None, evaluate: bool = False
) -> OnPolicyRunner:
    """Two stages of PPO on CartPole with observations and rewards normalised."""
    pipeline = TrainingPipeline(
        named_losses={"ppo": PPO()},
        pipeline_stages=[PipelineStage(["ppo"], 32), PipelineStage(["ppo"], 32)],
        optimizer_builder=make_pipeline([PipelineStage(["ppo"], 1)]).optimizer_builder,
        num_mini_batch=2,
        update_repeats=2,
        max_grad_norm=0.5,
        num_steps=8,
        gamma=0.99,
        use_gae=True,
        gae_lambda=0.95,
        save_interval=save_interval,
        metric_accumulate_interval=16,
    )
    normalization = Normalization(observations=True, rewards=True, gamma=0.99)

    def evaluator(model: torch.nn.Module) -> Evaluator:
        # As the app does: the evaluator reads training's statistics.
        return Evaluator(CartPoleTask(2, 50), model, episodes=2, normalization=normalization)

    return make_runner(
        output_dir,
        pipeline,
        num_envs=2,
        normalization=normalization,
        evaluator_for=evaluator if evaluate else None,
        evaluation_interval=16 if evaluate else None,
    )


class TestNormalization:
    def test_the_learner_sees_normalized_observations_and_scaled_rewards(
        self, tmp_path: Path
    ) -> None:
        """The rollout holds normalised observations (not the task's) and scaled rewards,
        while episode returns stay the task's own (CartPole: 1 per step)."""
        runner = normalized_runner(tmp_path)
        runner.run()
        storage = runner.collector.storage
        assert storage is not None
        statistics = runner.normalization.observation_statistics  # type: ignore[union-attr]
        assert statistics is not None
        # 2 environments: the first observations and those after every one of 64 steps / 2.
        assert statistics.count == pytest.approx(2 * (1 + 32), abs=1e-3)
        assert storage.observations.abs().max() <= 10.0
        assert not torch.all(storage.rewards == 1.0)
        # Episodes finished, with the task's 1 per step: returns equal lengths.
        rows = [row for row in read_metrics(tmp_path) if row["train/reward"]]
        assert rows
        assert all(row["train/reward"] == row["train/episode_length"] for row in rows)

    def test_evaluation_leaves_the_statistics_alone(self, tmp_path: Path) -> None:
        """A run that evaluates ends with the same statistics and weights as one that does
        not."""
        plain = normalized_runner(tmp_path / "plain")
        plain.run()
        evaluating = normalized_runner(tmp_path / "evaluating", evaluate=True)
        evaluating.run()
        assert evaluating.evaluation is not None and evaluating.evaluation.latest  # it did
        assert str(plain.normalization.state_dict()) == str(  # type: ignore[union-attr]
            evaluating.normalization.state_dict()  # type: ignore[union-attr]
        )
        for name, value in plain.model.state_dict().items():
            assert torch.equal(value, evaluating.model.state_dict()[name]), name

    def test_resume_is_exact(self, tmp_path: Path) -> None:
        """Resumed from its first checkpoint, a run ends with the weights and statistics of
        the run never interrupted."""
        whole = normalized_runner(tmp_path / "whole", save_interval=16)
        whole.run()
        first = sorted((tmp_path / "whole" / CHECKPOINT_DIRECTORY).glob("*.pt"))[0]
        assert load_checkpoint(first)["normalization"]["observations"] is not None
        resumed = normalized_runner(tmp_path / "resumed", save_interval=16)
        resumed.resume(first)
        resumed.run()
        expected = whole.normalization.state_dict()  # type: ignore[union-attr]
        actual = resumed.normalization.state_dict()  # type: ignore[union-attr]
        assert torch.equal(expected["observations"]["mean"], actual["observations"]["mean"])
        assert torch.equal(expected["observations"]["var"], actual["observations"]["var"])
        assert torch.equal(expected["returns"]["var"], actual["returns"]["var"])
        assert torch.equal(expected["discounted_returns"], actual["discounted_returns"])
        for name, value in whole.model.state_dict().items():
            assert torch.equal(value, resumed.model.state_dict()[name]), name
        assert whole.statistics.latest_metrics == resumed.statistics.latest_metrics


def test_a_checkpoint_without_statistics_is_refused() -> None:
    """Normalising with a checkpoint of a run that did not is one message naming the file."""
    with pytest.raises(CheckpointError, match=r"Checkpoint 'run/last\.pt' holds no normalisation"):
        restore_normalization(
            Normalization(observations=True), {"normalization": None}, Path("run/last.pt")
        )
