"""Storages a pipeline names: the rollout storage and data sources."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hydra_pipeline import Builder, InvalidArgumentError, RolloutBlockStorage
from hydra_pipeline.pipeline.storage import DataIteratorStorage, is_rollout_storage


class TestRolloutBlockStorage:
    def test_init_size_is_kept_and_checked(self) -> None:
        """AllenAct's init_size is accepted (configs pass it) and must be a size."""
        assert RolloutBlockStorage(init_size=128).init_size == 128
        assert RolloutBlockStorage() == RolloutBlockStorage(50) != RolloutBlockStorage(128)
        with pytest.raises(InvalidArgumentError, match=r"'init_size' must be >= 1 \(got 0\)"):
            RolloutBlockStorage(init_size=0)

    @pytest.mark.parametrize(
        ("storage", "expected"),
        [
            (RolloutBlockStorage(), True),
            (Builder(RolloutBlockStorage), True),
            (Builder(dict), False),
            (lambda: iter(()), False),
        ],
    )
    def test_is_rollout_storage(self, storage: Any, expected: bool) -> None:
        assert is_rollout_storage(storage) is expected


class Source:
    """A data source with state."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Iterator[int]:
        self.calls += 1
        return iter([self.calls])

    def state_dict(self) -> dict[str, int]:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.calls = state["calls"]


def numbers(values: list[int]) -> Iterator[int]:
    return iter(values)


class TestDataIteratorStorage:
    def test_a_builder_is_called_for_every_pass(self) -> None:
        """A Builder of an iterator is a data_iterator_builder, not a storage to build once."""
        storage = DataIteratorStorage(Builder(numbers, {"values": [1, 2]}))
        assert list(storage()) == [1, 2] and list(storage()) == [1, 2]

    def test_state_methods_are_forwarded_only_when_present(self) -> None:
        source = Source()
        storage = DataIteratorStorage(source)
        next(storage())
        assert storage.state_dict() == {"calls": 1}
        storage.load_state_dict({"calls": 5})
        assert next(storage()) == 6
        stateless = DataIteratorStorage(lambda: iter(()))
        assert not hasattr(stateless, "state_dict")
        with pytest.raises(AttributeError):
            stateless.anything  # noqa: B018
