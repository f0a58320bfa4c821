"""Evaluation through the command line: during training (``evaluation.*``), the evaluate
command on a run's checkpoints, ``Policy.from_run``, and their messages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hydra_pipeline import CheckpointError, ConfigError, Policy
from hydra_pipeline.app.evaluate import objective_value
from hydra_pipeline.tasks import CartPoleTask
from tests.app.conftest import SMALL, run_in_process

EVALUATING = ["evaluation.interval=1024", "evaluation.episodes=4", "evaluation.num_envs=2"]


def train(folder: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return run_in_process([*arguments, f"hydra.run.dir={folder}"], folder.parent)


def evaluate(cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return run_in_process(list(arguments), cwd, program="hydra-pipeline-evaluate")


def read(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short default run that evaluates after each of its two stages."""
    folder = tmp_path_factory.mktemp("evaluate") / "run"
    result = train(folder, *SMALL, *EVALUATING)
    assert result.returncode == 0, result.stderr
    return folder


class TestDuringTraining:
    def test_eval_tags_summary_and_best_checkpoint(self, run: Path) -> None:
        """The run logs eval/ scalars at 1024 and 2048 steps, summarises the last
        evaluation and the best, and keeps best.pt."""
        events = EventAccumulator(str(run / "tensorboard"))
        events.Reload()
        assert [event.step for event in events.Scalars("eval/reward")] == [1024, 2048]
        summary = read(run / "summary.json")
        assert set(summary["eval_metrics"]) == {"reward", "reward_std", "episode_length"}
        assert summary["best"]["total_steps"] in (1024, 2048)
        best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
        assert best["total_steps"] == summary["best"]["total_steps"]

    def test_objective(self) -> None:
        """The objective is the last evaluation's return when the run evaluated, else the
        final training return, or what ``objective`` names (-inf when it has no value)."""
        summary = {"final_metrics": {"reward": 1.0}, "eval_metrics": {"reward": 2.0}}
        assert objective_value(summary, None) == 2.0
        assert objective_value({**summary, "eval_metrics": {}}, None) == 1.0
        assert objective_value(summary, "reward") == 1.0
        assert objective_value(summary, "eval/success") == float("-inf")

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            (["objective=eval/reward"], "'objective' is 'eval/reward', an evaluation metric"),
            (
                ["pipeline.pipeline_stages.1.early_stopping_criterion.metric=eval/reward"],
                "Evaluation metrics are logged when the run evaluates",
            ),
            (["evaluation.interval=0"], "'evaluation.interval' must be >= 1"),
            (["evaluation.interval=8", "evaluation.mode=high"], "'evaluation.mode' must be"),
        ],
    )
    def test_settings_that_cannot_work(
        self, tmp_path: Path, arguments: list[str], message: str
    ) -> None:
        result = train(tmp_path / "run", *SMALL, *arguments)
        assert result.returncode == 1 and message in result.stderr, result.stderr

    def test_videos_without_the_extra(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without PyAV, video=true is refused at startup, naming the extra to install."""
        monkeypatch.setitem(sys.modules, "av", None)
        result = train(tmp_path / "run", *SMALL, "evaluation.interval=8", "evaluation.video=true")
        assert result.returncode == 1
        assert 'pip install "hydra-pipeline[video]"' in result.stderr
        assert "'evaluation.video' is true" in result.stderr


class TestEvaluateCommand:
    def test_last_best_and_a_file(self, run: Path) -> None:
        """Each writes <run>/evaluation/<checkpoint stem>.json and prints a table."""
        latest = "stage_01__steps_000000002048.pt"
        for choice, stem in (("last", latest[:-3]), ("best", "best"), (latest, latest[:-3])):
            result = evaluate(run.parent, f"run={run}", f"checkpoint={choice}", "episodes=3")
            assert result.returncode == 0, result.stderr
            record = read(run / "evaluation" / f"{stem}.json")
            assert record["checkpoint"] == f"checkpoints/{stem}.pt"
            assert record["episodes"] == len(record["returns"]) == 3
            assert record["reward_mean"] == pytest.approx(np.mean(record["returns"]))
            assert record["reward_std"] == pytest.approx(np.std(record["returns"]))
            assert record["episode_length_mean"] == pytest.approx(
                np.mean(record["episode_lengths"])
            )
            assert f"{stem}.pt" in result.stdout and "return" in result.stdout
        assert (
            read(run / "evaluation" / "best.json")["total_steps"]
            == read(run / "summary.json")["best"]["total_steps"]
        )

    def test_all_writes_test_scalars(self, run: Path) -> None:
        result = evaluate(run.parent, f"run={run}", "checkpoint=all", "episodes=2")
        assert result.returncode == 0, result.stderr
        for steps in (1024, 2048):
            stage = 0 if steps == 1024 else 1
            assert (run / "evaluation" / f"stage_{stage:02d}__steps_{steps:012d}.json").is_file()
        events = EventAccumulator(str(run / "evaluation" / "tensorboard"))
        events.Reload()
        assert [event.step for event in events.Scalars("test/reward")] == [1024, 2048]

    def test_policy_from_run_reproduces_the_command(self, run: Path) -> None:
        """Policy.from_run acting on a task seeded as the command seeds it plays the same
        episodes; it leaves the global generator as it was."""
        arguments = [f"run={run}", "checkpoint=best", "episodes=3", "task.num_envs=1", "seed=7"]
        assert evaluate(run.parent, *arguments).returncode == 0
        expected = read(run / "evaluation" / "best.json")["returns"]

        generator_state = torch.get_rng_state()
        policy = Policy.from_run(run, checkpoint="best")
        assert torch.equal(generator_state, torch.get_rng_state())
        task = CartPoleTask(num_envs=1)
        observations, returns, episode_return = task.reset(seed=7).numpy(), [], 0.0
        while len(returns) < 3:
            result = task.step(torch.from_numpy(policy.act(observations)))
            episode_return += float(result.rewards[0])
            observations = result.observations.numpy()
            if result.terminated[0] or result.truncated[0]:
                returns, episode_return = [*returns, episode_return], 0.0
        assert returns == expected
        assert policy.act(torch.zeros(2, 4)).dtype == torch.int64

    def test_video(self, run: Path) -> None:
        """video=true records each episode as an MP4 with one frame per step."""
        arguments = ["checkpoint=last", "episodes=2", "task.num_envs=1", "video=true"]
        result = evaluate(run.parent, f"run={run}", *arguments)
        assert result.returncode == 0, result.stderr
        record = read(run / "evaluation" / "stage_01__steps_000000002048.json")
        assert len(record["videos"]) == 2
        for video, length in zip(record["videos"], record["episode_lengths"], strict=True):
            with av.open(str(run / video)) as container:
                assert sum(1 for _ in container.decode(video=0)) == length

    def test_help_lists_the_keys(self, tmp_path: Path) -> None:
        result = evaluate(tmp_path, "--help")
        assert result.returncode == 0
        assert "checkpoint: str = auto" in result.stdout and "task.num_envs=1" in result.stdout

    def test_unusable_checkpoints_and_folders(self, run: Path, tmp_path: Path) -> None:
        """A missing or corrupt checkpoint, and a folder without a saved config, each end
        with one message naming it."""
        missing = evaluate(tmp_path, f"run={run}", "checkpoint=stage_09.pt")
        assert missing.returncode == 1
        assert "checkpoint=stage_09.pt: no such checkpoint file" in missing.stderr
        corrupt = tmp_path / "corrupt.pt"
        corrupt.write_bytes((run / "checkpoints" / "best.pt").read_bytes()[:200])
        result = evaluate(tmp_path, f"run={run}", f"checkpoint={corrupt}")
        assert result.returncode == 1 and "is corrupt or truncated" in result.stderr
        (tmp_path / "empty").mkdir()
        result = evaluate(tmp_path, f"run={tmp_path / 'empty'}")
        assert result.returncode == 1 and "holds no saved config" in result.stderr
        assert "Traceback" not in missing.stderr + result.stderr
        result = evaluate(tmp_path)
        assert result.returncode == 1 and "'run' has no value" in result.stderr
        with pytest.raises(ConfigError, match="holds no saved config"):
            Policy.from_run(tmp_path / "empty")
        without_best = tmp_path / "without_best"
        shutil.copytree(run, without_best)
        (without_best / "checkpoints" / "best.pt").unlink()
        with pytest.raises(CheckpointError, match="Use checkpoint=last"):
            Policy.from_run(without_best, checkpoint="best")

    def test_a_task_the_model_does_not_fit(self, tmp_path: Path) -> None:
        """Evaluating a Gymnasium CartPole run on Acrobot (other observations and actions)
        ends with the checkpoint, the mismatch and the task evaluated."""
        gym_run = tmp_path / "gym"
        arguments = ["pipeline=ppo", "task=gym", "task.num_envs=2", "pipeline.num_steps=8"]
        arguments += ["pipeline.num_mini_batch=1", "pipeline.pipeline_stages.0.max_stage_steps=16"]
        assert train(gym_run, *arguments).returncode == 0
        result = evaluate(tmp_path, f"run={gym_run}", "task.env_id=Acrobot-v1", "episodes=1")
        assert result.returncode == 1
        assert "do not fit the model built here" in result.stderr
        assert "size mismatch" in result.stderr and "env_id='Acrobot-v1'" in result.stderr


class TestNormalizedRun:
    """A run that normalises observations and rewards: its statistics travel with its
    checkpoints to the evaluate command and to Policy.from_run."""

    def test_the_command_and_the_policy_see_what_training_saw(self, tmp_path: Path) -> None:
        """The evaluate command replays the run's last evaluation exactly (same episodes,
        same frozen statistics), and Policy.from_run plays the command's episodes."""
        normalized = tmp_path / "run"
        normalizing = ["normalization.observations=true", "normalization.rewards=true"]
        trained = train(normalized, *SMALL, *EVALUATING, *normalizing)
        assert trained.returncode == 0, trained.stderr
        last = ["checkpoint=last", "episodes=4", "task.num_envs=2"]
        result = evaluate(normalized.parent, f"run={normalized}", *last)
        assert result.returncode == 0, result.stderr
        record = read(normalized / "evaluation" / "stage_01__steps_000000002048.json")
        assert record["reward_mean"] == read(normalized / "summary.json")["eval_metrics"]["reward"]

        arguments = [f"run={normalized}", "checkpoint=last", "episodes=2", "task.num_envs=1"]
        arguments.append("seed=7")
        assert evaluate(normalized.parent, *arguments).returncode == 0
        expected = read(normalized / "evaluation" / "stage_01__steps_000000002048.json")
        policy = Policy.from_run(normalized, checkpoint="last")
        assert policy.normalization is not None
        task = CartPoleTask(num_envs=1)
        observations, returns, episode_return = task.reset(seed=7), [], 0.0
        while len(returns) < 2:
            step = task.step(policy.act(observations))
            episode_return += float(step.rewards[0])
            observations = step.observations
            if step.terminated[0] or step.truncated[0]:
                returns, episode_return = [*returns, episode_return], 0.0
        assert returns == expected["returns"]
