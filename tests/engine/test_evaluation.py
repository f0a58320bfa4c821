"""Evaluation: the Evaluator on its own, and evaluation during training in OnPolicyRunner."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hydra_pipeline import (
    InvalidArgumentError,
    PipelineStage,
    ThresholdEarlyStopping,
    TrainingPipeline,
    set_seed,
)
from hydra_pipeline.engine import OnPolicyRunner
from hydra_pipeline.engine.checkpoint import BEST_CHECKPOINT, CHECKPOINT_DIRECTORY
from hydra_pipeline.engine.evaluation import BestEvaluation, Evaluator
from hydra_pipeline.models import MLPActorCritic
from hydra_pipeline.tasks import CartPoleTask, GymTask, StepResult, Task
from tests.engine.test_runner import (
    assert_same_weights,
    make_pipeline,
    make_runner,
    read_summary,
    resume_pipeline,
    resume_runner,
    weights,
)


class ScoredCartPole(CartPoleTask):
    """A CartPole that reports a ``success`` episode metric: whether the episode lasted at
    least ``goal`` steps."""

    def __init__(self, num_envs: int, max_episode_steps: int = 500, goal: int = 10) -> None:
        super().__init__(num_envs, max_episode_steps)
        self.goal = goal
        self.lengths = torch.zeros(num_envs)

    def step(self, actions: torch.Tensor) -> StepResult:
        result = super().step(actions)
        self.lengths += 1
        success = (self.lengths >= self.goal).float()
        self.lengths[result.terminated | result.truncated] = 0
        return result._replace(episode_metrics={"success": success})


def evaluator(task: Task, **options: Any) -> Evaluator:
    torch.manual_seed(0)
    model = MLPActorCritic(task.observation_shape, task.action_space, hidden_sizes=(8,))
    return Evaluator(task, model, **options)


class TestEvaluator:
    def test_episodes_are_spread_and_repeatable(self) -> None:
        """Environment i plays its share of the episodes; two evaluations play the same."""
        subject = evaluator(CartPoleTask(3), episodes=7, seed=4, deterministic=False)
        assert subject.quotas == [3, 2, 2]
        first, second = subject.evaluate(), subject.evaluate()
        assert len(first.returns) == 7 and first.returns == second.returns
        assert first.returns == [float(length) for length in first.lengths]
        summary = first.summary()
        assert summary["reward"] == pytest.approx(np.mean(first.returns))
        assert summary["reward_std"] == pytest.approx(np.std(first.returns))
        assert first.counts()["reward"] == 7

    def test_global_generators_and_training_mode_are_left_alone(self) -> None:
        """Sampling evaluations seed and then restore every global generator; the model is in
        eval mode only while it is evaluated."""
        subject = evaluator(CartPoleTask(2), episodes=2, seed=1, deterministic=False)
        torch.manual_seed(123)
        random.seed(5)
        np.random.seed(6)
        before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
        subject.evaluate()
        assert torch.equal(before[0], torch.get_rng_state())
        assert before[1] == random.getstate()
        assert np.array_equal(before[2], np.random.get_state()[1])
        assert subject.model.training

    def test_task_episode_metrics(self) -> None:
        """A task's episode metric is reported per episode and averaged."""
        result = evaluator(ScoredCartPole(2, goal=9), episodes=4, seed=2).evaluate()
        expected = [float(length >= 9) for length in result.lengths]
        assert result.metrics["success"] == expected
        assert result.summary()["success"] == pytest.approx(np.mean(expected))

    def test_videos_of_the_first_environment(self, tmp_path: Path) -> None:
        """Each episode of environment 0 becomes an MP4 with one frame per step."""
        subject = evaluator(CartPoleTask(1), episodes=2, seed=3, video_folder=tmp_path)
        result = subject.evaluate(video_name="check")
        assert [p.name for p in result.videos] == ["check-1.mp4", "check-2.mp4"]
        for path, length in zip(result.videos, result.lengths, strict=True):
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                frames = sum(1 for _ in container.decode(stream))
                assert (stream.codec_context.name, stream.width, stream.height) == (
                    "h264",
                    400,
                    240,
                )
            assert frames == length

    def test_video_of_a_gymnasium_environment(self, tmp_path: Path) -> None:
        """A Gymnasium task's rgb_array pictures become an MP4 with one frame per step."""
        task = GymTask("CartPole-v1", num_envs=1)
        result = evaluator(task, episodes=1, seed=3, video_folder=tmp_path).evaluate()
        task.close()
        with av.open(str(result.videos[0])) as container:
            stream = container.streams.video[0]
            assert (stream.width, stream.height) == (600, 400)
            assert sum(1 for _ in container.decode(stream)) == result.lengths[0]

    def test_out_of_range_arguments(self) -> None:
        with pytest.raises(InvalidArgumentError, match="'episodes' must be >= 1"):
            evaluator(CartPoleTask(1), episodes=0)
        with pytest.raises(InvalidArgumentError, match="'mode' must be 'max' or 'min'"):
            BestEvaluation("reward", "maximum")

    def test_videos_of_a_task_that_cannot_be_watched(self, tmp_path: Path) -> None:
        class Unwatchable(CartPoleTask):
            render = None

        with pytest.raises(InvalidArgumentError, match="Unwatchable has no render"):
            evaluator(Unwatchable(1), video_folder=tmp_path)


# --------------------------------------------------------------------------------------------
# During training


def evaluating(
    output_dir: Path,
    pipeline: TrainingPipeline,
    interval: int,
    *,
    num_envs: int = 2,
    max_episode_steps: int = 500,
    seed: int = 0,
    tensorboard: bool = False,
    **options: Any,
) -> OnPolicyRunner:
    """A runner built as ``make_runner`` builds one, evaluating every ``interval`` steps on a
    2-environment CartPole of its own."""
    set_seed(seed)
    task = CartPoleTask(num_envs, max_episode_steps)
    model = MLPActorCritic(task.observation_shape, task.action_space, hidden_sizes=(8,))
    evaluation_task = CartPoleTask(2, max_episode_steps=7)
    evaluator = Evaluator(evaluation_task, model, episodes=3, seed=9, **options)
    return OnPolicyRunner(
        pipeline,
        task,
        model,
        output_dir=output_dir,
        seed=seed,
        tensorboard=tensorboard,
        progress_bar=False,
        evaluator=evaluator,
        evaluation_interval=interval,
    )


class TestDuringTraining:
    def test_training_is_the_same_with_evaluation(self, tmp_path: Path) -> None:
        """The resume tests' run (teacher forcing, demonstrations, scene resets, early
        stopping) trains bit-identically with sampling evaluations every 24 steps."""
        reference = resume_runner(tmp_path / "reference", None)
        expected = reference.run()
        runner = evaluating(
            tmp_path / "evaluating",
            resume_pipeline(None),
            24,
            max_episode_steps=7,
            seed=5,
            deterministic=False,
        )
        summary = runner.run()
        assert summary.final_metrics == expected.final_metrics
        assert_same_weights(weights(runner), weights(reference))
        assert summary.eval_metrics and summary.best is not None
        assert set(summary.eval_metrics) == {"reward", "reward_std", "episode_length"}

    @pytest.mark.parametrize(
        ("num_steps", "max_steps", "expected"),
        [(4, 64, [24, 40, 64]), (5, 60, [20, 40, 60]), (8, 64, [32, 48, 64])],
    )
    def test_evaluations_fall_on_multiples_of_the_interval(
        self, tmp_path: Path, num_steps: int, max_steps: int, expected: list[int]
    ) -> None:
        """An interval of 20 evaluates at the first rollout end (2 environments: every
        2 * num_steps steps) at or after 20, 40 and 60, not 20 steps after the previous
        evaluation, so runs with other rollout sizes evaluate at comparable points; the end of
        the run, just evaluated, is not evaluated twice."""
        stage = PipelineStage(["ppo"], max_steps)
        pipeline = make_pipeline([stage], num_steps=num_steps, metric_accumulate_interval=64)
        evaluating(tmp_path, pipeline, 20).run()
        rows = (tmp_path / "metrics.csv").read_text().splitlines()
        steps = [int(row.split(",")[1]) for row in rows if row.startswith("eval,")]
        assert steps == expected

    def test_eval_metrics_best_checkpoint_and_tags(self, tmp_path: Path) -> None:
        """Every interval and at the end: eval/ scalars and videos, metrics.csv rows, summary
        entries and best.pt at the best evaluation's step."""
        pipeline = make_pipeline([PipelineStage(["ppo"], 48)], metric_accumulate_interval=16)
        videos = tmp_path / "videos"
        summary = evaluating(tmp_path, pipeline, 20, tensorboard=True, video_folder=videos).run()
        events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0})
        events.Reload()
        steps = [event.step for event in events.Scalars("eval/reward")]
        # Rollouts of 8 steps: the first rollout end at or after 20 and 40, then the end.
        assert steps == [24, 40, 48]
        assert {"eval/reward_std", "eval/episode_length"} <= set(events.Tags()["scalars"])
        gifs = events.Images("eval/video")
        # Two episodes of environment 0 per evaluation.
        assert [gif.step for gif in gifs] == [24, 24, 40, 40, 48, 48]
        assert gifs[0].encoded_image_string.startswith(b"GIF89a")
        assert sorted(path.name for path in videos.iterdir()) == [
            f"steps_{step:012d}-{episode}.mp4" for step in steps for episode in (1, 2)
        ]
        rows = (tmp_path / "metrics.csv").read_text().splitlines()
        assert sum(row.startswith("eval,") for row in rows) == 3
        recorded = read_summary(tmp_path)
        assert recorded["eval_metrics"] == summary.eval_metrics
        assert recorded["best"]["metric"] == "reward" and recorded["best"]["total_steps"] in steps
        best = tmp_path / CHECKPOINT_DIRECTORY / BEST_CHECKPOINT
        assert torch.load(best, weights_only=True)["total_steps"] == recorded["best"]["total_steps"]

    def test_early_stopping_on_an_evaluation_metric(self, tmp_path: Path) -> None:
        """A criterion on eval/reward ends its stage at the metric point after the evaluation
        that reached the threshold."""
        criterion = ThresholdEarlyStopping("eval/reward", 1.0)
        pipeline = make_pipeline([PipelineStage(["ppo"], 800, early_stopping_criterion=criterion)])
        summary = evaluating(tmp_path, pipeline, 16).run()
        assert summary.stages[0].early_stopped is True
        assert summary.total_steps == 16

    def test_evaluation_metrics_are_refused_without_evaluation(self, tmp_path: Path) -> None:
        criterion = ThresholdEarlyStopping("eval/reward", 1.0)
        pipeline = make_pipeline([PipelineStage(["ppo"], 8, early_stopping_criterion=criterion)])
        with pytest.raises(InvalidArgumentError, match=r"set evaluation\.interval"):
            make_runner(tmp_path, pipeline)

    def test_resume_keeps_the_evaluation_schedule_and_best(self, tmp_path: Path) -> None:
        """A run resumed from a checkpoint between evaluations evaluates at the same steps and
        ends with the same weights, evaluations and best as the uninterrupted run."""
        whole = evaluating(
            tmp_path / "whole", make_pipeline([PipelineStage(["ppo"], 64)], save_interval=16), 20
        )
        expected = whole.run()
        resumed = evaluating(tmp_path / "resumed", make_pipeline([PipelineStage(["ppo"], 64)]), 20)
        checkpoint = "stage_00__steps_000000000032.pt"  # evaluations at 24, 48 and 64
        resumed.resume(tmp_path / "whole" / CHECKPOINT_DIRECTORY / checkpoint)
        summary = resumed.run()
        assert_same_weights(weights(resumed), weights(whole))
        assert summary.eval_metrics == expected.eval_metrics
        assert summary.best == expected.best
        assert not math.isnan(summary.eval_metrics["reward"])
