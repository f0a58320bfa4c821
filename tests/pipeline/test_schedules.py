"""LinearDecay: values, clamping, validation, pickling."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydra_pipeline import InvalidArgumentError, LinearDecay, MultiLinearDecay

reals = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


class TestLinearDecay:
    def test_documented_values(self) -> None:
        decay = LinearDecay(steps=100)
        assert [decay(i) for i in (-5, 0, 25, 50, 100, 1000)] == [1.0, 1.0, 0.75, 0.5, 0.0, 0.0]

    def test_can_increase(self) -> None:
        assert LinearDecay(steps=10, startp=0.0, endp=2.0)(5) == 1.0

    @pytest.mark.parametrize("steps", [0, 0.0])
    def test_zero_steps_are_refused(self, steps: float) -> None:
        """AllenAct divides by zero at every call; we refuse at construction."""
        with pytest.raises(InvalidArgumentError, match=r"'steps' must not be 0 \(got 0"):
            LinearDecay(steps=steps)

    @pytest.mark.parametrize("steps", ["100", None, True])
    def test_steps_must_be_a_number(self, steps: object) -> None:
        with pytest.raises(InvalidArgumentError, match="'steps' must be a number"):
            LinearDecay(steps=steps)  # type: ignore[arg-type]

    @pytest.mark.parametrize("steps", [-1, -3, -0.5])
    def test_negative_steps_give_startp_throughout(self, steps: float) -> None:
        """AllenAct's behaviour-cloning configs write LinearDecay(steps=-1) for a constant: every
        step clamps to 0."""
        decay = LinearDecay(steps=steps, startp=0.25, endp=4.0)
        assert {decay(epoch) for epoch in (-10, 0, 1, 10**6)} == {0.25}

    def test_float_steps_work_as_their_value(self) -> None:
        assert LinearDecay(steps=1.2e6)(3e5) == LinearDecay(steps=1_200_000)(3e5) == 0.75

    @given(
        steps=st.one_of(
            st.integers(min_value=-(10**7), max_value=10**7).filter(bool),
            st.floats(min_value=-1e7, max_value=1e7, allow_nan=False).filter(bool),
        ),
        startp=reals,
        endp=reals,
        epoch=st.one_of(
            st.integers(min_value=-(10**8), max_value=10**8),
            st.floats(min_value=-1e8, max_value=1e8, allow_nan=False),
        ),
    )
    def test_values_are_allenacts(
        self, steps: float, startp: float, endp: float, epoch: float
    ) -> None:
        """Bit for bit AllenAct 0.5.4's value: clamp the step to [0, steps], then
        startp + (endp - startp) * (step / float(steps)), in that order."""
        decay = LinearDecay(steps=steps, startp=startp, endp=endp)
        clamped = max(min(epoch, steps), 0)
        assert decay(epoch) == startp + (endp - startp) * (clamped / float(steps))
        if epoch <= 0 or steps < 0:
            assert decay(epoch) == startp

    @given(steps=st.integers(min_value=1, max_value=1000), startp=reals, endp=reals)
    def test_pickle_round_trip(self, steps: int, startp: float, endp: float) -> None:
        decay = LinearDecay(steps, startp, endp)
        clone = pickle.loads(pickle.dumps(decay))
        assert clone == decay
        assert clone(steps // 2) == decay(steps // 2)


pieces = st.lists(
    st.tuples(st.integers(min_value=1, max_value=1000), reals, reals), min_size=1, max_size=4
)


def allenact_multi_linear_decay(stages: list[LinearDecay], epochs: list[float]) -> list[float]:
    """AllenAct 0.5.4's MultiLinearDecay, which keeps its current piece between calls, called
    with ``epochs`` in order (its definition, written out for the comparison)."""
    ends = [sum(stage.steps for stage in stages[: i + 1]) for i in range(len(stages))]
    total = ends[-1]
    index, low, high = -1, 0.0, 0.0
    values = []
    for epoch in epochs:
        clamped = max(min(epoch, total), 0)
        while clamped >= high and high < total:
            index += 1
            low, high = high, ends[index]
        values.append(stages[index](clamped - low))
    return values


class TestMultiLinearDecay:
    def test_pieces_in_turn(self) -> None:
        decay = MultiLinearDecay(
            [LinearDecay(steps=10, startp=0.0, endp=1.0), LinearDecay(steps=30, startp=1.0)]
        )
        assert decay.steps == (10, 40) and decay.total_steps == 40
        points = [-1, 0, 5, 10, 25, 40, 100]
        assert [decay(p) for p in points] == [0.0, 0.0, 0.5, 1.0, 0.5, 0.0, 0.0]

    @given(stages=pieces, epochs=st.lists(st.floats(-100, 5000, allow_nan=False), max_size=20))
    def test_increasing_steps_give_allenacts_values(
        self, stages: list[tuple[int, float, float]], epochs: list[float]
    ) -> None:
        """For non-decreasing steps (the engine's clocks) every value is AllenAct's."""
        decays = [LinearDecay(steps, startp, endp) for steps, startp, endp in stages]
        ordered = sorted(epochs)
        decay = MultiLinearDecay(decays)
        assert [decay(e) for e in ordered] == allenact_multi_linear_decay(decays, ordered)

    def test_earlier_steps_after_later_ones(self) -> None:
        """AllenAct's object only moves forward (after step 15, step 5 gives 0.5 there); this
        one gives each step its value."""
        decay = MultiLinearDecay(
            [LinearDecay(steps=10, startp=1.0, endp=0.5), LinearDecay(steps=10, startp=0.5)]
        )
        assert decay(15) == 0.25
        assert decay(5) == 0.75
        assert allenact_multi_linear_decay(list(decay.stages), [15, 5]) == [0.25, 0.5]

    @pytest.mark.parametrize(
        ("stages", "message"),
        [
            ([], "'stages' must be a non-empty list of LinearDecay"),
            ([0.5], "'stages.0' must be a LinearDecay"),
            ([LinearDecay(10), LinearDecay(-1)], "'stages.1.steps' must be a positive, finite"),
        ],
    )
    def test_bad_pieces(self, stages: list[object], message: str) -> None:
        with pytest.raises(InvalidArgumentError, match=message):
            MultiLinearDecay(stages)  # type: ignore[arg-type]

    def test_pickle_and_equality(self) -> None:
        decay = MultiLinearDecay([LinearDecay(5), LinearDecay(7, 0.0, 1.0)])
        clone = pickle.loads(pickle.dumps(decay))
        assert clone == decay and clone(6) == decay(6) and clone.steps == (5, 12)
