"""Learning quality against Stable-Baselines3: each ``+experiment=ppo_<env>`` preset and SB3
with rl-baselines3-zoo's settings, same budget, same seeds, one after the other.

For each environment and seed, ours trains (``python -m hydra_pipeline +experiment=...``) and
its last checkpoint is evaluated by the evaluate command; SB3 trains and evaluates in
``sb3_zoo.py``. Both evaluate the final policy deterministically on the same number of fresh
episodes. Every run is saved to ``--json`` as it ends, with the commit, date and load average
it ran at; the Markdown table (per environment: the mean ± standard deviation over seeds of
the seeds' evaluation returns, their interquartile mean with its 95% bootstrap interval, the
worst seed, SB3's figures, the zoo's published one, both sides' training wall time, and
whether the goals are met) is printed and, with ``--table``, written to a file; ``--docs``
replaces the table in a documentation page (between its ``ppo_zoo.py`` markers) with it.

    python benchmarks/ppo_zoo.py                   # the budgets below, seeds 0-4
    python benchmarks/ppo_zoo.py --full            # the zoo's own budgets (1M steps for some)
    python benchmarks/ppo_zoo.py --envs pendulum --seeds 0
    python benchmarks/ppo_zoo.py --json benchmarks/results/ppo_zoo.json --table-only \\
        --docs docs/benchmarks.md                  # the table again, from saved runs
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    commit,
    describe_load,
    load_average,
    machine,
    python_command,
    replace_table,
    run_timed,
    table_markers,
)

from hydra_pipeline.seed_statistics import summarize_seeds

BEGIN_MARKER, END_MARKER = table_markers("ppo_zoo.py")
"""What surrounds the table in a documentation page that ``--docs`` rewrites."""


@dataclass(frozen=True)
class Environment:
    """One benchmarked environment.

    Attributes:
        preset: The ``experiment`` option that trains it.
        env_id: Its Gymnasium id.
        steps: The budget run by default (the issue's reduced budgets).
        zoo_steps: The zoo's own budget.
        published: The zoo's published mean return (at ``zoo_steps``).
        every_seed: A return every seed must reach (``None``: none).
    """

    preset: str
    env_id: str
    steps: int
    zoo_steps: int
    published: float
    every_seed: float | None = None


ENVIRONMENTS = {
    "cartpole": Environment("ppo_cartpole", "CartPole-v1", 100_000, 100_000, 500.0),
    "acrobot": Environment("ppo_acrobot", "Acrobot-v1", 300_000, 1_000_000, -73.5),
    "pendulum": Environment("ppo_pendulum", "Pendulum-v1", 100_000, 100_000, -172.0, -200.0),
    "lunarlander": Environment("ppo_lunarlander", "LunarLander-v3", 300_000, 1_000_000, 242.0),
    "lunarlandercontinuous": Environment(
        "ppo_lunarlandercontinuous", "LunarLanderContinuous-v3", 300_000, 1_000_000, 271.0
    ),
    "mountaincarcontinuous": Environment(
        "ppo_mountaincarcontinuous", "MountainCarContinuous-v0", 20_000, 20_000, 88.0, 85.0
    ),
}
"""The environments of the issue's table; published figures from rl-baselines3-zoo's
benchmark (``benchmark.md``); the return every seed must reach where the gSDE issue asks for
one."""


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


# --------------------------------------------------------------------------------------------
# Where and what was measured


def run_record(seed: int, outcome: dict[str, Any]) -> dict[str, Any]:
    """A run's entry in the JSON file: its outcome, and where and when it ran."""
    return {
        "seed": seed,
        **outcome,
        "commit": commit(),
        "date": datetime.date.today().isoformat(),
        "load_average": round(load_average()[0], 2),
    }


# --------------------------------------------------------------------------------------------
# The table


def _seed_list(seeds: list[int]) -> str:
    """``0-4`` for consecutive seeds, else ``0, 2, 5``."""
    ordered = sorted(seeds)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ", ".join(map(str, ordered))


def _steps(count: int) -> str:
    """``300k``, ``1M``: a budget in words."""
    return f"{count // 1_000_000}M" if count % 1_000_000 == 0 else f"{count // 1000}k"


def _spread(values: list[float]) -> str:
    summary = summarize_seeds(values)
    return f"{summary.mean:.1f}" + ("" if summary.std is None else f" ± {summary.std:.1f}")


def _iqm(values: list[float]) -> str:
    summary = summarize_seeds(values)
    low, high = summary.iqm_interval
    return f"{summary.iqm:.1f} [{low:.1f}, {high:.1f}]"


def _goal(environment: Environment, ours: dict[int, float], sb3: list[float]) -> str:
    """Whether ours reaches the lower of the zoo's figure and SB3's (and, where asked for,
    a return on every seed)."""
    target = min(environment.published, statistics.fmean(sb3))
    mean = statistics.fmean(ours.values())
    verdicts = [f"met (>= {target:.1f})" if mean >= target else f"missed by {target - mean:.1f}"]
    if environment.every_seed is not None:
        below = {seed: value for seed, value in ours.items() if value < environment.every_seed}
        verdicts.append(
            f"every seed >= {environment.every_seed:g}: "
            + (
                "met"
                if not below
                else "missed ("
                + ", ".join(f"seed {seed}: {value:.1f}" for seed, value in sorted(below.items()))
                + ")"
            )
        )
    return "; ".join(verdicts)


def markdown_table(data: dict[str, Any]) -> str:
    """The Markdown table of the runs in ``data`` (what ``--json`` holds), with a paragraph
    saying how, where and when they were measured, between the documentation markers."""
    budgets, results = data["budgets"], data["results"]
    header = [
        "| env (budget) | seeds | ours | ours IQM [95% CI] | ours, worst seed | SB3 "
        "| SB3 IQM [95% CI] | zoo published | train s, ours / SB3 | goal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows, commits, dates, loads, seeds_run = [], set(), set(), [], set()
    for name in ENVIRONMENTS:
        sides = results.get(name)
        if not sides or not sides["ours"] or not sides["sb3"]:
            continue
        environment = ENVIRONMENTS[name]
        runs = sides["ours"] + sides["sb3"]
        commits |= {run["commit"] for run in runs}
        dates |= {run["date"] for run in runs}
        loads += [run["load_average"] for run in runs]
        ours = {run["seed"]: statistics.fmean(run["returns"]) for run in sides["ours"]}
        sb3 = [statistics.fmean(run["returns"]) for run in sides["sb3"]]
        seeds = sorted(ours)
        seeds_run.add(_seed_list(seeds))
        ours_time = statistics.fmean(run["train_seconds"] for run in sides["ours"])
        sb3_time = statistics.fmean(run["train_seconds"] for run in sides["sb3"])
        budget = budgets[name]
        zoo = f"{environment.published:g}" + (
            "" if budget == environment.zoo_steps else f" at {_steps(environment.zoo_steps)}"
        )
        worst = min(ours, key=lambda seed: ours[seed])
        rows.append(
            f"| {environment.env_id} ({_steps(budget)}) | {_seed_list(seeds)} "
            f"| {_spread(list(ours.values()))} | {_iqm(list(ours.values()))} "
            f"| {ours[worst]:.1f} (seed {worst}) | {_spread(sb3)} | {_iqm(sb3)} | {zoo} "
            f"| {ours_time:.0f} / {sb3_time:.0f} ({ours_time / sb3_time:.2f}) "
            f"| {_goal(environment, ours, sb3)} |"
        )
    if not rows:
        return f"{BEGIN_MARKER}\nNo runs measured yet.\n{END_MARKER}"
    period = " to ".join(sorted(dates)[:: max(1, len(dates) - 1)])
    episodes = data.get("episodes", 10)
    seeds_argument = " ".join(map(str, _all_seeds(results)))
    about = (
        f"Measured by `python benchmarks/ppo_zoo.py --seeds {seeds_argument}` (one row: add "
        f"`--envs <name>`, names {', '.join(ENVIRONMENTS)}) at commit "
        f"{', '.join(f'`{c}`' for c in sorted(commits))} on {period}; {data['machine']}; load "
        f"average {min(loads):.1f} to {max(loads):.1f} when runs started (other work shared the "
        "machine: wall times compare within a row only). Each seed's final policy is evaluated "
        f"deterministically on {episodes} fresh episodes; over seeds, the mean ± standard "
        "deviation and the interquartile mean (IQM) with its 95% percentile-bootstrap interval. "
        "The goal: a mean return at least the lower of the zoo's figure and SB3's at the same "
        "budget."
    )
    return "\n".join([BEGIN_MARKER, about, "", *header, *rows, END_MARKER])


def _all_seeds(results: dict[str, Any]) -> list[int]:
    return sorted({run["seed"] for sides in results.values() for run in sides["ours"]})


# --------------------------------------------------------------------------------------------
# The command line


def measure(arguments: argparse.Namespace, data: dict[str, Any]) -> None:
    """Run every environment and seed asked for that ``data`` lacks, saving each run to
    ``--json`` as it ends."""
    budgets, results = data["budgets"], data["results"]
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
                    sides[side].append(run_record(seed, outcome))
                    print(
                        f"{environment.env_id} seed {seed} {side}: eval "
                        f"{statistics.fmean(outcome['returns']):.1f}, "
                        f"{outcome['train_seconds']:.0f} s",
                        flush=True,
                    )
                    arguments.json.write_text(json.dumps(data, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(ENVIRONMENTS), choices=list(ENVIRONMENTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--full", action="store_true", help="the zoo's own budgets")
    parser.add_argument("--json", type=Path, default=Path("ppo_zoo.json"))
    parser.add_argument(
        "--resume", action="store_true", help="keep the runs already in --json, run the others"
    )
    parser.add_argument(
        "--table-only", action="store_true", help="run nothing: the table of the runs in --json"
    )
    parser.add_argument("--table", type=Path, help="also write the table to this file")
    parser.add_argument("--docs", type=Path, help="replace the table in this page")
    arguments = parser.parse_args()
    if (arguments.resume or arguments.table_only) and arguments.json.is_file():
        data = json.loads(arguments.json.read_text())
    elif arguments.table_only:
        raise SystemExit(f"--table-only: {arguments.json} does not exist.")
    else:
        data = {"machine": machine(), "episodes": arguments.episodes, "budgets": {}, "results": {}}
    if not arguments.table_only:
        for name in arguments.envs:
            budget = ENVIRONMENTS[name].zoo_steps if arguments.full else ENVIRONMENTS[name].steps
            if data["budgets"].setdefault(name, budget) != budget:
                raise SystemExit(
                    f"{arguments.json} holds {name} runs of {data['budgets'][name]} steps; "
                    f"give another --json for {budget}."
                )
        print(describe_load(), flush=True)
        measure(arguments, data)
        print(describe_load())
    table = markdown_table(data)
    print(table)
    if arguments.table:
        arguments.table.write_text(table + "\n")
    if arguments.docs:
        replace_table(arguments.docs, "ppo_zoo.py", table)


if __name__ == "__main__":
    sys.exit(main())
