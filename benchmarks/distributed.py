"""Distributed training: environment steps per second of 2 processes against 1.

The same run (``pipeline=ppo``, one fixed-length PPO stage with its early stopping off,
TensorBoard and checkpoints off, the same seed, a learning rate of 0 so that both sides step
policies that behave alike: the updates are all computed and exchanged, the weights stay)
with ``distributed.nproc_per_node=2`` and without, at the same per-process settings
(``task.num_envs``, ``num_steps``, minibatches): two processes step twice the environments
per rollout and finish the stage in half the rollouts.
The figure is the training's environment steps per second (``summary.json``'s
``steps_per_second``: all processes' steps over rank 0's training wall time, startup
excluded), median of the paired ratios 2 processes / 1 process, on two tasks:

* the built-in CartPole (``task=cartpole``, batched in torch: the model's forward passes and
  updates dominate, so the gradient exchange and the shared cores show);
* Gymnasium's ``LunarLander-v3`` (``task=gym``: Box2D stepping in Python dominates, the case
  data-parallel processes scale best; target >= 1.6x on 2 cores).

Beside them, the ceiling: two independent 1-process runs training side by side, with no
communication, against one — what this machine's cores give two processes of this workload (on a
virtual machine, two vCPUs need not give twice one's speed). The 2-process ratio's distance to the
ceiling is the cost of training as one run: waiting at each exchange for the slower rank.
Each repetition runs the three in a rotated order, so a busy phase of a shared machine hits each.

    python benchmarks/distributed.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    Report,
    Row,
    describe_load,
    median,
    print_report,
    python_command,
    run_timed,
)

TARGET_GYM_SPEEDUP = 1.6

FIXED_PPO = [
    "pipeline=ppo",
    # Every update computed and exchanged, the weights left as they start: learning would
    # make the sides' policies differ (the 2-process run updates on twice the data), and
    # LunarLander's step cost depends on how the lander flies (engine particles, hovering).
    "pipeline.optimizer_builder.lr=0",
    "pipeline.pipeline_stages.0.early_stopping_criterion=null",
    "tensorboard=false",
    "pipeline.save_interval=null",
    "progress_bar=false",
]

TASKS: dict[str, list[str]] = {
    # steps per process per run (full / --quick)
    "cartpole": ["task=cartpole", "task.num_envs=64", "pipeline.num_steps=128"],
    "LunarLander-v3": [
        "task=gym",
        "task.env_id=LunarLander-v3",
        "task.num_envs=8",
        "pipeline.num_steps=128",
        "pipeline.num_mini_batch=4",
    ],
}
STEPS_PER_PROCESS = {"cartpole": 49_152, "LunarLander-v3": 16_384}
QUICK_STEPS_PER_PROCESS = {"cartpole": 8_192, "LunarLander-v3": 2_048}


@dataclass
class Run:
    """One training run: its training speed and how long its process took."""

    steps_per_second: float
    wall_seconds: float
    summary: dict[str, Any]


def run_app(task: str, processes: int, steps_per_process: int, seed: int = 0) -> Run:
    """Train ``task`` with ``processes`` processes, each stepping ``steps_per_process``."""
    overrides = [
        *FIXED_PPO,
        *TASKS[task],
        f"pipeline.pipeline_stages.0.max_stage_steps={steps_per_process * processes}",
        f"distributed.nproc_per_node={processes}",
        f"seed={seed}",
    ]
    with tempfile.TemporaryDirectory(prefix="distributed_") as folder:
        process = run_timed(
            python_command("-m", "hydra_pipeline", *overrides, f"hydra.run.dir={folder}")
        )
        if process.returncode != 0:
            raise RuntimeError(f"the app failed:\n{process.stdout[-3000:]}")
        summary = json.loads((Path(folder) / "summary.json").read_text())
    return Run(float(summary["speed"]["steps_per_second"]), process.wall_seconds, summary)


def run_independent_pair(task: str, steps_per_process: int) -> float:
    """The steps per second of two 1-process runs (seeds 0 and 1) training side by side, with
    no communication: what this machine's cores give two processes, the ceiling of the
    2-process run."""
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda seed: run_app(task, 1, steps_per_process, seed), (0, 1)))
    return sum(run.steps_per_second for run in runs)


def measure_task(
    task: str, repeats: int, steps_per_process: int
) -> tuple[list[Row], dict[str, Any]]:
    """2 processes against 1 on ``task``, and the ceiling (two independent processes against
    1): table rows, and every run's numbers. Each repetition runs the three in a rotated
    order, so a busy phase of a shared machine hits each of them."""
    print(f"{task}: {repeats} repetitions of 1 and 2 processes; {describe_load()}", flush=True)
    kinds: dict[str, Callable[[], float]] = {
        "two_processes": lambda: run_app(task, 2, steps_per_process).steps_per_second,
        "one_process": lambda: run_app(task, 1, steps_per_process).steps_per_second,
        "independent_pair": lambda: run_independent_pair(task, steps_per_process),
    }
    speeds: dict[str, list[float]] = {kind: [] for kind in kinds}
    order = list(kinds)
    for index in range(repeats):
        for kind in order[index % 3 :] + order[: index % 3]:
            speeds[kind].append(kinds[kind]())
        two, one, pair = (speeds[kind][-1] for kind in kinds)
        print(
            f"  run {index + 1}: 2 processes {two:,.0f} steps/s, 1 process {one:,.0f}, two "
            f"independent processes {pair:,.0f}: ratios {two / one:.3f}, ceiling "
            f"{pair / one:.3f}",
            flush=True,
        )
    one_speeds = speeds["one_process"]
    ratio = median(
        [two / one for two, one in zip(speeds["two_processes"], one_speeds, strict=True)]
    )
    ceiling = median(
        [pair / one for pair, one in zip(speeds["independent_pair"], one_speeds, strict=True)]
    )
    print(
        f"{task}: 2/1 processes steps/s ratio {ratio:.3f}, ceiling {ceiling:.3f}; "
        f"{describe_load()}",
        flush=True,
    )
    gym = task != "cartpole"
    rows = [
        Row(
            name=f"env steps/s, 2 processes vs 1, {task} (same per-process settings)",
            baseline="1 process",
            baseline_value=median(one_speeds),
            value=median(speeds["two_processes"]),
            unit="steps/s",
            ratio=ratio,
            target=f">= {TARGET_GYM_SPEEDUP}x" if gym else "",
            met=ratio >= TARGET_GYM_SPEEDUP if gym else None,
        ),
        Row(
            name=f"env steps/s, 2 independent 1-process runs vs 1, {task} (the ceiling)",
            baseline="1 process",
            baseline_value=median(one_speeds),
            value=median(speeds["independent_pair"]),
            unit="steps/s",
            ratio=ceiling,
        ),
    ]
    return rows, speeds


def measure(repeats: int, quick: bool = False, tasks: list[str] | None = None) -> Report:
    """Every task's 2-against-1 ratio."""
    report = Report()
    steps = QUICK_STEPS_PER_PROCESS if quick else STEPS_PER_PROCESS
    for task in tasks or list(TASKS):
        rows, runs = measure_task(task, repeats, steps[task])
        report.rows.extend(rows)
        report.runs[task] = runs
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny step counts")
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--json", type=Path, help="also save every number to this file")
    args = parser.parse_args()
    report = measure(1 if args.quick else args.repeats, args.quick, args.tasks)
    print_report("distributed", report, args.quick, args.json)


if __name__ == "__main__":
    main()
