"""The minibatch stream of a data source: a stage component's storage other than the rollout."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from hydra_pipeline.engine.rollout import Minibatch
from hydra_pipeline.tasks.observations import map_observations

__all__ = ["OffPolicyStream"]


class OffPolicyStream:
    """Minibatches from a data source (a callable returning an iterator of minibatches, see
    :mod:`hydra_pipeline.pipeline.storage`), called again whenever its iterator is exhausted.

    Batches may be :class:`Minibatch` objects or mappings with its field names. If the source
    has ``state_dict``/``load_state_dict``, the stream resumes exactly from a checkpoint: the
    source's state is saved as it was before building the current iterator, along with the
    number of batches drawn from it.
    """

    def __init__(self, source: Callable[[], Iterator[Any]], device: torch.device) -> None:
        self.builder = source
        self.device = device
        self.epochs = 0
        self._iterator: Iterator[Any] | None = None
        self._builder_state: Any = None
        self._drawn = 0

    def _rebuild(self) -> None:
        state_dict = getattr(self.builder, "state_dict", None)
        self._builder_state = state_dict() if callable(state_dict) else None
        self._iterator = iter(self.builder())
        self._drawn = 0

    def next_batch(self) -> Minibatch:
        """The next minibatch on the engine's device (a new epoch when the data runs out)."""
        if self._iterator is None:
            self._rebuild()
        assert self._iterator is not None
        try:
            batch = next(self._iterator)
        except StopIteration:
            self.epochs += 1
            self._rebuild()
            try:
                batch = next(self._iterator)
            except StopIteration:
                raise ValueError("the data source returned an empty iterator") from None
        self._drawn += 1
        minibatch: Minibatch = Minibatch(**batch) if isinstance(batch, Mapping) else batch
        device = self.device
        return minibatch._replace(
            **{  # type: ignore[arg-type]  # observations may be a dict of tensors
                name: map_observations(lambda tensor: tensor.to(device), value)
                for name, value in minibatch._asdict().items()
                if value is not None
            }
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "builder": self._builder_state,
            "drawn": self._drawn,
            "started": self._iterator is not None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epochs = int(state["epochs"])
        load = getattr(self.builder, "load_state_dict", None)
        if not state["started"] or state["builder"] is None or not callable(load):
            self._iterator = None
            return
        load(state["builder"])
        self._rebuild()
        assert self._iterator is not None
        for _ in range(int(state["drawn"])):
            next(self._iterator)
        self._drawn = int(state["drawn"])
