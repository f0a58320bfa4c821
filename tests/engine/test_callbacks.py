"""Run callbacks: the hooks are called in order with plain values; the metrics file and the
final training return say what they hold."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from hydra_pipeline import InvalidArgumentError, PipelineStage, ThresholdEarlyStopping
from hydra_pipeline.engine import A2C, PPO, OnPolicyRunner
from hydra_pipeline.engine.callbacks import Callback, CallbackList
from hydra_pipeline.engine.episodes import RecentEpisodes
from hydra_pipeline.engine.reporting import METRICS_FILE
from hydra_pipeline.errors import TrainingInterrupted
from tests.engine.test_runner import make_pipeline, make_runner, read_summary


class Recorder(Callback):
    """Remembers every hook call: its name and its keyword arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_") or name == "close":
            return lambda **values: self.calls.append((name, values))
        return super().__getattribute__(name)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def of(self, hook: str) -> list[dict[str, Any]]:
        return [values for name, values in self.calls if name == hook]


def two_stage_run(tmp_path: Path, **runner: Any) -> tuple[Recorder, Any]:
    recorder = Recorder()
    pipeline = make_pipeline(
        [PipelineStage(["ppo"], 16), PipelineStage(["ppo"], 8)],
        save_interval=16,
        metric_accumulate_interval=8,
    )
    run = make_runner(tmp_path, pipeline, max_episode_steps=3, **runner)
    run.callbacks.append(recorder)
    return recorder, run


class TestHooks:
    def test_each_hook_in_order_with_plain_values(self, tmp_path: Path) -> None:
        recorder, runner = two_stage_run(tmp_path)
        runner.run_config = {"seed": 0, "pipeline": {"gamma": 0.99}}
        summary = runner.run()
        assert recorder.names() == [
            "on_run_start",
            "on_stage_start",
            "on_rollout_end", "on_log",
            "on_rollout_end", "on_log", "on_checkpoint",
            "on_stage_end",
            "on_stage_start",
            "on_rollout_end", "on_log", "on_checkpoint",
            "on_stage_end",
            "on_run_end",
            "close",
        ]  # fmt: skip
        assert recorder.of("on_run_start") == [
            {
                "run_dir": tmp_path,
                "config": {"seed": 0, "pipeline": {"gamma": 0.99}},
                "job": {},
                "total_steps": 0,
                "resumed": False,
            }
        ]
        assert recorder.of("on_stage_start")[1] == {
            "stage_index": 1,
            "stage_count": 2,
            "loss_names": ["ppo"],
            "max_stage_steps": 8,
            "stage_steps": 0,
            "total_steps": 16,
            "planned_total_steps": 24,
        }
        assert [c["total_steps"] for c in recorder.of("on_rollout_end")] == [8, 16, 24]
        logs = recorder.of("on_log")
        assert [(log["mode"], log["total_steps"], log["stage_index"]) for log in logs] == [
            ("train", 8, 0),
            ("train", 16, 0),
            ("train", 24, 1),
        ]
        assert recorder.of("on_stage_start")[0]["planned_total_steps"] == 24  # 16 + 8
        # The return the final summary reports: its last-episodes window.
        assert logs[-1]["recent_return"] == summary.to_dict()["final_metrics"]["reward"]
        assert logs[1]["metrics"]["reward"] == 3.0
        assert logs[1]["counts"]["reward"] == 2  # two 3-step episodes in 8 steps of 2 envs
        assert logs[1]["steps_per_second"] > 0
        checkpoints = recorder.of("on_checkpoint")
        assert [(c["total_steps"], c["stage_index"]) for c in checkpoints] == [(16, 0), (24, 1)]
        assert all(c["path"].is_file() for c in checkpoints)
        assert recorder.of("on_stage_end")[0] == {
            "stage_index": 0,
            "total_steps": 16,
            "stage_steps": 16,
            "early_stopped": False,
        }
        (end,) = recorder.of("on_run_end")
        assert end["summary"] == summary.to_dict() and end["run_dir"] == tmp_path

    def test_a_resumed_run_starts_with_the_checkpoints_steps(self, tmp_path: Path) -> None:
        _, first = two_stage_run(tmp_path / "a")
        first.run()
        recorder, resumed = two_stage_run(tmp_path / "b")
        resumed.resume(sorted((tmp_path / "a" / "checkpoints").iterdir())[0])
        resumed.run()
        assert recorder.of("on_run_start")[0]["total_steps"] == 16
        assert recorder.of("on_run_start")[0]["resumed"] is True
        assert recorder.names()[1:3] == ["on_stage_start", "on_rollout_end"]

    def test_an_interrupted_run_closes_without_ending(self, tmp_path: Path) -> None:
        recorder, runner = two_stage_run(tmp_path)
        runner.request_stop("SIGTERM")
        with pytest.raises(TrainingInterrupted):
            runner.run()
        assert "on_run_end" not in recorder.names()
        assert recorder.names()[-2:] == ["on_checkpoint", "close"]

    def test_every_callback_is_closed_even_if_one_fails(self) -> None:
        class Failing(Callback):
            def close(self) -> None:
                raise RuntimeError("cannot flush")

        recorder = Recorder()
        with pytest.raises(RuntimeError, match="cannot flush"):
            CallbackList([Failing(), recorder]).close()
        assert recorder.names() == ["close"]

    def test_a_base_callback_ignores_every_hook(self, tmp_path: Path) -> None:
        _, runner = two_stage_run(tmp_path)
        runner.callbacks.append(Callback())
        runner.run()


def read_metrics(run: Path) -> list[dict[str, str]]:
    with open(run / METRICS_FILE, newline="") as file:
        return list(csv.DictReader(file))


class TestMetricsFile:
    def test_one_row_per_metric_point(self, tmp_path: Path) -> None:
        """total steps, stage, the episodes behind the reward, and every metric by its
        TensorBoard tag; loss columns appear as stages bring them."""
        pipeline = make_pipeline(
            [PipelineStage(["ppo"], 16), PipelineStage(["a2c"], 8)],
            named_losses={"ppo": PPO(), "a2c": A2C()},
            metric_accumulate_interval=8,
        )
        make_runner(tmp_path, pipeline, max_episode_steps=3).run()
        rows = read_metrics(tmp_path)
        assert [(r["mode"], r["total_steps"], r["stage"]) for r in rows] == [
            ("train", "8", "0"),
            ("train", "16", "0"),
            ("train", "24", "1"),
        ]
        assert list(rows[0])[:6] == [
            "mode", "total_steps", "stage", "stage_steps", "episodes", "steps_per_second"
        ]  # fmt: skip
        assert rows[1]["episodes"] == "2" and float(rows[1]["train/reward"]) == 3.0
        assert rows[0]["loss/ppo/clip_fraction"] and rows[2]["loss/ppo/clip_fraction"] == ""
        assert rows[2]["loss/a2c/value"] and rows[0]["loss/a2c/value"] == ""

    def test_resume_drops_the_rows_after_the_checkpoint(self, tmp_path: Path) -> None:
        """A run killed after its checkpoint had logged more; the resumed run's file holds
        exactly the uninterrupted run's rows."""
        _, full = two_stage_run(tmp_path / "full")
        full.run()
        expected = read_metrics(tmp_path / "full")
        run = tmp_path / "killed"
        _, first = two_stage_run(run)
        first.run()  # as if killed after it logged the last point: the file has every row
        _, resumed = two_stage_run(run)
        resumed.resume(sorted((run / "checkpoints").iterdir())[0])  # the one at step 16
        resumed.run()
        rows = read_metrics(run)
        drop = "steps_per_second"
        assert [{k: v for k, v in r.items() if k != drop} for r in rows] == [
            {k: v for k, v in r.items() if k != drop} for r in expected
        ]


class TestFinalReturn:
    def test_the_mean_of_the_last_episodes_with_their_count(self, tmp_path: Path) -> None:
        """summary.json's reward averages the last return_window episodes, however many
        metric points they span, and says how many that was."""
        pipeline = make_pipeline([PipelineStage(["ppo"], 64)], metric_accumulate_interval=8)
        runner = make_runner(tmp_path, pipeline, max_episode_steps=3)
        runner.statistics.recent_episodes = RecentEpisodes(5)
        runner.run()
        summary = read_summary(tmp_path)
        assert summary["final_metrics"]["reward"] == 3.0
        assert summary["final_counts"]["reward"] == 5
        assert summary["final_counts"]["episode_length"] == 5

    def test_the_window_is_checked(self, tmp_path: Path) -> None:
        runner = make_runner(tmp_path, make_pipeline([PipelineStage(["ppo"], 8)]))
        with pytest.raises(InvalidArgumentError, match="'return_window' must be >= 1"):
            OnPolicyRunner(
                runner.pipeline, runner.task, runner.model, output_dir=tmp_path, return_window=0
            )


class TestRecentEpisodes:
    def test_keeps_the_latest(self) -> None:
        recent = RecentEpisodes(3)
        assert recent.means() == {} and recent.count == 0
        recent.add(torch.tensor([1.0, 2.0]), torch.tensor([10.0, 20.0]))
        recent.add(torch.tensor([3.0, 4.0]), torch.tensor([30.0, 40.0]))
        assert recent.count == 3
        assert recent.means() == {"reward": 3.0, "episode_length": 30.0}
        copy = RecentEpisodes(3)
        copy.load_state_dict(recent.state_dict())
        assert copy.means() == recent.means()
        assert not math.isnan(copy.means()["reward"])


def test_an_early_stopping_run_reports_its_stop(tmp_path: Path) -> None:
    """The stage end says the criterion ended it."""
    recorder = Recorder()
    pipeline = make_pipeline(
        [
            PipelineStage(
                ["ppo"], 64, early_stopping_criterion=ThresholdEarlyStopping("reward", 2.0)
            )
        ],
        metric_accumulate_interval=8,
    )
    runner = make_runner(tmp_path, pipeline, max_episode_steps=3)
    runner.callbacks.append(recorder)
    runner.run()
    assert recorder.of("on_stage_end")[0]["early_stopped"] is True
