"""Builder: merge order, copy/pickle round trips, repr and equality."""

from __future__ import annotations

import copy
import pickle
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydra_pipeline import Builder, recursive_update


class Recorder:
    """Records the keyword arguments it was built with."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


keys = st.sampled_from(["a", "b", "c", "d"])
leaves = st.one_of(st.integers(-3, 3), st.lists(st.integers(-3, 3), max_size=2))
nested = st.recursive(
    st.dictionaries(keys, leaves, max_size=3),
    lambda children: st.dictionaries(keys, st.one_of(leaves, children), max_size=3),
    max_leaves=8,
)


def reference_merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """The documented merge, written independently: later layers win, dicts merge."""
    result: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(result.get(key), dict):
                result[key] = reference_merge(result[key], value)
            elif isinstance(value, dict):
                result[key] = reference_merge(value)
            else:
                result[key] = value
    return result


class TestBuilderCall:
    def test_call_time_beats_kwargs_beats_default(self) -> None:
        """Precedence is call time > kwargs > default."""
        builder = Builder(Recorder, {"x": 1, "y": 1}, default={"x": 0, "y": 0, "z": 0})
        built = builder(y=2)
        assert built.kwargs == {"x": 1, "y": 2, "z": 0}

    def test_nested_dicts_merge(self) -> None:
        """A nested dict in kwargs updates the default's nested dict key by key."""
        builder = Builder(Recorder, {"opt": {"a": 1}}, default={"opt": {"a": 0, "b": 0}})
        assert builder().kwargs == {"opt": {"a": 1, "b": 0}}
        assert builder(opt={"b": 5}).kwargs == {"opt": {"a": 1, "b": 5}}

    def test_default_is_deep_copied_and_kwargs_never_mutated(self) -> None:
        """Builds never share default leaves and never change the builder's dicts."""
        builder = Builder(Recorder, {"opt": {"a": 1}}, default={"items": [1], "opt": {"b": 0}})
        first = builder(opt={"c": 3})
        first.kwargs["items"].append(2)
        assert builder().kwargs == {"items": [1], "opt": {"b": 0, "a": 1}}
        assert builder.kwargs == {"opt": {"a": 1}}
        assert builder.default == {"items": [1], "opt": {"b": 0}}

    def test_positional_arguments_are_refused(self) -> None:
        """Builders are called with keyword arguments only, as in AllenAct."""
        with pytest.raises(TypeError):
            Builder(Recorder)(1)  # type: ignore[call-arg]

    def test_none_kwargs_and_default_become_empty(self) -> None:
        builder = Builder(Recorder)
        assert builder.kwargs == {} and builder.default == {}
        assert builder(a=1).kwargs == {"a": 1}

    def test_class_type_must_be_callable(self) -> None:
        with pytest.raises(TypeError, match="callable"):
            Builder(3)  # type: ignore[arg-type]

    @given(default=nested, kwargs=nested, extra=nested)
    def test_merge_matches_reference(
        self, default: dict[str, Any], kwargs: dict[str, Any], extra: dict[str, Any]
    ) -> None:
        """For any nested layers, the build arguments equal the documented merge."""
        built = Builder(Recorder, kwargs, default=default)(**extra)
        assert built.kwargs == reference_merge(default, kwargs, extra)


class TestBuilderValue:
    @given(kwargs=nested, default=nested)
    def test_pickle_and_deepcopy_round_trip(
        self, kwargs: dict[str, Any], default: dict[str, Any]
    ) -> None:
        """Copies compare equal, keep every attribute, and build the same thing."""
        builder = Builder(Recorder, kwargs, default=default)
        for clone in (
            pickle.loads(pickle.dumps(builder)),
            copy.deepcopy(builder),
            copy.copy(builder),
        ):
            assert clone == builder
            assert clone.class_type is Recorder
            assert clone.kwargs == kwargs and clone.default == default
            assert clone().kwargs == builder().kwargs

    def test_equality_is_by_value(self) -> None:
        assert Builder(Recorder, {"a": 1}) == Builder(Recorder, {"a": 1})
        assert Builder(Recorder, {"a": 1}) != Builder(Recorder, {"a": 2})
        assert Builder(Recorder) != Builder(dict)

    def test_repr_names_the_class_and_arguments(self) -> None:
        text = repr(Builder(Recorder, {"lr": 0.1}, default={"eps": 1e-5}))
        assert text.startswith("Builder(")
        assert text.endswith(".Recorder, kwargs={'lr': 0.1}, default={'eps': 1e-05})")
        assert repr(Builder(dict)) == "Builder(builtins.dict)"


class TestTupleView:
    def test_unpacks_and_indexes_like_allenacts_tuple(self) -> None:
        """AllenAct's Builder is a (class_type, kwargs, default) tuple; code unpacks it."""
        builder = Builder(Recorder, {"lr": 0.1}, default={"eps": 1e-5})
        class_type, kwargs, default = builder
        assert (class_type, kwargs, default) == (Recorder, {"lr": 0.1}, {"eps": 1e-5})
        assert len(builder) == 3
        assert builder[0] is Recorder and builder[-1] == {"eps": 1e-5}
        assert list(builder) == [Recorder, {"lr": 0.1}, {"eps": 1e-5}]

    def test_copies_still_build_the_same(self) -> None:
        """Unlike AllenAct's tuple, copies keep their three parts."""
        builder = Builder(Recorder, {"lr": 0.1}, default={"eps": 1e-5})
        for clone in (copy.deepcopy(builder), pickle.loads(pickle.dumps(builder))):
            assert tuple(clone) == tuple(builder)


class TestRecursiveUpdate:
    def test_updates_in_place_and_returns_original(self) -> None:
        original: dict[str, Any] = {"a": {"x": 1}, "keep": 0}
        result = recursive_update(original, {"a": {"y": 2}, "b": 3})
        assert result is original
        assert original == {"a": {"x": 1, "y": 2}, "keep": 0, "b": 3}

    def test_lists_replace(self) -> None:
        assert recursive_update({"l": [1, 2]}, {"l": [3]}) == {"l": [3]}

    def test_mapping_over_scalar_replaces_instead_of_failing(self) -> None:
        """AllenAct raises TypeError here; a mapping simply replaces a scalar."""
        assert recursive_update({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}

    def test_new_nested_mappings_are_fresh_dicts(self) -> None:
        update = {"a": OrderedDict(b=1)}
        result = recursive_update({}, update)
        assert result == {"a": {"b": 1}}
        assert result["a"] is not update["a"]

    @given(original=nested, update=nested)
    def test_matches_reference(self, original: dict[str, Any], update: dict[str, Any]) -> None:
        expected = reference_merge(original, update)
        assert recursive_update(copy.deepcopy(original), update) == expected
