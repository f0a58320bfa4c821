"""evenly_distribute_count_into_bins: AllenAct's split of samplers over devices."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydra_pipeline import InvalidArgumentError, evenly_distribute_count_into_bins


def round_robin(count: int, nbins: int) -> list[int]:
    """AllenAct's definition: one at a time into bins 0, 1, ..., nbins - 1, 0, 1, ..."""
    bins = [0] * nbins
    for index in range(count):
        bins[index % nbins] += 1
    return bins


@given(nbins=st.integers(min_value=1, max_value=50), extra=st.integers(min_value=0, max_value=500))
def test_equals_the_round_robin_split(nbins: int, extra: int) -> None:
    count = nbins + extra
    assert evenly_distribute_count_into_bins(count, nbins) == round_robin(count, nbins)


def test_examples() -> None:
    assert evenly_distribute_count_into_bins(60, 8) == [8, 8, 8, 8, 7, 7, 7, 7]
    assert evenly_distribute_count_into_bins(3, 3) == [1, 1, 1]


@pytest.mark.parametrize(
    ("count", "nbins", "message"),
    [
        (2, 3, r"'count' must be >= nbins \(3\) so that no bin is empty \(got 2\)"),
        (5, 0, r"'nbins' must be >= 1 \(got 0\)"),
        (-1, 1, r"'count' must be >= 0"),
    ],
)
def test_refuses_empty_bins(count: int, nbins: int, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        evenly_distribute_count_into_bins(count, nbins)
