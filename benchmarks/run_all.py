"""Run the whole benchmark suite and print one table.

    python benchmarks/run_all.py [--repeats 5] [--solve-repeats 1] [--quick] [--json out.json]

``--wait-for-quiet`` first waits (up to that many seconds) for the 1-minute load average to
fall below 0.5: the machine is shared, and every figure here is a wall-clock time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import engine_overhead
import memory
import minigrid_throughput
import startup
import time_to_solve
from common import QUICK_NOTE, Report, describe_load, format_table, wait_for_quiet, write_json

QUIET_LOAD = 0.5


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="engine and startup repetitions")
    parser.add_argument("--solve-repeats", type=int, default=1, help="time-to-solve runs per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run of everything")
    parser.add_argument("--wait-for-quiet", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--json", type=Path, help="also save every number to this file")
    args = parser.parse_args(argv)

    if args.wait_for_quiet > 0:
        wait_for_quiet(QUIET_LOAD, args.wait_for_quiet)
    print(f"start: {describe_load()}", flush=True)
    reports: dict[str, Report] = {}
    # Each script's own sizes, as its --quick or default run uses them.
    if args.quick:
        reports["engine_overhead"] = engine_overhead.measure(1, engine_overhead.QUICK_STEPS)
        reports["time_to_solve"] = time_to_solve.measure(args.seeds[:1], repeats=1)
        reports["startup"] = startup.measure(repeats=1, quick=True)
        reports["minigrid_throughput"] = minigrid_throughput.measure(
            1, minigrid_throughput.QUICK_STEPS
        )
        reports["memory"] = memory.measure(
            1, memory.QUICK_STEPS, args.seeds[:1], memory.QUICK_IMITATION_STEPS
        )
    else:
        reports["engine_overhead"] = engine_overhead.measure(args.repeats, engine_overhead.STEPS)
        reports["time_to_solve"] = time_to_solve.measure(args.seeds, args.solve_repeats)
        reports["startup"] = startup.measure(args.repeats)
        reports["minigrid_throughput"] = minigrid_throughput.measure(
            minigrid_throughput.REPEATS, minigrid_throughput.STEPS
        )
        reports["memory"] = memory.measure(args.repeats, memory.STEPS, args.seeds)
    print(f"end: {describe_load()}\n")
    if args.quick:
        print(QUICK_NOTE)
    print(format_table([row for report in reports.values() for row in report.rows]))
    if args.json:
        write_json(args.json, reports)


if __name__ == "__main__":
    main()
