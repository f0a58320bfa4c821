"""``Builder``: a constructor and some of its keyword arguments, called later with the rest.

AllenAct uses builders wherever an object needs something that only exists at run time: an
optimizer needs the model's parameters, a learning-rate scheduler needs the optimizer. The config
layer instantiates optimizer and scheduler configs into builders, and the engine calls them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Builder", "ToBuildType", "recursive_update"]

ToBuildType = TypeVar("ToBuildType")
"""The type of what a :class:`Builder` builds (AllenAct's name for it)."""


def recursive_update(
    original: MutableMapping[Any, Any], update: Mapping[Any, Any]
) -> MutableMapping[Any, Any]:
    """Merge ``update`` into ``original`` in place and return ``original``.

    A mapping in ``update`` is merged key by key into the mapping already under that key
    (creating a new ``dict`` when there is none, or when the existing value is not a mutable
    mapping); any other value, lists included, replaces what was there. Leaves are not copied.

    >>> recursive_update({"opt": {"a": 0, "b": 0}, "l": [1]}, {"opt": {"a": 1}, "l": [2]})
    {'opt': {'a': 1, 'b': 0}, 'l': [2]}
    """
    for key, value in update.items():
        if isinstance(value, Mapping):
            existing = original.get(key)
            target = existing if isinstance(existing, MutableMapping) else {}
            original[key] = recursive_update(target, value)
        else:
            original[key] = value
    return original


def _qualified_name(obj: Any) -> str:
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None)
    return f"{module}.{name}" if module and name else repr(obj)


@dataclass(frozen=True)
class Builder(Generic[ToBuildType]):
    """A deferred call ``class_type(**arguments)``.

    Calling ``builder(**extra)`` builds ``class_type`` with keyword arguments merged from three
    layers, later layers winning: a deep copy of ``default``, then ``kwargs``, then ``extra``.
    Nested dicts merge key by key (see :func:`recursive_update`); other values replace.

    Code written for AllenAct's builder, a tuple, keeps working: it unpacks as
    ``class_type, kwargs, default = builder``, and ``builder[0]`` and ``len(builder)`` are
    what they are for that tuple. Unlike AllenAct's, this one survives ``copy.deepcopy`` and
    ``pickle`` exactly (sweep launchers pickle configs across processes), compares by value,
    and prints readably.

    >>> from fractions import Fraction
    >>> builder = Builder(Fraction, {"numerator": 1}, default={"denominator": 3})
    >>> builder()
    Fraction(1, 3)
    >>> builder(denominator=2)
    Fraction(1, 2)
    >>> class_type, kwargs, default = builder
    >>> kwargs
    {'numerator': 1}

    Attributes:
        class_type: The class (or any callable) to build.
        kwargs: Keyword arguments fixed when the builder is made.
        default: Fallback keyword arguments, overridden by ``kwargs`` and by call-time ones.
    """

    class_type: Callable[..., ToBuildType]
    kwargs: dict[str, Any] = field(default_factory=dict)
    default: dict[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        class_type: Callable[..., ToBuildType],
        kwargs: Mapping[str, Any] | None = None,
        default: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(class_type):
            raise TypeError(f"Builder's class_type must be callable, got {class_type!r}")
        object.__setattr__(self, "class_type", class_type)
        object.__setattr__(self, "kwargs", dict(kwargs or {}))
        object.__setattr__(self, "default", dict(default or {}))

    def __call__(self, **kwargs: Any) -> ToBuildType:
        """Build ``class_type`` with ``default`` < ``kwargs`` < these keyword arguments."""
        arguments = recursive_update(copy.deepcopy(self.default), self.kwargs)
        return self.class_type(**recursive_update(arguments, kwargs))

    def __iter__(self) -> Iterator[Any]:
        """``class_type``, ``kwargs``, ``default``: the order of AllenAct's tuple."""
        return iter((self.class_type, self.kwargs, self.default))

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> Any:
        return (self.class_type, self.kwargs, self.default)[index]

    def __repr__(self) -> str:
        parts = [_qualified_name(self.class_type)]
        if self.kwargs:
            parts.append(f"kwargs={self.kwargs!r}")
        if self.default:
            parts.append(f"default={self.default!r}")
        return f"Builder({', '.join(parts)})"
