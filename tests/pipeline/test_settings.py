"""TrainingSettings: fallback to the defaults, assignment, validation, linking, copies."""

from __future__ import annotations

import copy
import inspect
import pickle

import pytest

from hydra_pipeline import (
    Builder,
    InvalidArgumentError,
    PipelineStage,
    TrainingPipeline,
    TrainingSettings,
)
from hydra_pipeline.pipeline.settings import TRAINING_SETTING_KEYS, settings_from_arguments

EVERY_SETTING = {
    "num_mini_batch": 2,
    "update_repeats": 3,
    "max_grad_norm": 0.5,
    "num_steps": 16,
    "gamma": 0.9,
    "use_gae": True,
    "gae_lambda": 0.95,
    "advance_scene_rollout_period": 4,
    "save_interval": 1000,
    "metric_accumulate_interval": 100,
    "minibatch_split": "transitions",
    "sequence_length": 8,
}


class TestFallback:
    def test_unset_settings_read_the_defaults_chain(self) -> None:
        """A None setting reads its defaults, which may themselves fall back further."""
        pipeline = TrainingSettings(**EVERY_SETTING)
        stage = TrainingSettings(num_steps=32, gamma=0.5)
        component = TrainingSettings(num_mini_batch=1)
        stage.set_defaults(pipeline)
        component.set_defaults(stage)
        assert component.num_mini_batch == 1
        assert component.num_steps == 32 and component.gamma == 0.5
        assert component.update_repeats == 3 and component.save_interval == 1000
        assert stage.resolved() == {**EVERY_SETTING, "num_steps": 32, "gamma": 0.5}

    def test_without_defaults_unset_is_none(self) -> None:
        assert TrainingSettings().resolved() == dict.fromkeys(TRAINING_SETTING_KEYS)

    def test_assignment_sets_the_own_value(self) -> None:
        """As in AllenAct (its own integration test sets pipeline.training_settings.
        save_interval), an assigned value is this object's own, seen through the chain."""
        pipeline = TrainingSettings(save_interval=10)
        stage = TrainingSettings()
        stage.set_defaults(pipeline)
        pipeline.save_interval = 25
        assert stage.save_interval == 25
        stage.save_interval = 5
        assert (stage.save_interval, pipeline.save_interval) == (5, 25)
        stage.save_interval = None
        assert stage.save_interval == 25

    def test_keys_and_has_key(self) -> None:
        """keys() is sorted, as AllenAct returns it."""
        settings = TrainingSettings()
        assert settings.keys() == tuple(sorted(EVERY_SETTING))
        assert settings.has_key("gamma") and not settings.has_key("lr")

    def test_own_values_and_repr(self) -> None:
        settings = TrainingSettings(num_steps=8, use_gae=False)
        settings.set_defaults(TrainingSettings(gamma=0.9))
        assert settings.own_values() == {"num_steps": 8, "use_gae": False}
        assert repr(settings) == "TrainingSettings(num_steps=8, use_gae=False)"


class TestLinking:
    def test_linking_again_to_the_same_defaults_is_harmless(self) -> None:
        defaults, settings = TrainingSettings(gamma=0.9), TrainingSettings()
        settings.set_defaults(defaults)
        settings.set_defaults(defaults)
        assert settings.defaults is defaults

    def test_one_object_for_two_stages_is_refused(self) -> None:
        """AllenAct asserts; the message says why and what to do."""
        settings = TrainingSettings()
        settings.set_defaults(TrainingSettings())
        with pytest.raises(
            InvalidArgumentError,
            match=r"'training_settings' already takes its defaults from another pipeline, stage "
            r"or component .*Give each PipelineStage and StageComponent its own",
        ):
            settings.set_defaults(TrainingSettings())

    def test_a_cycle_is_refused(self) -> None:
        first, second = TrainingSettings(), TrainingSettings()
        first.set_defaults(second)
        with pytest.raises(InvalidArgumentError, match="cannot fall back to itself"):
            second.set_defaults(first)


class TestValidation:
    @pytest.mark.parametrize(
        ("key", "value", "message"),
        [
            ("num_mini_batch", -1, r"'num_mini_batch' must be >= 0 \(got -1\)"),
            ("num_mini_batch", 1.5, "'num_mini_batch' must be an integer"),
            ("update_repeats", -2, r"'update_repeats' must be >= 0 \(got -2\)"),
            ("update_repeats", [1, -1], r"'update_repeats.1' must be >= 0 \(got -1\)"),
            ("max_grad_norm", 0, r"'max_grad_norm' must be > 0 \(got 0\)"),
            ("num_steps", 0, r"'num_steps' must be >= 1 \(got 0\)"),
            ("gamma", 1.5, r"'gamma' must be in \[0, 1\] \(got 1.5\)"),
            ("use_gae", 1, r"'use_gae' must be true or false \(got 1\)"),
            ("gae_lambda", -0.1, r"'gae_lambda' must be in \[0, 1\]"),
            ("advance_scene_rollout_period", 0, r"'advance_scene_rollout_period' must be >= 1"),
            (
                "minibatch_split",
                "steps",
                r"'minibatch_split' must be one of \['environments', 'transitions'\]",
            ),
            ("save_interval", 2.5, "'save_interval' must be an integer"),
            ("metric_accumulate_interval", 0, r"'metric_accumulate_interval' must be >= 1"),
        ],
    )
    def test_each_rule_names_the_setting(self, key: str, value: object, message: str) -> None:
        """The rules apply in the constructor and on assignment alike."""
        with pytest.raises(InvalidArgumentError, match=message):
            TrainingSettings(**{key: value})  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match=message):
            setattr(TrainingSettings(), key, value)

    def test_zero_minibatches_and_repeats_are_settings(self) -> None:
        """0 is valid: AllenAct's off-policy-only pipelines say so (the pipeline refuses it
        where a component really updates from the rollout)."""
        settings = TrainingSettings(num_mini_batch=0, update_repeats=0, save_interval=-1)
        assert (settings.num_mini_batch, settings.update_repeats) == (0, 0)

    def test_per_loss_repeats(self) -> None:
        assert TrainingSettings(update_repeats=[1, 4]).update_repeats == [1, 4]

    def test_unknown_setting(self) -> None:
        with pytest.raises(InvalidArgumentError, match="'lr' is not a training setting"):
            TrainingSettings().set_own("lr", 0.1)


class TestForms:
    def test_keywords_or_object(self) -> None:
        """Either form gives the settings; both at once is refused, as AllenAct asserts."""
        assert settings_from_arguments("training_settings", None, {"gamma": 0.9}).gamma == 0.9
        given = TrainingSettings(gamma=0.5)
        assert settings_from_arguments("training_settings", given, {"gamma": None}) is given
        with pytest.raises(
            InvalidArgumentError,
            match=r"'training_settings' is given together with the settings \['num_steps'\] as "
            r"keyword arguments",
        ):
            settings_from_arguments("training_settings", given, {"num_steps": 4})
        with pytest.raises(InvalidArgumentError, match="must be a TrainingSettings"):
            settings_from_arguments("training_settings", {"gamma": 0.5}, {})  # type: ignore[arg-type]


def test_copies_keep_values_and_links() -> None:
    defaults = TrainingSettings(gamma=0.9)
    settings = TrainingSettings(num_steps=8)
    settings.set_defaults(defaults)
    for clone in (pickle.loads(pickle.dumps(settings)), copy.deepcopy(settings)):
        assert clone.resolved() == settings.resolved()
        assert clone.defaults is not None and clone.defaults.gamma == 0.9


class TestOneListOfSettings:
    """TRAINING_SETTING_KEYS is the one list of the settings: the constructors that take them
    one by one (AllenAct's signatures, written out) must agree with it."""

    def test_training_settings_takes_exactly_the_keys_in_order(self) -> None:
        assert list(inspect.signature(TrainingSettings).parameters) == list(TRAINING_SETTING_KEYS)
        assert len(TRAINING_SETTING_KEYS) == len(set(TRAINING_SETTING_KEYS)) == 12

    @pytest.mark.parametrize("owner", [PipelineStage, TrainingPipeline])
    def test_keyword_form_takes_every_key(self, owner: type) -> None:
        """A stage and a pipeline take each setting as a parameter that defaults to None."""
        parameters = inspect.signature(owner).parameters
        missing = [key for key in TRAINING_SETTING_KEYS if key not in parameters]
        assert missing == []
        assert all(parameters[key].default is None for key in TRAINING_SETTING_KEYS)

    @pytest.mark.parametrize("key", TRAINING_SETTING_KEYS)
    def test_every_key_passes_through_the_keyword_form(self, key: str) -> None:
        """Each keyword reaches the settings object, and pipeline.<key> reads it back."""
        value = EVERY_SETTING[key]
        stage = PipelineStage(["loss"], 10, **{key: value})
        assert stage.training_settings.own_values() == {key: value}
        skipped = PipelineStage(["loss"], 0)  # a stage that cannot run needs no settings
        pipeline = TrainingPipeline({"loss": object()}, [skipped], Builder(list), **{key: value})
        assert pipeline.training_settings.own_values() == {key: value}
        assert getattr(pipeline, key) == value
