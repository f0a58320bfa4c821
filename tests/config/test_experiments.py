"""The MiniGrid and BabyAI experiment presets (AllenAct's runs, the zoo's DoorKey, the CPU-sized
BabyAI run): each composes with its settings and trains two rollouts per stage (shrunk). Their
learning results belong to ``benchmarks/minigrid_presets.py``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from hydra_pipeline import LinearDecay, TrainingPipeline
from hydra_pipeline.engine import OnPolicyRunner
from hydra_pipeline.models import RecurrentActorCritic, model_arguments
from hydra_pipeline.tasks import MiniGridTask

pytest.importorskip("minigrid")

TWO_ROLLOUTS = 32
"""Steps per stage in the shrunk runs: two rollouts of 4 environments x 4 steps."""

BABYAI_SHRUNK = [
    f"pipeline.pipeline_stages.0.max_stage_steps={TWO_ROLLOUTS}",
    f"pipeline.pipeline_stages.0.teacher_forcing.steps={TWO_ROLLOUTS}",
    f"pipeline.pipeline_stages.1.max_stage_steps={TWO_ROLLOUTS}",
    "model.hidden_size=8",
    "model.cnn_channels=[4]",
    "model.embedding_dim=4",
]

SHRUNK = {
    "minigrid_tutorial": [
        f"pipeline.pipeline_stages.0.max_stage_steps={TWO_ROLLOUTS}",
        "model.hidden_size=8",
    ],
    "ppo_minigrid_doorkey": [
        f"pipeline.pipeline_stages.0.max_stage_steps={TWO_ROLLOUTS}",
        "pipeline.num_mini_batch=2",
    ],
    "babyai_go_to_local_dagger_then_ppo": BABYAI_SHRUNK,
    "babyai_go_to_local_cpu": [*BABYAI_SHRUNK, "pipeline.sequence_length=2"],
}
"""Overrides that shrink each experiment to two rollouts per stage (of a tiny model for the
recurrent ones)."""


class TestExperiments:
    def test_minigrid_tutorial_has_allenacts_settings(self, compose: Callable[..., Any]) -> None:
        """The tutorial preset: PPO with a GRU on Empty-Random-5x5 (5x5 view), 150,000 steps,
        128 environments, rollouts of 16, 4 minibatches, 3 epochs, Adam at 1e-4."""
        cfg = compose("+experiment=minigrid_tutorial")
        assert cfg.task._target_ == "hydra_pipeline.tasks.MiniGridTask"
        assert cfg.task.env_id == "MiniGrid-Empty-Random-5x5-v0"
        assert cfg.task.env_kwargs.agent_view_size == 5
        assert cfg.model._target_ == "hydra_pipeline.models.RecurrentActorCritic"
        assert cfg.model.rnn_type == "gru" and cfg.model.hidden_size == 512
        pipeline = cfg.pipeline
        assert [stage.max_stage_steps for stage in pipeline.pipeline_stages] == [150_000]
        assert pipeline.optimizer_builder.lr == 1e-4
        assert pipeline.named_losses.ppo_loss.clip_param == 0.1
        settings = ("num_steps", "num_mini_batch", "update_repeats", "gae_lambda")
        assert [pipeline[key] for key in settings] == [16, 4, 3, 0.95]
        assert (
            OmegaConf.to_container(pipeline.lr_scheduler_builder, resolve=True)["lr_lambda"][
                "steps"
            ]
            == 150_000
        )

    def test_babyai_preset_stages_imitation_with_teacher_forcing_then_ppo(
        self, compose: Callable[..., Any]
    ) -> None:
        """The BabyAI preset: GoToLocal, DAgger's imitation stage (teacher forcing 1 -> 0 over
        3.75M of 7.5M steps) then PPO for 15M steps, with go_to_local's shared settings."""
        cfg = compose("+experiment=babyai_go_to_local_dagger_then_ppo")
        assert cfg.task.env_id == "BabyAI-GoToLocal-v0" and cfg.task.mission_length == 5
        assert cfg.model.rnn_type == "lstm" and cfg.model.hidden_size == 2048
        first, second = cfg.pipeline.pipeline_stages
        assert list(first.loss_names) == ["imitation_loss"]
        assert first.max_stage_steps == 7_500_000 and first.teacher_forcing.steps == 3_750_000
        assert list(second.loss_names) == ["ppo_loss"] and second.max_stage_steps == 15_000_000
        assert second.early_stopping_criterion is None
        settings = ("num_steps", "num_mini_batch", "update_repeats", "gae_lambda")
        assert [cfg.pipeline[key] for key in settings] == [128, 4, 4, 0.99]
        assert cfg.pipeline.optimizer_builder.lr == 1e-3

    def test_doorkey_preset_has_the_zoos_settings_and_sees_the_image(
        self, compose: Callable[..., Any], build: Callable[..., Any]
    ) -> None:
        """DoorKey-5x5 with the zoo's PPO (8 environments, 100k steps, rollouts of 128,
        minibatches of 64 transitions, 10 epochs, Adam at 2.5e-4, normalised rewards); the
        view reaches the model as an image, through convolutions."""
        cfg = compose("+experiment=ppo_minigrid_doorkey")
        assert cfg.task.env_id == "MiniGrid-DoorKey-5x5-v0" and cfg.task.num_envs == 8
        pipeline = cfg.pipeline
        assert [stage.max_stage_steps for stage in pipeline.pipeline_stages] == [100_000]
        settings = ("num_steps", "num_mini_batch", "update_repeats", "gamma", "gae_lambda")
        assert [pipeline[key] for key in settings] == [128, 16, 10, 0.99, 0.95]
        assert pipeline.minibatch_split == "transitions" and pipeline.optimizer_builder.lr == 2.5e-4
        assert cfg.normalization.rewards and not cfg.normalization.observations
        task = build("+experiment=ppo_minigrid_doorkey", "task.num_envs=1", key="task")
        model = build("+experiment=ppo_minigrid_doorkey", key="model", **model_arguments(task))
        task.close()
        assert any(isinstance(layer, torch.nn.Conv2d) for layer in model.modules())

    def test_cpu_babyai_preset_is_the_allenact_staging_at_smaller_sizes(
        self, compose: Callable[..., Any]
    ) -> None:
        """The CPU-sized BabyAI preset keeps the AllenAct preset's stages and losses, with a
        smaller LSTM, more environments and budgets of about a million steps."""
        allenact = compose("+experiment=babyai_go_to_local_dagger_then_ppo")
        cfg = compose("+experiment=babyai_go_to_local_cpu")
        assert cfg.task.env_id == allenact.task.env_id
        assert cfg.task.mission_length == allenact.task.mission_length
        assert cfg.model.rnn_type == "lstm" and cfg.model.hidden_size < allenact.model.hidden_size
        assert cfg.task.num_envs > allenact.task.num_envs
        stages = cfg.pipeline.pipeline_stages
        assert [list(stage.loss_names) for stage in stages] == [
            list(stage.loss_names) for stage in allenact.pipeline.pipeline_stages
        ]
        assert sum(stage.max_stage_steps for stage in stages) <= 1_000_000
        assert stages[0].teacher_forcing.steps < stages[0].max_stage_steps

    @pytest.mark.parametrize("experiment", list(SHRUNK))
    def test_experiment_starts(
        self, build: Callable[..., Any], experiment: str, tmp_path: Path
    ) -> None:
        """Shrunk to two rollouts per stage, the preset builds its task, model (recurrent but for
        DoorKey's) and pipeline and trains through every stage (the BabyAI bot answering for its
        imitation)."""
        overrides = (f"+experiment={experiment}", "task.num_envs=4", "pipeline.num_steps=4")
        overrides += tuple(SHRUNK[experiment])
        pipeline = build(*overrides)
        assert isinstance(pipeline, TrainingPipeline)
        task = build(*overrides, key="task")
        assert isinstance(task, MiniGridTask)
        model = build(*overrides, key="model", **model_arguments(task))
        assert isinstance(model, RecurrentActorCritic) == (experiment != "ppo_minigrid_doorkey")
        runner = OnPolicyRunner(
            pipeline, task, model, output_dir=tmp_path, tensorboard=False, progress_bar=False
        )
        summary = runner.run()
        task.close()
        assert [stage.steps for stage in summary.stages] == [TWO_ROLLOUTS] * len(summary.stages)
        if experiment.startswith("babyai"):
            assert isinstance(pipeline.pipeline_stages[0].teacher_forcing, LinearDecay)
            assert task.has_expert
