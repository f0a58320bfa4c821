"""make_encoder: the encoder each observation space calls for."""

from __future__ import annotations

import pytest
import torch

from hydra_pipeline import InvalidArgumentError
from hydra_pipeline.models import MLPActorCritic, make_encoder
from hydra_pipeline.models.encoders import (
    DictEncoder,
    EmbeddingEncoder,
    FlattenEncoder,
    ImageEncoder,
    TokenEncoder,
)
from hydra_pipeline.tasks import DiscreteActions, TensorSpace


class TestChoice:
    def test_float_vectors_are_flattened_without_parameters(self) -> None:
        """A shape (float32) gives a parameter-free flatten, so an MLP over vectors keeps the
        weights' names and shapes it always had."""
        encoder = make_encoder((2, 3))
        assert isinstance(encoder, FlattenEncoder) and encoder.output_size == 6
        assert not list(encoder.parameters())
        model = MLPActorCritic((4,), DiscreteActions(2), hidden_sizes=(8,))
        assert sorted(model.state_dict()) == [
            "actor.0.bias",
            "actor.0.weight",
            "actor.2.bias",
            "actor.2.weight",
            "critic.0.bias",
            "critic.0.weight",
            "critic.2.bias",
            "critic.2.weight",
        ]

    @pytest.mark.parametrize(
        ("shape", "channels_last"), [((7, 7, 3), True), ((3, 7, 7), False), ((4, 64, 64), False)]
    )
    def test_images_are_read_channels_last_or_first(
        self, shape: tuple[int, int, int], channels_last: bool
    ) -> None:
        """uint8 rank-3 tensors are images; the smaller end dimension holds the channels, and
        values are scaled by high (255 by default) before the convolutions."""
        encoder = make_encoder(TensorSpace(shape, "uint8"), cnn_channels=(4, 8))
        assert isinstance(encoder, ImageEncoder) and encoder.channels_last is channels_last
        assert encoder.scale == 1 / 255
        images = torch.randint(0, 256, (2, *shape), dtype=torch.uint8)
        features = encoder(images)
        assert features.shape == (2, encoder.output_size) and features.dtype == torch.float32
        # Small images keep their size (stride 1), larger ones are halved per layer.
        side = 7 if shape[1] == 7 else 16
        assert encoder.output_size == 8 * side * side

    def test_integers_and_tokens_are_embedded(self) -> None:
        """An integer scalar is one embedding; an integer vector is tokens whose embeddings
        are averaged, padding (0) left out."""
        direction = make_encoder(TensorSpace((), "int64", high=3), embedding_dim=5)
        assert isinstance(direction, EmbeddingEncoder)
        assert direction(torch.tensor([0, 3])).shape == (2, 5)
        tokens = make_encoder(TensorSpace((4,), "int64", high=9), embedding_dim=5)
        assert isinstance(tokens, TokenEncoder)
        padded = tokens(torch.tensor([[2, 3, 0, 0]]))
        weights = tokens.embedding.weight
        assert torch.allclose(padded, (weights[2] + weights[3]).unsqueeze(0) / 2)

    def test_dict_spaces_join_one_encoder_per_key(self) -> None:
        """A Dict space gets an encoder per key; the features are joined in key order."""
        space = {
            "image": TensorSpace((5, 5, 3), "uint8", high=10),
            "direction": TensorSpace((), "int64", high=3),
        }
        encoder = make_encoder(space, cnn_channels=(2,), embedding_dim=3)
        assert isinstance(encoder, DictEncoder)
        assert list(encoder.encoders) == ["direction", "image"]
        assert encoder.output_size == 3 + 2 * 5 * 5
        batch = {
            "image": torch.zeros((4, 5, 5, 3), dtype=torch.uint8),
            "direction": torch.tensor([0, 1, 2, 3]),
        }
        assert encoder(batch).shape == (4, encoder.output_size)


class TestRefusals:
    def test_integers_need_high(self) -> None:
        """An integer entry without high is refused, naming its key."""
        space = {"count": TensorSpace((), "int64")}
        with pytest.raises(InvalidArgumentError, match=r"'observation_space.count.high'"):
            make_encoder(space)

    def test_integer_grids_are_refused(self) -> None:
        """Integer tensors of rank 2 or more (not uint8 images) are refused with the fix."""
        with pytest.raises(InvalidArgumentError, match="Declare it as float32"):
            make_encoder(TensorSpace((3, 3), "int64", high=5))

    def test_unknown_element_types_are_refused(self) -> None:
        """A space of an element type no observation has is refused when declared."""
        with pytest.raises(InvalidArgumentError, match=r"'observation_space.dtype' must be one"):
            TensorSpace((2,), "float16")
