"""``ScalarMeanTracker``: running weighted means of named scalars between two log points; and
the metrics every evaluation reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, SupportsFloat

from hydra_pipeline.arguments import require_at_least
from hydra_pipeline.errors import InvalidArgumentError

__all__ = ["EVALUATION_METRICS", "ScalarMeanTracker"]

EVALUATION_METRICS = ("reward", "reward_std", "episode_length")
"""What every evaluation reports (tasks may add their episode metrics)."""


class ScalarMeanTracker:
    """Per-key means of scalars, each addition weighted by a sample count ``n``.

    The engine adds each rollout's episode returns weighted by the number of episodes, and each
    minibatch's loss terms weighted by the minibatch size; at a log point it reads the means and
    starts over. Keys keep the order in which they were first added.
    """

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def add_scalars(
        self, scalars: Mapping[str, SupportsFloat], n: int | Mapping[str, int] = 1
    ) -> None:
        """Add ``n`` samples whose mean is ``scalars[key]`` to each key's running mean.

        Args:
            scalars: Key -> mean of the samples added.
            n: The number of samples behind every value, or, as AllenAct's engine passes it,
                a mapping giving each key its own count.

        Raises:
            InvalidArgumentError: A count is not an integer >= 1, or the mapping lacks a key
                of ``scalars``.
        """
        if isinstance(n, Mapping):
            missing = [key for key in scalars if key not in n]
            if missing:
                raise InvalidArgumentError(
                    "n", f"gives no count for {missing}", dict(n), "Give one count per scalar."
                )
            counts = {key: require_at_least(f"n.{key}", n[key], 1) for key in scalars}
        else:
            count = require_at_least("n", n, 1)
            counts = dict.fromkeys(scalars, count)
        for key, value in scalars.items():
            self._sums[key] = self._sums.get(key, 0.0) + counts[key] * float(value)
            self._counts[key] = self._counts.get(key, 0) + counts[key]

    def means(self) -> dict[str, float]:
        """The current mean of every key."""
        return {key: self._sums[key] / self._counts[key] for key in self._sums}

    def sums(self) -> dict[str, float]:
        """The weighted sum of every key."""
        return dict(self._sums)

    def counts(self) -> dict[str, int]:
        """The number of samples behind every key."""
        return dict(self._counts)

    @property
    def empty(self) -> bool:
        """Whether nothing has been added since the last reset."""
        return not self._sums

    def pop_and_reset(self) -> dict[str, float]:
        """Return the means (``{}`` when empty) and forget everything."""
        means = self.means()
        self.reset()
        return means

    def reset(self) -> None:
        """Forget every key."""
        self._sums.clear()
        self._counts.clear()

    def state_dict(self) -> dict[str, Any]:
        """Sums and counts, for checkpoints."""
        return {"sums": dict(self._sums), "counts": dict(self._counts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self._sums = {str(k): float(v) for k, v in state["sums"].items()}
        self._counts = {str(k): int(v) for k, v in state["counts"].items()}
