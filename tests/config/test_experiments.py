"""The experiment presets reproducing AllenAct's MiniGrid and BabyAI runs: each composes with
AllenAct's settings and starts training (shrunk to a few steps)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from hydra_pipeline import LinearDecay, TrainingPipeline
from hydra_pipeline.engine import OnPolicyRunner
from hydra_pipeline.models import RecurrentActorCritic, model_arguments
from hydra_pipeline.tasks import MiniGridTask

pytest.importorskip("minigrid")

SHRUNK = {
    "minigrid_tutorial": [
        "pipeline.pipeline_stages.0.max_stage_steps=16",
        "model.hidden_size=8",
    ],
    "babyai_go_to_local_dagger_then_ppo": [
        "pipeline.pipeline_stages.0.max_stage_steps=16",
        "pipeline.pipeline_stages.0.teacher_forcing.steps=16",
        "pipeline.pipeline_stages.1.max_stage_steps=16",
        "model.hidden_size=8",
        "model.cnn_channels=[4]",
        "model.embedding_dim=4",
    ],
}
"""Overrides that shrink each experiment to one rollout per stage of a tiny model."""


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

    @pytest.mark.parametrize("experiment", list(SHRUNK))
    def test_experiment_starts(
        self, build: Callable[..., Any], experiment: str, tmp_path: Path
    ) -> None:
        """Shrunk to a few steps, the preset builds its task, recurrent model and pipeline
        and trains through every stage (the BabyAI bot answering for its imitation)."""
        overrides = (f"+experiment={experiment}", "task.num_envs=4", "pipeline.num_steps=4")
        overrides += tuple(SHRUNK[experiment])
        pipeline = build(*overrides)
        assert isinstance(pipeline, TrainingPipeline)
        task = build(*overrides, key="task")
        assert isinstance(task, MiniGridTask)
        model = build(*overrides, key="model", **model_arguments(task))
        assert isinstance(model, RecurrentActorCritic)
        runner = OnPolicyRunner(
            pipeline, task, model, output_dir=tmp_path, tensorboard=False, progress_bar=False
        )
        summary = runner.run()
        task.close()
        assert [stage.steps for stage in summary.stages] == [16] * len(summary.stages)
        if experiment.startswith("babyai"):
            assert isinstance(pipeline.pipeline_stages[0].teacher_forcing, LinearDecay)
            assert task.has_expert
