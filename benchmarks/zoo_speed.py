"""One run's speed against Stable-Baselines3 at rl-baselines3-zoo's settings (issue 25, item 4):
each ``+experiment=ppo_<env>`` preset and SB3 with the zoo's settings for the same environment,
same budget, same seed, in pairs.

Each pair trains ours (``python -m hydra_pipeline +experiment=...``, as ``ppo_zoo.py`` does) and
SB3 (``sb3_zoo.py``, without its evaluation), each in a process of its own with one torch
thread, the two alternating which goes first (``common.interleaved``), so a slow phase of the
shared machine hits both. Four figures per environment, each the median over the pairs of
ours / SB3: the training wall and CPU time each side records itself (ours ``summary.json``'s,
SB3 those of ``model.learn``), and the wall and CPU time of the whole process (imports and
startup included). CPU times are the figures least disturbed by other work on a shared
machine; the target is a training wall-time ratio of at most 0.6.

The budget defaults to 65,536 steps: a whole number of rollouts at both presets' shapes (16 of
Pendulum's 4 x 1024 steps, 4 of LunarLander's 16 x 1024), shorter than the zoo's budgets; a
ratio of speeds needs no more.

    python benchmarks/zoo_speed.py [--envs pendulum lunarlander] [--steps 65536] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from common import (
    Report,
    Row,
    describe_load,
    interleaved,
    median,
    print_report,
    python_command,
    run_timed,
)
from ppo_zoo import ENVIRONMENTS, Environment, sb3_arguments, train_arguments

TARGET_RATIO = 0.6
"""Issue 25's target: one run in at most this share of SB3's training time."""

SPEED_ENVIRONMENTS = ("pendulum", "lunarlander", "lunarlandercontinuous")
"""The presets measured: the zoo's continuous-control and LunarLander settings."""

FIGURES = {
    "train_seconds": "training",
    "train_cpu_seconds": "training CPU",
    "process_seconds": "process",
    "cpu_seconds": "process CPU",
}
"""The figures of each run, by their names in the table: the training wall and CPU time each
side records, and the whole process's wall and CPU time."""

QUICK_STEPS = 4096
"""A --quick run's budget: one Pendulum rollout (LunarLander rounds it up to one of its own)."""


def timed(
    what: str, arguments: list[str], record: Callable[[], tuple[float, float]]
) -> dict[str, float]:
    """Run ``python <arguments>``; its training wall and CPU seconds (``record()``, read after
    it exits), and the process's.

    Raises:
        RuntimeError: The process failed (with the end of its output).
    """
    process = run_timed(python_command(*arguments), timeout=3600)
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{process.stdout[-3000:]}")
    train_seconds, train_cpu_seconds = record()
    return {
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "process_seconds": process.wall_seconds,
        "cpu_seconds": process.cpu_seconds,
    }


def ours(environment: Environment, steps: int, seed: int) -> dict[str, float]:
    """Train the preset in a fresh folder; its ``summary.json``'s timings and the
    process's."""
    with tempfile.TemporaryDirectory(prefix="zoo_speed_") as folder:
        run = Path(folder) / "run"

        def record() -> tuple[float, float]:
            speed = json.loads((run / "summary.json").read_text())["speed"]
            return float(speed["wall_seconds"]), float(speed["cpu_seconds"])

        return timed(environment.preset, train_arguments(environment, steps, seed, run), record)


def sb3(environment: Environment, steps: int, seed: int) -> dict[str, float]:
    """Train SB3 with the zoo's settings (no evaluation); ``model.learn``'s timings and the
    process's."""
    with tempfile.TemporaryDirectory(prefix="zoo_speed_") as folder:
        result = Path(folder) / "sb3.json"

        def record() -> tuple[float, float]:
            timings = json.loads(result.read_text())
            return float(timings["train_seconds"]), float(timings["train_cpu_seconds"])

        arguments = sb3_arguments(environment, steps, seed, 0, result)
        return timed(f"SB3 on {environment.label}", arguments, record)


def describe(run: dict[str, float]) -> str:
    """A run's figures in words."""
    return ", ".join(f"{what} {run[key]:.1f} s" for key, what in FIGURES.items())


def measure(names: list[str], steps: int, repeats: int, seed: int) -> Report:
    """``repeats`` pairs per environment: two rows each (training and process time)."""
    report = Report()
    for name in names:
        environment = ENVIRONMENTS[name]
        print(f"{environment.label}: {repeats} pairs of {steps} steps; {describe_load()}")
        pairs = interleaved(
            repeats,
            lambda: ours(environment, steps, seed),  # noqa: B023 - used at once
            lambda: sb3(environment, steps, seed),  # noqa: B023 - used at once
        )
        for mine, theirs in pairs:
            print(f"  ours {describe(mine)}; SB3 {describe(theirs)}", flush=True)
        report.runs[name] = [{"ours": mine, "sb3": theirs} for mine, theirs in pairs]
        for key, what in FIGURES.items():
            ratio = median([mine[key] / theirs[key] for mine, theirs in pairs])
            training = key == "train_seconds"
            report.rows.append(
                Row(
                    name=f"{environment.label} {what} time",
                    baseline="SB3",
                    baseline_value=median([theirs[key] for _, theirs in pairs]),
                    value=median([mine[key] for mine, _ in pairs]),
                    unit="s",
                    ratio=ratio,
                    target=f"<= {TARGET_RATIO}" if training else "",
                    met=ratio <= TARGET_RATIO if training else None,
                )
            )
    print(describe_load())
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--envs", nargs="+", choices=SPEED_ENVIRONMENTS, default=["pendulum", "lunarlander"]
    )
    parser.add_argument("--steps", type=int, default=65_536, help="per run; default 65536")
    parser.add_argument("--repeats", type=int, default=3, help="pairs per environment")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: one short pair")
    parser.add_argument("--json", type=Path, help="also save every number to this file")
    arguments = parser.parse_args()
    steps, repeats = (QUICK_STEPS, 1) if arguments.quick else (arguments.steps, arguments.repeats)
    report = measure(arguments.envs, steps, repeats, arguments.seed)
    print_report("zoo_speed", report, arguments.quick, arguments.json)


if __name__ == "__main__":
    main()
