"""Statistics over seeds against values computed by hand (or by enumerating every resample)
on made-up numbers and curves, a seed missing at some steps included."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from hydra_pipeline.seed_statistics import (
    align_curves,
    bootstrap_interval,
    curve_band,
    interquartile_mean,
    summarize_seeds,
)


class TestInterquartileMean:
    @pytest.mark.parametrize(
        ("values", "expected"),
        [
            ([7.0], 7.0),
            ([1.0, 2.0, 3.0], 2.0),  # 3 // 4 = 0 left out at each end
            ([4.0, 1.0, 3.0, 2.0], 2.5),  # 1 at each end: (2 + 3) / 2
            ([100.0, 1.0, 2.0, 3.0, 4.0], 3.0),  # (2 + 3 + 4) / 3: the outlier is out
            ([float(v) for v in range(8)], 3.5),  # 2 at each end: (2 + 3 + 4 + 5) / 4
        ],
    )
    def test_by_hand(self, values: list[float], expected: float) -> None:
        assert interquartile_mean(values) == expected

    def test_as_scipy_trims(self) -> None:
        data = np.random.default_rng(0).normal(size=13)
        assert interquartile_mean(list(data)) == pytest.approx(stats.trim_mean(data, 0.25))

    def test_no_values(self) -> None:
        with pytest.raises(ValueError, match="no values"):
            interquartile_mean([])


def exact_percentiles(values: list[float], statistic: str) -> tuple[float, float]:
    """The 2.5% and 97.5% percentiles of the statistic over every equally likely resample."""
    estimates = [
        float(np.mean(sample)) if statistic == "mean" else interquartile_mean(list(sample))
        for sample in itertools.product(values, repeat=len(values))
    ]
    low, high = np.percentile(estimates, [2.5, 97.5])
    return float(low), float(high)


class TestBootstrapInterval:
    def test_three_seeds_stay_in_their_range(self) -> None:
        """Seeds 0, 3, 6: each extreme resample (all one seed) has probability 1/27 > 2.5%,
        so the interval is the data's range, [0, 6]; Student's t interval over the same
        three values, 3 +- 4.30 * 1.73, leaves it on both sides."""
        assert bootstrap_interval([0.0, 3.0, 6.0]) == (0.0, 6.0)
        low, high = stats.t.interval(0.95, 2, loc=3.0, scale=stats.sem([0.0, 3.0, 6.0]))
        assert low < 0.0 and high > 6.0

    @pytest.mark.parametrize("statistic", ["mean", "iqm"])
    def test_matches_the_enumeration_of_every_resample(self, statistic: str) -> None:
        """Five seeds: 3,125 equally likely resamples, enumerated; 10,000 drawn ones give
        their percentiles to within a tenth of the spread."""
        values = [0.0, 1.0, 2.0, 4.0, 8.0]
        expected = exact_percentiles(values, statistic)
        got = bootstrap_interval(values, statistic)
        assert got == pytest.approx(expected, abs=0.1 * (max(values) - min(values)))

    def test_equal_values_and_one_value(self) -> None:
        assert bootstrap_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
        assert bootstrap_interval([5.0]) == (5.0, 5.0)

    @pytest.mark.parametrize("statistic", ["mean", "iqm"])
    def test_rounding_never_leaves_the_range(self, statistic: str) -> None:
        """The mean of 650/7 three times rounds below 650/7; the interval stays on it."""
        value = 650 / 7
        assert float(np.mean([value] * 3)) < value
        assert bootstrap_interval([value] * 3, statistic) == (value, value)
        low, high = bootstrap_interval([117.8, 120.5, value], statistic)
        assert value <= low <= high <= 120.5

    def test_the_same_values_give_the_same_interval(self) -> None:
        values = [1.0, 5.0, 2.0, 9.0]
        assert bootstrap_interval(values, "iqm") == bootstrap_interval(values, "iqm")

    @pytest.mark.parametrize(
        ("values", "options", "message"),
        [
            ([], {}, "no values"),
            ([1.0], {"statistic": "median"}, "statistic must be one of"),
            ([1.0], {"confidence": 1.0}, r"confidence must be in \(0, 1\)"),
        ],
    )
    def test_refused(self, values: list[float], options: dict[str, object], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            bootstrap_interval(values, **options)  # type: ignore[arg-type]


class TestSummarizeSeeds:
    def test_by_hand(self) -> None:
        summary = summarize_seeds([4.0, 1.0, 3.0, 2.0])
        assert (summary.count, summary.mean, summary.iqm, summary.lowest) == (4, 2.5, 2.5, 1.0)
        assert summary.std == pytest.approx(math.sqrt(5 / 3))
        assert 1.0 <= summary.iqm_interval[0] <= 2.5 <= summary.iqm_interval[1] <= 4.0
        assert 1.0 <= summary.mean_interval[0] <= 2.5 <= summary.mean_interval[1] <= 4.0

    def test_one_seed(self) -> None:
        summary = summarize_seeds([3.0])
        assert summary.std is None and summary.iqm_interval == (3.0, 3.0)


class TestCurves:
    def test_aligned_where_every_run_has_a_value(self) -> None:
        """Run a logs at 0, 10, 20, 30; run b at 5, 15 and 25 only: the curves share 5 to 25,
        at every step either logged there; a is interpolated at 5, 15, 25 and b at 10, 20."""
        a = [(0, 0.0), (10, 10.0), (20, 20.0), (30, 30.0)]
        b = [(25, 5.0), (5, 0.0), (15, 10.0)]  # order does not matter
        aligned = align_curves([a, b])
        assert aligned.steps.tolist() == [5, 10, 15, 20, 25]
        assert aligned.values.tolist() == [
            [5.0, 10.0, 15.0, 20.0, 25.0],
            [0.0, 5.0, 10.0, 7.5, 5.0],
        ]

    def test_a_run_without_values_or_no_overlap(self) -> None:
        assert align_curves([[(0, 1.0)], []]).steps.size == 0
        assert align_curves([[(0, 1.0), (5, 1.0)], [(10, 2.0)]]).steps.size == 0
        one = align_curves([[(3, 1.0), (7, 2.0)]])
        assert one.steps.tolist() == [3, 7] and one.values.tolist() == [[1.0, 2.0]]

    def test_band_stays_within_the_runs(self) -> None:
        """Three CartPole-like runs near the 500 cap: the band never passes 500 (a t interval
        over them does), and contains the mean."""
        values = np.array([[100.0, 480.0, 500.0], [60.0, 420.0, 500.0], [20.0, 300.0, 430.0]])
        band = curve_band(values)
        assert band is not None
        mean, low, high = band
        assert mean.tolist() == pytest.approx([60.0, 400.0, 476.6666667])
        assert np.all(low >= values.min(axis=0)) and np.all(high <= values.max(axis=0))
        assert np.all(low <= mean) and np.all(mean <= high)
        assert high[2] <= 500.0
        t_high = stats.t.interval(0.95, 2, loc=values[:, 2].mean(), scale=stats.sem(values[:, 2]))
        assert t_high[1] > 500.0

    def test_rounding_never_leaves_the_runs(self) -> None:
        value = 650 / 7
        band = curve_band(np.full((3, 2), value))
        assert band is not None
        assert [part.tolist() for part in band] == [[value, value]] * 3

    def test_no_band_for_one_run(self) -> None:
        assert curve_band(np.array([[1.0, 2.0]])) is None
