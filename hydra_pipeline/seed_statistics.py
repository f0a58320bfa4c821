"""Statistics over seeds: what a sweep's report and the benchmark tables say about several
runs of one configuration.

A figure over seeds is a mean with its sample standard deviation, and the interquartile mean
(IQM: the mean of the middle half of the sorted values, the robust summary Agarwal et al.,
2021, recommend for few runs) with a 95% percentile-bootstrap interval. A percentile
bootstrap resamples the seeds themselves, so its interval never leaves the range of the
values observed (a Student's t interval over three seeds of CartPole reaches past the
largest return there is).

Learning curves of several runs are compared only where every run has a value: they are
aligned on the steps where any of them logged, from the latest first step to the earliest
last one, each run linearly interpolated between its own points, so that no point of a mean
curve is the mean of a different set of runs than its neighbour.

NumPy only: the sweep's report and the benchmark scripts need no SciPy for these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "AlignedCurves",
    "SeedSummary",
    "align_curves",
    "bootstrap_interval",
    "curve_band",
    "interquartile_mean",
    "summarize_seeds",
]

Floats = NDArray[np.float64]

_RESAMPLES = 10_000
"""Bootstrap resamples: enough for the 2.5% and 97.5% percentiles to be stable to well under
the spread of a few seeds."""

_BAND_RESAMPLES = 2_000
"""Bootstrap resamples of a curve's band: one per point of the curve each, so fewer."""


def _iqm_of_rows(samples: Floats) -> Floats:
    """The interquartile mean of each row of ``samples`` ``(rows, n)``: sorted, ``n // 4``
    values dropped at each end (SciPy's ``trim_mean(x, 0.25)``), the rest averaged."""
    n = samples.shape[-1]
    cut = n // 4
    ordered = np.sort(samples, axis=-1)
    return np.asarray(ordered[..., cut : n - cut].mean(axis=-1), dtype=np.float64)


def interquartile_mean(values: Sequence[float]) -> float:
    """The mean of the middle half of ``values``: with ``n`` values, the ``n // 4`` smallest
    and largest are left out (for 3 values none, for 5 one at each end).

    Raises:
        ValueError: ``values`` is empty.
    """
    if not len(values):
        raise ValueError("the interquartile mean of no values is undefined")
    return float(_iqm_of_rows(np.asarray(values, dtype=np.float64)[None, :])[0])


def bootstrap_interval(
    values: Sequence[float],
    statistic: str = "mean",
    *,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile-bootstrap interval of ``statistic`` over ``values``: ``values``
    resampled with replacement 10,000 times (with a generator seeded by ``seed``, so the same
    values give the same interval), the statistic of each resample, and the central
    ``confidence`` share of those. It lies within ``[min(values), max(values)]``.

    Args:
        values: One value per seed (at least one).
        statistic: ``"mean"`` or ``"iqm"`` (:func:`interquartile_mean`).
        confidence: The interval's coverage, in ``(0, 1)``.
        seed: Seeds the resampling.

    Raises:
        ValueError: No values, an unknown statistic, or a confidence outside ``(0, 1)``.
    """
    data = np.asarray(values, dtype=np.float64)
    if not data.size:
        raise ValueError("the bootstrap interval of no values is undefined")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1) (got {confidence})")
    resampled = data[np.random.default_rng(seed).integers(0, data.size, (_RESAMPLES, data.size))]
    estimates = _statistic(statistic)(resampled)
    tail = 50 * (1 - confidence)
    low, high = np.percentile(estimates, [tail, 100 - tail])
    # A resample's mean can round an ulp past the data (the mean of 650/7 three times is
    # below it): the interval is held to the data's range, as documented.
    lowest, highest = data.min(), data.max()
    return float(np.clip(low, lowest, highest)), float(np.clip(high, lowest, highest))


def _statistic(name: str) -> Callable[[Floats], Floats]:
    """The row-wise statistic called ``name``."""
    statistics: dict[str, Callable[[Floats], Floats]] = {
        "mean": lambda rows: np.asarray(rows.mean(axis=-1), dtype=np.float64),
        "iqm": _iqm_of_rows,
    }
    if name not in statistics:
        raise ValueError(f"statistic must be one of {sorted(statistics)} (got {name!r})")
    return statistics[name]


@dataclass(frozen=True)
class SeedSummary:
    """One configuration's final values over its seeds.

    Attributes:
        count: How many values (seeds).
        mean: Their mean.
        std: Their sample standard deviation (``None`` for one value).
        iqm: Their interquartile mean.
        iqm_interval: The 95% percentile-bootstrap interval of the IQM.
        mean_interval: The 95% percentile-bootstrap interval of the mean.
        lowest: The smallest value (the worst seed, where larger is better).
    """

    count: int
    mean: float
    std: float | None
    iqm: float
    iqm_interval: tuple[float, float]
    mean_interval: tuple[float, float]
    lowest: float


def summarize_seeds(values: Sequence[float]) -> SeedSummary:
    """Mean, standard deviation, IQM and their bootstrap intervals of one value per seed.

    Raises:
        ValueError: ``values`` is empty.
    """
    data = [float(value) for value in values]
    if not data:
        raise ValueError("a summary over no seeds is undefined")
    return SeedSummary(
        count=len(data),
        mean=float(np.mean(data)),
        std=float(np.std(data, ddof=1)) if len(data) > 1 else None,
        iqm=interquartile_mean(data),
        iqm_interval=bootstrap_interval(data, "iqm"),
        mean_interval=bootstrap_interval(data, "mean"),
        lowest=min(data),
    )


@dataclass(frozen=True)
class AlignedCurves:
    """Several runs' curves on the steps they share.

    Attributes:
        steps: ``(points,)`` total step counts, increasing.
        values: ``(runs, points)``: each run's value there.
    """

    steps: NDArray[np.int64]
    values: Floats


def align_curves(curves: Sequence[Sequence[tuple[int, float]]]) -> AlignedCurves:
    """The runs' ``(steps, value)`` curves on common steps: every step where any run logged,
    from the latest first step of a run to the earliest last step, each run's value there
    interpolated linearly between its own neighbouring points (its own value where it
    logged). Empty (no points) when a run has no point or the runs do not overlap.

    Args:
        curves: One curve per run, each a list of ``(total steps, value)``.
    """
    ordered = [sorted(curve) for curve in curves]
    if not ordered or not all(ordered):
        return AlignedCurves(np.zeros(0, dtype=np.int64), np.zeros((len(ordered), 0)))
    start = max(curve[0][0] for curve in ordered)
    end = min(curve[-1][0] for curve in ordered)
    grid = np.asarray(
        sorted({step for curve in ordered for step, _ in curve if start <= step <= end}),
        dtype=np.int64,
    )
    values = np.asarray(
        [
            np.interp(grid, [step for step, _ in curve], [value for _, value in curve])
            for curve in ordered
        ],
        dtype=np.float64,
    ).reshape(len(ordered), grid.size)
    return AlignedCurves(grid, values)


def curve_band(values: Floats, *, seed: int = 0) -> tuple[Floats, Floats, Floats] | None:
    """The mean over runs at each step of aligned curves ``values`` ``(runs, points)``, and
    the 95% percentile-bootstrap band of that mean (the runs resampled together, so the band
    stays within the runs' range at each step); ``None`` for fewer than two runs.

    Returns:
        ``(mean, low, high)``, each ``(points,)``.
    """
    runs = values.shape[0]
    if runs < 2:
        return None
    picks = np.random.default_rng(seed).integers(0, runs, (_BAND_RESAMPLES, runs))
    # How often each resample picked each run: the resampled means are one product.
    weights = np.zeros((_BAND_RESAMPLES, runs))
    np.add.at(weights, (np.arange(_BAND_RESAMPLES)[:, None], picks), 1.0 / runs)
    estimates = weights @ values  # (resamples, points)
    low, high = np.percentile(estimates, [2.5, 97.5], axis=0)
    # Held to the runs' range at each step (a mean can round an ulp past it).
    lowest, highest = values.min(axis=0), values.max(axis=0)
    mean = np.clip(values.mean(axis=0), lowest, highest)
    low, high = np.clip(low, lowest, highest), np.clip(high, lowest, highest)
    return mean, np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
