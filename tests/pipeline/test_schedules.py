"""LinearDecay: values, clamping, validation, pickling."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydra_pipeline import InvalidArgumentError, LinearDecay

reals = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


class TestLinearDecay:
    def test_documented_values(self) -> None:
        decay = LinearDecay(steps=100)
        assert [decay(i) for i in (-5, 0, 25, 50, 100, 1000)] == [1.0, 1.0, 0.75, 0.5, 0.0, 0.0]

    def test_can_increase(self) -> None:
        assert LinearDecay(steps=10, startp=0.0, endp=2.0)(5) == 1.0

    @pytest.mark.parametrize("steps", [0, -3])
    def test_non_positive_steps_are_refused(self, steps: int) -> None:
        """AllenAct divides by zero at every call; we refuse at construction."""
        with pytest.raises(InvalidArgumentError, match=r"'steps' must be >= 1 \(got"):
            LinearDecay(steps=steps)

    def test_steps_must_be_an_integer(self) -> None:
        with pytest.raises(InvalidArgumentError, match="'steps' must be an integer"):
            LinearDecay(steps=2.5)  # type: ignore[arg-type]

    @given(
        steps=st.integers(min_value=1, max_value=10**7),
        startp=reals,
        endp=reals,
        epoch=st.floats(min_value=-1e8, max_value=1e8, allow_nan=False),
    )
    def test_formula_and_clamping(
        self, steps: int, startp: float, endp: float, epoch: float
    ) -> None:
        """Exactly startp before 0, exactly endp from steps on, the formula in between."""
        decay = LinearDecay(steps=steps, startp=startp, endp=endp)
        value = decay(epoch)
        if epoch <= 0:
            assert value == startp
        elif epoch >= steps:
            assert value == endp
        else:
            assert value == startp + (endp - startp) * epoch / steps
            low, high = min(startp, endp), max(startp, endp)
            assert low - 1e-9 * (abs(low) + 1) <= value <= high + 1e-9 * (abs(high) + 1)

    @given(steps=st.integers(min_value=1, max_value=1000), startp=reals, endp=reals)
    def test_pickle_round_trip(self, steps: int, startp: float, endp: float) -> None:
        decay = LinearDecay(steps, startp, endp)
        clone = pickle.loads(pickle.dumps(decay))
        assert clone == decay
        assert clone(steps // 2) == decay(steps // 2)
