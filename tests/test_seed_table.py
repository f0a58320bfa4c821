"""The Markdown table of the learning-quality benchmarks (``benchmarks/seed_table.py``), on
made-up per-seed results whose statistics are worked out by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from seed_table import SeedRow, documentation_block, provenance, seed_list, seed_table


def test_seed_list() -> None:
    assert seed_list([2, 0, 1, 3]) == "0-3"
    assert seed_list([0, 1]) == "0, 1"
    assert seed_list([5, 0, 2]) == "0, 2, 5"
    assert seed_list([]) == ""


def test_rows_by_hand() -> None:
    """Ours 0, 3, 6: mean 3 and sample deviation 3; with three seeds the IQM trims nothing
    and every resample made of one seed has probability 1/27 > 2.5%, so its interval is the
    data's range. SB3's two equal seeds have no spread; a side without runs shows dashes."""
    rows = [
        SeedRow("A (1k)", {"ours": {0: 0.0, 1: 3.0, 2: 6.0}, "SB3": {1: 5.0, 0: 5.0}}, ("x",)),
        SeedRow("B (2k)", {"ours": {4: -1.5}}, ("y",)),
    ]
    table = seed_table(rows, sides=("ours", "SB3"), notes=("note",), label="env")
    assert table.splitlines() == [
        "| env | seeds | ours | ours IQM [95% CI] | ours worst (seed) | SB3 | SB3 IQM [95% CI] "
        "| SB3 worst (seed) | note |",
        "|---|---|---|---|---|---|---|---|---|",
        "| A (1k) | 0-2 (SB3: 0, 1) | 3.0 ± 3.0 | 3.0 [0.0, 6.0] | 0.0 (0) | 5.0 ± 0.0 "
        "| 5.0 [5.0, 5.0] | 5.0 (0) | x |",
        "| B (2k) | 4 (SB3: none) | -1.5 | -1.5 [-1.5, -1.5] | -1.5 (4) | - | - | - | y |",
    ]


@pytest.mark.parametrize(
    "row",
    [SeedRow("A", {"other": {0: 1.0}}, ("x",)), SeedRow("A", {"ours": {0: 1.0}}, ())],
)
def test_a_row_that_does_not_fit_is_refused(row: SeedRow) -> None:
    with pytest.raises(ValueError, match="row 'A'"):
        seed_table([row], sides=("ours",), notes=("note",))


def test_provenance_and_block() -> None:
    records = [
        {"commit": "b", "date": "2026-12-08", "load_average": 2.04},
        {"commit": "a", "date": "2026-12-07", "load_average": 5.5},
    ]
    assert provenance(records, "a machine") == (
        "at commit `a`, `b` on 2026-12-07 to 2026-12-08; a machine; load average 2.0 to 5.5 "
        "when runs ended"
    )
    assert documentation_block("x.py", "text") == (
        "<!-- x.py table: begin -->\ntext\n<!-- x.py table: end -->"
    )
