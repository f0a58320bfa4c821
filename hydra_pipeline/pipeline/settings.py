"""``TrainingSettings``: how to collect and learn from rollouts, for a pipeline, a stage or a
stage component.

AllenAct 0.5 groups the ten settings that once were the pipeline's own arguments (rollout
length, minibatches, discounting, ...) into one object, so that a stage can change some of them
and keep the others: a setting left ``None`` falls back to the settings it takes its defaults
from (a stage's from its pipeline's, a stage component's from its stage's).

The settings' names, types and ranges are declared once, in :class:`TrainingSettings`' body;
:data:`TRAINING_SETTING_KEYS` and everything else that lists the settings derive from it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar, overload

from hydra_pipeline.arguments import (
    require_at_least,
    require_bool,
    require_int,
    require_positive,
    require_unit_interval,
)
from hydra_pipeline.errors import InvalidArgumentError

__all__ = [
    "MINIBATCH_SPLITS",
    "TRAINING_SETTING_KEYS",
    "TrainingSettings",
    "require_one_update_count",
    "setting_source",
    "settings_from_arguments",
]

MINIBATCH_SPLITS = ("environments", "transitions")
"""How a rollout is split into minibatches; the first is the default (see
``TrainingSettings.minibatch_split``)."""


def _require_update_repeats(argument: str, value: Any) -> int | list[int]:
    """Return ``value`` if it is an integer >= 0, or a list of them (one per loss)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [require_at_least(f"{argument}.{i}", count, 0) for i, count in enumerate(value)]
    return require_at_least(argument, value, 0)


def _require_minibatch_split(argument: str, value: Any) -> str:
    """Return ``value`` if it is one of :data:`MINIBATCH_SPLITS`."""
    if value not in MINIBATCH_SPLITS:
        raise InvalidArgumentError(argument, f"must be one of {list(MINIBATCH_SPLITS)}", value)
    return str(value)


_Value = TypeVar("_Value")


class _Setting(Generic[_Value]):
    """One setting of a :class:`TrainingSettings`: reading it gives the value set on the object
    or, when that is ``None``, the value of its defaults; assigning it checks the value with
    ``rule`` (which returns it, normalised, or raises :class:`InvalidArgumentError`)."""

    def __init__(self, rule: Callable[[str, Any], _Value]) -> None:
        self.rule = rule

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, settings: None, owner: type[Any]) -> _Setting[_Value]: ...

    @overload
    def __get__(self, settings: TrainingSettings, owner: type[Any]) -> _Value | None: ...

    def __get__(
        self, settings: TrainingSettings | None, owner: type[Any]
    ) -> _Setting[_Value] | _Value | None:
        if settings is None:
            return self
        value: _Value | None = settings.own(self.name)
        if value is None and settings.defaults is not None:
            value = getattr(settings.defaults, self.name)
        return value

    def __set__(self, settings: TrainingSettings, value: _Value | None) -> None:
        settings.set_own(self.name, value)


class TrainingSettings:
    """The settings of rollouts and updates; ``None`` means "as in the defaults".

    A :class:`TrainingPipeline` holds the run's settings; each :class:`PipelineStage` has its
    own, whose defaults are the pipeline's, and each :class:`StageComponent` too, whose
    defaults are its stage's. Reading ``settings.num_steps`` gives the first value set along
    that chain (``None`` if none is). Assigning ``settings.num_steps = 64`` sets it on this
    object, as in AllenAct.

    Args:
        num_mini_batch: Minibatches each rollout is split into (by environment) per update
            epoch. 0 only where nothing is learned from the rollout (a stage whose losses all
            learn from other storages).
        update_repeats: Update epochs per rollout (>= 0). A :class:`StageComponent` may give a
            list instead, one count per loss: every loss then takes part in the first that
            many epochs.
        max_grad_norm: Gradients are clipped to this L2 norm before each optimizer step (> 0;
            ``inf`` never clips).
        num_steps: Rollout length: steps taken in every environment between updates (>= 1).
        gamma: Discount factor, in [0, 1].
        use_gae: Whether returns use Generalized Advantage Estimation.
        gae_lambda: GAE's lambda, in [0, 1].
        advance_scene_rollout_period: Reset every environment after this many rollouts
            (>= 1). ``None`` all along the chain never forces a reset.
        save_interval: Checkpoint period in total agent steps: ``> 0`` saves every that many
            steps and at the end of each stage, ``<= 0`` only at the end of each stage, ``None``
            all along the chain never.
        metric_accumulate_interval: Metrics are logged, and the stage's early-stopping
            criterion is called, every this many total agent steps and at the end of each
            stage (>= 1).
        minibatch_split: How ``num_mini_batch`` divides a rollout: ``"environments"`` (the
            default; AllenAct's way, and the one models with memory need) gives each minibatch
            every step of some environments, so ``num_mini_batch <= num_envs``;
            ``"transitions"`` shuffles single transitions across environments and steps
            (Stable-Baselines3's and CleanRL's way: ``num_mini_batch = num_steps * num_envs /
            batch_size``). Not one of AllenAct's settings.
        sequence_length: Steps of each sequence a model with memory learns from: the
            rollout's steps are cut into sequences of this many (it must divide ``num_steps``
            when shorter; longer means whole rollouts), each replayed from the memory the
            rollout had at its first step
            (truncated backpropagation through time), and minibatches split the sequences of
            all environments (``num_mini_batch <= num_envs * num_steps / sequence_length``).
            ``None``: whole rollouts. Shorter sequences make updates faster (fewer sequential
            steps, more sequences side by side) and gradients shorter-sighted. A stage's
            setting (components take their stage's); memoryless models ignore it. Not one of
            AllenAct's settings.

    Raises:
        InvalidArgumentError: A value is out of range.
    """

    num_mini_batch = _Setting[int](functools.partial(require_at_least, minimum=0))
    update_repeats = _Setting[int | list[int]](_require_update_repeats)
    max_grad_norm = _Setting[float](functools.partial(require_positive, allow_infinite=True))
    num_steps = _Setting[int](functools.partial(require_at_least, minimum=1))
    gamma = _Setting[float](require_unit_interval)
    use_gae = _Setting[bool](require_bool)
    gae_lambda = _Setting[float](require_unit_interval)
    advance_scene_rollout_period = _Setting[int](functools.partial(require_at_least, minimum=1))
    save_interval = _Setting[int](require_int)
    metric_accumulate_interval = _Setting[int](functools.partial(require_at_least, minimum=1))
    minibatch_split = _Setting[str](_require_minibatch_split)
    sequence_length = _Setting[int](functools.partial(require_at_least, minimum=1))

    def __init__(
        self,
        num_mini_batch: int | None = None,
        update_repeats: int | list[int] | None = None,
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
        given = locals()  # the parameters, by name
        self._values: dict[str, Any] = {}
        self._defaults: TrainingSettings | None = None
        for key in TRAINING_SETTING_KEYS:
            self.set_own(key, given[key])

    def keys(self) -> tuple[str, ...]:
        """The settings' names, sorted (as AllenAct returns them)."""
        return tuple(sorted(TRAINING_SETTING_KEYS))

    def has_key(self, key: str) -> bool:
        """Whether ``key`` is the name of a setting."""
        return key in TRAINING_SETTING_KEYS

    def own(self, key: str) -> Any:
        """The value set on this object for ``key`` (``None`` when it falls back)."""
        return self._values[key]

    def set_own(self, key: str, value: Any) -> None:
        """Set ``key`` on this object (``None`` to fall back to the defaults).

        Raises:
            InvalidArgumentError: ``key`` is not a setting, or ``value`` is out of range.
        """
        if key not in TRAINING_SETTING_KEYS:
            raise InvalidArgumentError(
                key, "is not a training setting", value, f"Settings: {list(TRAINING_SETTING_KEYS)}."
            )
        self._values[key] = None if value is None else _SETTINGS[key].rule(key, value)

    def own_values(self) -> dict[str, Any]:
        """The settings set on this object, without the ones that fall back."""
        return {key: value for key, value in self._values.items() if value is not None}

    @property
    def defaults(self) -> TrainingSettings | None:
        """The settings this object falls back to, once a pipeline or stage has linked them."""
        return self._defaults

    def set_defaults(self, defaults: TrainingSettings) -> None:
        """Fall back to ``defaults`` for every setting left ``None`` here.

        A pipeline links each stage's settings to its own, and a stage each of its components'
        settings to its own. Linking again to the same object does nothing.

        Raises:
            InvalidArgumentError: These settings already fall back to other settings (the same
                object was given to two stages, components or pipelines).
        """
        if self._defaults is defaults:
            return
        if self._defaults is not None:
            raise InvalidArgumentError(
                "training_settings",
                "already takes its defaults from another pipeline, stage or component",
                self,
                "Give each PipelineStage and StageComponent its own TrainingSettings object.",
            )
        link: TrainingSettings | None = defaults
        while link is not None:
            if link is self:
                raise InvalidArgumentError("training_settings", "cannot fall back to itself", self)
            link = link.defaults
        self._defaults = defaults

    def resolved(self) -> dict[str, Any]:
        """Every setting's value after falling back (``None`` where nothing sets it)."""
        return {key: getattr(self, key) for key in TRAINING_SETTING_KEYS}

    def __repr__(self) -> str:
        given = ", ".join(f"{key}={value!r}" for key, value in self.own_values().items())
        return f"TrainingSettings({given})"


_SETTINGS: dict[str, _Setting[Any]] = {
    name: setting
    for name, setting in vars(TrainingSettings).items()
    if isinstance(setting, _Setting)
}

TRAINING_SETTING_KEYS: tuple[str, ...] = tuple(_SETTINGS)
"""The settings, in the order :class:`TrainingSettings` declares them and takes them as
parameters: AllenAct's ten, then ``minibatch_split``, which AllenAct does not have."""


def settings_from_arguments(
    argument: str,
    training_settings: TrainingSettings | None,
    arguments: Mapping[str, Any],
) -> TrainingSettings:
    """The settings of an object that takes both AllenAct forms: a ``training_settings`` object
    or the settings as its own keyword arguments (AllenAct's backward-compatible form).

    Args:
        argument: The name of the object's ``training_settings`` parameter, for messages.
        training_settings: The object form, or ``None``.
        arguments: The constructor's arguments by name (its ``locals()``): those named after a
            setting are the keyword form; a setting it lacks, or gives as ``None``, is not set.

    Raises:
        InvalidArgumentError: Both forms are given, or ``training_settings`` is not a
            :class:`TrainingSettings`.
    """
    given = {key: arguments[key] for key in TRAINING_SETTING_KEYS if arguments.get(key) is not None}
    if training_settings is None:
        return TrainingSettings(**given)
    if not isinstance(training_settings, TrainingSettings):
        raise InvalidArgumentError(argument, "must be a TrainingSettings", training_settings)
    if given:
        raise InvalidArgumentError(
            argument,
            f"is given together with the settings {sorted(given)} as keyword arguments",
            training_settings,
            "Use one form: put them all in training_settings, or pass them all as keywords.",
        )
    return training_settings


def require_one_update_count(argument: str, owner: str, settings: TrainingSettings) -> None:
    """Check that ``settings`` (a pipeline's or a stage's, named ``owner``) give one
    ``update_repeats`` for all losses: per-loss lists belong to stage components (AllenAct's
    rule)."""
    repeats = settings.own("update_repeats")
    if isinstance(repeats, list):
        raise InvalidArgumentError(
            argument,
            f"must be an integer in a {owner}",
            repeats,
            "Give per-loss counts in the training_settings of a StageComponent.",
        )


def setting_source(argument: str, index: int, settings: TrainingSettings, key: str) -> str:
    """The argument that gives the component ``index`` of stage ``argument`` its ``key``: its
    own settings, its stage's, or the pipeline's (or the component's when none does)."""
    places = [
        f"{argument}.stage_components.{index}.training_settings.{key}",
        f"{argument}.training_settings.{key}",
        key,
    ]
    link: TrainingSettings | None = settings
    for place in places:
        if link is None:
            break
        if link.own(key) is not None:
            return place
        link = link.defaults
    return places[0]
