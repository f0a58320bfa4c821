"""Argument checks shared by the pipeline objects: each rule is written once, here.

The checks raise :class:`~hydra_pipeline.errors.InvalidArgumentError`, which names the argument,
so the same rule gives Python users and config users the same message.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from hydra_pipeline.errors import InvalidArgumentError


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


def require_positive(argument: str, value: Any) -> float:
    """Return ``value`` if it is a real number > 0."""
    number = require_real(argument, value)
    if not number > 0:
        raise InvalidArgumentError(argument, "must be > 0", value)
    return number


def require_non_negative(argument: str, value: Any) -> float:
    """Return ``value`` if it is a real number >= 0."""
    number = require_real(argument, value)
    if not number >= 0:
        raise InvalidArgumentError(argument, "must be >= 0", value)
    return number


def require_real(argument: str, value: Any) -> float:
    """Return ``value`` as a float if it is a real number (``bool`` excluded)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgumentError(argument, "must be a number", value)
    return float(value)


def require_unit_interval(argument: str, value: Any) -> float:
    """Return ``value`` if it is a number in [0, 1]."""
    number = require_real(argument, value)
    if not 0.0 <= number <= 1.0:
        raise InvalidArgumentError(argument, "must be in [0, 1]", value)
    return number


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
