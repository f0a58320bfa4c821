"""``builder_of``: the ``_target_`` that turns an optimizer or scheduler config into a
``Builder``.

An optimizer config names its torch class in ``class_type`` and lists the class's keyword
arguments as its own fields; instantiating it calls ``builder_of``, which returns
``Builder(class_type, kwargs)``. The engine then calls the builder with what only exists at
run time: ``optimizer_builder(params=...)``, ``lr_scheduler_builder(optimizer=...)``.
"""

from __future__ import annotations

from typing import Any

from hydra.utils import get_object

from hydra_pipeline.pipeline import Builder

__all__ = ["BUILDER_TARGET", "builder_of"]

BUILDER_TARGET = "hydra_pipeline.config.builder.builder_of"
"""The ``_target_`` of every config that instantiates into a ``Builder``."""


def builder_of(class_type: str, **kwargs: Any) -> Builder[Any]:
    """A ``Builder`` of the class at the dotted path ``class_type`` with ``kwargs``."""
    return Builder(get_object(class_type), kwargs)
