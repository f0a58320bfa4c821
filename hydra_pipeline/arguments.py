"""Argument checks every layer shares (pipeline objects, tasks, models, the engine, the app):
each returns the value when it passes and raises :class:`~hydra_pipeline.errors.
InvalidArgumentError`, which names the argument, when it does not, so the same rule gives Python
users and config users the same message.

Rules that belong to one object live beside it (a training setting's range in
:mod:`hydra_pipeline.pipeline.settings`, what a stage needs to run in
:mod:`hydra_pipeline.pipeline.stage`); this module depends on nothing but the errors.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from hydra_pipeline.errors import InvalidArgumentError

__all__ = [
    "SEED_RANGE",
    "require_at_least",
    "require_bool",
    "require_int",
    "require_matching_weights",
    "require_name",
    "require_names",
    "require_non_negative",
    "require_positive",
    "require_real",
    "require_seed",
    "require_unit_interval",
]


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
