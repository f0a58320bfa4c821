"""Storages a pipeline names: where the losses of a stage component get their minibatches.

A :class:`TrainingPipeline`'s ``named_storages`` maps names to storages of two kinds:

* the **rollout storage**, :class:`RolloutBlockStorage`: the experience the agent collects
  while acting, one rollout at a time. It is a description only; the engine allocates its
  tensors (``num_steps`` x ``num_envs``) from the current stage's settings and the task.
* **data sources**: any callable returning an iterator of minibatches, called again for a new
  pass whenever the iterator runs out (``hydra_pipeline.tasks.ExpertDemonstrations`` records
  a task's expert into such a source). A minibatch is a ``Minibatch`` or a mapping with its
  field names. If the source also has ``state_dict()`` and ``load_state_dict(state)``, a
  resumed run draws the same minibatches as the uninterrupted one.

As in AllenAct, a value may also be a :class:`Builder` of either kind, built when first needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from hydra_pipeline.arguments import require_at_least
from hydra_pipeline.pipeline.builder import Builder

__all__ = [
    "DEFAULT_ROLLOUT_STORAGE_UUID",
    "DataIteratorStorage",
    "RolloutBlockStorage",
    "is_rollout_storage",
]

DEFAULT_ROLLOUT_STORAGE_UUID = "onpolicy"
"""The name of the rollout storage a pipeline adds when it is given no storage."""


class RolloutBlockStorage:
    """The rollout storage: what the agent saw and did in the last ``num_steps`` steps of every
    environment, learned from by the stage components that name it.

    Args:
        init_size: AllenAct's initial allocation, in steps (its storage grows when a stage
            needs longer rollouts). Accepted so that configs port unchanged; the engine sizes
            the storage from the current stage's ``num_steps`` (>= 1).
    """

    def __init__(self, init_size: int = 50) -> None:
        self.init_size = require_at_least("init_size", init_size, 1)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RolloutBlockStorage) and other.init_size == self.init_size

    def __hash__(self) -> int:
        return hash((RolloutBlockStorage, self.init_size))

    def __repr__(self) -> str:
        return f"RolloutBlockStorage(init_size={self.init_size})"


def is_rollout_storage(storage: Any) -> bool:
    """Whether ``storage`` (a storage or a :class:`Builder` of one) is a rollout storage."""
    if isinstance(storage, Builder):
        return isinstance(storage.class_type, type) and issubclass(
            storage.class_type, RolloutBlockStorage
        )
    return isinstance(storage, RolloutBlockStorage)


class DataIteratorStorage:
    """The data source of an ``OffPolicyPipelineComponent``: each call returns a fresh
    iterator from its ``data_iterator_builder``.

    The pipeline stores a stage's off-policy component as a stage component reading from one
    of these, so both forms run through the same machinery. It keeps a :class:`Builder` given
    as ``data_iterator_builder`` from being built once as a storage would be (a builder of an
    iterator is called for every pass), and forwards ``state_dict`` and ``load_state_dict``
    when the builder has them.
    """

    def __init__(self, data_iterator_builder: Callable[[], Iterator[Any]]) -> None:
        self.data_iterator_builder = data_iterator_builder

    def __call__(self) -> Iterator[Any]:
        return self.data_iterator_builder()

    def __getattr__(self, name: str) -> Any:
        if name in ("state_dict", "load_state_dict") and "data_iterator_builder" in vars(self):
            return getattr(self.data_iterator_builder, name)
        raise AttributeError(name)
