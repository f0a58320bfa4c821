"""``evenly_distribute_count_into_bins``: split a count into near-equal parts.

AllenAct's experiment configs use it in ``machine_params`` to spread sampler processes over
GPUs; it is here so that those configs' imports keep working.
"""

from __future__ import annotations

from hydra_pipeline.arguments import require_at_least
from hydra_pipeline.errors import InvalidArgumentError

__all__ = ["evenly_distribute_count_into_bins"]


def evenly_distribute_count_into_bins(count: int, nbins: int) -> list[int]:
    """``count`` split into ``nbins`` parts that differ by at most 1, the larger ones first.

    >>> evenly_distribute_count_into_bins(10, 4)
    [3, 3, 2, 2]

    Raises:
        InvalidArgumentError: ``nbins`` is below 1, or ``count`` below ``nbins`` (a part would
            be empty).
    """
    bins = require_at_least("nbins", nbins, 1)
    total = require_at_least("count", count, 0)
    if total < bins:
        raise InvalidArgumentError(
            "count", f"must be >= nbins ({bins}) so that no bin is empty", count
        )
    size, remainder = divmod(total, bins)
    return [size + (index < remainder) for index in range(bins)]
