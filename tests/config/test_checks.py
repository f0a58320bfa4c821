"""Config mistakes are reported as ConfigError naming the full key, the value and the fix.

``check_config`` catches what Hydra cannot see at override time (keys forced in with ``+``,
values under untyped ``_target_`` nodes, mandatory values; the trust gate has its own tests in
``test_trust.py``); ``instantiate_node`` reports constructors' argument errors against the
config's keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from omegaconf import DictConfig

from hydra_pipeline import ConfigError
from hydra_pipeline.config import check_config, instantiate_node

Compose = Callable[..., DictConfig]


def error_of(compose: Compose, prepare: Callable[[DictConfig], DictConfig], *overrides: str) -> str:
    """The message of the ConfigError the app's startup (check, then build) raises."""
    cfg = prepare(compose(*overrides))
    with pytest.raises(ConfigError) as caught:
        check_config(cfg)
        instantiate_node(cfg, "pipeline")
        instantiate_node(cfg, "task")
    return str(caught.value)


class TestForcedKeys:
    def test_momentum_forced_into_adam(self, compose: Compose, prepare: Any) -> None:
        """A key Adam does not take names its full key and the optimizers that take it."""
        cfg = prepare(compose("+pipeline.optimizer_builder.momentum=0.9"))
        with pytest.raises(ConfigError) as caught:
            check_config(cfg)
        message = str(caught.value)
        assert message.startswith("'pipeline.optimizer_builder.momentum' is not a parameter")
        assert "torch.optim.Adam" in message
        assert "['rmsprop', 'sgd']" in message
        assert "optimizer=rmsprop pipeline.optimizer_builder.momentum=" in message

    def test_momentum_with_sgd_passes(self, app_config: Compose, build: Any) -> None:
        """The hint's fix works: sgd takes momentum."""
        app_config("optimizer=sgd", "pipeline.optimizer_builder.momentum=0.5")
        builder = build(
            "optimizer=sgd", "pipeline.optimizer_builder.momentum=0.5"
        ).optimizer_builder
        assert builder.kwargs["momentum"] == 0.5

    def test_typo_in_criterion(self, compose: Compose, prepare: Any) -> None:
        """A misspelt criterion key is refused with the closest parameter name."""
        cfg = prepare(compose("+pipeline.pipeline_stages.1.early_stopping_criterion.treshold=3"))
        with pytest.raises(
            ConfigError,
            match=re.escape("'pipeline.pipeline_stages.1.early_stopping_criterion.treshold'"),
        ) as caught:
            check_config(cfg)
        assert "Did you mean 'threshold'?" in str(caught.value)
        assert "hydra_pipeline.ThresholdEarlyStopping" in str(caught.value)

    def test_unknown_key_in_a_loss(self, compose: Compose, prepare: Any) -> None:
        """A key PPO does not take, forced into a loss node, is refused."""
        cfg = prepare(compose("+pipeline.named_losses.ppo_loss.clip_range=0.3"))
        with pytest.raises(
            ConfigError, match=r"'pipeline\.named_losses\.ppo_loss\.clip_range'.*clip_param"
        ):
            check_config(cfg)


class TestUntypedNodes:
    def test_wrong_type_in_criterion_composes_then_fails_the_check(
        self, compose: Compose, prepare: Any
    ) -> None:
        """early_stopping_criterion is Any: Hydra accepts 'abc', check_config does not."""
        cfg = prepare(compose("pipeline.pipeline_stages.1.early_stopping_criterion.threshold=abc"))
        assert cfg.pipeline.pipeline_stages[1].early_stopping_criterion.threshold == "abc"
        with pytest.raises(ConfigError) as caught:
            check_config(cfg)
        message = str(caught.value)
        assert message.startswith("'pipeline.pipeline_stages.1.early_stopping_criterion.threshold'")
        assert "'abc'" in message
        assert "Float" in message  # the type it must have

    def test_criterion_value_left_out(self, compose: Compose, prepare: Any) -> None:
        """A criterion missing a value its schema requires is refused with the key to set."""
        cfg = prepare(compose("~pipeline.pipeline_stages.1.early_stopping_criterion.threshold"))
        with pytest.raises(ConfigError) as caught:
            check_config(cfg)
        key = "pipeline.pipeline_stages.1.early_stopping_criterion.threshold"
        assert str(caught.value).startswith(f"'{key}' has no value")
        assert f"{key}=<value>" in str(caught.value)


class TestPipelineConsistency:
    def test_stage_names_an_undefined_loss(self, compose: Compose, prepare: Any) -> None:
        """A stage naming a loss missing from named_losses lists the defined ones."""
        message = error_of(compose, prepare, "pipeline.pipeline_stages.1.loss_names=[nope]")
        assert message.startswith("'pipeline.pipeline_stages.1.loss_names' names ['nope']")
        assert "Defined losses: ['imitation_loss', 'ppo_loss']" in message

    @pytest.mark.parametrize("stage", [0, 1])
    def test_loss_weights_of_the_wrong_length(
        self, compose: Compose, prepare: Any, stage: int
    ) -> None:
        """Two weights for one loss name the stage's loss_weights key and the value."""
        message = error_of(
            compose, prepare, f"pipeline.pipeline_stages.{stage}.loss_weights=[1.0,2.0]"
        )
        assert message.startswith(f"'pipeline.pipeline_stages.{stage}.loss_weights' must have")
        assert "one weight per entry of 'loss_names'" in message
        assert "(got [1.0, 2.0])" in message

    def test_teacher_forcing_of_zero_steps(self, compose: Compose, prepare: Any) -> None:
        """A nested constructor's error names the nested key."""
        message = error_of(compose, prepare, "pipeline.pipeline_stages.0.teacher_forcing.steps=0")
        assert message.startswith(
            "'pipeline.pipeline_stages.0.teacher_forcing.steps' must not be 0 (got 0)."
        )

    def test_teacher_forcing_of_the_wrong_type(self, compose: Compose, prepare: Any) -> None:
        """teacher_forcing takes any schedule node, so its keys are typed at startup, against
        the schema of its _target_."""
        message = error_of(compose, prepare, "pipeline.pipeline_stages.0.teacher_forcing.steps=abc")
        assert message.startswith("'pipeline.pipeline_stages.0.teacher_forcing.steps': Value")
        assert "(LinearDecayConf types it)" in message

    def test_a_schedule_without_target(self, compose: Compose, prepare: Any) -> None:
        """A schedule node forced in without a _target_ stays a dict: the stage says how to
        write it."""
        message = error_of(
            compose,
            prepare,
            "pipeline=ppo",
            "+pipeline.pipeline_stages.0.teacher_forcing.steps=5000",
        )
        assert message.startswith(
            "'pipeline.pipeline_stages.0.teacher_forcing' must map a step count to a probability "
            "(got {'steps': 5000}). In a config, give the node a _target_, e.g. "
            "teacher_forcing={_target_:hydra_pipeline.LinearDecay,steps:10000}."
        )

    def test_a_stage_setting_out_of_range(self, compose: Compose, prepare: Any) -> None:
        """A stage's own settings are checked under their key."""
        message = error_of(compose, prepare, "pipeline.pipeline_stages.1.training_settings.gamma=2")
        assert (
            message
            == "'pipeline.pipeline_stages.1.training_settings.gamma' must be in [0, 1] (got 2.0)."
        )


class TestValueRanges:
    @pytest.mark.parametrize(
        ("override", "expected"),
        [
            (
                "pipeline.num_mini_batch=0",
                "'pipeline.num_mini_batch' must be >= 1 where stage component 'onpolicy' of "
                "pipeline_stages.0 updates (update_repeats=8) (got 0). 0 minibatches suit only "
                "stages whose updates come from other storages.",
            ),
            ("pipeline.num_mini_batch=-1", "'pipeline.num_mini_batch' must be >= 0 (got -1)."),
            ("pipeline.update_repeats=-1", "'pipeline.update_repeats' must be >= 0 (got -1)."),
            ("pipeline.num_steps=0", "'pipeline.num_steps' must be >= 1 (got 0)."),
            ("pipeline.num_steps=-5", "'pipeline.num_steps' must be >= 1 (got -5)."),
            (
                "pipeline.metric_accumulate_interval=0",
                "'pipeline.metric_accumulate_interval' must be >= 1 (got 0).",
            ),
            ("pipeline.gamma=1.5", "'pipeline.gamma' must be in [0, 1] (got 1.5)."),
            ("pipeline.gamma=-0.1", "'pipeline.gamma' must be in [0, 1] (got -0.1)."),
            ("pipeline.gae_lambda=1.01", "'pipeline.gae_lambda' must be in [0, 1] (got 1.01)."),
            ("pipeline.gae_lambda=-1", "'pipeline.gae_lambda' must be in [0, 1] (got -1.0)."),
            ("pipeline.max_grad_norm=0", "'pipeline.max_grad_norm' must be > 0 (got 0.0)."),
            ("pipeline.max_grad_norm=-0.5", "'pipeline.max_grad_norm' must be > 0 (got -0.5)."),
            (
                "pipeline.advance_scene_rollout_period=0",
                "'pipeline.advance_scene_rollout_period' must be >= 1 (got 0).",
            ),
            ("task.num_envs=0", "'task.num_envs' must be >= 1 (got 0)."),
        ],
    )
    def test_out_of_range(
        self, compose: Compose, prepare: Any, override: str, expected: str
    ) -> None:
        """Each range rule names the full key, the rule and the value."""
        assert error_of(compose, prepare, override) == expected

    @pytest.mark.parametrize(
        "override",
        ["pipeline.gamma=0", "pipeline.gamma=1", "pipeline.gae_lambda=0", "pipeline.gae_lambda=1"],
    )
    def test_unit_interval_bounds_are_included(self, build: Any, override: str) -> None:
        """0 and 1 are valid discount and GAE factors."""
        key, value = override.removeprefix("pipeline.").split("=")
        assert getattr(build(override), key) == float(value)


class TestMandatoryValues:
    def test_mandatory_pipeline_value_left_unset(self, compose: Compose, prepare: Any) -> None:
        """A '???' value names its key and shows how to set it."""
        cfg = prepare(compose("pipeline.gamma=???"))
        with pytest.raises(ConfigError) as caught:
            check_config(cfg)
        assert str(caught.value) == (
            "'pipeline.gamma' has no value (it is mandatory, '???'). Set it on the command line, "
            "e.g. pipeline.gamma=<value>."
        )

    def test_mandatory_list_item_value_uses_dotted_indices(
        self, compose: Compose, prepare: Any
    ) -> None:
        """A '???' inside a list item is named with command-line indices (stages.1, not [1])."""
        key = "pipeline.pipeline_stages.1.early_stopping_criterion.threshold"
        cfg = prepare(compose(f"{key}=???"))
        with pytest.raises(ConfigError, match=re.escape(f"'{key}' has no value")):
            check_config(cfg)

    def test_gym_task_without_env_id(self, compose: Compose, prepare: Any) -> None:
        """task=gym with env_id unset is refused before anything is built."""
        cfg = prepare(compose("task=gym", "task.env_id=???"))
        with pytest.raises(ConfigError, match=r"^'task\.env_id' has no value"):
            check_config(cfg)
