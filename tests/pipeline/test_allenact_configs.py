"""Real AllenAct 0.5.x experiment configs build with ``hydra_pipeline.experiment_utils`` and
behave as AllenAct 0.5.4's objects do.

``allenact_configs.py`` transcribes the ``training_pipeline()`` of 18 configs of AllenAct's
repository; ``allenact_0_5_4.json`` is what AllenAct 0.5.4 itself gives for them (stages,
resolved training settings, stage components and storages, losses, builders, every
``LinearDecay`` / ``MultiLinearDecay`` value at fixed steps, and the replay of its engine's
stage, log and checkpoint bookkeeping). Here the same transcriptions build hydra_pipeline's
objects, which must give exactly the same data, and hydra_pipeline's own engine rules
(``TrainingPipeline.should_accumulate_metrics`` / ``should_save``, as ``OnPolicyRunner`` applies
them) must log and checkpoint at the same steps.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from hydra_pipeline import experiment_utils
from hydra_pipeline.engine.losses import A2C, PPO, A2CConfig, Imitation, PPOConfig
from tests.pipeline.allenact_configs import (
    CONFIGS,
    describe,
    summarized,
)

RECORDED: dict[str, Any] = json.loads((Path(__file__).with_name("allenact_0_5_4.json")).read_text())

LIB = SimpleNamespace(
    PPO=PPO,
    PPOConfig=PPOConfig,
    A2C=A2C,
    A2CConfig=A2CConfig,
    Imitation=Imitation,
    Adam=torch.optim.Adam,
    LambdaLR=torch.optim.lr_scheduler.LambdaLR,
)


def build(name: str) -> tuple[Any, dict[str, Any]]:
    pipeline, extras = CONFIGS[name].build(experiment_utils, LIB)
    return pipeline, extras


def replay_hydra_pipeline_engine(pipeline: Any, num_samplers: int) -> dict[str, Any]:
    """The step, log and checkpoint bookkeeping of ``OnPolicyRunner.run``: each stage's
    rollouts (``num_steps`` x samplers steps each), then, after each rollout, metrics when
    ``should_accumulate_metrics`` says so (which also moves the pipeline's cursor) and a
    checkpoint when ``should_save`` says so, with the stage's own settings."""
    saves: list[int] = []
    logs: list[int] = []
    last_log = last_save = pipeline.total_steps
    for stage in pipeline:
        while not stage.is_complete:
            settings = stage.training_settings
            stage.steps_taken_in_stage += settings.num_steps * num_samplers
            total = pipeline.total_steps
            if pipeline.should_accumulate_metrics(
                steps_since_last_log=total - last_log,
                stage_completed=stage.is_complete,
                stage=stage,
            ):
                logs.append(total)
                last_log = total
                pipeline.before_rollout(train_metrics=experiment_utils.ScalarMeanTracker())
            if pipeline.should_save(
                steps_since_last_save=total - last_save,
                stage_completed=stage.is_complete,
                stage=stage,
            ):
                saves.append(total)
                last_save = total
    return {
        "stage_steps": [stage.steps_taken_in_stage for stage in pipeline.pipeline_stages],
        "total_steps": pipeline.total_steps,
        "saves": saves,
        "logs": logs,
    }


def test_the_transcriptions_are_the_recorded_ones() -> None:
    """At least twelve configs, each recorded from AllenAct 0.5.4 under its source path."""
    assert len(CONFIGS) >= 12
    assert set(RECORDED) == set(CONFIGS)
    for name, config in CONFIGS.items():
        assert RECORDED[name]["source"] == config.source


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_builds_and_behaves_as_allenact(name: str) -> None:
    """Same stages, settings, components, storages, losses, builders, schedule values, and,
    replayed under AllenAct's engine rules, the same stage, log and checkpoint steps."""
    pipeline, extras = build(name)
    described = describe(pipeline, extras, CONFIGS[name].num_samplers, experiment_utils)
    expected = {key: value for key, value in RECORDED[name].items() if key != "source"}
    assert json.loads(json.dumps(described)) == expected


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_hydra_pipeline_engine_logs_and_saves_where_allenact_does(name: str) -> None:
    """OnPolicyRunner's rules (each stage's own intervals) give AllenAct's points."""
    pipeline, _ = build(name)
    replayed = summarized(replay_hydra_pipeline_engine(pipeline, CONFIGS[name].num_samplers))
    assert replayed == RECORDED[name]["schedule"]


class TestFeatures:
    """What each AllenAct 0.5 feature turns into, on the configs that use it."""

    def test_per_stage_settings_with_a_pipeline_that_leaves_them_unset(self) -> None:
        """objectnav ...increasingrollouts: rollouts of 32, 64 then 128 steps, and no
        pipeline-wide num_steps or metric interval."""
        pipeline, _ = build("objectnav_habitat_increasing_rollouts")
        assert pipeline.num_steps is None and pipeline.metric_accumulate_interval is None
        assert [s.training_settings.num_steps for s in pipeline.pipeline_stages] == [32, 64, 128]
        assert {s.training_settings.update_repeats for s in pipeline.pipeline_stages} == {4}

    def test_flat_per_stage_settings(self) -> None:
        """distributed_objectnav_tutorial passes num_mini_batch/update_repeats to a stage."""
        pipeline, _ = build("distributed_objectnav_tutorial")
        first, second = pipeline.pipeline_stages
        assert (first.training_settings.num_mini_batch, first.training_settings.update_repeats) == (
            2,
            8,
        )
        assert (
            second.training_settings.num_mini_batch,
            second.training_settings.update_repeats,
        ) == (1, 4)

    def test_multi_linear_decay_lr(self) -> None:
        pipeline, _ = build("distributed_objectnav_tutorial")
        decay = pipeline.lr_scheduler_builder.kwargs["lr_lambda"]
        assert isinstance(decay, experiment_utils.MultiLinearDecay)
        assert len(decay.stages) == 3 and decay.total_steps == 300_000_000

    def test_offpolicy_only_stage_with_zero_minibatches(self) -> None:
        """minigrid_offpolicy_tutorial: num_mini_batch=0, update_repeats=0, one component on
        the expert storage; the rollout storage still collects."""
        pipeline, _ = build("minigrid_offpolicy_tutorial")
        assert (pipeline.num_mini_batch, pipeline.update_repeats) == (0, 0)
        assert pipeline.rollout_storage_uuid == "onpolicy"
        (stage,) = pipeline.pipeline_stages
        (component,) = stage.stage_components
        assert component.storage_uuid == "minigrid_offpolicy_expert"
        assert (
            component.training_settings.num_mini_batch,
            component.training_settings.update_repeats,
        ) == (1, 16)

    def test_named_storages_none_gives_the_rollout_storage(self) -> None:
        """babyai go_to_local configs pass named_storages=None."""
        pipeline, _ = build("babyai_go_to_local_dagger")
        assert pipeline.rollout_storage_uuid == "onpolicy"
        assert isinstance(pipeline.rollout_storage, experiment_utils.RolloutBlockStorage)

    def test_constant_linear_decay_with_negative_steps(self) -> None:
        """The behaviour-cloning configs build LinearDecay(steps=-1) for PPO's clip decay."""
        _, extras = build("babyai_go_to_local_bc")
        class_type, kwargs, default = extras["unused_ppo_builder"]
        assert class_type is PPO and default == PPOConfig
        decay = kwargs["clip_decay"]
        assert decay.steps == -1 and {decay(step) for step in (0, 10, 10**9)} == {1.0}

    def test_loss_arguments(self) -> None:
        """minigrid_tutorial_conds: Imitation's sensor (positional) and PPO's entropy method."""
        pipeline, _ = build("minigrid_tutorial_conds")
        assert pipeline.get_loss("imitation_loss").expert_sensor.name == "ExpertActionSensor"
        assert pipeline.get_loss("ppo_loss").entropy_method_name == "conditional_entropy"

    def test_settings_changed_after_the_pipeline_is_built(self) -> None:
        """AllenAct's own test sets tp.training_settings.save_interval afterwards; the
        stages, which fall back to it, see the new value."""
        pipeline, _ = build("to_obj_trains_test_config")
        assert pipeline.pipeline_stages[0].training_settings.save_interval == 25_000
        assert pipeline.valid_pipeline_stage.training_settings.update_repeats == 1
        assert pipeline.test_pipeline_stage.stage_components[0].storage_uuid == "silly_storage"


def test_allenacts_own_integration_test_expectations() -> None:
    """tests/sync_algs_cpu/test_to_to_obj_trains.py trains with AllenAct's engine (BabyAI, not
    installable here); what it asserts of the pipeline holds for ours: training ends after
    ceil(TOTAL / (ROLLOUT_STEPS * SAMPLERS)) whole rollouts, with exactly two checkpoints for
    save_interval = ceil(TOTAL / 2)."""
    total, rollout_steps, samplers = 50_000, 32, 16
    pipeline, _ = build("to_obj_trains_test_config")
    replayed = replay_hydra_pipeline_engine(pipeline, samplers)
    per_rollout = rollout_steps * samplers
    assert replayed["total_steps"] == math.ceil(total / per_rollout) * per_rollout
    assert len(replayed["saves"]) == 2
