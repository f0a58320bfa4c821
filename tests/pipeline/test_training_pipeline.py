"""TrainingPipeline: validation, the stage cursor, iteration, save rule, losses, state."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from hydra_pipeline import (
    Builder,
    InvalidArgumentError,
    OffPolicyPipelineComponent,
    PipelineStage,
    RolloutBlockStorage,
    ScalarMeanTracker,
    StageComponent,
    ThresholdEarlyStopping,
    TrainingPipeline,
    TrainingSettings,
)


class Loss:
    instances = 0

    def __init__(self, scale: float = 1.0) -> None:
        Loss.instances += 1
        self.scale = scale


def make_pipeline(stages: list[PipelineStage] | None = None, **overrides: Any) -> TrainingPipeline:
    arguments: dict[str, Any] = {
        "named_losses": {"a": Loss(), "b": Builder(Loss, {"scale": 2.0})},
        "pipeline_stages": stages or [PipelineStage(["a"], 10), PipelineStage(["b"], 20)],
        "optimizer_builder": Builder(dict, {"lr": 0.1}),
        "num_mini_batch": 2,
        "update_repeats": 3,
        "max_grad_norm": 0.5,
        "num_steps": 8,
        "gamma": 0.99,
        "use_gae": True,
        "gae_lambda": 0.95,
        "advance_scene_rollout_period": None,
        "save_interval": 100,
        "metric_accumulate_interval": 50,
    }
    arguments.update(overrides)
    return TrainingPipeline(**arguments)


class TestConstruction:
    def test_positional_order_and_defaults_match_allenact(self) -> None:
        stages = [PipelineStage(["a"], 10)]
        optimizer = Builder(dict)
        pipeline = TrainingPipeline(
            {"a": Loss()}, stages, optimizer, 1, 2, 0.5, 16, 0.9, False, 0.8, 3, 100, 50
        )
        assert pipeline.pipeline_stages == stages
        assert pipeline.optimizer_builder is optimizer
        assert (pipeline.num_mini_batch, pipeline.update_repeats, pipeline.max_grad_norm) == (
            1,
            2,
            0.5,
        )
        assert (pipeline.num_steps, pipeline.gamma, pipeline.use_gae, pipeline.gae_lambda) == (
            16,
            0.9,
            False,
            0.8,
        )
        assert pipeline.advance_scene_rollout_period == 3
        assert (pipeline.save_interval, pipeline.metric_accumulate_interval) == (100, 50)
        assert pipeline.should_log is True and pipeline.lr_scheduler_builder is None

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"pipeline_stages": []}, "'pipeline_stages' must be a non-empty list"),
            (
                {"num_mini_batch": 0},
                r"'num_mini_batch' must be >= 1 where stage component 'onpolicy' of "
                r"pipeline_stages.0 updates \(update_repeats=3\) \(got 0\)",
            ),
            ({"num_mini_batch": -1}, r"'num_mini_batch' must be >= 0 \(got -1\)"),
            ({"update_repeats": -1}, r"'update_repeats' must be >= 0 \(got -1\)"),
            ({"num_steps": -1}, r"'num_steps' must be >= 1 \(got -1\)"),
            ({"metric_accumulate_interval": 0}, r"'metric_accumulate_interval' must be >= 1"),
            ({"gamma": 1.5}, r"'gamma' must be in \[0, 1\] \(got 1.5\)"),
            ({"gae_lambda": -0.1}, r"'gae_lambda' must be in \[0, 1\] \(got -0.1\)"),
            ({"max_grad_norm": 0.0}, r"'max_grad_norm' must be > 0 \(got 0.0\)"),
            ({"advance_scene_rollout_period": 0}, r"'advance_scene_rollout_period' must be >= 1"),
            ({"optimizer_builder": "adam"}, "'optimizer_builder' must be a Builder"),
            ({"lr_scheduler_builder": 3}, "'lr_scheduler_builder' must be a Builder"),
        ],
    )
    def test_bad_arguments_name_the_argument_and_value(
        self, overrides: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(InvalidArgumentError, match=message):
            make_pipeline(**overrides)

    def test_unknown_loss_names_the_stage_and_the_defined_losses(self) -> None:
        stages = [PipelineStage(["a"], 10), PipelineStage(["a", "ppo"], 10)]
        with pytest.raises(
            InvalidArgumentError,
            match=r"'pipeline_stages.1.loss_names' names \['ppo'\], which named_losses does not "
            r"define .*Defined losses: \['a', 'b'\]",
        ):
            make_pipeline(stages)

    def test_unknown_offpolicy_loss_is_refused(self) -> None:
        from hydra_pipeline import OffPolicyPipelineComponent

        component = OffPolicyPipelineComponent(lambda: iter(()), ["nope"], 1)
        with pytest.raises(InvalidArgumentError, match=r"offpolicy_component\.loss_names"):
            make_pipeline([PipelineStage(["a"], 10, offpolicy_component=component)])

    def test_same_stage_twice_is_refused(self) -> None:
        stage = PipelineStage(["a"], 10)
        with pytest.raises(
            InvalidArgumentError,
            match=r"'pipeline_stages\.1' is the same object as pipeline_stages\.0",
        ):
            make_pipeline([stage, stage])

    def test_save_interval_none_and_negative_are_valid(self) -> None:
        assert make_pipeline(save_interval=None).save_interval is None
        assert make_pipeline(save_interval=-1).save_interval == -1


class TestCursor:
    def test_starts_at_first_incomplete_stage(self) -> None:
        pipeline = make_pipeline([PipelineStage(["a"], 0), PipelineStage(["b"], 5)])
        assert pipeline.current_stage_index == 1

    def test_before_rollout_advances_when_complete(self) -> None:
        pipeline = make_pipeline()
        first, second = pipeline.pipeline_stages
        assert pipeline.current_stage is first
        assert not pipeline.before_rollout()
        first.steps_taken_in_stage = 12
        assert pipeline.before_rollout()
        assert pipeline.current_stage is second and pipeline.current_stage_index == 1
        second.steps_taken_in_stage = 20
        assert pipeline.before_rollout()
        assert pipeline.current_stage is None and pipeline.current_stage_index is None
        assert pipeline.total_steps == 32

    def test_planned_total_steps_counts_what_is_left_of_every_limit(self) -> None:
        """Steps taken, the rest of the current stage's limit and the later limits (a
        callable one, not evaluated yet, counts as 0); the steps taken once all is done."""
        pipeline = make_pipeline(
            [PipelineStage(["a"], 10), PipelineStage(["b"], 20), PipelineStage(["a"], lambda: 7)]
        )
        first, second, _ = pipeline.pipeline_stages
        assert pipeline.planned_total_steps() == 30
        first.steps_taken_in_stage = 4
        assert pipeline.planned_total_steps() == 30
        first.steps_taken_in_stage = 12  # a last rollout past the limit
        assert pipeline.before_rollout()
        assert pipeline.planned_total_steps() == 32
        second.early_stopping_criterion_met = True  # the rest of its limit is not planned
        second.steps_taken_in_stage = 5
        assert pipeline.before_rollout()
        assert pipeline.planned_total_steps() == 17 + 7  # the callable limit, now evaluated
        pipeline.pipeline_stages[2].steps_taken_in_stage = 8
        assert pipeline.before_rollout() and pipeline.planned_total_steps() == 25

    def test_before_rollout_calls_the_criterion_only_with_metrics(self) -> None:
        criterion = ThresholdEarlyStopping(metric="reward", threshold=10.0)
        pipeline = make_pipeline(
            [PipelineStage(["a"], 100, early_stopping_criterion=criterion), PipelineStage(["b"], 5)]
        )
        metrics = ScalarMeanTracker()
        metrics.add_scalars({"reward": 11.0})
        assert not pipeline.before_rollout()
        assert pipeline.current_stage_index == 0
        assert pipeline.before_rollout(train_metrics=metrics)
        assert pipeline.pipeline_stages[0].early_stopping_criterion_met
        assert pipeline.current_stage_index == 1

    def test_criterion_is_not_consulted_once_the_step_limit_is_reached(self) -> None:
        """A stage that ran to its limit ends anyway: it is not reported as early stopped."""
        criterion = ThresholdEarlyStopping(metric="reward", threshold=0.0)
        pipeline = make_pipeline([PipelineStage(["a"], 10, early_stopping_criterion=criterion)])
        pipeline.pipeline_stages[0].steps_taken_in_stage = 10
        metrics = ScalarMeanTracker()
        metrics.add_scalars({"reward": 5.0})
        pipeline.before_rollout(train_metrics=metrics)
        assert pipeline.current_stage is None
        assert not pipeline.pipeline_stages[0].early_stopping_criterion_met
        assert criterion.successes_in_a_row == 0

    def test_criterion_receives_stage_and_total_steps(self) -> None:
        seen: dict[str, Any] = {}

        class Spy(ThresholdEarlyStopping):
            def __call__(self, stage_steps: int, total_steps: int, training_metrics: Any) -> bool:
                seen.update(stage_steps=stage_steps, total_steps=total_steps)
                return False

        pipeline = make_pipeline(
            [PipelineStage(["a"], 10), PipelineStage(["b"], 50, early_stopping_criterion=Spy())]
        )
        pipeline.pipeline_stages[0].steps_taken_in_stage = 10
        pipeline.before_rollout()
        pipeline.pipeline_stages[1].steps_taken_in_stage = 4
        pipeline.before_rollout(ScalarMeanTracker())
        assert seen == {"stage_steps": 4, "total_steps": 14}

    def test_callable_limit_is_evaluated_when_the_stage_becomes_current(self) -> None:
        calls: list[str] = []

        def limit() -> int:
            calls.append("called")
            return 3

        pipeline = make_pipeline([PipelineStage(["a"], 10), PipelineStage(["b"], limit)])
        assert calls == []
        pipeline.pipeline_stages[0].steps_taken_in_stage = 10
        pipeline.before_rollout()
        assert calls == ["called"]
        pipeline.pipeline_stages[1].steps_taken_in_stage = 3
        pipeline.before_rollout()
        assert pipeline.current_stage is None and calls == ["called"]

    def test_restart_pipeline(self) -> None:
        pipeline = make_pipeline()
        for stage in pipeline.pipeline_stages:
            stage.steps_taken_in_stage = 100
        pipeline.before_rollout()
        assert pipeline.current_stage is None
        pipeline.restart_pipeline()
        assert pipeline.current_stage_index == 0 and pipeline.total_steps == 0


class TestIteration:
    def test_visits_each_incomplete_stage_once_with_the_cursor_on_it(self) -> None:
        pipeline = make_pipeline(
            [PipelineStage(["a"], 4), PipelineStage(["b"], 0), PipelineStage(["a"], 6)]
        )
        visited = []
        for stage in pipeline:
            assert pipeline.current_stage is stage
            visited.append(pipeline.current_stage_index)
            while not stage.is_complete:
                stage.steps_taken_in_stage += 4
                pipeline.before_rollout()
        assert visited == [0, 2]
        assert pipeline.current_stage is None
        assert [s.steps_taken_in_stage for s in pipeline.pipeline_stages] == [4, 0, 8]

    def test_restored_pipeline_starts_mid_way(self) -> None:
        pipeline = make_pipeline()
        pipeline.pipeline_stages[0].steps_taken_in_stage = 10
        pipeline.before_rollout()
        restored = make_pipeline()
        restored.load_state_dict(pipeline.state_dict())
        assert [restored.pipeline_stages.index(stage) for stage in restored] == [1]

    def test_a_body_that_does_not_train_still_visits_every_stage(self) -> None:
        pipeline = make_pipeline()
        assert [stage.loss_names for stage in pipeline] == [["a"], ["b"]]


class TestSaveAndLogRules:
    @pytest.mark.parametrize(
        ("save_interval", "steps", "stage_completed", "expected"),
        [
            (None, 10**9, True, False),
            (0, 10**9, False, False),
            (0, 0, True, True),
            (-5, 3, True, True),
            (100, 99, False, False),
            (100, 100, False, True),
            (100, 1, True, True),
        ],
    )
    def test_should_save(
        self, save_interval: int | None, steps: int, stage_completed: bool, expected: bool
    ) -> None:
        pipeline = make_pipeline(save_interval=save_interval)
        assert (
            pipeline.should_save(steps_since_last_save=steps, stage_completed=stage_completed)
            is expected
        )

    def test_should_accumulate_metrics(self) -> None:
        pipeline = make_pipeline(metric_accumulate_interval=50)
        assert not pipeline.should_accumulate_metrics(
            steps_since_last_log=49, stage_completed=False
        )
        assert pipeline.should_accumulate_metrics(steps_since_last_log=50, stage_completed=False)
        assert pipeline.should_accumulate_metrics(steps_since_last_log=1, stage_completed=True)


class TestLosses:
    def test_builders_are_built_once_and_shared(self) -> None:
        pipeline = make_pipeline(
            [PipelineStage(["b"], 1), PipelineStage(["a", "b"], 1)],
        )
        before = Loss.instances
        first = pipeline.current_stage_losses["b"]
        assert Loss.instances == before + 1 and first.scale == 2.0
        pipeline.pipeline_stages[0].steps_taken_in_stage = 1
        pipeline.before_rollout()
        assert pipeline.current_stage_losses["b"] is first
        assert Loss.instances == before + 1
        assert pipeline.current_stage_loss_weights == {"a": 1.0, "b": 1.0}


class TestState:
    def test_state_dict_round_trip_with_criteria(self) -> None:
        def build() -> TrainingPipeline:
            return make_pipeline(
                [
                    PipelineStage(["a"], 10),
                    PipelineStage(
                        ["b"],
                        lambda: 30,
                        early_stopping_criterion=ThresholdEarlyStopping(consecutive=3),
                    ),
                ]
            )

        pipeline = build()
        pipeline.pipeline_stages[0].steps_taken_in_stage = 10
        pipeline.before_rollout()
        pipeline.pipeline_stages[1].steps_taken_in_stage = 6
        metrics = ScalarMeanTracker()
        metrics.add_scalars({"reward": 1.0})
        pipeline.before_rollout(metrics)
        restored = build()
        restored.load_state_dict(copy.deepcopy(pipeline.state_dict()))
        assert restored.state_dict() == pipeline.state_dict()
        assert restored.current_stage_index == 1 and restored.total_steps == 16
        criterion = restored.pipeline_stages[1].early_stopping_criterion
        assert criterion is not None and criterion.state_dict() == {"successes_in_a_row": 1}

    def test_loading_a_state_with_other_stage_count_is_refused(self) -> None:
        state = make_pipeline().state_dict()
        with pytest.raises(InvalidArgumentError, match="has 1 stages but the saved state has 2"):
            make_pipeline([PipelineStage(["a"], 10)]).load_state_dict(state)

    def test_loading_a_state_with_other_loss_names_is_refused(self) -> None:
        state = make_pipeline().state_dict()
        other = make_pipeline([PipelineStage(["a"], 10), PipelineStage(["a"], 20)])
        with pytest.raises(
            InvalidArgumentError,
            match=r"'pipeline_stages.1.loss_names' differs from the saved state's \['b'\]",
        ):
            other.load_state_dict(state)

    def test_pickle_and_deepcopy(self) -> None:
        pipeline = make_pipeline()
        pipeline.pipeline_stages[0].steps_taken_in_stage = 3
        for clone in (pickle.loads(pickle.dumps(pipeline)), copy.deepcopy(pipeline)):
            assert clone.state_dict() == pipeline.state_dict()
            assert clone.optimizer_builder == pipeline.optimizer_builder


ROLLOUT_SETTINGS = {
    "num_mini_batch": 2,
    "update_repeats": 3,
    "max_grad_norm": 0.5,
    "num_steps": 8,
    "gamma": 0.99,
    "use_gae": True,
    "gae_lambda": 0.95,
    "metric_accumulate_interval": 50,
}


class TestAllenAct05Form:
    def test_keyword_form_with_a_settings_object(self) -> None:
        """AllenAct 0.5's keywords: training_settings, named_storages, rollout_storage_uuid;
        pipeline.<setting> reads the pipeline's settings, stages fall back to them."""
        settings = TrainingSettings(**ROLLOUT_SETTINGS, save_interval=100)
        stage = PipelineStage(loss_names=["a"], max_stage_steps=10, num_steps=4)
        pipeline = TrainingPipeline(
            named_losses={"a": Loss()},
            pipeline_stages=[stage],
            optimizer_builder=Builder(dict),
            training_settings=settings,
            named_storages=None,
            rollout_storage_uuid=None,
        )
        assert pipeline.training_settings is settings
        assert (pipeline.num_steps, pipeline.save_interval) == (8, 100)
        assert stage.training_settings.num_steps == 4
        assert stage.training_settings.update_repeats == 3

    def test_settings_given_in_both_forms_are_refused(self) -> None:
        with pytest.raises(InvalidArgumentError, match="is given together with the settings"):
            make_pipeline(training_settings=TrainingSettings())

    def test_per_loss_repeats_are_refused_for_the_pipeline(self) -> None:
        with pytest.raises(InvalidArgumentError, match="'update_repeats' must be an integer in a"):
            make_pipeline(training_settings=None, update_repeats=[1, 2])

    def test_default_storage_and_components(self) -> None:
        """Without storages a pipeline has AllenAct's "onpolicy" rollout storage (a builder,
        built when first asked for), and every stage a component training its losses on it."""
        pipeline = make_pipeline()
        assert pipeline.rollout_storage_uuid == "onpolicy"
        assert pipeline.named_storages == {"onpolicy": Builder(RolloutBlockStorage)}
        for stage in pipeline.pipeline_stages:
            (component,) = stage.stage_components
            assert (component.uuid, component.storage_uuid) == ("onpolicy", "onpolicy")
            assert component.loss_names == stage.loss_names
            assert component.training_settings.num_mini_batch == 2
        storage = pipeline.rollout_storage
        assert isinstance(storage, RolloutBlockStorage)
        assert pipeline.current_stage_storage == {"onpolicy": storage}
        assert pipeline.named_storages["onpolicy"] is storage

    def test_offpolicy_component_becomes_a_stage_component(self) -> None:
        """AllenAct 2020's offpolicy_component runs as a component on its data."""

        def data() -> Any:
            return iter(())

        component = OffPolicyPipelineComponent(data, ["b"], updates=4, loss_weights=[0.5])
        pipeline = make_pipeline([PipelineStage(["a"], 10, offpolicy_component=component)])
        (stage,) = pipeline.pipeline_stages
        rollout, offpolicy = stage.stage_components
        assert rollout.storage_uuid == "onpolicy"
        assert (offpolicy.uuid, offpolicy.loss_names) == ("offpolicy", ["b"])
        assert offpolicy.training_settings.own_values() == {
            "num_mini_batch": 1,
            "update_repeats": 4,
        }
        assert stage.component_loss_weights(offpolicy) == {"b": 0.5}
        source = pipeline.get_storage(offpolicy.storage_uuid)
        assert source.data_iterator_builder is data

    def test_storages_and_their_names(self) -> None:
        def data() -> Any:
            return iter(())

        two = {"first": RolloutBlockStorage(), "second": Builder(RolloutBlockStorage)}
        with pytest.raises(
            InvalidArgumentError,
            match=r"'rollout_storage_uuid' must be given, because named_storages holds several "
            r"rollout storages \['first', 'second'\]",
        ):
            make_pipeline(named_storages=two)
        with pytest.raises(
            InvalidArgumentError, match="'rollout_storage_uuid' must name a rollout storage"
        ):
            make_pipeline(named_storages={"data": data}, rollout_storage_uuid="data")
        with pytest.raises(
            InvalidArgumentError,
            match=r"'pipeline_stages.0.stage_components' must be given, because named_storages "
            r"holds several rollout storages",
        ):
            make_pipeline(named_storages=two, rollout_storage_uuid="first")
        component = StageComponent(uuid="c", storage_uuid="nope", loss_names=["a"])
        with pytest.raises(
            InvalidArgumentError,
            match=r"'pipeline_stages.0.stage_components.0.storage_uuid' names no storage of "
            r"named_storages \(got 'nope'\). Storages: \['onpolicy'\]",
        ):
            make_pipeline([PipelineStage(["a"], 10, stage_components=[component])])

    def test_without_a_rollout_storage_nothing_needs_rollout_settings(self) -> None:
        """A purely off-policy pipeline (AllenAct logs a warning) needs no rollout settings."""
        component = StageComponent(uuid="c", storage_uuid="data", loss_names=["a"])
        pipeline = TrainingPipeline(
            named_losses={"a": Loss()},
            pipeline_stages=[PipelineStage(["a"], 10, stage_components=[component])],
            optimizer_builder=Builder(dict),
            named_storages={"data": lambda: iter(())},
            num_mini_batch=1,
            update_repeats=1,
            max_grad_norm=1.0,
            metric_accumulate_interval=1,
        )
        assert pipeline.rollout_storage_uuid is None and pipeline.rollout_storage is None

    def test_unset_settings_name_where_to_set_them(self) -> None:
        with pytest.raises(
            InvalidArgumentError,
            match=r"'pipeline_stages.0.training_settings.gamma' is not set, neither for the stage "
            r"nor for the pipeline \(got None\). Set the pipeline's gamma, or this stage's "
            r"training_settings.gamma.",
        ):
            make_pipeline(gamma=None)
        component = StageComponent(uuid="c", storage_uuid="onpolicy", loss_names=["a"])
        with pytest.raises(
            InvalidArgumentError,
            match=r"'pipeline_stages.0.stage_components.0.training_settings.max_grad_norm' is not "
            r"set, but stage component 'c' updates",
        ):
            make_pipeline(
                [PipelineStage(["a"], 10, stage_components=[component])], max_grad_norm=None
            )

    def test_zero_minibatches_name_their_source(self) -> None:
        """The key named is where the value comes from: the stage's setting here."""
        with pytest.raises(
            InvalidArgumentError,
            match=r"'pipeline_stages.1.training_settings.num_mini_batch' must be >= 1 where "
            r"stage component 'onpolicy' of pipeline_stages.1 updates \(update_repeats=3\)",
        ):
            make_pipeline([PipelineStage(["a"], 10), PipelineStage(["b"], 10, num_mini_batch=0)])
        # Nothing to update: 0 minibatches are fine.
        make_pipeline([PipelineStage(["a"], 10, num_mini_batch=0, update_repeats=0)])

    def test_validation_and_test_stages(self) -> None:
        """Kept for AllenAct 0.5's configs (never run here); empty by default, linked to the
        pipeline's settings, and never one of the training stages."""
        pipeline = make_pipeline()
        for stage in (pipeline.valid_pipeline_stage, pipeline.test_pipeline_stage):
            assert stage.loss_names == [] and stage.max_stage_steps == -1
            assert stage.training_settings.num_steps == 8
        valid = PipelineStage(["a"], -1, update_repeats=1)
        assert make_pipeline(valid_pipeline_stage=valid).valid_pipeline_stage is valid
        stages = [PipelineStage(["a"], 10)]
        with pytest.raises(
            InvalidArgumentError, match="'test_pipeline_stage' is also one of pipeline_stages"
        ):
            make_pipeline(stages, test_pipeline_stage=stages[0])
        with pytest.raises(InvalidArgumentError, match=r"'valid_pipeline_stage.loss_names' names"):
            make_pipeline(valid_pipeline_stage=PipelineStage(["nope"], -1))


class TestStageRules:
    def test_save_and_log_rules_use_the_stage_settings(self) -> None:
        """The running stage's save_interval and metric_accumulate_interval decide."""
        stages = [PipelineStage(["a"], 10), PipelineStage(["b"], 10, save_interval=5)]
        pipeline = make_pipeline(stages, save_interval=None)
        first, second = pipeline.pipeline_stages
        assert not pipeline.should_save(steps_since_last_save=10, stage_completed=True, stage=first)
        assert pipeline.should_save(steps_since_last_save=5, stage_completed=False, stage=second)
        second.training_settings.metric_accumulate_interval = 7
        assert pipeline.should_accumulate_metrics(
            steps_since_last_log=7, stage_completed=False, stage=second
        )
        assert not pipeline.should_accumulate_metrics(
            steps_since_last_log=7, stage_completed=False, stage=first
        )

    def test_get_loss_and_current_stage_losses(self) -> None:
        """AllenAct's runner looks losses up with get_loss; a stage's losses include its
        components'."""
        component = StageComponent(uuid="c", storage_uuid="onpolicy", loss_names=["b"])
        pipeline = make_pipeline([PipelineStage(["a", "b"], 10, stage_components=[component])])
        assert set(pipeline.current_stage_losses) == {"a", "b"}
        assert pipeline.get_loss("b") is pipeline.current_stage_losses["b"]

    def test_before_rollout_takes_allenacts_keyword(self) -> None:
        criterion = ThresholdEarlyStopping(metric="reward", threshold=1.0)
        pipeline = make_pipeline([PipelineStage(["a"], 10, early_stopping_criterion=criterion)])
        metrics = ScalarMeanTracker()
        metrics.add_scalars({"reward": 2.0})
        assert pipeline.before_rollout(train_metrics=metrics)
        assert pipeline.current_stage is None

    def test_state_holds_rollout_and_storage_counts(self) -> None:
        pipeline = make_pipeline()
        pipeline.rollout_count = 5
        pipeline.pipeline_stages[0].storage_uuid_to_steps_taken_in_stage["onpolicy"] = 8
        pipeline.pipeline_stages[0].steps_taken_in_stage = 8
        restored = make_pipeline()
        restored.load_state_dict(copy.deepcopy(pipeline.state_dict()))
        assert restored.rollout_count == 5
        assert restored.storage_uuid_to_total_experiences == {"onpolicy": 8}
        restored.restart_pipeline()
        assert restored.rollout_count == 5 and restored.total_steps == 0


def test_rules_without_a_stage_use_the_pipelines_settings() -> None:
    """Asked about the pipeline itself, a pipeline that leaves the metric interval to its
    stages reports only at stage ends, and one with no save_interval never saves."""
    stage = PipelineStage(["a"], 10, metric_accumulate_interval=5, save_interval=5)
    pipeline = make_pipeline([stage], metric_accumulate_interval=None, save_interval=None)
    assert not pipeline.should_accumulate_metrics(steps_since_last_log=99, stage_completed=False)
    assert pipeline.should_accumulate_metrics(steps_since_last_log=0, stage_completed=True)
    assert not pipeline.should_save(steps_since_last_save=99, stage_completed=True)
    assert pipeline.should_save(steps_since_last_save=5, stage_completed=False, stage=stage)
