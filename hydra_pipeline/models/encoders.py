"""Encoders: observations of any supported space in, one feature vector per observation out.

:func:`make_encoder` chooses by the observation space (see
:mod:`hydra_pipeline.tasks.observations`), so every model built on it (the MLP and the
recurrent models) sees images, integers and ``Dict`` spaces the same way:

- ``float32`` tensors are flattened (no parameters: a model over vectors keeps its weights'
  names and shapes);
- ``uint8`` tensors of rank 3 are images, ``(height, width, channels)`` when the last dimension
  is the smallest, else ``(channels, height, width)``: scaled to ``[0, 1]`` by the space's
  ``high`` (255 by default), then a small convolutional network;
- integer scalars (a direction, say) are embedded, ``high + 1`` values;
- integer vectors are token sequences (0 is padding): the mean of their tokens' embeddings;
- a ``Dict`` space gets one encoder per key; their features are joined in key order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from hydra_pipeline.arguments import require_at_least
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.tasks.observations import (
    Observations,
    ObservationSpace,
    TensorSpace,
    as_observation_space,
)

__all__ = [
    "DictEncoder",
    "EmbeddingEncoder",
    "Encoder",
    "FlattenEncoder",
    "ImageEncoder",
    "TokenEncoder",
    "make_encoder",
]

_DEFAULT_IMAGE_HIGH = 255
# Images at most this many pixels across keep their resolution through the convolutions
# (MiniGrid's 7x7 views); larger ones are halved by each layer.
_SMALL_IMAGE = 16


class Encoder(nn.Module):
    """An observation encoder: ``forward(observations)`` returns ``(batch, output_size)``
    float32 features."""

    output_size: int

    def forward(self, observations: Observations) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class FlattenEncoder(Encoder):
    """``float32`` observations, flattened to vectors."""

    def __init__(self, space: TensorSpace) -> None:
        super().__init__()
        self.output_size = math.prod(space.shape)

    def forward(self, observations: Observations) -> Tensor:
        assert isinstance(observations, Tensor)
        return observations.flatten(start_dim=1).to(torch.float32)


class ImageEncoder(Encoder):
    """``uint8`` images through convolutions (3x3 kernels, ReLU), flattened.

    Args:
        space: The image's space (rank 3, ``uint8``).
        channels: Output channels of each convolution.
    """

    def __init__(self, space: TensorSpace, channels: Sequence[int]) -> None:
        super().__init__()
        first, _, last = space.shape
        self.channels_last = last <= first
        if self.channels_last:
            height, width, in_channels = space.shape
        else:
            in_channels, height, width = space.shape
        self.scale = 1.0 / float(space.high or _DEFAULT_IMAGE_HIGH)
        stride = 1 if max(height, width) <= _SMALL_IMAGE else 2
        layers: list[nn.Module] = []
        depth = in_channels
        for index, size in enumerate(channels):
            require_at_least(f"cnn_channels.{index}", size, 1)
            layers += [nn.Conv2d(depth, size, kernel_size=3, stride=stride, padding=1), nn.ReLU()]
            depth = size
        self.convolutions = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            probe = torch.zeros((1, in_channels, height, width))
            self.output_size = int(self.convolutions(probe).shape[1])

    def forward(self, observations: Observations) -> Tensor:
        assert isinstance(observations, Tensor)
        images = observations.to(torch.float32) * self.scale
        if self.channels_last:
            images = images.permute(0, 3, 1, 2)
        features: Tensor = self.convolutions(images)
        return features


class EmbeddingEncoder(Encoder):
    """Integer scalars (``0 .. high``, a batch of shape ``(batch,)``) as learned
    embeddings."""

    def __init__(self, space: TensorSpace, embedding_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(_vocabulary(space), embedding_dim)
        self.output_size = embedding_dim

    def forward(self, observations: Observations) -> Tensor:
        assert isinstance(observations, Tensor)
        embedded: Tensor = self.embedding(observations.long().reshape(-1))
        return embedded


class TokenEncoder(Encoder):
    """Integer token sequences (``1 .. high``, 0 pads): the mean of their tokens' embeddings
    (a bag of words; zero for an empty sequence)."""

    def __init__(self, space: TensorSpace, embedding_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(_vocabulary(space), embedding_dim, padding_idx=0)
        self.output_size = embedding_dim

    def forward(self, observations: Observations) -> Tensor:
        assert isinstance(observations, Tensor)
        tokens = observations.long()
        counts = (tokens != 0).sum(dim=1, keepdim=True).clamp(min=1)
        embedded: Tensor = self.embedding(tokens)
        return embedded.sum(dim=1) / counts


class DictEncoder(Encoder):
    """One encoder per key of a ``Dict`` space, their features joined in key order."""

    def __init__(self, encoders: Mapping[str, Encoder]) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict({key: encoders[key] for key in sorted(encoders)})
        self.output_size = sum(encoder.output_size for encoder in encoders.values())

    def forward(self, observations: Observations) -> Tensor:
        assert isinstance(observations, dict)
        return torch.cat(
            [encoder(observations[key]) for key, encoder in self.encoders.items()], dim=-1
        )


def make_encoder(
    space: ObservationSpace | Sequence[int],
    *,
    cnn_channels: Sequence[int] = (16, 32),
    embedding_dim: int = 16,
) -> Encoder:
    """The encoder for observations of ``space`` (see the module docstring).

    Args:
        space: The task's observation space, or the shape of its ``float32`` observations.
        cnn_channels: Output channels of each convolution of image encoders.
        embedding_dim: Size of the embeddings of integers and tokens.

    Raises:
        InvalidArgumentError: The space has a part no encoder takes (an integer tensor of
            rank 2 or more, an integer without ``high``), or a size is below 1.
    """
    require_at_least("embedding_dim", embedding_dim, 1)
    space = as_observation_space(space)
    if isinstance(space, Mapping):
        return DictEncoder(
            {
                key: _tensor_encoder(part, cnn_channels, embedding_dim, f"observation_space.{key}")
                for key, part in space.items()
            }
        )
    return _tensor_encoder(space, cnn_channels, embedding_dim, "observation_space")


def _tensor_encoder(
    space: TensorSpace, cnn_channels: Sequence[int], embedding_dim: int, name: str
) -> Encoder:
    """The encoder of one tensor of an observation, ``name`` naming it in errors."""
    if space.dtype == "float32":
        return FlattenEncoder(space)
    if space.is_image:
        return ImageEncoder(space, cnn_channels)
    if space.high is None:
        raise InvalidArgumentError(
            f"{name}.high",
            "must be given for integer observations (embeddings need the number of values)",
            space,
        )
    if len(space.shape) == 0:
        return EmbeddingEncoder(space, embedding_dim)
    if len(space.shape) == 1:
        return TokenEncoder(space, embedding_dim)
    raise InvalidArgumentError(
        name,
        "is an integer tensor of rank 2 or more, which no encoder takes (uint8 tensors of rank "
        "3 are images; integer scalars and vectors are embedded)",
        space,
        "Declare it as float32 to have it flattened, or as a uint8 image.",
    )


def _vocabulary(space: TensorSpace) -> int:
    """How many values an integer tensor of ``space`` takes: ``0 .. high``."""
    assert space.high is not None  # checked by _tensor_encoder
    return space.high + 1
