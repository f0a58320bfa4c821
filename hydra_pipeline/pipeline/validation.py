"""Argument checks shared by the pipeline objects: each rule is written once, here.

The checks raise :class:`~hydra_pipeline.errors.InvalidArgumentError`, which names the argument,
so the same rule gives Python users and config users the same message.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hydra_pipeline.errors import InvalidArgumentError

if TYPE_CHECKING:
    from hydra_pipeline.pipeline.settings import TrainingSettings
    from hydra_pipeline.pipeline.stage import PipelineStage


def require_int(argument: str, value: Any) -> int:
    """Return ``value`` if it is an integer (``bool`` excluded)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentError(argument, "must be an integer", value)
    return int(value)


def require_at_least(argument: str, value: Any, minimum: int) -> int:
    """Return ``value`` if it is an integer >= ``minimum``."""
    number = require_int(argument, value)
    if number < minimum:
        raise InvalidArgumentError(argument, f"must be >= {minimum}", value)
    return number


def require_positive(argument: str, value: Any, *, allow_infinite: bool = False) -> float:
    """Return ``value`` if it is a real number > 0 (finite unless ``allow_infinite``)."""
    number = require_real(argument, value, allow_infinite=allow_infinite)
    if not number > 0:
        raise InvalidArgumentError(argument, "must be > 0", value)
    return number


def require_non_negative(argument: str, value: Any) -> float:
    """Return ``value`` if it is a finite real number >= 0."""
    number = require_real(argument, value)
    if not number >= 0:
        raise InvalidArgumentError(argument, "must be >= 0", value)
    return number


def require_real(argument: str, value: Any, *, allow_infinite: bool = False) -> float:
    """Return ``value`` as a float if it is a real number (``bool`` excluded).

    NaN is never accepted, and infinities only with ``allow_infinite``: a NaN loss weight or
    an infinite learning rate would train silently wrong rather than fail.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgumentError(argument, "must be a number", value)
    number = float(value)
    if math.isnan(number) or (math.isinf(number) and not allow_infinite):
        raise InvalidArgumentError(argument, "must be a finite number", value)
    return number


SEED_RANGE = (0, 2**32 - 1)
"""Seeds every seeded generator accepts: Python's, NumPy's legacy one, torch's, Gymnasium's."""


def require_seed(argument: str, value: Any) -> int:
    """Return ``value`` if it is an integer seed within :data:`SEED_RANGE`."""
    seed = require_int(argument, value)
    low, high = SEED_RANGE
    if not low <= seed <= high:
        raise InvalidArgumentError(argument, f"must be in [{low}, 2**32 - 1]", value)
    return seed


def require_unit_interval(argument: str, value: Any) -> float:
    """Return ``value`` if it is a number in [0, 1]."""
    number = require_real(argument, value)
    if not 0.0 <= number <= 1.0:
        raise InvalidArgumentError(argument, "must be in [0, 1]", value)
    return number


def require_name(argument: str, value: Any) -> str:
    """Return ``value`` if it is a non-empty string."""
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(argument, "must be a non-empty string", value)
    return value


def require_names(argument: str, value: Any) -> list[str]:
    """Return ``value`` as a list of distinct strings."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidArgumentError(argument, "must be a list of names", value)
    names = list(value)
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise InvalidArgumentError(f"{argument}.{index}", "must be a string", name)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidArgumentError(argument, f"lists {duplicates} more than once", value)
    return names


def require_matching_weights(
    weights_argument: str, weights: Any, names_argument: str, names: Sequence[str]
) -> list[float] | None:
    """Return ``weights`` as floats if there is exactly one per name (``None`` passes)."""
    if weights is None:
        return None
    if isinstance(weights, str) or not isinstance(weights, Sequence):
        raise InvalidArgumentError(weights_argument, "must be a list of numbers", weights)
    if len(weights) != len(names):
        raise InvalidArgumentError(
            weights_argument,
            f"must have one weight per entry of '{names_argument}': "
            f"{len(weights)} weights for {len(names)} names {list(names)}",
            weights,
        )
    return [require_real(f"{weights_argument}.{i}", w) for i, w in enumerate(weights)]


def require_bool(argument: str, value: Any) -> bool:
    """Return ``value`` if it is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise InvalidArgumentError(argument, "must be true or false", value)
    return value


def require_update_repeats(argument: str, value: Any) -> int | list[int]:
    """Return ``value`` if it is an integer >= 0, or a list of them (one per loss)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [require_at_least(f"{argument}.{i}", count, 0) for i, count in enumerate(value)]
    return require_at_least(argument, value, 0)


MINIBATCH_SPLITS = ("environments", "transitions")
"""How a rollout is split into minibatches; the first is the default (see
``TrainingSettings.minibatch_split``)."""


def require_minibatch_split(argument: str, value: Any) -> str:
    """Return ``value`` if it is one of :data:`MINIBATCH_SPLITS`."""
    if value not in MINIBATCH_SPLITS:
        raise InvalidArgumentError(argument, f"must be one of {list(MINIBATCH_SPLITS)}", value)
    return str(value)


_TRAINING_SETTING_RULES: dict[str, Callable[[str, Any], Any]] = {
    "num_mini_batch": functools.partial(require_at_least, minimum=0),
    "update_repeats": require_update_repeats,
    "max_grad_norm": functools.partial(require_positive, allow_infinite=True),
    "num_steps": functools.partial(require_at_least, minimum=1),
    "gamma": require_unit_interval,
    "use_gae": require_bool,
    "gae_lambda": require_unit_interval,
    "advance_scene_rollout_period": functools.partial(require_at_least, minimum=1),
    "save_interval": require_int,
    "metric_accumulate_interval": functools.partial(require_at_least, minimum=1),
    "minibatch_split": require_minibatch_split,
}


def require_training_setting(key: str, value: Any) -> Any:
    """Return the training setting ``key``'s ``value`` if it is in range (``None`` passes: it
    means "as in the defaults")."""
    if value is None:
        return None
    return _TRAINING_SETTING_RULES[key](key, value)


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


def check_builder_arguments(argument: str, builder: Any, kind: str) -> None:
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
