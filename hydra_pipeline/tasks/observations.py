"""Observation spaces and batches: one tensor, or a dict of named tensors (a ``Dict`` space).

A task whose observations are not ``float32`` vectors declares an ``observation_space``: a
:class:`TensorSpace` (a ``uint8`` image, say) or a mapping from names to them (MiniGrid's
image, direction and mission). A batch of such observations is a tensor, or a ``dict`` of
tensors with the environments on the first dimension of each. The functions here are the one
place the engine looks inside a batch: storing, moving, indexing and joining batches works
the same for both kinds.

Models choose their encoder from the space (see :func:`hydra_pipeline.models.make_encoder`):
``uint8`` tensors of rank 3 are images, integer scalars and vectors are embedded, ``float32``
tensors are flattened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from hydra_pipeline.errors import InvalidArgumentError

__all__ = [
    "OBSERVATION_DTYPES",
    "ObservationSpace",
    "Observations",
    "TensorSpace",
    "as_observation_space",
    "assign_observations",
    "concatenate_observations",
    "is_structured",
    "map_observations",
    "num_observations",
    "observation_space_of",
    "stack_observations",
    "visible_entries",
    "zeros_for",
]

OBSERVATION_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "uint8": torch.uint8,
    "int64": torch.int64,
}
"""The element types an observation may have, by name."""


@dataclass(frozen=True)
class TensorSpace:
    """One tensor of an observation.

    Attributes:
        shape: The shape of one environment's tensor.
        dtype: ``float32``, ``uint8`` or ``int64``. A ``uint8`` tensor of rank 3 is an image,
            ``(height, width, channels)`` or ``(channels, height, width)``; rollouts store it
            as ``uint8``.
        high: The largest value an integer tensor takes (an embedding's size is ``high + 1``;
            an image's values are divided by it, 255 when ``None``).
    """

    shape: tuple[int, ...]
    dtype: str = "float32"
    high: int | None = None

    def __post_init__(self) -> None:
        if self.dtype not in OBSERVATION_DTYPES:
            raise InvalidArgumentError(
                "observation_space.dtype", f"must be one of {list(OBSERVATION_DTYPES)}", self.dtype
            )

    @property
    def torch_dtype(self) -> torch.dtype:
        """The tensor's torch element type."""
        return OBSERVATION_DTYPES[self.dtype]

    @property
    def is_image(self) -> bool:
        """Whether this is an image: ``uint8`` of rank 3."""
        return self.dtype == "uint8" and len(self.shape) == 3


ObservationSpace = TensorSpace | Mapping[str, TensorSpace]
"""A task's observations: one tensor, or named tensors (a ``Dict`` space)."""

Observations = Tensor | dict[str, Tensor]
"""A batch of observations: a tensor, or a dict of tensors, environments first."""


def observation_space_of(task: Any) -> ObservationSpace:
    """The observation space ``task`` declares, or ``float32`` tensors of its
    ``observation_shape`` when it declares none (the built-in CartPole and flat Gymnasium
    tasks)."""
    declared = getattr(task, "observation_space", None)
    if declared is not None:
        return as_observation_space(declared)
    return as_observation_space(tuple(task.observation_shape))


def is_structured(space: ObservationSpace) -> bool:
    """Whether observations of ``space`` are anything but one ``float32`` tensor."""
    return not isinstance(space, TensorSpace) or space.dtype != "float32"


def as_observation_space(value: Any) -> ObservationSpace:
    """``value`` as an observation space: a :class:`TensorSpace` or a mapping of them as it
    is, the plain mappings a config layer makes of them, or a shape (a sequence of sizes)
    for ``float32`` observations of that shape.

    Raises:
        InvalidArgumentError: ``value`` describes no observation space.
    """
    if isinstance(value, TensorSpace):
        return value
    is_shape = isinstance(value, Sequence) and not isinstance(value, str)
    if is_shape and all(isinstance(size, int) and size >= 0 for size in value):
        return TensorSpace(tuple(value))
    if isinstance(value, Mapping):
        if set(value) <= {"shape", "dtype", "high"} and "shape" in value:
            return TensorSpace(
                shape=tuple(int(size) for size in value["shape"]),
                dtype=str(value.get("dtype", "float32")),
                high=None if value.get("high") is None else int(value["high"]),
            )
        if value and all(isinstance(key, str) for key in value):
            parts = {key: as_observation_space(part) for key, part in value.items()}
            tensors = {key: part for key, part in parts.items() if isinstance(part, TensorSpace)}
            if len(tensors) == len(parts):
                return tensors
    raise InvalidArgumentError(
        "observation_space",
        "must be a TensorSpace or a mapping of names to TensorSpaces (a task's observation_space)",
        value,
    )


def map_observations(
    function: Callable[[Tensor], Tensor], observations: Observations
) -> Observations:
    """``function`` applied to the tensor, or to each tensor of a dict."""
    if isinstance(observations, Tensor):
        return function(observations)
    return {key: function(part) for key, part in observations.items()}


def num_observations(observations: Observations) -> int:
    """The batch size: the first dimension (of every tensor of a dict)."""
    if isinstance(observations, Tensor):
        return int(observations.shape[0])
    return int(next(iter(observations.values())).shape[0])


def zeros_for(
    space: ObservationSpace, leading: Sequence[int], device: torch.device
) -> Observations:
    """Zeros for a batch ``(*leading, *shape)`` of observations of ``space``, in its own
    element types (images stay ``uint8``)."""
    if isinstance(space, TensorSpace):
        return torch.zeros((*leading, *space.shape), dtype=space.torch_dtype, device=device)
    return {
        key: torch.zeros((*leading, *part.shape), dtype=part.torch_dtype, device=device)
        for key, part in space.items()
    }


def assign_observations(target: Observations, index: Any, source: Observations) -> None:
    """``target[index] = source``, tensor by tensor."""
    if isinstance(target, Tensor):
        assert isinstance(source, Tensor)  # same space on both sides
        target[index] = source
        return
    assert isinstance(source, dict)
    for key, part in target.items():
        part[index] = source[key]


def concatenate_observations(batches: Sequence[Observations]) -> Observations:
    """The batches joined along their first dimension."""
    return _joined(batches, torch.cat)


def stack_observations(batches: Sequence[Observations]) -> Observations:
    """The batches stacked along a new first dimension (all of the same shape)."""
    return _joined(batches, torch.stack)


def _joined(
    batches: Sequence[Observations], join: Callable[[list[Tensor]], Tensor]
) -> Observations:
    """``join`` applied to the batches' tensors (each key's, for ``Dict`` observations)."""
    first = batches[0]
    if isinstance(first, Tensor):
        return join([batch for batch in batches if isinstance(batch, Tensor)])
    return {
        key: join([batch[key] for batch in batches if isinstance(batch, dict)]) for key in first
    }


def visible_entries(size: int, hidden: Sequence[int], argument: str) -> Tensor | None:
    """The indices of the entries of a ``float32`` observation vector of ``size`` entries that
    a policy sees when those at ``hidden`` are hidden (a partially observed task, such as the
    zoo's velocity-free ``CartPoleNoVel``); ``None`` when nothing is hidden.

    Raises:
        InvalidArgumentError: An index (named by ``argument``) is not an entry of the vector,
            or is given twice, or every entry would be hidden.
    """
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise InvalidArgumentError(argument, "must be a list of entry indices", hidden)
    indices = list(hidden)
    for position, index in enumerate(indices):
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
            raise InvalidArgumentError(
                f"{argument}.{position}",
                f"must be the index of an entry of the {size}-entry observation (0 to {size - 1})",
                index,
            )
    if len(set(indices)) < len(indices):
        raise InvalidArgumentError(argument, "lists an entry more than once", indices)
    if not indices:
        return None
    visible = [index for index in range(size) if index not in indices]
    if not visible:
        raise InvalidArgumentError(argument, "hides every entry of the observation", indices)
    return torch.tensor(visible)
