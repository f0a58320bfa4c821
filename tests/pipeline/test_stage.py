"""PipelineStage and OffPolicyPipelineComponent: arguments, completion, state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hydra_pipeline import (
    InvalidArgumentError,
    LinearDecay,
    OffPolicyPipelineComponent,
    PipelineStage,
    StageComponent,
    ThresholdEarlyStopping,
    TrainingSettings,
)


def no_data() -> Iterator[int]:
    return iter(())


class TestConstruction:
    def test_positional_order_matches_allenact(self) -> None:
        criterion = ThresholdEarlyStopping(threshold=1.0)
        decay = LinearDecay(steps=10)
        component = OffPolicyPipelineComponent(no_data, ["aux"], 2)
        stage = PipelineStage(["a", "b"], 100, criterion, [1.0, 0.5], decay, component)
        assert stage.loss_names == ["a", "b"]
        assert stage.max_stage_steps == 100
        assert stage.early_stopping_criterion is criterion
        assert stage.loss_weights == [1.0, 0.5]
        assert stage.teacher_forcing is decay
        assert stage.offpolicy_component == component

    def test_defaults(self) -> None:
        stage = PipelineStage(loss_names=["a"], max_stage_steps=5)
        assert stage.early_stopping_criterion is None
        assert stage.loss_weights is None and stage.teacher_forcing is None
        assert stage.offpolicy_component is None
        assert stage.steps_taken_in_stage == 0 and not stage.early_stopping_criterion_met
        assert stage.named_loss_weights == {"a": 1.0}

    def test_named_loss_weights(self) -> None:
        stage = PipelineStage(["a", "b"], 5, loss_weights=[2.0, 0.5])
        assert stage.named_loss_weights == {"a": 2.0, "b": 0.5}

    def test_wrong_number_of_weights_names_both_lengths(self) -> None:
        """AllenAct ignores this until a KeyError deep in training."""
        with pytest.raises(
            InvalidArgumentError, match=r"'loss_weights' .*3 weights for 2 names \['a', 'b'\]"
        ):
            PipelineStage(["a", "b"], 5, loss_weights=[1.0, 1.0, 1.0])

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"loss_names": "ab"}, "'loss_names' must be a list of names"),
            ({"loss_names": ["a", "a"]}, r"'loss_names' lists \['a'\] more than once"),
            ({"loss_names": []}, "'loss_names' must name at least one loss .*stage_components"),
            ({"max_stage_steps": "many"}, "'max_stage_steps' must be a number"),
            ({"early_stopping_criterion": lambda **_: True}, "must be an EarlyStoppingCriterion"),
            ({"teacher_forcing": 0.5}, "'teacher_forcing' must map a step count"),
            ({"offpolicy_component": (no_data, ["x"], 1)}, "must be an OffPolicyPipelineComponent"),
        ],
    )
    def test_bad_arguments(self, kwargs: dict[str, object], message: str) -> None:
        arguments: dict[str, object] = {"loss_names": ["a"], "max_stage_steps": 10, **kwargs}
        with pytest.raises(InvalidArgumentError, match=message):
            PipelineStage(**arguments)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("component", "message"),
        [
            (OffPolicyPipelineComponent(no_data, ["x"], 0), "'offpolicy_component.updates' must"),
            (OffPolicyPipelineComponent(no_data, [], 1), "offpolicy_component.loss_names' must"),
            (
                OffPolicyPipelineComponent(no_data, ["x"], 1, [1.0, 2.0]),
                "'offpolicy_component.loss_weights' must have one weight",
            ),
            (OffPolicyPipelineComponent(3, ["x"], 1), "data_iterator_builder' must be callable"),  # type: ignore[arg-type]
        ],
    )
    def test_bad_offpolicy_component(
        self, component: OffPolicyPipelineComponent, message: str
    ) -> None:
        with pytest.raises(InvalidArgumentError, match=message):
            PipelineStage(["a"], 10, offpolicy_component=component)

    def test_offpolicy_only_stage_is_allowed(self) -> None:
        component = OffPolicyPipelineComponent(no_data, ["x"], 1)
        assert PipelineStage([], 10, offpolicy_component=component).loss_names == []

    def test_offpolicy_component_fields(self) -> None:
        assert OffPolicyPipelineComponent._fields == (
            "data_iterator_builder",
            "loss_names",
            "updates",
            "loss_weights",
        )
        assert OffPolicyPipelineComponent(no_data, ["x"], 1).loss_weights is None


class TestCompletion:
    def test_complete_at_max_steps(self) -> None:
        stage = PipelineStage(["a"], 10)
        stage.steps_taken_in_stage = 9
        assert not stage.is_complete
        stage.steps_taken_in_stage = 10
        assert stage.is_complete

    def test_complete_when_criterion_met(self) -> None:
        stage = PipelineStage(["a"], 10)
        stage.early_stopping_criterion_met = True
        assert stage.is_complete

    def test_non_positive_max_means_complete_immediately(self) -> None:
        assert PipelineStage(["a"], 0).is_complete

    def test_callable_limit_is_evaluated_once_when_resolved(self) -> None:
        calls: list[int] = []

        def limit() -> int:
            calls.append(1)
            return 7

        stage = PipelineStage(["a"], limit)
        assert stage.resolved_max_stage_steps is None and not stage.is_complete
        assert stage.resolve_max_stage_steps() == 7
        assert stage.resolve_max_stage_steps() == 7
        assert calls == [1]
        stage.steps_taken_in_stage = 7
        assert stage.is_complete

    def test_callable_limit_must_return_a_number(self) -> None:
        stage = PipelineStage(["a"], lambda: "many")  # type: ignore[arg-type,return-value]
        with pytest.raises(InvalidArgumentError, match="'max_stage_steps' must be a number"):
            stage.resolve_max_stage_steps()


class TestStageState:
    def test_reset_restores_criterion_state(self) -> None:
        criterion = ThresholdEarlyStopping(threshold=1.0, consecutive=5)
        stage = PipelineStage(["a"], 10, early_stopping_criterion=criterion)
        criterion.successes_in_a_row = 3
        stage.steps_taken_in_stage = 4
        stage.early_stopping_criterion_met = True
        stage.reset()
        assert stage.steps_taken_in_stage == 0 and not stage.early_stopping_criterion_met
        assert criterion.successes_in_a_row == 0

    def test_state_dict_round_trip(self) -> None:
        stage = PipelineStage(
            ["a"], lambda: 9, early_stopping_criterion=ThresholdEarlyStopping(consecutive=2)
        )
        stage.resolve_max_stage_steps()
        stage.steps_taken_in_stage = 4
        assert stage.early_stopping_criterion is not None
        stage.early_stopping_criterion.load_state_dict({"successes_in_a_row": 1})
        clone = PipelineStage(
            ["a"], lambda: 100, early_stopping_criterion=ThresholdEarlyStopping(consecutive=2)
        )
        clone.load_state_dict(stage.state_dict())
        assert clone.state_dict() == stage.state_dict()
        assert clone.resolved_max_stage_steps == 9


class TestStageSettings:
    def test_settings_as_an_object_or_as_keywords(self) -> None:
        """AllenAct 0.5 takes training_settings=TrainingSettings(...) or the settings as
        keywords; both give the stage's own settings."""
        settings = TrainingSettings(num_steps=32)
        assert PipelineStage(["a"], 5, training_settings=settings).training_settings is settings
        stage = PipelineStage(max_stage_steps=5, loss_names=["a"], num_mini_batch=8)
        assert stage.training_settings.own_values() == {"num_mini_batch": 8}

    def test_both_forms_are_refused(self) -> None:
        with pytest.raises(InvalidArgumentError, match="is given together with the settings"):
            PipelineStage(["a"], 5, training_settings=TrainingSettings(), num_steps=4)

    def test_per_loss_repeats_belong_to_components(self) -> None:
        with pytest.raises(
            InvalidArgumentError,
            match=r"'training_settings.update_repeats' must be an integer in a stage",
        ):
            PipelineStage(["a"], 5, training_settings=TrainingSettings(update_repeats=[1]))

    def test_settings_are_not_stage_attributes(self) -> None:
        """As in AllenAct, stage.num_steps = ... is refused: it would not change anything."""
        stage = PipelineStage(["a"], 5)
        with pytest.raises(AttributeError, match=r"stage.training_settings.num_steps = "):
            stage.num_steps = 4  # type: ignore[attr-defined]

    def test_float_limits(self) -> None:
        """A float max_stage_steps works as its value (AllenAct compares numbers)."""
        stage = PipelineStage(["a"], 1.2e3)
        stage.steps_taken_in_stage = 1199
        assert not stage.is_complete
        stage.steps_taken_in_stage = 1200
        assert stage.is_complete

    def test_a_stage_that_cannot_run_may_have_no_loss(self) -> None:
        """AllenAct's default validation and test stages: no loss, max_stage_steps -1."""
        assert PipelineStage(loss_names=[], max_stage_steps=-1).is_complete


class TestStageComponents:
    def test_components_in_order_with_settings_falling_back_to_the_stage(self) -> None:
        first = StageComponent(uuid="rl", storage_uuid="onpolicy", loss_names=["a"])
        second = StageComponent(
            uuid="bc",
            storage_uuid="demos",
            loss_names=["b"],
            training_settings=TrainingSettings(update_repeats=[3]),
        )
        stage = PipelineStage(
            ["a", "b"], 5, loss_weights=[1.0, 0.5], stage_components=[first, second], gamma=0.9
        )
        assert stage.stage_components == (first, second)
        assert stage.uuid_to_stage_component == {"rl": first, "bc": second}
        assert first.training_settings.gamma == 0.9
        assert second.training_settings.update_repeats == [3]
        assert stage.storage_uuid_to_steps_taken_in_stage == {"onpolicy": 0, "demos": 0}
        assert stage.component_loss_weights(second) == {"b": 0.5}

    def test_a_component_may_weigh_losses_the_stage_does_not_list(self) -> None:
        component = StageComponent(
            uuid="bc", storage_uuid="demos", loss_names=["x"], loss_weights=[2.0]
        )
        stage = PipelineStage(["a"], 5, stage_components=[component])
        assert stage.component_loss_weights(component) == {"x": 2.0}

    @pytest.mark.parametrize(
        ("components", "message"),
        [
            (
                [StageComponent(uuid="c", storage_uuid="s", loss_names=["x"])],
                r"'stage_components.0.loss_names' names \['x'\], which the stage's loss_names "
                r"\['a'\] do not list, so they have no weight",
            ),
            (
                [
                    StageComponent(uuid="c", storage_uuid="s", loss_names=["a"]),
                    StageComponent(uuid="c", storage_uuid="t", loss_names=["a"]),
                ],
                r"'stage_components.1.uuid' names another component of the stage",
            ),
            (
                [
                    StageComponent(uuid="c", storage_uuid="s", loss_names=["a"]),
                    StageComponent(uuid="d", storage_uuid="s", loss_names=["a"]),
                ],
                r"'stage_components.1.storage_uuid' is already used by the stage's component 'c'",
            ),
            ([("c", "s", ["a"])], r"'stage_components.0' must be a StageComponent"),
        ],
    )
    def test_bad_components(self, components: list[object], message: str) -> None:
        with pytest.raises(InvalidArgumentError, match=message):
            PipelineStage(["a"], 5, stage_components=components)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            (
                {"training_settings": TrainingSettings(num_steps=4)},
                r"'training_settings.num_steps' must not be set in a StageComponent \(got 4\)",
            ),
            (
                {"training_settings": TrainingSettings(update_repeats=[1, 2])},
                r"'training_settings.update_repeats' must give one count per loss",
            ),
            ({"uuid": ""}, "'uuid' must be a non-empty string"),
            ({"loss_weights": [1.0, 2.0]}, "'loss_weights' must have one weight per entry"),
        ],
    )
    def test_bad_component_arguments(self, kwargs: dict[str, object], message: str) -> None:
        arguments: dict[str, object] = {"uuid": "c", "storage_uuid": "s", "loss_names": ["a"]}
        with pytest.raises(InvalidArgumentError, match=message):
            StageComponent(**{**arguments, **kwargs})  # type: ignore[arg-type]

    def test_reset_and_state_keep_storage_counts(self) -> None:
        stage = PipelineStage(
            ["a"],
            5,
            stage_components=[StageComponent(uuid="c", storage_uuid="s", loss_names=["a"])],
        )
        stage.storage_uuid_to_steps_taken_in_stage["s"] = 7
        stage.rollout_count = 3
        clone = PipelineStage(
            ["a"],
            5,
            stage_components=[StageComponent(uuid="c", storage_uuid="s", loss_names=["a"])],
        )
        clone.load_state_dict(stage.state_dict())
        assert clone.storage_uuid_to_steps_taken_in_stage == {"s": 7} and clone.rollout_count == 3
        stage.reset()
        assert stage.storage_uuid_to_steps_taken_in_stage == {"s": 0} and stage.rollout_count == 0
