"""Early-stopping criteria: decisions from metrics, state round trips, validation."""

from __future__ import annotations

import pytest

from hydra_pipeline import (
    EarlyStoppingCriterion,
    InvalidArgumentError,
    NeverEarlyStoppingCriterion,
    PlateauEarlyStopping,
    ScalarMeanTracker,
    ThresholdEarlyStopping,
)


def metrics(**values: float) -> ScalarMeanTracker:
    tracker = ScalarMeanTracker()
    if values:
        tracker.add_scalars(values)
    return tracker


def check(criterion: EarlyStoppingCriterion, tracker: ScalarMeanTracker) -> bool:
    return criterion(stage_steps=10, total_steps=20, training_metrics=tracker)


class TestNever:
    def test_never_stops(self) -> None:
        assert not check(NeverEarlyStoppingCriterion(), metrics(reward=1e9))

    def test_stateless(self) -> None:
        criterion = NeverEarlyStoppingCriterion()
        assert criterion.state_dict() == {}
        criterion.load_state_dict({})
        with pytest.raises(InvalidArgumentError, match="stateless"):
            criterion.load_state_dict({"x": 1})

    def test_base_class_is_abstract(self) -> None:
        with pytest.raises(TypeError):
            EarlyStoppingCriterion()  # type: ignore[abstract]


class TestThreshold:
    def test_stops_when_reached(self) -> None:
        criterion = ThresholdEarlyStopping(metric="reward", threshold=475.0)
        assert not check(criterion, metrics(reward=474.9))
        assert check(criterion, metrics(reward=475.0))

    def test_min_mode(self) -> None:
        criterion = ThresholdEarlyStopping(metric="loss", threshold=0.1, mode="min")
        assert not check(criterion, metrics(loss=0.2))
        assert check(criterion, metrics(loss=0.05))

    def test_consecutive_points_and_missing_metric(self) -> None:
        """A missing metric neither counts nor breaks the run; a miss resets it."""
        criterion = ThresholdEarlyStopping(threshold=10.0, consecutive=2)
        assert not check(criterion, metrics(reward=11.0))
        assert not check(criterion, metrics(reward=9.0))
        assert not check(criterion, metrics(reward=11.0))
        assert not check(criterion, metrics())
        assert check(criterion, metrics(reward=12.0))

    def test_state_round_trip_gives_same_decisions(self) -> None:
        original = ThresholdEarlyStopping(threshold=10.0, consecutive=3)
        check(original, metrics(reward=11.0))
        check(original, metrics(reward=11.0))
        restored = ThresholdEarlyStopping(threshold=10.0, consecutive=3)
        restored.load_state_dict(original.state_dict())
        assert check(restored, metrics(reward=11.0)) and check(original, metrics(reward=11.0))

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"mode": "up"}, "'mode' must be 'max' or 'min'"),
            ({"consecutive": 0}, "'consecutive' must be >= 1"),
            ({"metric": ""}, "'metric' must be a metric name"),
        ],
    )
    def test_bad_arguments(self, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(InvalidArgumentError, match=message):
            ThresholdEarlyStopping(**kwargs)  # type: ignore[arg-type]


class TestPlateau:
    def test_stops_after_patience_points_without_improvement(self) -> None:
        criterion = PlateauEarlyStopping(metric="reward", patience=2, min_delta=1.0)
        assert not check(criterion, metrics(reward=10.0))
        assert not check(criterion, metrics(reward=10.5))  # within min_delta: no improvement
        assert not check(criterion, metrics(reward=12.0))  # improvement resets the count
        assert not check(criterion, metrics(reward=12.5))
        assert check(criterion, metrics(reward=11.0))

    def test_min_mode_and_missing_metric(self) -> None:
        criterion = PlateauEarlyStopping(metric="loss", patience=1, mode="min")
        assert not check(criterion, metrics(loss=1.0))
        assert not check(criterion, metrics())
        assert not check(criterion, metrics(loss=0.5))
        assert check(criterion, metrics(loss=0.6))

    def test_state_round_trip_gives_same_decisions(self) -> None:
        original = PlateauEarlyStopping(patience=2)
        for value in (5.0, 7.0, 6.0):
            check(original, metrics(reward=value))
        restored = PlateauEarlyStopping(patience=2)
        restored.load_state_dict(original.state_dict())
        assert restored.state_dict() == {"best": 7.0, "points_without_improvement": 1}
        assert check(restored, metrics(reward=6.5)) and check(original, metrics(reward=6.5))

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"patience": 0}, "'patience' must be >= 1"),
            ({"min_delta": -1.0}, "'min_delta' must be >= 0"),
            ({"mode": "best"}, "'mode' must be 'max' or 'min'"),
        ],
    )
    def test_bad_arguments(self, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(InvalidArgumentError, match=message):
            PlateauEarlyStopping(**kwargs)  # type: ignore[arg-type]
