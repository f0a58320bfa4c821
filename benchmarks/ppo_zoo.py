"""Learning quality against Stable-Baselines3: each ``+experiment=ppo_<env>`` preset and SB3
with rl-baselines3-zoo's settings, same budget, same seeds, one after the other.

For each environment and seed, ours trains (``python -m hydra_pipeline +experiment=...``) and
its last checkpoint is evaluated by the evaluate command; SB3 trains and evaluates in
``sb3_zoo.py``. Both evaluate the final policy deterministically on the same number of fresh
episodes. The table gives, per environment, the mean (and spread over seeds) of the seeds'
evaluation returns, the zoo's published figure, each side's training wall time (the training
loop: ``summary.json``'s ``wall_seconds``, SB3's ``learn``) and their ratio, ours / SB3, and
whether the issue's goal is met (a return of at least the lower of the zoo's figure and SB3's,
in at most half of SB3's time). Every per-run number is written to ``--json`` as it arrives.

    python benchmarks/ppo_zoo.py                 # the budgets below, seeds 0 1 2
    python benchmarks/ppo_zoo.py --full          # the zoo's own budgets (1M steps for some)
    python benchmarks/ppo_zoo.py --envs pendulum --seeds 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import describe_load, python_command, run_timed


@dataclass(frozen=True)
class Environment:
    """One benchmarked environment.

    Attributes:
        preset: The ``experiment`` option that trains it.
        env_id: Its Gymnasium id.
        steps: The budget run by default (the issue's reduced budgets).
        zoo_steps: The zoo's own budget.
        published: The zoo's published mean return (at ``zoo_steps``).
    """

    preset: str
    env_id: str
    steps: int
    zoo_steps: int
    published: float


ENVIRONMENTS = {
    "cartpole": Environment("ppo_cartpole", "CartPole-v1", 100_000, 100_000, 500.0),
    "acrobot": Environment("ppo_acrobot", "Acrobot-v1", 300_000, 1_000_000, -73.5),
    "pendulum": Environment("ppo_pendulum", "Pendulum-v1", 100_000, 100_000, -172.0),
    "lunarlander": Environment("ppo_lunarlander", "LunarLander-v3", 300_000, 1_000_000, 242.0),
    "lunarlandercontinuous": Environment(
        "ppo_lunarlandercontinuous", "LunarLanderContinuous-v3", 300_000, 1_000_000, 271.0
    ),
    "mountaincarcontinuous": Environment(
        "ppo_mountaincarcontinuous", "MountainCarContinuous-v0", 20_000, 20_000, 88.0
    ),
}
"""The environments of the issue's table; published figures from rl-baselines3-zoo's
benchmark (``benchmark.md``)."""


def run_checked(what: str, *arguments: str) -> None:
    """Run ``python <arguments>`` to its end, or raise with the end of its output."""
    process = run_timed(python_command(*arguments), timeout=7200)
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{process.stdout[-3000:]}")


def run_ours(
    environment: Environment, steps: int, seed: int, episodes: int, folder: Path
) -> dict[str, Any]:
    """Train the preset, then evaluate its last checkpoint on ``episodes`` fresh episodes."""
    run = folder / f"ours-{environment.preset}-{seed}"
    run_checked(
        f"training {environment.preset}",
        *("-m", "hydra_pipeline", f"+experiment={environment.preset}", f"seed={seed}"),
        f"pipeline.pipeline_stages.0.max_stage_steps={steps}",
        *("tensorboard=false", "progress_bar=false", f"hydra.run.dir={run}"),
    )
    run_checked(
        f"evaluating {run}",
        *("-m", "hydra_pipeline.evaluate", f"run={run}", "checkpoint=last"),
        *(f"episodes={episodes}", "task.num_envs=1", f"seed={seed + 10_000}"),
    )
    summary = json.loads((run / "summary.json").read_text())
    record = json.loads(next((run / "evaluation").glob("*.json")).read_text())
    return {"train_seconds": summary["speed"]["wall_seconds"], "returns": record["returns"]}


def run_sb3(
    environment: Environment, steps: int, seed: int, episodes: int, folder: Path
) -> dict[str, Any]:
    """Train and evaluate SB3 with the zoo's settings (``sb3_zoo.py``)."""
    result = folder / f"sb3-{environment.preset}-{seed}.json"
    run_checked(
        f"SB3 on {environment.env_id}",
        *("benchmarks/sb3_zoo.py", "--env", environment.env_id, "--steps", str(steps)),
        *("--seed", str(seed), "--episodes", str(episodes), "--result", str(result)),
    )
    loaded: dict[str, Any] = json.loads(result.read_text())
    return loaded


def spread(values: list[float]) -> str:
    """``mean ± standard deviation`` over seeds (just the value for one seed)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {statistics.stdev(values):.1f}"


def table(results: dict[str, dict[str, list[dict[str, Any]]]], budgets: dict[str, int]) -> str:
    """The markdown table of the README."""
    lines = [
        "| env (budget) | ours, eval | SB3, eval | zoo published | ours s | SB3 s "
        "| time ours/SB3 | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, sides in results.items():
        environment = ENVIRONMENTS[name]
        ours = [statistics.fmean(run["returns"]) for run in sides["ours"]]
        sb3 = [statistics.fmean(run["returns"]) for run in sides["sb3"]]
        ours_time = statistics.fmean(run["train_seconds"] for run in sides["ours"])
        sb3_time = statistics.fmean(run["train_seconds"] for run in sides["sb3"])
        if not ours or not sb3:
            continue
        ratio = ours_time / sb3_time
        target = min(environment.published, statistics.fmean(sb3))
        met = statistics.fmean(ours) >= target and ratio <= 0.5
        zoo = f"{environment.published:g}" + (
            ""
            if budgets[name] == environment.zoo_steps
            else f" at {environment.zoo_steps // 1000}k"
        )
        lines.append(
            f"| {environment.env_id} ({budgets[name] // 1000}k) | {spread(ours)} | {spread(sb3)} "
            f"| {zoo} | {ours_time:.0f} | {sb3_time:.0f} | {ratio:.2f} | "
            f"{'met' if met else 'missed'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(ENVIRONMENTS), choices=list(ENVIRONMENTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--full", action="store_true", help="the zoo's own budgets")
    parser.add_argument("--json", type=Path, default=Path("ppo_zoo.json"))
    parser.add_argument(
        "--resume", action="store_true", help="keep the runs already in --json, run the others"
    )
    arguments = parser.parse_args()
    budgets = {
        name: ENVIRONMENTS[name].zoo_steps if arguments.full else ENVIRONMENTS[name].steps
        for name in arguments.envs
    }
    print(describe_load(), flush=True)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    if arguments.resume and arguments.json.is_file():
        saved = json.loads(arguments.json.read_text())
        results, budgets = saved["results"], {**saved["budgets"], **budgets}
        for name in results:  # runs saved without their budget ran the default one
            budgets.setdefault(name, ENVIRONMENTS[name].steps)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        for name in arguments.envs:
            environment = ENVIRONMENTS[name]
            sides = results.setdefault(name, {"ours": [], "sb3": []})
            for seed in arguments.seeds:
                # Alternate which side goes first, so a slow phase of the machine hits both.
                order = [("ours", run_ours), ("sb3", run_sb3)]
                for side, run in order if seed % 2 == 0 else order[::-1]:
                    if any(done["seed"] == seed for done in sides[side]):
                        continue
                    outcome = run(environment, budgets[name], seed, arguments.episodes, folder)
                    sides[side].append({"seed": seed, **outcome})
                    print(
                        f"{environment.env_id} seed {seed} {side}: eval "
                        f"{statistics.fmean(outcome['returns']):.1f}, "
                        f"{outcome['train_seconds']:.0f} s",
                        flush=True,
                    )
                    arguments.json.write_text(
                        json.dumps({"budgets": budgets, "results": results}, indent=2)
                    )
    print(describe_load())
    print(table(results, budgets))


if __name__ == "__main__":
    sys.exit(main())
