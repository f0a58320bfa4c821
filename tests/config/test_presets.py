"""The shipped YAML presets compose, pass the startup checks and build real objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from hydra_pipeline import (
    Builder,
    LinearDecay,
    PipelineStage,
    ThresholdEarlyStopping,
    TrainingPipeline,
)
from hydra_pipeline.config import instantiate_node
from hydra_pipeline.engine.losses import PPO, Imitation, PPOConfig
from hydra_pipeline.models import MLPActorCritic, RecurrentActorCritic
from hydra_pipeline.pipeline import MetricGoal
from hydra_pipeline.tasks import CartPoleTask, DiscreteActions, GymTask

PIPELINES = ["ppo", "imitation_then_ppo"]
OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
SCHEDULERS: dict[str, type[Any] | None] = {
    "constant": None,
    "linear_decay": torch.optim.lr_scheduler.LambdaLR,
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "step": torch.optim.lr_scheduler.StepLR,
}
TOTAL_STEPS = {"ppo": 500_000, "imitation_then_ppo": 32_768 + 300_000}


class TestPresetMatrix:
    @pytest.mark.parametrize("scheduler", list(SCHEDULERS))
    @pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
    @pytest.mark.parametrize("pipeline", PIPELINES)
    def test_every_combination_builds_a_working_optimizer_and_scheduler(
        self, build: Callable[..., Any], pipeline: str, optimizer: str, scheduler: str
    ) -> None:
        """Each pipeline x optimizer x lr_scheduler preset builds real torch objects."""
        built = build(f"pipeline={pipeline}", f"optimizer={optimizer}", f"lr_scheduler={scheduler}")
        assert type(built) is TrainingPipeline
        assert all(type(stage) is PipelineStage for stage in built.pipeline_stages)
        assert isinstance(built.optimizer_builder, Builder)

        model = torch.nn.Linear(2, 2)
        opt = built.optimizer_builder(params=model.parameters())
        assert type(opt) is OPTIMIZERS[optimizer]
        assert opt.param_groups[0]["params"] == list(model.parameters())
        lr = built.optimizer_builder.kwargs["lr"]
        assert opt.param_groups[0]["lr"] == pytest.approx(lr)

        expected_scheduler = SCHEDULERS[scheduler]
        if expected_scheduler is None:
            assert built.lr_scheduler_builder is None
            return
        assert isinstance(built.lr_scheduler_builder, Builder)
        sched = built.lr_scheduler_builder(optimizer=opt)
        assert type(sched) is expected_scheduler
        assert sched.optimizer is opt
        assert sched.get_last_lr() == pytest.approx([lr])  # every schedule starts at the LR
        model(torch.ones(1, 2)).sum().backward()
        opt.step()
        sched.step()

    @pytest.mark.parametrize("pipeline", PIPELINES)
    def test_cosine_and_linear_decay_span_all_stages(
        self, build: Callable[..., Any], pipeline: str
    ) -> None:
        """Whole-run schedules last the sum of the stages' max_stage_steps."""
        cosine = build(f"pipeline={pipeline}", "lr_scheduler=cosine").lr_scheduler_builder
        assert cosine.kwargs["T_max"] == TOTAL_STEPS[pipeline]
        linear = build(f"pipeline={pipeline}", "lr_scheduler=linear_decay").lr_scheduler_builder
        assert linear.kwargs["lr_lambda"] == LinearDecay(TOTAL_STEPS[pipeline], 1.0, 0.0)

    def test_step_preset_halves_every_100k_steps(self, build: Callable[..., Any]) -> None:
        """The step preset's values reach StepLR."""
        step = build("lr_scheduler=step").lr_scheduler_builder
        assert step == Builder(
            torch.optim.lr_scheduler.StepLR, {"step_size": 100_000, "gamma": 0.5, "last_epoch": -1}
        )

    def test_default_is_imitation_then_ppo_with_adam_and_linear_decay(
        self, compose: Callable[..., Any]
    ) -> None:
        """The primary config's defaults: imitation_then_ppo, adam, linear_decay, cartpole, mlp."""
        cfg = compose()
        assert cfg.pipeline.optimizer_builder.class_type == "torch.optim.Adam"
        assert cfg.pipeline.lr_scheduler_builder.class_type == "torch.optim.lr_scheduler.LambdaLR"
        assert [list(stage.loss_names) for stage in cfg.pipeline.pipeline_stages] == [
            ["imitation_loss"],
            ["ppo_loss"],
        ]
        assert cfg.task._target_ == "hydra_pipeline.tasks.CartPoleTask"
        assert cfg.model._target_ == "hydra_pipeline.models.MLPActorCritic"


class TestTaskAndModelPresets:
    def test_cartpole_task_builds(self, build: Callable[..., Any]) -> None:
        """task=cartpole builds a CartPoleTask with the preset's values."""
        task = build("task=cartpole", key="task")
        assert type(task) is CartPoleTask
        assert (task.num_envs, task.max_episode_steps) == (64, 500)
        assert task.observation_shape == (4,)
        assert task.action_space == DiscreteActions(2)

    def test_gym_task_builds_cartpole_v1(self, build: Callable[..., Any]) -> None:
        """task=gym builds a GymTask of CartPole-v1 with 8 synchronous environments."""
        task = build("task=gym", "task.env_id=CartPole-v1", key="task")
        try:
            assert type(task) is GymTask
            assert task.num_envs == 8
            assert task.observation_shape == (4,)
            assert task.action_space == DiscreteActions(2)
        finally:
            task.close()

    @pytest.mark.parametrize("task_option", ["cartpole", "gym"])
    def test_mlp_model_builds_for_each_task(
        self, compose: Callable[..., Any], prepare: Callable[..., Any], task_option: str
    ) -> None:
        """model=mlp builds with the task's observation_shape and action_space, as the app does."""
        cfg = prepare(compose(f"task={task_option}", "model=mlp"))
        task = instantiate_node(cfg, "task")
        try:
            model = instantiate_node(
                cfg,
                "model",
                observation_shape=task.observation_shape,
                action_space=task.action_space,
            )
        finally:
            task.close()
        assert type(model) is MLPActorCritic
        linears = [m for m in model.actor if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears] == [(4, 64), (64, 64), (64, 2)]
        assert all(type(m) is not torch.nn.ReLU for m in model.actor)
        assert sum(type(m) is torch.nn.Tanh for m in model.actor) == 2
        output = model(torch.zeros(3, 4))
        assert output.values.shape == (3,)

    @pytest.mark.parametrize("option", ["gru", "lstm"])
    def test_recurrent_models_build_for_the_partially_observed_task(
        self, compose: Callable[..., Any], prepare: Callable[..., Any], option: str
    ) -> None:
        """model=gru and model=lstm build a recurrent model for task.hide_velocities=true."""
        cfg = prepare(compose(f"model={option}", "task.hide_velocities=true"))
        task = instantiate_node(cfg, "task")
        model = instantiate_node(
            cfg, "model", observation_shape=task.observation_shape, action_space=task.action_space
        )
        assert type(model) is RecurrentActorCritic
        core = model.tower.core
        assert type(core) is (torch.nn.GRU if option == "gru" else torch.nn.LSTM)
        assert core.input_size == 64 and core.hidden_size == 64
        output, memory = model(task.reset(), model.initial_memory(64), torch.ones(1, 64).bool())
        assert output.values.shape == (64,) and memory.shape[0] == 64


class TestImitationThenPPO:
    @pytest.fixture
    def pipeline(self, build: Callable[..., Any]) -> TrainingPipeline:
        built = build("pipeline=imitation_then_ppo")
        assert isinstance(built, TrainingPipeline)
        return built

    def test_loss_names(self, pipeline: TrainingPipeline) -> None:
        """named_losses holds ppo_loss (a PPO) and imitation_loss (an Imitation)."""
        assert set(pipeline.named_losses) == {"ppo_loss", "imitation_loss"}
        assert type(pipeline.named_losses["ppo_loss"]) is PPO
        assert type(pipeline.named_losses["imitation_loss"]) is Imitation

    def test_ppo_loss_takes_the_preset_values(self, pipeline: TrainingPipeline) -> None:
        """The CartPole preset's PPO values (ppo_cartpole: clip 0.2, no entropy bonus) reach
        the loss object."""
        ppo = pipeline.named_losses["ppo_loss"]
        assert (ppo.clip_param, ppo.value_loss_coef, ppo.entropy_coef) == (0.2, 0.5, 0.0)

    def test_imitation_takes_more_passes_over_its_rollouts(
        self, pipeline: TrainingPipeline
    ) -> None:
        """Stage 0 runs 8 update epochs per rollout (a recurrent policy needs the gradient
        steps to imitate the expert in the stage's 32,768 steps); every other setting of both
        stages is the pipeline's."""
        imitation, ppo = pipeline.pipeline_stages
        assert imitation.training_settings.own_values() == {"update_repeats": 8}
        assert pipeline.update_repeats == 4
        assert ppo.training_settings.own_values() == {}
        expected = {**pipeline.training_settings.resolved(), "update_repeats": 8}
        assert imitation.training_settings.resolved() == expected
        assert ppo.training_settings.resolved() == pipeline.training_settings.resolved()

    def test_stage_0_imitates_with_decaying_teacher_forcing(
        self, pipeline: TrainingPipeline
    ) -> None:
        """Stage 0 trains imitation_loss with teacher forcing decaying linearly from 1 to 0."""
        stage = pipeline.pipeline_stages[0]
        assert stage.loss_names == ["imitation_loss"]
        assert stage.max_stage_steps == 32_768
        assert stage.early_stopping_criterion is None
        assert stage.teacher_forcing == LinearDecay(steps=32_768, startp=1.0, endp=0.0)
        assert type(stage.teacher_forcing) is LinearDecay
        assert stage.teacher_forcing(0) == 1.0
        assert stage.teacher_forcing(32_768) == 0.0

    def test_stage_1_is_ppo_with_reward_threshold(self, pipeline: TrainingPipeline) -> None:
        """Stage 1 trains ppo_loss until the mean reward reaches 475."""
        stage = pipeline.pipeline_stages[1]
        assert stage.loss_names == ["ppo_loss"]
        assert stage.max_stage_steps == 300_000
        assert stage.teacher_forcing is None
        criterion = stage.early_stopping_criterion
        assert type(criterion) is ThresholdEarlyStopping
        assert (criterion.metric, criterion.threshold) == ("reward", 475.0)
        assert (criterion.mode, criterion.consecutive) == (MetricGoal.MAX, 1)

    def test_linear_decay_lasts_the_sum_of_max_stage_steps(
        self, pipeline: TrainingPipeline
    ) -> None:
        """The LR schedule's LinearDecay lasts the total_max_stage_steps of the stages."""
        assert pipeline.lr_scheduler_builder is not None
        decay = pipeline.lr_scheduler_builder.kwargs["lr_lambda"]
        total = sum(stage.max_stage_steps for stage in pipeline.pipeline_stages)
        assert decay == LinearDecay(steps=total, startp=1.0, endp=0.0)

    def test_lr_lambda_is_an_interpolation_in_the_composed_config(
        self, compose: Callable[..., Any]
    ) -> None:
        """The schedule length is computed by the total_max_stage_steps resolver, not copied."""
        cfg = compose()
        raw = OmegaConf.to_container(cfg.pipeline.lr_scheduler_builder.lr_lambda)
        assert raw["steps"] == "${total_max_stage_steps:${pipeline.pipeline_stages}}"
        assert cfg.pipeline.lr_scheduler_builder.lr_lambda.steps == 332_768


class TestAllenActDefaults:
    @pytest.mark.parametrize("pipeline", PIPELINES)
    def test_cartpole_pipelines_select_the_tuned_options(
        self, compose: Callable[..., Any], pipeline: str
    ) -> None:
        """The CartPole values live in ppo_cartpole and adam_cartpole, which the pipeline
        presets select; loss=ppo and optimizer=adam are AllenAct's and torch's defaults."""
        cfg = compose(f"pipeline={pipeline}")
        loss = cfg.pipeline.named_losses.ppo_loss
        assert (loss.clip_param, loss.value_loss_coef, loss.entropy_coef) == (0.2, 0.5, 0.0)
        optimizer = cfg.pipeline.optimizer_builder
        assert (optimizer.lr, optimizer.eps) == (0.003, 1e-05)

    def test_ppo_preset_is_allenacts_ppo_config(self, build: Callable[..., Any]) -> None:
        """loss=ppo builds PPO(**PPOConfig): every attribute as AllenAct's defaults give it."""
        ppo = build("loss@pipeline.named_losses.ppo_loss=ppo").named_losses["ppo_loss"]
        assert vars(ppo) == vars(PPO(**PPOConfig))
        assert (ppo.clip_param, ppo.entropy_coef, ppo.use_clipped_value_loss) == (0.1, 0.01, True)

    def test_adam_preset_is_torchs_adam(self, build: Callable[..., Any]) -> None:
        """optimizer=adam builds torch.optim.Adam with torch's own defaults, computed by its
        fused implementation."""
        params = [torch.nn.Parameter(torch.zeros(2))]
        built = build("optimizer=adam").optimizer_builder(params=params)
        assert built.defaults == torch.optim.Adam(params, fused=True).defaults
