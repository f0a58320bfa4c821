"""Distributed training: environment steps per second of 2 processes against 1.

The same run (``pipeline=ppo``, one fixed-length PPO stage with its early stopping off,
TensorBoard and checkpoints off, the same seed) with ``distributed.nproc_per_node=2`` and
without, at the same per-process settings (``task.num_envs``, ``num_steps``, minibatches): two
processes step twice the environments per rollout and finish the stage in half the rollouts.
The figure is the training's environment steps per second (``summary.json``'s
``steps_per_second``: all processes' steps over rank 0's training wall time, startup
excluded), median of the paired ratios 2 processes / 1 process, on two tasks:

* the built-in CartPole (``task=cartpole``, batched in torch: the model's forward passes and
  updates dominate, so the gradient all-reduce and the shared cores show);
* Gymnasium's ``LunarLander-v3`` (``task=gym``: Box2D stepping in Python dominates, the case
  data-parallel processes scale best; target >= 1.6x on 2 cores).

Runs alternate (1 process, 2 processes, then 2, 1, ...), so a busy phase of a shared machine
hits both sides.

    python benchmarks/distributed.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

TARGET_GYM_SPEEDUP = 1.6

FIXED_PPO = [
    "pipeline=ppo",
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


def run_app(task: str, processes: int, steps_per_process: int) -> Run:
    """Train ``task`` with ``processes`` processes, each stepping ``steps_per_process``."""
    overrides = [
        *FIXED_PPO,
        *TASKS[task],
        f"pipeline.pipeline_stages.0.max_stage_steps={steps_per_process * processes}",
        f"distributed.nproc_per_node={processes}",
    ]
    with tempfile.TemporaryDirectory(prefix="distributed_") as folder:
        process = run_timed(
            python_command("-m", "hydra_pipeline", *overrides, f"hydra.run.dir={folder}")
        )
        if process.returncode != 0:
            raise RuntimeError(f"the app failed:\n{process.stdout[-3000:]}")
        summary = json.loads((Path(folder) / "summary.json").read_text())
    return Run(float(summary["speed"]["steps_per_second"]), process.wall_seconds, summary)


def measure_task(task: str, repeats: int, steps_per_process: int) -> tuple[Row, dict[str, Any]]:
    """2 processes against 1 on ``task``: one table row, and every run's numbers."""
    print(f"{task}: {repeats} repetitions of 1 and 2 processes; {describe_load()}", flush=True)
    pairs = interleaved(
        repeats,
        lambda: run_app(task, 2, steps_per_process),
        lambda: run_app(task, 1, steps_per_process),
    )
    for index, (two, one) in enumerate(pairs):
        print(
            f"  run {index + 1}: 2 processes {two.steps_per_second:,.0f} steps/s "
            f"(process {two.wall_seconds:.1f} s), 1 process {one.steps_per_second:,.0f} "
            f"steps/s (process {one.wall_seconds:.1f} s), ratio "
            f"{two.steps_per_second / one.steps_per_second:.3f}",
            flush=True,
        )
    ratio = median([two.steps_per_second / one.steps_per_second for two, one in pairs])
    print(f"{task}: 2/1 processes steps/s ratio: {ratio:.3f}; {describe_load()}", flush=True)
    gym = task != "cartpole"
    row = Row(
        name=f"env steps/s, 2 processes vs 1, {task} (same per-process settings)",
        baseline="1 process",
        baseline_value=median([one.steps_per_second for _, one in pairs]),
        value=median([two.steps_per_second for two, _ in pairs]),
        unit="steps/s",
        ratio=ratio,
        target=f">= {TARGET_GYM_SPEEDUP}x" if gym else "",
        met=ratio >= TARGET_GYM_SPEEDUP if gym else None,
    )
    runs = {
        "two_processes": [vars(two) for two, _ in pairs],
        "one_process": [vars(one) for _, one in pairs],
    }
    return row, runs


def measure(repeats: int, quick: bool = False, tasks: list[str] | None = None) -> Report:
    """Every task's 2-against-1 ratio."""
    report = Report()
    steps = QUICK_STEPS_PER_PROCESS if quick else STEPS_PER_PROCESS
    for task in tasks or list(TASKS):
        row, runs = measure_task(task, repeats, steps[task])
        report.rows.append(row)
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
