"""AllenAct 0.5's objects from configs: per-stage training settings (overridable and
sweepable), stage components and storages, MultiLinearDecay as teacher forcing, clip decay and
LR schedule, schedules selected into null fields, and the new loss arguments."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf

from hydra_pipeline import (
    ConfigError,
    LinearDecay,
    MultiLinearDecay,
    RolloutBlockStorage,
    StageComponent,
    TrainingSettings,
)
from hydra_pipeline.config import (
    MultiLinearDecayConf,
    RolloutBlockStorageConf,
    StageComponentConf,
    TrainingSettingsConf,
    check_config,
    instantiate_node,
    schema_for_target,
)
from hydra_pipeline.tasks import ExpertDemonstrations
from tests.pages import code_blocks

Build = Callable[..., Any]
MULTI = (
    "{_target_:hydra_pipeline.MultiLinearDecay,stages:["
    "{_target_:hydra_pipeline.LinearDecay,steps:100,startp:1.0,endp:0.5},"
    "{_target_:hydra_pipeline.LinearDecay,steps:200,startp:0.5,endp:0.0}]}"
)


def test_every_new_object_has_a_schema() -> None:
    """Each is buildable from configs: its _target_ has a schema in SCHEMAS."""
    assert schema_for_target("hydra_pipeline.TrainingSettings") is TrainingSettingsConf
    assert schema_for_target("hydra_pipeline.StageComponent") is StageComponentConf
    assert schema_for_target("hydra_pipeline.MultiLinearDecay") is MultiLinearDecayConf
    assert schema_for_target("hydra_pipeline.RolloutBlockStorage") is RolloutBlockStorageConf


class TestStageSettings:
    def test_a_stage_setting_overrides_the_pipeline(self, build: Build) -> None:
        """pipeline.pipeline_stages.<i>.training_settings.<key> sets that stage's own value;
        the other stage keeps the pipeline's."""
        pipeline = build(
            "pipeline.pipeline_stages.1.training_settings.num_mini_batch=8",
            "pipeline.pipeline_stages.1.training_settings.gamma=0.9",
        )
        first, second = pipeline.pipeline_stages
        assert isinstance(second.training_settings, TrainingSettings)
        assert second.training_settings.own_values() == {"num_mini_batch": 8, "gamma": 0.9}
        assert (
            second.training_settings.num_mini_batch,
            first.training_settings.num_mini_batch,
        ) == (
            8,
            4,
        )
        assert second.training_settings.num_steps == pipeline.num_steps == 128

    def test_stage_settings_are_typed_when_composing(
        self, compose: Callable[..., DictConfig]
    ) -> None:
        with pytest.raises(ConfigCompositionException, match=r"training_settings\.num_steps"):
            compose("pipeline.pipeline_stages.1.training_settings.num_steps=long")

    def test_a_stage_setting_sweeps(self, compose: Callable[..., DictConfig], prepare: Any) -> None:
        """A -m sweep over a stage's setting gives one job per value, each with its value."""
        parsed = OverridesParser.create().parse_overrides(
            ["pipeline.pipeline_stages.1.training_settings.update_repeats=1,2,8"]
        )
        (batch,) = BasicSweeper.split_arguments(parsed, None)
        assert [len(job) for job in batch] == [1, 1, 1]
        values = [
            prepare(compose(*job)).pipeline.pipeline_stages[1].training_settings.update_repeats
            for job in batch
        ]
        assert values == [1, 2, 8]

    def test_the_pipeline_may_leave_a_setting_to_its_stages(self, build: Build) -> None:
        pipeline = build(
            "pipeline.num_steps=null",
            "pipeline.pipeline_stages.0.training_settings.num_steps=64",
            "pipeline.pipeline_stages.1.training_settings.num_steps=32",
        )
        assert pipeline.num_steps is None
        assert [s.training_settings.num_steps for s in pipeline.pipeline_stages] == [64, 32]


class TestStorageAndComponents:
    def test_components_and_storages_compose(self, build: Build) -> None:
        """Storages are placed by name from the storage group; a stage's components are a
        list of StageComponent nodes naming them."""
        pipeline = build(
            "+storage@pipeline.named_storages.onpolicy=rollout",
            "pipeline.named_storages.onpolicy.init_size=128",
            "+storage@pipeline.named_storages.demos=expert_demonstrations",
            "pipeline.named_storages.demos.num_steps=20",
            "pipeline.pipeline_stages.1.stage_components=["
            "{uuid:rl,storage_uuid:onpolicy,loss_names:[ppo_loss]},"
            "{uuid:bc,storage_uuid:demos,loss_names:[imitation_loss],loss_weights:[0.5],"
            "training_settings:{update_repeats:2,num_mini_batch:1}}]",
        )
        assert pipeline.rollout_storage_uuid == "onpolicy"
        assert pipeline.named_storages["onpolicy"] == RolloutBlockStorage(init_size=128)
        demos = pipeline.named_storages["demos"]
        assert isinstance(demos, ExpertDemonstrations) and demos.num_steps == 20
        rl, bc = pipeline.pipeline_stages[1].stage_components
        assert all(isinstance(c, StageComponent) for c in (rl, bc))
        assert (bc.storage_uuid, bc.loss_names, bc.loss_weights) == (
            "demos",
            ["imitation_loss"],
            [0.5],
        )
        assert bc.training_settings.own_values() == {"update_repeats": 2, "num_mini_batch": 1}
        # The other stage learns from the rollout only.
        (component,) = pipeline.pipeline_stages[0].stage_components
        assert component.storage_uuid == "onpolicy"

    def test_a_component_naming_a_missing_storage(self, compose: Any, prepare: Any) -> None:
        cfg = prepare(
            compose(
                "pipeline.pipeline_stages.1.stage_components="
                "[{uuid:bc,storage_uuid:demos,loss_names:[ppo_loss]}]"
            )
        )
        check_config(cfg)
        with pytest.raises(
            ConfigError,
            match=r"'pipeline.pipeline_stages.1.stage_components.0.storage_uuid' names no "
            r"storage of named_storages \(got 'demos'\)",
        ):
            instantiate_node(cfg, "pipeline")


class TestSchedules:
    def test_multi_linear_decay_as_lr_schedule(self, build: Build) -> None:
        """lr_scheduler=warmup_linear_decay: LambdaLR with a MultiLinearDecay multiplier whose
        pieces are keys."""
        pipeline = build(
            "lr_scheduler=warmup_linear_decay",
            "pipeline.lr_scheduler_builder.lr_lambda.stages.0.steps=2000",
        )
        decay = pipeline.lr_scheduler_builder.kwargs["lr_lambda"]
        assert decay == MultiLinearDecay(
            [LinearDecay(2000, 0.1, 1.0), LinearDecay(32_768 + 300_000, 1.0, 0.0)]
        )
        assert decay(1000) == pytest.approx(0.55) and decay(2000) == 1.0

    def test_multi_linear_decay_as_teacher_forcing(self, build: Build) -> None:
        """A stage without teacher forcing takes a schedule node directly; one with it is set
        to null first (a dict override merges into the existing node)."""
        fresh = build(f"pipeline.pipeline_stages.1.teacher_forcing={MULTI}")
        replaced = build(
            "pipeline.pipeline_stages.0.teacher_forcing=null",
            f"pipeline.pipeline_stages.0.teacher_forcing={MULTI}",
        )
        expected = MultiLinearDecay([LinearDecay(100, 1.0, 0.5), LinearDecay(200, 0.5, 0.0)])
        assert fresh.pipeline_stages[1].teacher_forcing == expected
        assert replaced.pipeline_stages[0].teacher_forcing == expected

    def test_a_schedule_selected_into_a_null_field(self, build: Build) -> None:
        """A null schedule field under a dict key is filled by selecting a schedule into it;
        its keys are then set (and typed) like any others."""
        linear = build(
            "+schedule@pipeline.named_losses.ppo_loss.clip_decay=linear_decay",
            "pipeline.named_losses.ppo_loss.clip_decay.steps=1000",
        )
        assert linear.named_losses["ppo_loss"].clip_decay == LinearDecay(1000)
        multi = build(
            "+schedule@pipeline.named_losses.ppo_loss.clip_decay=multi_linear_decay",
            "pipeline.named_losses.ppo_loss.clip_decay.stages=[{steps:10},{steps:20,startp:0.5}]",
        )
        assert multi.named_losses["ppo_loss"].clip_decay == MultiLinearDecay(
            [LinearDecay(10), LinearDecay(20, 0.5)]
        )

    def test_selected_schedules_are_typed_when_composing(self, compose: Any) -> None:
        with pytest.raises(ConfigCompositionException, match=r"clip_decay\.steps"):
            compose(
                "+schedule@pipeline.named_losses.ppo_loss.clip_decay=linear_decay",
                "pipeline.named_losses.ppo_loss.clip_decay.steps=abc",
            )

    def test_allenacts_constant_decay(self, build: Build) -> None:
        """steps=-1 keeps startp, as AllenAct's behaviour-cloning configs use it."""
        pipeline = build("pipeline.pipeline_stages.0.teacher_forcing.steps=-1")
        decay = pipeline.pipeline_stages[0].teacher_forcing
        assert decay.steps == -1 and decay(10**6) == 1.0


class TestLossArguments:
    def test_ppo_and_imitation_take_allenacts_arguments(self, build: Build) -> None:
        pipeline = build(
            "pipeline.named_losses.ppo_loss.show_ratios=true",
            "pipeline.named_losses.ppo_loss.entropy_method_name=entropy",
        )
        ppo = pipeline.named_losses["ppo_loss"]
        assert ppo.show_ratios is True and ppo.entropy_method_name == "entropy"
        assert pipeline.named_losses["imitation_loss"].expert_sensor is None


def test_validation_and_test_stages_compose(compose: Any, prepare: Any) -> None:
    """Set in a config file (OmegaConf cannot fill a null typed node from the command line)."""
    cfg = compose()
    cfg.pipeline.valid_pipeline_stage = OmegaConf.merge(
        cfg.pipeline.pipeline_stages[1], {"max_stage_steps": -1, "early_stopping_criterion": None}
    )
    cfg = prepare(cfg)
    check_config(cfg)
    pipeline = instantiate_node(cfg, "pipeline")
    assert pipeline.valid_pipeline_stage.loss_names == ["ppo_loss"]
    assert pipeline.valid_pipeline_stage.training_settings.num_steps == 128


def test_the_documented_experiment_with_components_builds(
    compose: Any, prepare: Any, tmp_path: Path
) -> None:
    """The documentation's experiment file with a demonstration storage composes and builds."""
    (example,) = [block for _, block in code_blocks("yaml") if "stage_components:" in block]
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "demos.yaml").write_text(example)
    cfg = prepare(compose(f"hydra.searchpath=[file://{tmp_path}]", "+experiment=demos"))
    check_config(cfg)
    pipeline = instantiate_node(cfg, "pipeline")
    assert isinstance(pipeline.named_storages["demos"], ExpertDemonstrations)
    assert pipeline.rollout_storage_uuid == "onpolicy"
    (component,) = pipeline.pipeline_stages[0].stage_components
    assert (component.uuid, component.storage_uuid) == ("bc", "demos")
    assert component.training_settings.update_repeats == 4
