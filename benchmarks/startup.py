"""Startup latency and the cost of TensorBoard logging, for ``python -m hydra_pipeline``.

(a) Startup: from just before ``subprocess.Popen`` to the first environment step and to the
first gradient update of a short default run (the ``first_step_time`` and
``first_update_time`` Unix times in its ``summary.json``), against the bare cost of
``python -c "import torch"`` measured the same way (the Unix time it prints once torch is
imported). The difference is what the app adds: Hydra, composing the config, building, and
the first ``torch.optim`` step (which imports ``torch._dynamo``).

(b) TensorBoard: the same fixed-length run (the default pipeline with the PPO stage's early
stopping off, 200k PPO steps, same seed) with ``tensorboard=true`` and ``tensorboard=false``:
training wall time and steps/s from ``summary.json``, and process wall time.

In both, candidate and baseline runs alternate; ratios are medians of the paired ratios.

    python benchmarks/startup.py [--repeats 5] [--quick]
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

TARGET_FIRST_UPDATE_SECONDS = 2.5
TARGET_TENSORBOARD_COST = 0.05
SHORT_RUN = [
    "pipeline.pipeline_stages.0.max_stage_steps=8192",  # one rollout per stage
    "pipeline.pipeline_stages.1.max_stage_steps=8192",
]
FIXED_RUN = [
    "pipeline.pipeline_stages.1.early_stopping_criterion=null",
    "pipeline.pipeline_stages.1.max_stage_steps=200000",
]


@dataclass
class AppRun:
    """One ``python -m hydra_pipeline`` process.

    Attributes:
        wall_seconds: From just before ``Popen`` to exit.
        first_step: Seconds from just before ``Popen`` to the first environment step.
        first_update: Seconds from just before ``Popen`` to the first gradient update.
        summary: Its ``summary.json``.
    """

    wall_seconds: float
    first_step: float
    first_update: float
    summary: dict[str, Any]

    @property
    def training_seconds(self) -> float:
        return float(self.summary["speed"]["wall_seconds"])

    @property
    def steps_per_second(self) -> float:
        return float(self.summary["speed"]["steps_per_second"])


def run_app(overrides: list[str]) -> AppRun:
    """Run the app with ``overrides`` in a fresh run folder and read its summary."""
    with tempfile.TemporaryDirectory(prefix="startup_") as folder:
        process = run_timed(
            python_command(
                "-m", "hydra_pipeline", *overrides, f"hydra.run.dir={folder}", "progress_bar=false"
            )
        )
        if process.returncode != 0:
            raise RuntimeError(f"the app failed:\n{process.stdout[-3000:]}")
        summary = json.loads((Path(folder) / "summary.json").read_text())
    speed = summary["speed"]
    return AppRun(
        process.wall_seconds,
        speed["first_step_time"] - process.start_time,
        speed["first_update_time"] - process.start_time,
        summary,
    )


@dataclass
class TorchImport:
    """One ``python -c "import torch"`` process: when torch was imported, and when it exited."""

    imported: float
    wall_seconds: float


def run_import_torch() -> TorchImport:
    """The baseline: a process that imports torch, prints the time, and exits."""
    process = run_timed(python_command("-c", "import time, torch; print(repr(time.time()))"))
    if process.returncode != 0:
        raise RuntimeError(f"python -c 'import torch' failed:\n{process.stdout}")
    imported = float(process.stdout.strip().splitlines()[-1]) - process.start_time
    return TorchImport(imported, process.wall_seconds)


def measure_startup(repeats: int) -> Report:
    """(a): first environment step and first gradient update against ``import torch``."""
    print(f"startup: {repeats} repetitions; {describe_load()}")
    pairs = interleaved(repeats, lambda: run_app(SHORT_RUN), run_import_torch)
    for index, (app, torch_import) in enumerate(pairs):
        print(
            f"  run {index + 1}: app first step {app.first_step:.3f} s, first update "
            f"{app.first_update:.3f} s, exit {app.wall_seconds:.3f} s; import torch "
            f"{torch_import.imported:.3f} s, exit {torch_import.wall_seconds:.3f} s",
            flush=True,
        )
    first_step = [app.first_step for app, _ in pairs]
    first_update = [app.first_update for app, _ in pairs]
    imported = [torch_import.imported for _, torch_import in pairs]
    torch_exit = [torch_import.wall_seconds for _, torch_import in pairs]
    step_median, update_median = median(first_step), median(first_update)
    import_median = median(imported)
    print(
        f"first step {step_median:.3f} s, first update {update_median:.3f} s, import torch "
        f"{import_median:.3f} s (exit {median(torch_exit):.3f} s) (medians); the app adds "
        f"{median([s - i for s, i in zip(first_step, imported, strict=True)]):.3f} s before its "
        f"first step and {median([u - i for u, i in zip(first_update, imported, strict=True)]):.3f}"
        f" s before its first update; first-update/import-torch ratio: "
        f"{median([u / i for u, i in zip(first_update, imported, strict=True)]):.3f}; "
        f"{describe_load()}"
    )
    rows = [
        Row(
            "process start -> first env step",
            "import torch",
            import_median,
            step_median,
            "s",
            median([s / i for s, i in zip(first_step, imported, strict=True)]),
        ),
        Row(
            "process start -> first gradient update",
            "import torch",
            import_median,
            update_median,
            "s",
            median([u / i for u, i in zip(first_update, imported, strict=True)]),
            f"<= {TARGET_FIRST_UPDATE_SECONDS:g} s",
            update_median <= TARGET_FIRST_UPDATE_SECONDS,
        ),
    ]
    runs = {
        "app_first_step_seconds": first_step,
        "app_first_update_seconds": first_update,
        "app_exit_seconds": [app.wall_seconds for app, _ in pairs],
        "import_torch_seconds": imported,
        "import_torch_exit_seconds": torch_exit,
    }
    return Report(rows, runs)


def measure_tensorboard(repeats: int, fixed_run: list[str]) -> Report:
    """(b): the same fixed-length run with TensorBoard on and off."""
    print(f"tensorboard: {repeats} repetitions of {' '.join(fixed_run)}; {describe_load()}")
    pairs = interleaved(
        repeats,
        lambda: run_app([*fixed_run, "seed=0", "tensorboard=true"]),
        lambda: run_app([*fixed_run, "seed=0", "tensorboard=false"]),
    )
    for index, (on, off) in enumerate(pairs):
        print(
            f"  run {index + 1}: on {on.training_seconds:.3f} s training "
            f"({on.steps_per_second:,.0f} steps/s), {on.wall_seconds:.3f} s process; off "
            f"{off.training_seconds:.3f} s training ({off.steps_per_second:,.0f} steps/s), "
            f"{off.wall_seconds:.3f} s process",
            flush=True,
        )
    training_ratio = median([on.training_seconds / off.training_seconds for on, off in pairs])
    process_ratio = median([on.wall_seconds / off.wall_seconds for on, off in pairs])
    on_rate = median([on.steps_per_second for on, _ in pairs])
    off_rate = median([off.steps_per_second for _, off in pairs])
    print(
        f"on {on_rate:,.0f} steps/s, off {off_rate:,.0f} steps/s (medians); on/off training "
        f"time ratio: {training_ratio:.3f} (cost {100 * (training_ratio - 1):.1f}%), process "
        f"time ratio {process_ratio:.3f} (cost {100 * (process_ratio - 1):.1f}%); {describe_load()}"
    )
    target = f"ratio <= {1 + TARGET_TENSORBOARD_COST:.2f}"
    rows = [
        Row(
            "TensorBoard on (training wall)",
            "off",
            median([off.training_seconds for _, off in pairs]),
            median([on.training_seconds for on, _ in pairs]),
            "s",
            training_ratio,
            target,
            training_ratio <= 1 + TARGET_TENSORBOARD_COST,
        ),
        Row(
            "TensorBoard on (process wall)",
            "off",
            median([off.wall_seconds for _, off in pairs]),
            median([on.wall_seconds for on, _ in pairs]),
            "s",
            process_ratio,
            target,
            process_ratio <= 1 + TARGET_TENSORBOARD_COST,
        ),
    ]
    runs = {
        "on_training_seconds": [on.training_seconds for on, _ in pairs],
        "off_training_seconds": [off.training_seconds for _, off in pairs],
        "on_steps_per_second": [on.steps_per_second for on, _ in pairs],
        "off_steps_per_second": [off.steps_per_second for _, off in pairs],
        "on_process_seconds": [on.wall_seconds for on, _ in pairs],
        "off_process_seconds": [off.wall_seconds for _, off in pairs],
    }
    return Report(rows, runs)


def measure(repeats: int, quick: bool = False) -> Report:
    """Both parts; ``quick`` shortens the TensorBoard run to one rollout per stage."""
    startup = measure_startup(repeats)
    fixed_run = [FIXED_RUN[0], *SHORT_RUN] if quick else FIXED_RUN
    tensorboard = measure_tensorboard(repeats, fixed_run)
    return Report(
        startup.rows + tensorboard.rows, {"startup": startup.runs, "tensorboard": tensorboard.runs}
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="repetitions of each (default 5)")
    parser.add_argument("--quick", action="store_true", help="one short run of each")
    parser.add_argument("--json", type=Path, help="also save every number to this file")
    args = parser.parse_args(argv)
    report = measure(1 if args.quick else args.repeats, args.quick)
    print_report("startup", report, args.quick, args.json)


if __name__ == "__main__":
    main()
