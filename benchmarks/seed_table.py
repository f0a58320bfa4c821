"""The Markdown table of a learning-quality benchmark: per row, each compared side's per-seed
results summarized over seeds, with a paragraph saying where and when they were measured.

A benchmark script saves each run as a record (:func:`run_record`: its seed and outcome, the
commit, date and load average it ran at), builds one :class:`SeedRow` per environment from the
records (each side's result per seed, plus any text cells of its own), and prints
:func:`seed_table` of the rows inside :func:`documentation_block`, which
``common.replace_table`` puts in a documentation page. ``ppo_zoo.py`` is one user::

    rows = [SeedRow("Pendulum-v1 (100k)", {"ours": {0: -150.2, 1: -170.3},
                                           "SB3": {0: -140.0, 1: -310.5}},
                    notes=("-172", "met"))]
    print(seed_table(rows, sides=("ours", "SB3"), notes=("zoo published", "goal")))

Each side gets three columns: the mean ± sample standard deviation over its seeds, the
interquartile mean (IQM) with its 95% percentile-bootstrap interval, and its worst seed
(:func:`hydra_pipeline.seed_statistics.summarize_seeds` computes them).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from common import commit, load_average, table_markers

from hydra_pipeline.seed_statistics import summarize_seeds


@dataclass(frozen=True)
class SeedRow:
    """One row of a table over seeds.

    Attributes:
        label: The first cell (for instance the environment and its budget).
        sides: Each compared side's results by seed (a side without results shows ``-``).
        notes: The row's cells after the sides' columns, one per note column.
    """

    label: str
    sides: Mapping[str, Mapping[int, float]]
    notes: Sequence[str] = field(default_factory=tuple)


def seed_list(seeds: Iterable[int]) -> str:
    """``0-4`` for three or more consecutive seeds, else ``0, 2, 5``."""
    ordered = sorted(seeds)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ", ".join(map(str, ordered))


def _side_cells(results: Mapping[int, float]) -> list[str]:
    """Mean ± std, IQM [interval] and the worst seed of one side's results (``-`` for none)."""
    if not results:
        return ["-", "-", "-"]
    summary = summarize_seeds(list(results.values()))
    low, high = summary.iqm_interval
    worst = min(results, key=lambda seed: (results[seed], seed))  # ties: the lowest seed
    spread = f"{summary.mean:.1f}" + ("" if summary.std is None else f" ± {summary.std:.1f}")
    return [spread, f"{summary.iqm:.1f} [{low:.1f}, {high:.1f}]", f"{results[worst]:.1f} ({worst})"]


def seed_table(
    rows: Sequence[SeedRow],
    sides: Sequence[str],
    notes: Sequence[str] = (),
    label: str = "env (budget)",
) -> str:
    """The Markdown table of ``rows``.

    Args:
        rows: The rows, in order.
        sides: The compared sides, in column order (keys of each row's ``sides``).
        notes: The headers of the columns after the sides' (one per entry of a row's
            ``notes``).
        label: The header of the first column.

    Returns:
        The table: the label, the seeds (those of the first side; another side's are added
        in brackets where they differ), then per side ``<side>`` (mean ± std),
        ``<side> IQM [95% CI]`` and ``<side> worst (seed)``, then the notes.

    Raises:
        ValueError: A row names a side not in ``sides`` or has another number of notes.
    """
    header = [label, "seeds"]
    for side in sides:
        header += [side, f"{side} IQM [95% CI]", f"{side} worst (seed)"]
    header += notes
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        unknown = set(row.sides) - set(sides)
        if unknown or len(row.notes) != len(notes):
            raise ValueError(
                f"row {row.label!r}: sides {sorted(row.sides)} and {len(row.notes)} notes do "
                f"not fit the table's sides {list(sides)} and {len(notes)} notes"
            )
        results = [row.sides.get(side, {}) for side in sides]
        seeds = seed_list(results[0])
        others = [
            f"{side}: {seed_list(result) or 'none'}"
            for side, result in zip(sides[1:], results[1:], strict=True)
            if sorted(result) != sorted(results[0])
        ]
        cells = [row.label, seeds + (f" ({'; '.join(others)})" if others else "")]
        for result in results:
            cells += _side_cells(result)
        cells += row.notes
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_record(seed: int, outcome: Mapping[str, Any]) -> dict[str, Any]:
    """A run's entry in a benchmark's JSON file: its seed and outcome, and the commit, date
    and one-minute load average it ended at (:func:`provenance` reads them back)."""
    return {
        "seed": seed,
        **outcome,
        "commit": commit(),
        "date": datetime.date.today().isoformat(),
        "load_average": round(load_average()[0], 2),
    }


def provenance(records: Iterable[Mapping[str, Any]], machine: str) -> str:
    """Where and when ``records`` (from :func:`run_record`) were measured, in one sentence:
    ``at commit `abc` on 2026-12-07; <machine>; load average 3.4 to 8.3 when runs ended``."""
    listed = list(records)
    commits = sorted({record["commit"] for record in listed})
    dates = sorted({record["date"] for record in listed})
    loads = [record["load_average"] for record in listed]
    period = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    return (
        f"at commit {', '.join(f'`{name}`' for name in commits)} on {period}; {machine}; "
        f"load average {min(loads):.1f} to {max(loads):.1f} when runs ended"
    )


def documentation_block(script: str, text: str) -> str:
    """``text`` between ``script``'s table markers, as ``common.replace_table`` expects."""
    begin, end = table_markers(script)
    return f"{begin}\n{text}\n{end}"
