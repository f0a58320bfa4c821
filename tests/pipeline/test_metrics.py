"""ScalarMeanTracker: weighted means, popping, validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydra_pipeline import InvalidArgumentError, ScalarMeanTracker

additions = st.lists(
    st.tuples(
        st.dictionaries(
            st.sampled_from(["reward", "loss", "lr"]),
            st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
            min_size=1,
        ),
        st.integers(min_value=1, max_value=50),
    ),
    max_size=20,
)


class TestScalarMeanTracker:
    def test_weighted_mean(self) -> None:
        tracker = ScalarMeanTracker()
        tracker.add_scalars({"reward": 2.0}, n=1)
        tracker.add_scalars({"reward": 4.0, "loss": 1.0}, n=3)
        assert tracker.means() == {"reward": 3.5, "loss": 1.0}
        assert tracker.counts() == {"reward": 4, "loss": 3}
        assert tracker.sums() == {"reward": 14.0, "loss": 3.0}

    def test_pop_and_reset(self) -> None:
        tracker = ScalarMeanTracker()
        assert tracker.pop_and_reset() == {}
        tracker.add_scalars({"a": 1.0})
        assert tracker.pop_and_reset() == {"a": 1.0}
        assert tracker.empty and tracker.means() == {}

    def test_reset(self) -> None:
        tracker = ScalarMeanTracker()
        tracker.add_scalars({"a": 1.0})
        tracker.reset()
        assert tracker.empty

    @pytest.mark.parametrize("n", [0, -1])
    def test_non_positive_n_is_refused(self, n: int) -> None:
        """AllenAct accepts these and divides by zero (or goes negative) later."""
        tracker = ScalarMeanTracker()
        with pytest.raises(InvalidArgumentError, match=r"'n' must be >= 1"):
            tracker.add_scalars({"a": 1.0}, n=n)
        assert tracker.empty

    def test_per_key_counts(self) -> None:
        """AllenAct's engine passes n as a mapping: each key its own count."""
        tracker = ScalarMeanTracker()
        tracker.add_scalars({"loss": 2.0, "lr": 0.1}, n={"loss": 4, "lr": 1})
        tracker.add_scalars({"loss": 4.0, "lr": 0.3}, n={"loss": 1, "lr": 1, "unused": 9})
        assert tracker.counts() == {"loss": 5, "lr": 2}
        assert tracker.means() == pytest.approx({"loss": 12.0 / 5, "lr": 0.2})

    def test_per_key_counts_must_cover_every_key(self) -> None:
        tracker = ScalarMeanTracker()
        with pytest.raises(InvalidArgumentError, match=r"'n' gives no count for \['lr'\]"):
            tracker.add_scalars({"loss": 1.0, "lr": 0.1}, n={"loss": 2})
        with pytest.raises(InvalidArgumentError, match=r"'n.loss' must be >= 1 \(got 0\)"):
            tracker.add_scalars({"loss": 1.0}, n={"loss": 0})
        assert tracker.empty

    def test_state_dict_round_trip(self) -> None:
        tracker = ScalarMeanTracker()
        tracker.add_scalars({"a": 1.0, "b": 2.0}, n=2)
        clone = ScalarMeanTracker()
        clone.load_state_dict(tracker.state_dict())
        assert clone.means() == tracker.means() and clone.counts() == tracker.counts()

    @given(additions=additions)
    def test_means_equal_weighted_average(
        self, additions: list[tuple[dict[str, float], int]]
    ) -> None:
        tracker = ScalarMeanTracker()
        for scalars, n in additions:
            tracker.add_scalars(scalars, n=n)
        keys = {key for scalars, _ in additions for key in scalars}
        means = tracker.pop_and_reset()
        assert set(means) == keys
        for key in keys:
            total = sum(n * s[key] for s, n in additions if key in s)
            count = sum(n for s, n in additions if key in s)
            assert means[key] == pytest.approx(total / count, abs=1e-9)
        assert tracker.empty
