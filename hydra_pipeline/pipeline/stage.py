"""``PipelineStage``, ``StageComponent`` and ``OffPolicyPipelineComponent``: one step of a
training pipeline and the parts that learn in it."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from hydra_pipeline.arguments import (
    require_at_least,
    require_matching_weights,
    require_name,
    require_names,
    require_real,
)
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.pipeline.early_stopping import EarlyStoppingCriterion
from hydra_pipeline.pipeline.settings import (
    TRAINING_SETTING_KEYS,
    TrainingSettings,
    require_one_update_count,
    setting_source,
    settings_from_arguments,
)

__all__ = [
    "OffPolicyPipelineComponent",
    "PipelineStage",
    "StageComponent",
    "require_runnable_settings",
]

COMPONENT_SETTING_KEYS = ("num_mini_batch", "update_repeats", "max_grad_norm", "minibatch_split")
"""The training settings a stage component may set; the others belong to its stage."""


class OffPolicyPipelineComponent(NamedTuple):
    """Off-policy updates performed after each on-policy update of a stage (AllenAct 2020's
    form; a stage runs it as a :class:`StageComponent` reading from its data).

    Attributes:
        data_iterator_builder: Called with no arguments to get an iterator of minibatches; called
            again whenever the iterator is exhausted. If it also has ``state_dict`` and
            ``load_state_dict`` methods, the data stream resumes exactly from a checkpoint.
        loss_names: Names, in the pipeline's ``named_losses``, of the losses computed on each
            off-policy minibatch.
        updates: Number of off-policy minibatch updates after each on-policy update (>= 1).
        loss_weights: One weight per name in ``loss_names``; ``None`` means all 1.0.
    """

    data_iterator_builder: Callable[[], Iterator[Any]]
    loss_names: list[str]
    updates: int
    loss_weights: Sequence[float] | None = None


def _validated_component(component: Any) -> OffPolicyPipelineComponent | None:
    if component is None:
        return None
    if not isinstance(component, OffPolicyPipelineComponent):
        raise InvalidArgumentError(
            "offpolicy_component", "must be an OffPolicyPipelineComponent", component
        )
    if not callable(component.data_iterator_builder):
        raise InvalidArgumentError(
            "offpolicy_component.data_iterator_builder",
            "must be callable with no arguments",
            component.data_iterator_builder,
        )
    names = require_names("offpolicy_component.loss_names", component.loss_names)
    if not names:
        raise InvalidArgumentError(
            "offpolicy_component.loss_names", "must name at least one loss", names
        )
    weights = require_matching_weights(
        "offpolicy_component.loss_weights",
        component.loss_weights,
        "offpolicy_component.loss_names",
        names,
    )
    updates = require_at_least("offpolicy_component.updates", component.updates, 1)
    return OffPolicyPipelineComponent(component.data_iterator_builder, names, updates, weights)


class StageComponent:
    """A part of a stage that learns from one storage: which losses, on which of the
    pipeline's ``named_storages``, with which update settings (AllenAct 0.5).

    A stage given no components gets one from its pipeline: all its losses on the rollout
    storage. Each component of a stage runs its updates in turn after every rollout.

    Args:
        uuid: The component's name, unique within its stage (it prefixes the metrics of
            components that do not learn from the rollout storage).
        storage_uuid: The name, in the pipeline's ``named_storages``, of the storage its
            minibatches come from. At most one component of a stage may use a storage.
        loss_names: The losses (keys of the pipeline's ``named_losses``) computed on each
            minibatch. A component without losses learns nothing (AllenAct's pipeline gives one
            to a stage without losses of its own).
        training_settings: Only ``num_mini_batch``, ``update_repeats`` (an int, or a list
            with one count per loss) and ``max_grad_norm`` may be set; the others belong to
            the stage. Unset ones fall back to the stage's settings.
        loss_weights: One weight per name in ``loss_names``; ``None`` takes each loss's weight
            in the stage (AllenAct documents this argument but does not implement it; the
            stage then must list the loss).

    Raises:
        InvalidArgumentError: An argument is malformed, or ``training_settings`` sets a
            setting that belongs to the stage.
    """

    def __init__(
        self,
        *,
        uuid: str,
        storage_uuid: str,
        loss_names: Sequence[str],
        training_settings: TrainingSettings | None = None,
        loss_weights: Sequence[float] | None = None,
    ) -> None:
        self.uuid = require_name("uuid", uuid)
        self.storage_uuid = require_name("storage_uuid", storage_uuid)
        self.loss_names = require_names("loss_names", loss_names)
        self.loss_weights = require_matching_weights(
            "loss_weights", loss_weights, "loss_names", self.loss_names
        )
        settings = settings_from_arguments("training_settings", training_settings, {})
        stage_owned = sorted(
            key for key in settings.own_values() if key not in COMPONENT_SETTING_KEYS
        )
        if stage_owned:
            raise InvalidArgumentError(
                f"training_settings.{stage_owned[0]}",
                "must not be set in a StageComponent",
                settings.own(stage_owned[0]),
                f"A component sets only {list(COMPONENT_SETTING_KEYS)}; set the others in "
                "its PipelineStage or in the TrainingPipeline.",
            )
        repeats = settings.own("update_repeats")
        if isinstance(repeats, list) and len(repeats) != len(self.loss_names):
            raise InvalidArgumentError(
                "training_settings.update_repeats",
                f"must give one count per loss of 'loss_names' {self.loss_names}",
                repeats,
            )
        self.training_settings = settings

    def __repr__(self) -> str:
        return (
            f"StageComponent(uuid={self.uuid!r}, storage_uuid={self.storage_uuid!r}, "
            f"loss_names={self.loss_names}, training_settings={self.training_settings})"
        )


class PipelineStage:
    """One stage of a :class:`TrainingPipeline`: which losses to train, for how long, and with
    which settings where they differ from the pipeline's.

    The first six parameters take AllenAct 2020's positional order; AllenAct 0.5's keywords
    (``stage_components``, ``training_settings`` or the settings themselves) are keyword-only.

    Args:
        loss_names: Names, in the pipeline's ``named_losses``, of the losses trained in this
            stage. Without ``stage_components`` they all learn from the rollout storage; with
            them, the list gives each loss its weight in ``loss_weights``. May be empty when
            the stage has components or an ``offpolicy_component``, or cannot run
            (``max_stage_steps <= 0``).
        max_stage_steps: Agent steps (environment steps summed over environments) after which
            the stage is complete; ``<= 0`` skips the stage. A number (a float works as its
            value) or a callable with no arguments returning one, evaluated once, when the
            stage first becomes current. Completion is checked between rollouts, so a stage
            ends on a whole number of rollouts. In a pipeline with no rollout storage a stage
            step is one round of updates.
        early_stopping_criterion: Ends the stage early when it returns True (see
            :class:`EarlyStoppingCriterion`); ``None`` never ends it early.
        loss_weights: One weight per name in ``loss_names``; ``None`` means all 1.0.
        teacher_forcing: Maps the stage's step count to the probability that each
            environment's action is replaced by the expert's (a ``LinearDecay`` or
            ``MultiLinearDecay``, or any callable); ``None`` disables teacher forcing.
        offpolicy_component: Off-policy updates run after the rollout's updates (AllenAct
            2020's form of a stage component on a data source).
        stage_components: What learns in this stage and from which storage (AllenAct 0.5);
            ``None`` lets the pipeline add one component training every loss of
            ``loss_names`` on its rollout storage.
        training_settings: The stage's own settings; those left ``None`` fall back to the
            pipeline's.
        num_mini_batch: AllenAct's backward-compatible form: the stage's settings as keyword
            arguments, when ``training_settings`` is not given. See :class:`TrainingSettings`
            for each setting.
        update_repeats: As above (an int here; per-loss lists belong to stage components).
        max_grad_norm: As above.
        num_steps: As above.
        gamma: As above.
        use_gae: As above.
        gae_lambda: As above.
        advance_scene_rollout_period: As above.
        save_interval: As above.
        metric_accumulate_interval: As above.
        minibatch_split: As above (not one of AllenAct's arguments).
        sequence_length: As above (not one of AllenAct's arguments).

    Attributes:
        steps_taken_in_stage: Agent steps taken so far in this stage.
        early_stopping_criterion_met: Whether the criterion has ended the stage.
        rollout_count: Rollouts (rounds of updates) run in this stage.
        storage_uuid_to_steps_taken_in_stage: Samples drawn from each storage in this stage
            (the rollout storage counts agent steps).
    """

    def __init__(
        self,
        loss_names: Sequence[str],
        max_stage_steps: float | Callable[[], float],
        early_stopping_criterion: EarlyStoppingCriterion | None = None,
        loss_weights: Sequence[float] | None = None,
        teacher_forcing: Callable[[float], float] | None = None,
        offpolicy_component: OffPolicyPipelineComponent | None = None,
        *,
        stage_components: Sequence[StageComponent] | None = None,
        training_settings: TrainingSettings | None = None,
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
        minibatch_split: str | None = None,
        sequence_length: int | None = None,
    ) -> None:
        # First: assigning a training setting's name to a stage is refused from here on. The
        # parameters (locals(), before any other name is bound) hold the settings' keyword form.
        self.training_settings = settings_from_arguments(
            "training_settings", training_settings, locals()
        )
        require_one_update_count(
            "training_settings.update_repeats", "stage", self.training_settings
        )
        self.loss_names = require_names("loss_names", loss_names)
        self.offpolicy_component = _validated_component(offpolicy_component)
        self.loss_weights = require_matching_weights(
            "loss_weights", loss_weights, "loss_names", self.loss_names
        )
        if not callable(max_stage_steps):
            require_real("max_stage_steps", max_stage_steps)
        self.max_stage_steps = max_stage_steps
        if early_stopping_criterion is not None and not isinstance(
            early_stopping_criterion, EarlyStoppingCriterion
        ):
            raise InvalidArgumentError(
                "early_stopping_criterion",
                "must be an EarlyStoppingCriterion",
                early_stopping_criterion,
            )
        self.early_stopping_criterion = early_stopping_criterion
        if teacher_forcing is not None and not callable(teacher_forcing):
            raise InvalidArgumentError(
                "teacher_forcing",
                "must map a step count to a probability",
                teacher_forcing,
                "In a config, give the node a _target_, e.g. "
                "teacher_forcing={_target_:hydra_pipeline.LinearDecay,steps:10000}.",
            )
        self.teacher_forcing = teacher_forcing
        self._stage_components: list[StageComponent] = []
        self.storage_uuid_to_steps_taken_in_stage: dict[str, int] = {}
        if isinstance(stage_components, (str, bytes)) or not isinstance(
            stage_components, (Sequence, type(None))
        ):
            raise InvalidArgumentError(
                "stage_components", "must be a list of StageComponent", stage_components
            )
        for index, component in enumerate(stage_components or ()):
            self.add_stage_component(component, argument=f"stage_components.{index}")
        can_run = callable(max_stage_steps) or max_stage_steps > 0
        if can_run and not (self.loss_names or stage_components or self.offpolicy_component):
            raise InvalidArgumentError(
                "loss_names",
                "must name at least one loss",
                loss_names,
                "A stage with no loss of its own needs stage_components or an offpolicy_component.",
            )
        self._initial_criterion_state = (
            copy.deepcopy(early_stopping_criterion.state_dict())
            if early_stopping_criterion is not None
            else None
        )
        self.steps_taken_in_stage = 0
        self.rollout_count = 0
        self.early_stopping_criterion_met = False
        self._resolved_max_stage_steps: float | None = None
        self.reset()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in TRAINING_SETTING_KEYS:
            raise AttributeError(
                f"'{name}' is a training setting: set it on the stage's training_settings "
                f"(stage.training_settings.{name} = ...), or pass it to PipelineStage."
            )
        super().__setattr__(name, value)

    # ----------------------------------------------------------------------------------------
    # Components and losses

    @property
    def stage_components(self) -> tuple[StageComponent, ...]:
        """What learns in this stage, in the order their updates run."""
        return tuple(self._stage_components)

    @property
    def uuid_to_stage_component(self) -> dict[str, StageComponent]:
        """The stage's components by name."""
        return {component.uuid: component for component in self._stage_components}

    def add_stage_component(self, component: StageComponent, argument: str = "") -> None:
        """Add ``component`` after the stage's other components; its settings fall back to
        the stage's.

        Raises:
            InvalidArgumentError: ``component`` is not a :class:`StageComponent`, its name or
                storage is already used in this stage, or a loss of it has no weight (it is
                not in the stage's ``loss_names`` and the component gives no ``loss_weights``).
        """
        argument = argument or f"stage_components.{len(self._stage_components)}"
        if not isinstance(component, StageComponent):
            raise InvalidArgumentError(argument, "must be a StageComponent", component)
        for other in self._stage_components:
            if other.uuid == component.uuid:
                raise InvalidArgumentError(
                    f"{argument}.uuid", "names another component of the stage", component.uuid
                )
            if other.storage_uuid == component.storage_uuid:
                raise InvalidArgumentError(
                    f"{argument}.storage_uuid",
                    f"is already used by the stage's component {other.uuid!r}",
                    component.storage_uuid,
                    "A stage may use each storage in one component only (as in AllenAct).",
                )
        if component.loss_weights is None:
            unweighted = [name for name in component.loss_names if name not in self.loss_names]
            if unweighted:
                raise InvalidArgumentError(
                    f"{argument}.loss_names",
                    f"names {unweighted}, which the stage's loss_names {self.loss_names} do "
                    "not list, so they have no weight",
                    component.loss_names,
                    "Add them to the stage's loss_names (and loss_weights), or give the "
                    "component its own loss_weights.",
                )
        component.training_settings.set_defaults(self.training_settings)
        self._stage_components.append(component)
        self.storage_uuid_to_steps_taken_in_stage.setdefault(component.storage_uuid, 0)

    @property
    def uuid_to_loss_weight(self) -> dict[str, float]:
        """Each of ``loss_names`` mapped to its weight (1.0 when ``loss_weights`` is None);
        AllenAct 0.5's name for :attr:`named_loss_weights`."""
        weights = self.loss_weights or [1.0] * len(self.loss_names)
        return dict(zip(self.loss_names, weights, strict=True))

    @property
    def named_loss_weights(self) -> dict[str, float]:
        """Each of ``loss_names`` mapped to its weight; AllenAct 2020's name for
        :attr:`uuid_to_loss_weight`."""
        return self.uuid_to_loss_weight

    def component_loss_weights(self, component: StageComponent) -> dict[str, float]:
        """The weight of each loss of ``component``: its own ``loss_weights``, else the
        stage's weight for that loss."""
        if component.loss_weights is not None:
            return dict(zip(component.loss_names, component.loss_weights, strict=True))
        weights = self.uuid_to_loss_weight
        return {name: weights[name] for name in component.loss_names}

    # ----------------------------------------------------------------------------------------
    # Progress

    @property
    def resolved_max_stage_steps(self) -> float | None:
        """The stage's step limit; ``None`` while a callable limit has not been evaluated."""
        return self._resolved_max_stage_steps

    def resolve_max_stage_steps(self) -> float:
        """Evaluate a callable ``max_stage_steps`` (once) and return the stage's step limit."""
        if self._resolved_max_stage_steps is None:
            limit = self.max_stage_steps
            value = limit() if callable(limit) else limit
            require_real("max_stage_steps", value)
            self._resolved_max_stage_steps = value
        return self._resolved_max_stage_steps

    @property
    def is_complete(self) -> bool:
        """Whether the criterion ended the stage or it has taken its ``max_stage_steps``."""
        if self.early_stopping_criterion_met:
            return True
        limit = self._resolved_max_stage_steps
        return limit is not None and self.steps_taken_in_stage >= limit

    def reset(self) -> None:
        """Put the stage back to its start: no steps or rollouts, criterion unmet and at its
        initial state."""
        self.steps_taken_in_stage = 0
        self.rollout_count = 0
        self.early_stopping_criterion_met = False
        for storage_uuid in self.storage_uuid_to_steps_taken_in_stage:
            self.storage_uuid_to_steps_taken_in_stage[storage_uuid] = 0
        limit = self.max_stage_steps
        self._resolved_max_stage_steps = None if callable(limit) else limit
        if self.early_stopping_criterion is not None and self._initial_criterion_state is not None:
            self.early_stopping_criterion.load_state_dict(
                copy.deepcopy(self._initial_criterion_state)
            )

    def state_dict(self) -> dict[str, Any]:
        """The stage's progress, made of plain Python values, for checkpoints."""
        criterion = self.early_stopping_criterion
        return {
            "loss_names": list(self.loss_names),
            "steps_taken_in_stage": self.steps_taken_in_stage,
            "rollout_count": self.rollout_count,
            "storage_uuid_to_steps_taken_in_stage": dict(self.storage_uuid_to_steps_taken_in_stage),
            "early_stopping_criterion_met": self.early_stopping_criterion_met,
            "resolved_max_stage_steps": self._resolved_max_stage_steps,
            "early_stopping_criterion": None if criterion is None else criterion.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (loss names are checked by the pipeline).

        An evaluated callable limit is restored; a numeric limit stays the one given to the
        constructor, so a resumed run can be given a longer stage.
        """
        self.steps_taken_in_stage = int(state["steps_taken_in_stage"])
        self.rollout_count = int(state["rollout_count"])
        self.storage_uuid_to_steps_taken_in_stage.update(
            {str(k): int(v) for k, v in state["storage_uuid_to_steps_taken_in_stage"].items()}
        )
        self.early_stopping_criterion_met = bool(state["early_stopping_criterion_met"])
        if callable(self.max_stage_steps):  # a numeric limit comes from the constructor
            self._resolved_max_stage_steps = state["resolved_max_stage_steps"]
        criterion_state = state["early_stopping_criterion"]
        if self.early_stopping_criterion is not None and criterion_state is not None:
            self.early_stopping_criterion.load_state_dict(criterion_state)

    def __repr__(self) -> str:
        return (
            f"PipelineStage(loss_names={self.loss_names}, max_stage_steps={self.max_stage_steps}, "
            f"steps_taken_in_stage={self.steps_taken_in_stage}, is_complete={self.is_complete})"
        )


_ROLLOUT_SETTINGS = ("num_steps", "gamma", "use_gae", "gae_lambda")
"""Settings a stage needs when the pipeline collects rollouts."""


def require_runnable_settings(
    argument: str, stage: PipelineStage, has_rollout_storage: bool
) -> None:
    """Check that ``stage`` (at ``argument``, e.g. ``pipeline_stages.1``), with every setting
    resolved against its pipeline's, has what the engine needs to run it: the rollout settings
    when the pipeline collects rollouts, a metric interval, and, for each component that
    updates (``update_repeats`` >= 1), at least one minibatch and a gradient clip.

    Errors name where the setting is missing or comes from: the component's or the stage's
    ``training_settings``, or the pipeline's own key.
    """
    settings = stage.training_settings
    needed = [*(_ROLLOUT_SETTINGS if has_rollout_storage else ()), "metric_accumulate_interval"]
    for key in needed:
        if getattr(settings, key) is None:
            raise InvalidArgumentError(
                f"{argument}.training_settings.{key}",
                "is not set, neither for the stage nor for the pipeline",
                None,
                f"Set the pipeline's {key}, or this stage's training_settings.{key}.",
            )
    for index, component in enumerate(stage.stage_components):
        where = f"{argument}.stage_components.{index}.training_settings"
        component_settings = component.training_settings
        repeats = component_settings.update_repeats
        if repeats is None:
            raise InvalidArgumentError(
                f"{where}.update_repeats",
                "is not set, neither for the component, its stage nor the pipeline",
                None,
                "Set the pipeline's update_repeats, or the stage's or component's.",
            )
        updates = max(repeats if isinstance(repeats, list) else [repeats], default=0)
        if updates == 0 or not component.loss_names:
            continue
        for key, minimum in (("num_mini_batch", 1), ("max_grad_norm", None)):
            value = getattr(component_settings, key)
            source = setting_source(argument, index, component_settings, key)
            if value is None:
                raise InvalidArgumentError(
                    source,
                    f"is not set, but stage component {component.uuid!r} updates "
                    f"(update_repeats={repeats})",
                    None,
                    f"Set the pipeline's {key}, or the stage's or component's.",
                )
            if minimum is not None and value < minimum:
                raise InvalidArgumentError(
                    source,
                    f"must be >= {minimum} where stage component {component.uuid!r} of "
                    f"{argument} updates (update_repeats={repeats})",
                    value,
                    "0 minibatches suit only stages whose updates come from other storages.",
                )
