"""Time to solve CartPole, from process start: the default app run against Stable-Baselines3.

The candidate is the default run, ``python -m hydra_pipeline seed=<s>`` (imitation, then PPO
until the mean episode return reaches 475); the baseline is ``sb3_cartpole.py --seed <s>``
(SB3's PPO with rl-baselines3-zoo's tuned CartPole-v1 hyperparameters on Gymnasium's
``CartPole-v1``, stopped once the last 20 episodes average >= 475). Each is a process of its
own, timed from just before ``subprocess.Popen`` to its exit, so both pay their imports. A run
counts only if it really solved: the app's ``summary.json`` must say its PPO stage stopped
early on a mean return >= 475 of the stage's last (up to 100) episodes, the run's final
return; SB3's result must say solved.

For each seed (and each repetition) the two run back to back, alternating which goes first;
the ratio is the median over those pairs of app time / SB3 time.

    python benchmarks/time_to_solve.py [--seeds 0 1 2] [--repeats 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from functools import partial
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

BENCHMARKS = Path(__file__).resolve().parent
SOLVED_RETURN = 475.0
TARGET_SECONDS = 6.0


@dataclass
class Solve:
    """One run to a solved CartPole.

    Attributes:
        seconds: From just before ``Popen`` to the process's exit.
        solved: Whether it really solved (checked in its own output files).
        steps: Environment steps it took.
        reward: The mean episode return it ended with.
        note: Anything worth saying (SB3 needing more than the zoo's 1e5 steps).
    """

    seconds: float
    solved: bool
    steps: int
    reward: float
    note: str = ""


def run_app(seed: int) -> Solve:
    """``python -m hydra_pipeline seed=<seed>`` in a fresh run folder; check its summary."""
    with tempfile.TemporaryDirectory(prefix="time_to_solve_app_") as folder:
        process = run_timed(
            python_command(
                "-m",
                "hydra_pipeline",
                f"seed={seed}",
                f"hydra.run.dir={folder}",
                "progress_bar=false",
            )
        )
        if process.returncode != 0:
            raise RuntimeError(f"the app failed (seed {seed}):\n{process.stdout[-3000:]}")
        summary = json.loads((Path(folder) / "summary.json").read_text())
    reward = float(summary["final_metrics"].get("reward", float("nan")))
    stop = summary["stages"][1]["early_stop"]
    solved = stop is not None and stop["metrics"]["reward"] == reward >= SOLVED_RETURN
    return Solve(process.wall_seconds, solved, int(summary["total_steps"]), reward)


def run_sb3(seed: int, max_steps: int) -> Solve:
    """``sb3_cartpole.py --seed <seed>``; read its result file."""
    with tempfile.TemporaryDirectory(prefix="time_to_solve_sb3_") as folder:
        result_path = Path(folder) / "result.json"
        process = run_timed(
            python_command(
                str(BENCHMARKS / "sb3_cartpole.py"),
                "--seed",
                str(seed),
                "--max-steps",
                str(max_steps),
                "--result",
                str(result_path),
            )
        )
        if process.returncode != 0:
            raise RuntimeError(f"SB3 failed (seed {seed}):\n{process.stdout[-3000:]}")
        result = json.loads(result_path.read_text())
    note = "" if result["solved_within_zoo_budget"] else "needed more than the zoo's 1e5 steps"
    if not result["solved"]:
        note = f"not solved within {max_steps} steps"
    return Solve(
        process.wall_seconds,
        bool(result["solved"]),
        int(result["timesteps"]),
        float(result["mean_return_last_20"]),
        note,
    )


def measure(seeds: list[int], repeats: int, sb3_max_steps: int = 300_000) -> Report:
    """Run app and SB3 for every seed, ``repeats`` times, alternating which goes first."""
    print(f"time to solve: seeds {seeds}, {repeats} repetition(s) each; {describe_load()}")
    per_seed: dict[int, list[tuple[Solve, Solve]]] = {}
    for seed in seeds:
        pairs = interleaved(repeats, partial(run_app, seed), partial(run_sb3, seed, sb3_max_steps))
        per_seed[seed] = pairs
        for app, sb3 in pairs:
            print(
                f"  seed {seed}: app {app.seconds:.2f} s ({app.steps} steps, reward "
                f"{app.reward:.1f}, solved {app.solved}), SB3 {sb3.seconds:.2f} s ({sb3.steps} "
                f"steps, last-20 mean {sb3.reward:.1f}, solved {sb3.solved}"
                f"{', ' + sb3.note if sb3.note else ''})",
                flush=True,
            )
    all_pairs = [pair for pairs in per_seed.values() for pair in pairs]
    app_seconds = [median([app.seconds for app, _ in per_seed[seed]]) for seed in seeds]
    sb3_seconds = [median([sb3.seconds for _, sb3 in per_seed[seed]]) for seed in seeds]
    ratio = median([app.seconds / sb3.seconds for app, sb3 in all_pairs])
    app_median, sb3_median = median(app_seconds), median(sb3_seconds)
    all_solved = all(app.solved for app, _ in all_pairs)
    print(
        f"app {app_median:.2f} s, SB3 {sb3_median:.2f} s (medians over seeds); app/SB3 time "
        f"ratio: {ratio:.3f} (SB3 takes {1 / ratio:.2f}x as long); app solved every run: "
        f"{all_solved}, SB3: {all(sb3.solved for _, sb3 in all_pairs)}; {describe_load()}"
    )
    rows = [
        Row(
            "time to solve CartPole (default run)",
            "SB3 PPO, rl-zoo",
            sb3_median,
            app_median,
            "s",
            ratio,
            f"<= {TARGET_SECONDS:g} s, solved",
            app_median <= TARGET_SECONDS and all_solved,
        )
    ]
    runs = {
        str(seed): [
            {"app": vars(app), "sb3": vars(sb3)}  # seconds, solved, steps, reward, note
            for app, sb3 in pairs
        ]
        for seed, pairs in per_seed.items()
    }
    return Report(rows, runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=1, help="runs per seed (default 1)")
    parser.add_argument("--sb3-max-steps", type=int, default=300_000)
    parser.add_argument("--quick", action="store_true", help="one seed, one run each")
    parser.add_argument("--json", type=Path, help="also save every number to this file")
    args = parser.parse_args(argv)
    seeds, repeats = (args.seeds[:1], 1) if args.quick else (args.seeds, args.repeats)
    report = measure(seeds, repeats, args.sb3_max_steps)
    print_report("time_to_solve", report, args.quick, args.json)


if __name__ == "__main__":
    main()
