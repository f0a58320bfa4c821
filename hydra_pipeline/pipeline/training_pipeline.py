"""``TrainingPipeline``: the stages of a training run, their settings and storages, and where
the run is."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from hydra_pipeline.arguments import (
    require_at_least,
    require_non_negative,
    require_positive,
    require_real,
)
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.pipeline.builder import Builder
from hydra_pipeline.pipeline.metrics import ScalarMeanTracker
from hydra_pipeline.pipeline.settings import (
    TRAINING_SETTING_KEYS,
    TrainingSettings,
    require_one_update_count,
    settings_from_arguments,
)
from hydra_pipeline.pipeline.stage import (
    PipelineStage,
    StageComponent,
    require_runnable_settings,
)
from hydra_pipeline.pipeline.storage import (
    DEFAULT_ROLLOUT_STORAGE_UUID,
    DataIteratorStorage,
    RolloutBlockStorage,
    is_rollout_storage,
)

__all__ = ["TrainingPipeline"]

_OFFPOLICY_COMPONENT_UUID = "offpolicy"
"""The name of the stage component an ``offpolicy_component`` becomes (and the prefix of its
metrics)."""


class _PipelineSetting:
    """``pipeline.<setting>``: the pipeline's own training setting (AllenAct 2020 read them
    from the pipeline; AllenAct 0.5 from ``pipeline.training_settings``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, pipeline: TrainingPipeline | None, owner: type[Any]) -> Any:
        if pipeline is None:
            return self
        return getattr(pipeline.training_settings, self.name)


_Class = TypeVar("_Class", bound=type)


def _settings_as_attributes(cls: _Class) -> _Class:
    """Give ``cls`` an attribute per training setting that reads its ``training_settings``."""
    for key in TRAINING_SETTING_KEYS:
        setattr(cls, key, _PipelineSetting(key))
    return cls


@_settings_as_attributes
class TrainingPipeline:
    """A sequence of :class:`PipelineStage` s trained one after the other, with their settings
    and the storages their losses learn from.

    The first fifteen parameters take AllenAct 2020's positional order; AllenAct 0.5's
    keywords are keyword-only. The pipeline's training settings are given either as
    ``training_settings`` or as the ten keyword arguments from ``num_mini_batch`` to
    ``metric_accumulate_interval`` (AllenAct's backward-compatible form); any of them may be
    left unset when every stage that uses it sets its own. ``pipeline.num_steps`` and the like
    read the pipeline's own settings.

    The pipeline keeps a cursor on the current stage. It is iterable: ``for stage in
    pipeline:`` visits each incomplete stage once, in order, starting from the current one (so
    a pipeline restored from a checkpoint starts mid-way), and ``pipeline.current_stage is
    stage`` inside the loop body.

    Args:
        named_losses: Loss name -> loss object, or a :class:`Builder` of one. Builders are built
            lazily, once, and the loss is shared by every stage that names it.
        pipeline_stages: The stages, trained in order. Each stage object may appear only once.
        optimizer_builder: Called once with ``params=...`` to make the single optimizer used by
            every stage.
        num_mini_batch: The pipeline's settings in keyword form; see
            :class:`TrainingSettings` for their meaning, units and ranges.
        update_repeats: As above (an int here).
        max_grad_norm: As above.
        num_steps: As above.
        gamma: As above.
        use_gae: As above.
        gae_lambda: As above.
        advance_scene_rollout_period: As above.
        save_interval: As above (see also :meth:`should_save`).
        metric_accumulate_interval: As above.
        should_log: Whether metrics are written to the console and to TensorBoard (they are
            still accumulated for early stopping and the run summary).
        lr_scheduler_builder: Called once with ``optimizer=...``; the scheduler is stepped
            after every update with the total step count. ``None`` keeps the learning rate.
        named_storages: Storage name -> storage (see :mod:`hydra_pipeline.pipeline.storage`):
            the rollout storage and data sources such as expert demonstrations. ``None`` or
            empty gives the single rollout storage ``"onpolicy"``; storages without a rollout
            storage make a purely off-policy pipeline, which collects no experience.
        rollout_storage_uuid: The name of the rollout storage; ``None`` infers it (there may
            then be at most one).
        training_settings: The pipeline's settings as one object (AllenAct 0.5's form).
        valid_pipeline_stage: Accepted for AllenAct 0.5's validation-time losses and settings;
            kept (``valid_pipeline_stage``) but not run: validation here is the run's
            evaluation (the app's ``evaluation`` node, the engine's ``Evaluator``), which plays
            episodes and computes no losses. ``None`` gives an empty stage, as in AllenAct.
        test_pipeline_stage: As ``valid_pipeline_stage``, for testing, which here is the
            evaluate command on a run's checkpoints.
        minibatch_split: The pipeline's ``minibatch_split`` setting (see
            :class:`TrainingSettings`; not one of AllenAct's arguments).
        sequence_length: The pipeline's ``sequence_length`` setting (likewise).

    Attributes:
        rollout_count: Rollouts (rounds of updates) run so far, over all stages; unlike the
            stages' progress, :meth:`restart_pipeline` keeps it (as AllenAct does).
    """

    def __init__(
        self,
        named_losses: Mapping[str, Any],
        pipeline_stages: Sequence[PipelineStage],
        optimizer_builder: Builder[Any] | Callable[..., Any],
        num_mini_batch: int | None = None,
        update_repeats: int | None = None,
        max_grad_norm: float | None = None,
        num_steps: int | None = None,
        gamma: float | None = None,
        use_gae: bool | None = None,
        gae_lambda: float | None = None,
        advance_scene_rollout_period: int | None = None,
        save_interval: int | None = None,
        metric_accumulate_interval: int | None = None,
        should_log: bool = True,
        lr_scheduler_builder: Builder[Any] | Callable[..., Any] | None = None,
        *,
        named_storages: Mapping[str, Any] | None = None,
        rollout_storage_uuid: str | None = None,
        training_settings: TrainingSettings | None = None,
        valid_pipeline_stage: PipelineStage | None = None,
        test_pipeline_stage: PipelineStage | None = None,
        minibatch_split: str | None = None,
        sequence_length: int | None = None,
    ) -> None:
        # The parameters (locals(), before any other name is bound) hold the settings'
        # keyword form.
        self.training_settings = settings_from_arguments(
            "training_settings", training_settings, locals()
        )
        require_one_update_count("update_repeats", "pipeline", self.training_settings)
        self.named_losses: dict[str, Any] = dict(named_losses)
        if not callable(optimizer_builder):
            raise InvalidArgumentError(
                "optimizer_builder", "must be a Builder of an optimizer", optimizer_builder
            )
        _check_builder_arguments("optimizer_builder", optimizer_builder, "optimizer")
        self.optimizer_builder = optimizer_builder
        self.should_log = bool(should_log)
        if lr_scheduler_builder is not None and not callable(lr_scheduler_builder):
            raise InvalidArgumentError(
                "lr_scheduler_builder", "must be a Builder of a scheduler", lr_scheduler_builder
            )
        _check_builder_arguments("lr_scheduler_builder", lr_scheduler_builder, "lr_scheduler")
        self.lr_scheduler_builder = lr_scheduler_builder
        self.named_storages: dict[str, Any] = dict(named_storages or {}) or {
            DEFAULT_ROLLOUT_STORAGE_UUID: Builder(RolloutBlockStorage)
        }
        self.rollout_storage_uuid = _rollout_storage_uuid(self.named_storages, rollout_storage_uuid)
        self.pipeline_stages = _validated_stages(pipeline_stages, self.named_losses)
        self.valid_pipeline_stage = _evaluation_stage(
            "valid_pipeline_stage", valid_pipeline_stage, self.pipeline_stages, self.named_losses
        )
        self.test_pipeline_stage = _evaluation_stage(
            "test_pipeline_stage", test_pipeline_stage, self.pipeline_stages, self.named_losses
        )
        self._add_components()
        for index, stage in enumerate(self.pipeline_stages):
            if callable(stage.max_stage_steps) or stage.max_stage_steps > 0:
                require_runnable_settings(
                    f"pipeline_stages.{index}",
                    stage,
                    has_rollout_storage=self.rollout_storage_uuid is not None,
                )
        self.rollout_count = 0
        self._built_losses: dict[str, Any] = {}
        self._current_index: int | None = None
        self._move_cursor(start=0)

    def _add_components(self) -> None:
        """Link every stage's settings to the pipeline's, give each stage without components
        its rollout component, turn ``offpolicy_component`` s into components, and check that
        every component's storage exists."""
        rollout_storages = [
            name for name, storage in self.named_storages.items() if is_rollout_storage(storage)
        ]
        named = [
            (f"pipeline_stages.{index}", stage) for index, stage in enumerate(self.pipeline_stages)
        ]
        named += [
            ("valid_pipeline_stage", self.valid_pipeline_stage),
            ("test_pipeline_stage", self.test_pipeline_stage),
        ]
        for argument, stage in named:
            stage.training_settings.set_defaults(self.training_settings)
            if not stage.stage_components and rollout_storages:
                if len(rollout_storages) > 1:
                    raise InvalidArgumentError(
                        f"{argument}.stage_components",
                        f"must be given, because named_storages holds several rollout storages "
                        f"{rollout_storages}",
                        None,
                        "Say which storage each stage's losses learn from.",
                    )
                stage.add_stage_component(
                    StageComponent(
                        uuid=rollout_storages[0],
                        storage_uuid=rollout_storages[0],
                        loss_names=stage.loss_names,
                    )
                )
            component = stage.offpolicy_component
            if component is not None:
                storage_uuid = f"{argument}.offpolicy_component"
                self.named_storages[storage_uuid] = DataIteratorStorage(
                    component.data_iterator_builder
                )
                stage.add_stage_component(
                    StageComponent(
                        uuid=_OFFPOLICY_COMPONENT_UUID,
                        storage_uuid=storage_uuid,
                        loss_names=component.loss_names,
                        training_settings=TrainingSettings(
                            num_mini_batch=1, update_repeats=component.updates
                        ),
                        # Its weights are its own (1.0 by default), not the stage's.
                        loss_weights=component.loss_weights or [1.0] * len(component.loss_names),
                    ),
                    argument="offpolicy_component",
                )
            for index, stage_component in enumerate(stage.stage_components):
                if stage_component.storage_uuid not in self.named_storages:
                    raise InvalidArgumentError(
                        f"{argument}.stage_components.{index}.storage_uuid",
                        "names no storage of named_storages",
                        stage_component.storage_uuid,
                        f"Storages: {sorted(self.named_storages)}.",
                    )
            if self.rollout_storage_uuid is not None:
                stage.storage_uuid_to_steps_taken_in_stage.setdefault(self.rollout_storage_uuid, 0)

    # ----------------------------------------------------------------------------------------
    # The stage cursor

    @property
    def current_stage_index(self) -> int | None:
        """Index of the current stage; ``None`` once every stage is complete."""
        return self._current_index

    @property
    def current_stage(self) -> PipelineStage | None:
        """The current stage; ``None`` once every stage is complete."""
        index = self._current_index
        return None if index is None else self.pipeline_stages[index]

    @property
    def total_steps(self) -> int:
        """Agent steps taken in all stages."""
        return sum(stage.steps_taken_in_stage for stage in self.pipeline_stages)

    def planned_total_steps(self) -> float:
        """The total step count reached if no stage from the current one on stops early: the
        steps taken, the rest of the current stage's limit and the later stages' limits (a
        later limit given as a callable, evaluated when its stage starts, counts as 0). What
        a progress bar of the whole run counts towards."""
        index = self._current_index
        if index is None:
            return float(self.total_steps)
        stage = self.pipeline_stages[index]
        rest = max(0.0, stage.resolve_max_stage_steps() - stage.steps_taken_in_stage)
        later = [s.max_stage_steps for s in self.pipeline_stages[index + 1 :]]
        return self.total_steps + rest + sum(m for m in later if not callable(m))

    def _move_cursor(self, start: int) -> None:
        """Point the cursor at the first incomplete stage from ``start`` on (or at ``None``)."""
        for index in range(start, len(self.pipeline_stages)):
            stage = self.pipeline_stages[index]
            stage.resolve_max_stage_steps()
            if not stage.is_complete:
                self._current_index = index
                return
        self._current_index = None

    def before_rollout(self, train_metrics: ScalarMeanTracker | None = None) -> bool:
        """Call the current stage's criterion (when metrics are given), then advance the cursor.

        Args:
            train_metrics: Metrics accumulated since the previous call (AllenAct 0.5's keyword);
                when given, the current stage's early-stopping criterion (if any) decides
                whether it ends now (it is not called once the stage has reached
                ``max_stage_steps``).

        Returns:
            Whether the current stage changed.
        """
        stage = self.current_stage
        if stage is None:
            return False
        criterion = stage.early_stopping_criterion
        # A stage that has run to its step limit ends anyway: only an earlier end counts as
        # early stopping.
        if train_metrics is not None and criterion is not None and not stage.is_complete:
            stage.early_stopping_criterion_met = bool(
                criterion(
                    stage_steps=stage.steps_taken_in_stage,
                    total_steps=self.total_steps,
                    training_metrics=train_metrics,
                )
            )
        if stage.is_complete:
            assert self._current_index is not None
            self._move_cursor(start=self._current_index + 1)
        return self.current_stage is not stage

    # ----------------------------------------------------------------------------------------
    # Progress, as the engine reports it (always of the current stage)

    def record_rollout_steps(self, count: int) -> None:
        """Count ``count`` agent steps collected into the rollout storage."""
        stage = self._stage_in_progress()
        assert self.rollout_storage_uuid is not None  # only a pipeline with one collects
        stage.steps_taken_in_stage += count
        stage.storage_uuid_to_steps_taken_in_stage[self.rollout_storage_uuid] += count

    def record_update_round(self) -> None:
        """Count a round of updates of a pipeline without a rollout storage as one step."""
        self._stage_in_progress().steps_taken_in_stage += 1

    def record_samples(self, storage_uuid: str, count: int) -> None:
        """Count ``count`` samples drawn from the storage ``storage_uuid``."""
        self._stage_in_progress().storage_uuid_to_steps_taken_in_stage[storage_uuid] += count

    def record_rollout_end(self) -> None:
        """Count a finished rollout (its collection and updates)."""
        self.rollout_count += 1
        self._stage_in_progress().rollout_count += 1

    def _stage_in_progress(self) -> PipelineStage:
        stage = self.current_stage
        if stage is None:
            raise RuntimeError("every stage of the pipeline is complete: nothing is in progress")
        return stage

    def restart_pipeline(self) -> None:
        """Put every stage back to its start and the cursor on the first stage to train."""
        for stage in (*self.pipeline_stages, self.valid_pipeline_stage, self.test_pipeline_stage):
            stage.reset()
        self._move_cursor(start=0)

    def __iter__(self) -> Iterator[PipelineStage]:
        start = self._current_index
        if start is None:
            return
        for index in range(start, len(self.pipeline_stages)):
            stage = self.pipeline_stages[index]
            stage.resolve_max_stage_steps()
            if stage.is_complete:
                continue
            self._current_index = index
            yield stage
        if self._current_index is not None:
            self._move_cursor(start=self._current_index)

    # ----------------------------------------------------------------------------------------
    # What the engine asks

    def should_save(
        self,
        *,
        steps_since_last_save: int,
        stage_completed: bool,
        stage: PipelineStage | None = None,
    ) -> bool:
        """Whether the engine should write a checkpoint after the rollout it just finished.

        The single home of the ``save_interval`` rule, applied with the settings of ``stage``
        (the stage that ran the rollout; ``None``: the pipeline's own): ``None`` never; ``<= 0``
        only when a stage has just completed; ``> 0`` when ``save_interval`` total steps have
        passed since the last save, or a stage has just completed.
        """
        save_interval = (stage.training_settings if stage else self.training_settings).save_interval
        if save_interval is None:
            return False
        if stage_completed:
            return True
        return save_interval > 0 and steps_since_last_save >= save_interval

    def should_accumulate_metrics(
        self,
        *,
        steps_since_last_log: int,
        stage_completed: bool,
        stage: PipelineStage | None = None,
    ) -> bool:
        """Whether metrics are due: every ``metric_accumulate_interval`` steps of ``stage``'s
        settings (``None``: the pipeline's own; without an interval, only at stage ends) and at
        the end of a stage."""
        settings = stage.training_settings if stage else self.training_settings
        interval = settings.metric_accumulate_interval
        return stage_completed or (interval is not None and steps_since_last_log >= interval)

    def get_loss(self, uuid: str) -> Any:
        """The loss named ``uuid``, built on first use if ``named_losses`` holds a builder."""
        if uuid not in self._built_losses:
            value = self.named_losses[uuid]
            self._built_losses[uuid] = value() if isinstance(value, Builder) else value
        return self._built_losses[uuid]

    @property
    def current_stage_losses(self) -> dict[str, Any]:
        """The current stage's losses by name (empty when the pipeline is done)."""
        stage = self.current_stage
        if stage is None:
            return {}
        names = dict.fromkeys(stage.loss_names)
        for component in stage.stage_components:
            names.update(dict.fromkeys(component.loss_names))
        return {name: self.get_loss(name) for name in names}

    @property
    def current_stage_loss_weights(self) -> dict[str, float]:
        """The current stage's loss weights by name (empty when the pipeline is done)."""
        stage = self.current_stage
        return {} if stage is None else stage.uuid_to_loss_weight

    def get_storage(self, uuid: str) -> Any:
        """The storage named ``uuid``, built on first use if ``named_storages`` holds a builder
        (the built storage replaces the builder)."""
        storage = self.named_storages[uuid]
        if isinstance(storage, Builder):
            storage = self.named_storages[uuid] = storage()
        return storage

    def get_stage_storage(self, stage: PipelineStage) -> OrderedDict[str, Any]:
        """The storages ``stage`` uses, and the rollout storage, by name (sorted), built."""
        names = {component.storage_uuid for component in stage.stage_components}
        if self.rollout_storage_uuid is not None:
            names.add(self.rollout_storage_uuid)
        return OrderedDict((name, self.get_storage(name)) for name in sorted(names))

    @property
    def current_stage_storage(self) -> OrderedDict[str, Any]:
        """:meth:`get_stage_storage` of the current stage (empty when the pipeline is done)."""
        stage = self.current_stage
        return OrderedDict() if stage is None else self.get_stage_storage(stage)

    @property
    def rollout_storage(self) -> RolloutBlockStorage | None:
        """The rollout storage (built if needed); ``None`` in a purely off-policy pipeline."""
        if self.rollout_storage_uuid is None:
            return None
        storage = self.get_storage(self.rollout_storage_uuid)
        assert isinstance(storage, RolloutBlockStorage)
        return storage

    @property
    def storage_uuid_to_total_experiences(self) -> dict[str, int]:
        """Samples drawn from each storage, over all stages."""
        totals = dict.fromkeys(self.named_storages, 0)
        for stage in self.pipeline_stages:
            for name, steps in stage.storage_uuid_to_steps_taken_in_stage.items():
                totals[name] = totals.get(name, 0) + steps
        return totals

    # ----------------------------------------------------------------------------------------
    # Checkpoints

    def state_dict(self) -> dict[str, Any]:
        """The cursor, the rollout count and every stage's progress and criterion state, as
        plain Python values."""
        return {
            "current_stage_index": self._current_index,
            "rollout_count": self.rollout_count,
            "stages": [stage.state_dict() for stage in self.pipeline_stages],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Raises:
            InvalidArgumentError: The state comes from a pipeline with a different number of
                stages, or with different loss names in some stage.
        """
        saved_stages = list(state["stages"])
        if len(saved_stages) != len(self.pipeline_stages):
            raise InvalidArgumentError(
                "pipeline_stages",
                f"has {len(self.pipeline_stages)} stages but the saved state has "
                f"{len(saved_stages)}",
                [stage.loss_names for stage in self.pipeline_stages],
                "Load a checkpoint made with the same pipeline.",
            )
        pairs = list(zip(self.pipeline_stages, saved_stages, strict=True))
        for index, (stage, saved) in enumerate(pairs):
            if list(saved["loss_names"]) != stage.loss_names:
                raise InvalidArgumentError(
                    f"pipeline_stages.{index}.loss_names",
                    f"differs from the saved state's {list(saved['loss_names'])}",
                    stage.loss_names,
                    "Load a checkpoint made with the same pipeline.",
                )
        for stage, saved in pairs:
            stage.load_state_dict(saved)
        self.rollout_count = int(state["rollout_count"])
        # Resume at the saved stage, or, if the pipeline had finished, at its last trained
        # stage (a longer limit given on resume makes it incomplete again).
        index = state["current_stage_index"]
        if index is None:
            trained = [
                i for i, stage in enumerate(self.pipeline_stages) if stage.steps_taken_in_stage
            ]
            index = trained[-1] if trained else len(self.pipeline_stages)
        self._move_cursor(start=int(index))

    def __repr__(self) -> str:
        return (
            f"TrainingPipeline(stages={[stage.loss_names for stage in self.pipeline_stages]}, "
            f"current_stage_index={self._current_index}, total_steps={self.total_steps})"
        )


def _rollout_storage_uuid(storages: Mapping[str, Any], given: str | None) -> str | None:
    """The name of the rollout storage: ``given`` if it names one, else the only one."""
    rollout_storages = [name for name, storage in storages.items() if is_rollout_storage(storage)]
    if given is None:
        if len(rollout_storages) > 1:
            raise InvalidArgumentError(
                "rollout_storage_uuid",
                f"must be given, because named_storages holds several rollout storages "
                f"{rollout_storages}",
                given,
            )
        return rollout_storages[0] if rollout_storages else None
    if given not in rollout_storages:
        raise InvalidArgumentError(
            "rollout_storage_uuid",
            "must name a rollout storage of named_storages",
            given,
            f"Rollout storages: {rollout_storages}.",
        )
    return given


def _evaluation_stage(
    argument: str,
    stage: PipelineStage | None,
    training_stages: Sequence[PipelineStage],
    named_losses: Mapping[str, Any],
) -> PipelineStage:
    """A validation or test stage: the one given, or an empty one (as in AllenAct)."""
    if stage is None:
        return PipelineStage(loss_names=[], max_stage_steps=-1)
    if not isinstance(stage, PipelineStage):
        raise InvalidArgumentError(argument, "must be a PipelineStage", stage)
    if any(stage is training_stage for training_stage in training_stages):
        raise InvalidArgumentError(
            argument,
            "is also one of pipeline_stages",
            stage,
            "Stages hold their own progress, so each must be a separate PipelineStage.",
        )
    _check_loss_names(argument, stage, named_losses)
    return stage


def _validated_stages(
    stages: Sequence[PipelineStage], named_losses: Mapping[str, Any]
) -> list[PipelineStage]:
    """The stages as a list, after the checks that need the whole pipeline."""
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not stages:
        raise InvalidArgumentError(
            "pipeline_stages", "must be a non-empty list of PipelineStage", stages
        )
    seen: dict[int, int] = {}
    for index, stage in enumerate(stages):
        if not isinstance(stage, PipelineStage):
            raise InvalidArgumentError(f"pipeline_stages.{index}", "must be a PipelineStage", stage)
        if id(stage) in seen:
            raise InvalidArgumentError(
                f"pipeline_stages.{index}",
                f"is the same object as pipeline_stages.{seen[id(stage)]}",
                stage,
                "Stages hold their own progress, so each must be a separate PipelineStage.",
            )
        seen[id(stage)] = index
        _check_loss_names(f"pipeline_stages.{index}", stage, named_losses)
    return list(stages)


def _check_loss_names(argument: str, stage: PipelineStage, named_losses: Mapping[str, Any]) -> None:
    """Every loss ``stage`` names (itself, or in a component) is one of ``named_losses``."""
    named = [("loss_names", stage.loss_names)]
    if stage.offpolicy_component is not None:
        named.append(("offpolicy_component.loss_names", stage.offpolicy_component.loss_names))
    named += [
        (f"stage_components.{i}.loss_names", component.loss_names)
        for i, component in enumerate(stage.stage_components)
    ]
    for field_name, names in named:
        unknown = [name for name in names if name not in named_losses]
        if unknown:
            raise InvalidArgumentError(
                f"{argument}.{field_name}",
                f"names {unknown}, which named_losses does not define",
                names,
                f"Defined losses: {sorted(named_losses)}.",
            )


def _betas(argument: str, value: Any) -> None:
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise InvalidArgumentError(argument, "must be a pair of numbers", value)
    for index, beta in enumerate(value):
        if not 0.0 <= require_real(f"{argument}.{index}", beta) < 1.0:
            raise InvalidArgumentError(f"{argument}.{index}", "must be in [0, 1)", beta)


_OPTIMIZER_ARGUMENTS: dict[str, Callable[[str, Any], Any]] = {
    "lr": require_non_negative,
    "eps": require_non_negative,
    "weight_decay": require_non_negative,
    "momentum": require_non_negative,
    "dampening": require_real,
    "alpha": require_non_negative,
    "betas": _betas,
}
"""Rules for the keyword arguments torch's optimizers share, by name."""

_LR_SCHEDULER_ARGUMENTS: dict[str, Callable[[str, Any], Any]] = {
    "step_size": functools.partial(require_at_least, minimum=1),
    "T_max": functools.partial(require_at_least, minimum=1),
    "gamma": require_positive,
    "eta_min": require_non_negative,
    "last_epoch": functools.partial(require_at_least, minimum=-1),
}
"""Rules for the keyword arguments of torch's LR schedulers, by name."""


def _check_builder_arguments(argument: str, builder: Any, kind: str) -> None:
    """Check the arguments an optimizer (``kind="optimizer"``) or LR scheduler
    (``kind="lr_scheduler"``) builder will pass, by their names, before anything is built.

    torch checks some of them only when the object is built (after the model exists), and
    others never (a NaN learning rate trains on silently). Arguments of other names are left
    to the class being built.
    """
    rules = _OPTIMIZER_ARGUMENTS if kind == "optimizer" else _LR_SCHEDULER_ARGUMENTS
    kwargs = getattr(builder, "kwargs", None)
    if not isinstance(kwargs, Mapping):
        return
    for name, value in kwargs.items():
        rule = rules.get(name)
        if rule is not None:
            rule(f"{argument}.{name}", value)
