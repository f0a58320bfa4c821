"""Seeds in one batch: K seeds trained with ``vectorize_seeds=true`` against one seed alone and
against the K seeds one after the other, each a process of its own.

Two comparisons (issue 25, item 3), each timed from just before ``subprocess.Popen`` to exit
(imports included):

- CartPole, the default run: ``python -m hydra_pipeline seeds=[0,...,7] vectorize_seeds=true``
  against ``seed=0`` (target: at most 2x) and against ``seeds=[0,...,7]`` (one after the
  other). Every seed's ``summary.json`` must say it solved (its last stage stopped early at a
  mean return of at least 475).
- Pendulum, the zoo's settings (``+experiment=ppo_pendulum``, where the updates' small
  minibatches dominate): 5 seeds batched against the 5 one after the other (target: at most
  0.4x). ``--pendulum-steps`` shortens the stage (the speed ratio, not learning, is measured).

Each repetition runs a comparison's commands in a rotating order; the ratios are medians over
repetitions. The machine is shared: the load is printed before and after.

``--forward`` measures instead, in one process, what one forward of the members' stacked
models (``StackedModels.outputs``: the MLP's own stacked forward for all members at once, then
in the groups the engine makes, then under ``vmap``) costs against each member's own forward, on
the default CartPole run's 8 seeds (64 observations each, as a rollout step acts on; 2,048
with a backward, as an update step) and on Pendulum's 5 (4 observations each; 64 with a backward).

    python benchmarks/seed_batch.py [--seeds 8] [--repeats 3] [--pendulum-steps 16384] [--quick]
    python benchmarks/seed_batch.py --forward [--repeats 200]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import Report, Row, describe_load, median, print_report, python_command, run_timed

SOLVED_RETURN = 475.0
TARGET_RATIO = 2.0
PENDULUM_SEEDS = 5
PENDULUM_TARGET = 0.4
QUICK = (
    "task.num_envs=8",
    "pipeline.pipeline_stages.0.max_stage_steps=1024",
    "pipeline.pipeline_stages.1.max_stage_steps=1024",
)
"""A --quick run's overrides: short stages (a smoke run: solving is not asked for)."""


def timed_app(
    seeds: list[int], vectorize: bool, extra: tuple[str, ...], solving: bool = True
) -> tuple[float, bool]:
    """Run the app for ``seeds`` (one seed: ``seed=``); its seconds, and whether every run
    solved CartPole (``solving``; else ``True``)."""
    with tempfile.TemporaryDirectory(prefix="seed_batch_") as folder:
        choice = (
            [f"seed={seeds[0]}"] if len(seeds) == 1 else [f"seeds=[{','.join(map(str, seeds))}]"]
        )
        if vectorize:
            choice.append("vectorize_seeds=true")
        process = run_timed(
            python_command(
                "-m",
                "hydra_pipeline",
                *choice,
                *extra,
                f"hydra.run.dir={folder}",
                "progress_bar=false",
                "tensorboard=false",
            )
        )
        if process.returncode != 0:
            raise RuntimeError(f"the app failed ({choice}):\n{process.stdout[-3000:]}")
        runs = [Path(folder)] if len(seeds) == 1 else [Path(folder) / f"seed_{s}" for s in seeds]
        summaries = [json.loads((run / "summary.json").read_text()) for run in runs]
    solved = not solving or all(
        summary["stages"][-1]["early_stopped"]
        and summary["final_metrics"].get("reward", 0.0) >= SOLVED_RETURN
        for summary in summaries
    )
    return process.wall_seconds, solved


def measure(count: int, repeats: int, quick: bool = False) -> Report:
    """``repeats`` rotations of one seed, ``count`` seeds batched and ``count`` seeds one
    after the other."""
    extra = QUICK if quick else ()
    seeds = list(range(count))
    print(f"seed batch: {count} seeds, {repeats} repetition(s); {describe_load()}", flush=True)
    commands: dict[str, Callable[[], tuple[float, bool]]] = {
        "one seed": lambda: timed_app([0], False, extra),
        "batched": lambda: timed_app(seeds, True, extra),
        "one after the other": lambda: timed_app(seeds, False, extra),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    solved: dict[str, bool] = dict.fromkeys(commands, True)
    names = list(commands)
    for repeat in range(repeats):
        order = names[repeat % 3 :] + names[: repeat % 3]
        for name in order:
            seconds, all_solved = commands[name]()
            times[name].append(seconds)
            solved[name] = solved[name] and all_solved
            print(f"  {name}: {seconds:.2f} s (solved: {all_solved})", flush=True)
    against_one = paired_ratio(times["batched"], times["one seed"])
    against_sequential = paired_ratio(times["batched"], times["one after the other"])
    print(
        f"{count} seeds batched / one seed: {against_one:.3f}; batched / one after the other: "
        f"{against_sequential:.3f}; solved: {solved}; {describe_load()}"
    )
    rows = [
        batched_row(
            f"{count} seeds batched vs one seed (CartPole default run)",
            "one seed",
            times,
            f"<= {TARGET_RATIO:g}, every seed solved",
            None if quick else against_one <= TARGET_RATIO and solved["batched"],
        ),
        batched_row(f"{count} seeds batched vs one after the other", "one after the other", times),
    ]
    return Report(rows, {name: [{"seconds": t} for t in values] for name, values in times.items()})


def measure_pendulum(steps: int, repeats: int, quick: bool = False) -> Row:
    """``repeats`` rotations of 5 Pendulum seeds batched and one after the other."""
    count = 2 if quick else PENDULUM_SEEDS
    extra = ("+experiment=ppo_pendulum", f"pipeline.pipeline_stages.0.max_stage_steps={steps}")
    seeds = list(range(count))
    print(f"pendulum: {count} seeds, {steps} steps, {repeats} repetition(s); {describe_load()}")
    times: dict[str, list[float]] = {"batched": [], "one after the other": []}
    for repeat in range(repeats):
        order = list(times) if repeat % 2 == 0 else list(reversed(times))
        for name in order:
            seconds, _ = timed_app(seeds, name == "batched", extra, solving=False)
            times[name].append(seconds)
            print(f"  {name}: {seconds:.2f} s", flush=True)
    ratio = paired_ratio(times["batched"], times["one after the other"])
    print(f"{count} pendulum seeds batched / one after the other: {ratio:.3f}; {describe_load()}")
    return batched_row(
        f"{count} Pendulum seeds batched vs one after the other ({steps} steps each)",
        "one after the other",
        times,
        f"<= {PENDULUM_TARGET:g}",
        None if quick else ratio <= PENDULUM_TARGET,
    )


def paired_ratio(candidate: list[float], baseline: list[float]) -> float:
    """The median over repetitions of candidate / baseline seconds."""
    return median([c / b for c, b in zip(candidate, baseline, strict=True)])


def batched_row(
    name: str,
    baseline: str,
    times: dict[str, list[float]],
    target: str = "",
    met: bool | None = None,
) -> Row:
    """The row of the batched run's seconds against ``baseline``'s (medians, paired ratio)."""
    return Row(
        name,
        baseline,
        median(times[baseline]),
        median(times["batched"]),
        "s",
        paired_ratio(times["batched"], times[baseline]),
        target,
        met,
    )


FORWARD_CASES = [
    ("CartPole default run, a rollout step", 8, 64, (), False),
    ("CartPole default run, an update step", 8, 2048, (), True),
    ("Pendulum (zoo), a rollout step", 5, 4, ("+experiment=ppo_pendulum",), False),
    ("Pendulum (zoo), an update step", 5, 64, ("+experiment=ppo_pendulum",), True),
]
"""``--forward``'s cases: name, members, observations per member, the app's overrides, and
whether a backward follows (an update step) or not (acting)."""


FORWARDS = ("all in one group", "the engine's groups", "vmap")
"""How ``--forward`` runs the members' stacked models: the MLP's own stacked forward for all
members at once whatever the batch's size, in the groups the engine makes (each group's layer
outputs within ``STACKED_ACTIVATIONS``), or one call per member under ``torch.vmap``."""


def forward_pairs(
    runners: list[Any], batch: int, backward: bool, repeats: int, forward: str
) -> list[tuple[float, float]]:
    """Seconds of one forward of ``runners``' stacked models (run as ``forward`` says, one of
    :data:`FORWARDS`) and of their own forwards on ``batch`` observations each (with a
    backward of the values when ``backward``), in ``repeats`` interleaved pairs."""
    import torch
    from common import interleaved

    from hydra_pipeline.engine import stacked

    stack = stacked.StackedModels([runner.learner for runner in runners])
    stack.stacks_members = stack.stacks_members and forward != "vmap"
    if forward == "all in one group":
        limit, stacked.STACKED_ACTIVATIONS = stacked.STACKED_ACTIVATIONS, 1 << 62
    shape = runners[0].task.observation_shape
    observations = [torch.randn(batch, *shape) for _ in runners]

    def timed(values: Callable[[], list[Any]]) -> float:
        start = time.perf_counter()
        with torch.set_grad_enabled(backward):
            computed = values()
            if backward:
                sum(value.sum() for value in computed).backward()
        return time.perf_counter() - start

    def together() -> float:
        return timed(lambda: [output.values for output in stack.outputs(observations)])

    def own() -> float:
        return timed(
            lambda: [
                runner.model(part).values
                for runner, part in zip(runners, observations, strict=True)
            ]
        )

    try:
        return interleaved(repeats, together, own)
    finally:
        if forward == "all in one group":
            stacked.STACKED_ACTIVATIONS = limit


def measure_forward(repeats: int) -> Report:
    """The members' stacked forward (each of :data:`FORWARDS`) against the members' own
    forwards, per configuration."""
    import torch
    from common import app_config
    from engine_overhead import engine_runner

    torch.set_num_threads(1)
    rows = []
    print(f"forward: {repeats} interleaved calls each; {describe_load()}")
    with tempfile.TemporaryDirectory(prefix="seed_batch_forward_") as folder:
        for case, (name, count, batch, overrides, backward) in enumerate(FORWARD_CASES):
            runners = [
                engine_runner(app_config(1024, seed, *overrides), Path(folder) / f"{case}_{seed}")
                for seed in range(count)
            ]
            for forward in FORWARDS:
                pairs = forward_pairs(runners, batch, backward, repeats, forward)
                ratio = median([stacked / own for stacked, own in pairs])
                stacked_us = median([pair[0] for pair in pairs]) * 1e6
                own_us = median([pair[1] for pair in pairs]) * 1e6
                print(f"  {name}, {forward}: {stacked_us:.0f} us, own {own_us:.0f} us, {ratio:.3f}")
                label = f"{name}: {count} members' forward, {forward}"
                rows.append(Row(label, "their own forwards", own_us, stacked_us, "us", ratio))
    print(describe_load())
    return Report(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="how many seeds (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="rotations (default 3)")
    parser.add_argument(
        "--pendulum-steps", type=int, default=16384, help="Pendulum's stage (default 16384)"
    )
    parser.add_argument("--quick", action="store_true", help="2 seeds, one short rotation")
    parser.add_argument("--json", type=Path, help="also save every number to this file")
    parser.add_argument("--forward", action="store_true", help="the forwards, in process")
    args = parser.parse_args()
    if args.forward:
        repeats = 20 if args.quick else max(args.repeats, 200)
        print_report("seed_batch_forward", measure_forward(repeats), args.quick, args.json)
        return
    count, repeats = (2, 1) if args.quick else (args.seeds, args.repeats)
    report = measure(count, repeats, args.quick)
    steps = 1024 if args.quick else args.pendulum_steps
    report.rows.append(measure_pendulum(steps, repeats, args.quick))
    print_report("seed_batch", report, args.quick, args.json)


if __name__ == "__main__":
    main()
