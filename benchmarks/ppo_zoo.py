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
import json
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import describe_load, machine, python_command, replace_table, run_timed
from seed_table import SeedRow, documentation_block, provenance, run_record, seed_table


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
        baseline: The script in ``benchmarks/`` that trains and evaluates SB3's side.
        name: The environment's name in the table (``""``: ``env_id``; the zoo's names of
            its velocity-free variants).
    """

    preset: str
    env_id: str
    steps: int
    zoo_steps: int
    published: float
    every_seed: float | None = None
    baseline: str = "sb3_zoo.py"
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.env_id


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
    "cartpole_novel": Environment(
        "ppo_lstm_cartpole_novel",
        "CartPole-v1",
        100_000,
        100_000,
        500.0,
        baseline="sb3_recurrent.py",
        name="CartPoleNoVel-v1",
    ),
    "pendulum_novel": Environment(
        "ppo_lstm_pendulum_novel",
        "Pendulum-v1",
        100_000,
        100_000,
        -218.0,
        baseline="sb3_recurrent.py",
        name="PendulumNoVel-v1",
    ),
}
"""The benchmarked environments; published figures from rl-baselines3-zoo's benchmark
(``benchmark.md``; ``ppo_lstm`` for the velocity-free ones, whose SB3 side is sb3-contrib's
RecurrentPPO); the return every seed must reach where the gSDE issue asks for one."""

SUITES = {
    "ppo": [
        "cartpole", "acrobot", "pendulum", "lunarlander", "lunarlandercontinuous",
        "mountaincarcontinuous",
    ],
    "recurrent": ["cartpole_novel", "pendulum_novel"],
}  # fmt: skip
"""The tables: feed-forward PPO presets (``docs/benchmarks.md``), and recurrent ones on the
zoo's velocity-free tasks (``docs/guides/memory.md``)."""


def table_script(suite: str) -> str:
    """The name of ``suite``'s table in its page's markers."""
    return "ppo_zoo.py" if suite == "ppo" else f"ppo_zoo.py {suite}"


def run_checked(what: str, *arguments: str) -> None:
    """Run ``python <arguments>`` to its end, or raise with the end of its output."""
    process = run_timed(python_command(*arguments), timeout=7200)
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{process.stdout[-3000:]}")


def train_arguments(environment: Environment, steps: int, seed: int, run: Path) -> list[str]:
    """The ``python`` arguments that train ``environment``'s preset for ``steps`` with ``seed``
    into the folder ``run`` (no TensorBoard, no progress bar)."""
    return [
        *("-m", "hydra_pipeline", f"+experiment={environment.preset}", f"seed={seed}"),
        f"pipeline.pipeline_stages.0.max_stage_steps={steps}",
        *("tensorboard=false", "progress_bar=false", f"hydra.run.dir={run}"),
    ]


def sb3_arguments(
    environment: Environment, steps: int, seed: int, episodes: int, result: Path
) -> list[str]:
    """The ``python`` arguments that train (and, for ``episodes`` > 0, evaluate) SB3's side of
    ``environment`` for ``steps`` with ``seed``, its record written to ``result``."""
    return [
        *(f"benchmarks/{environment.baseline}", "--env", environment.env_id),
        *("--steps", str(steps)),
        *("--seed", str(seed), "--episodes", str(episodes), "--result", str(result)),
    ]


def run_ours(
    environment: Environment, steps: int, seed: int, episodes: int, folder: Path
) -> dict[str, Any]:
    """Train the preset, then evaluate its last checkpoint on ``episodes`` fresh episodes."""
    run = folder / f"ours-{environment.preset}-{seed}"
    run_checked(f"training {environment.preset}", *train_arguments(environment, steps, seed, run))
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
        f"SB3 on {environment.label}", *sb3_arguments(environment, steps, seed, episodes, result)
    )
    loaded: dict[str, Any] = json.loads(result.read_text())
    return loaded


# --------------------------------------------------------------------------------------------
# The table


def _steps(count: int) -> str:
    """``300k``, ``1M``: a budget in words."""
    return f"{count // 1_000_000}M" if count % 1_000_000 == 0 else f"{count // 1000}k"


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


NOTES = ("zoo published", "train s, ours / SB3", "goal")
"""The table's columns after the sides' (see :func:`table_row`)."""


def table_row(name: str, budget: int, sides: dict[str, list[dict[str, Any]]]) -> SeedRow:
    """The row of environment ``name``: each side's mean evaluation return per seed, the
    zoo's figure, both sides' mean training wall time and the goal's verdict."""
    environment = ENVIRONMENTS[name]
    ours = {run["seed"]: statistics.fmean(run["returns"]) for run in sides["ours"]}
    sb3 = {run["seed"]: statistics.fmean(run["returns"]) for run in sides["sb3"]}
    ours_time = statistics.fmean(run["train_seconds"] for run in sides["ours"])
    sb3_time = statistics.fmean(run["train_seconds"] for run in sides["sb3"])
    zoo = f"{environment.published:g}" + (
        "" if budget == environment.zoo_steps else f" at {_steps(environment.zoo_steps)}"
    )
    return SeedRow(
        f"{environment.label} ({_steps(budget)})",
        {"ours": ours, "SB3": sb3},
        (
            zoo,
            f"{ours_time:.0f} / {sb3_time:.0f} ({ours_time / sb3_time:.2f})",
            _goal(environment, ours, list(sb3.values())),
        ),
    )


def markdown_table(data: dict[str, Any], suite: str = "ppo") -> str:
    """The table of ``suite``'s runs in ``data`` (what ``--json`` holds; environments with
    runs of both sides), after a paragraph saying how, where and when they were measured,
    between the documentation markers."""
    script = table_script(suite)
    measured = {
        name: data["results"][name]
        for name in SUITES[suite]
        if name in data["results"] and all(data["results"][name].values())
    }
    if not measured:
        return documentation_block(script, "No runs measured yet.")
    rows = [table_row(name, data["budgets"][name], sides) for name, sides in measured.items()]
    records = [run for sides in measured.values() for runs in sides.values() for run in runs]
    seeds = sorted({run["seed"] for run in records})
    about = (
        f"Measured by `python benchmarks/ppo_zoo.py{'' if suite == 'ppo' else ' --suite ' + suite}"
        f" --envs {' '.join(measured)} --seeds "
        f"{' '.join(map(str, seeds))}` {provenance(records, data['machine'])} (other work shared "
        "the machine: wall times compare within a row only, and only roughly). Each seed's final "
        f"policy is evaluated deterministically on {data.get('episodes', 10)} fresh episodes; "
        "over seeds, the mean ± standard deviation, the interquartile mean (IQM) with its 95% "
        "percentile-bootstrap interval and the worst seed. The goal: a mean return at least the "
        "lower of the zoo's figure and SB3's at the same budget."
    )
    table = seed_table(rows, sides=("ours", "SB3"), notes=NOTES)
    return documentation_block(script, f"{about}\n\n{table}")


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
                        f"{environment.label} seed {seed} {side}: eval "
                        f"{statistics.fmean(outcome['returns']):.1f}, "
                        f"{outcome['train_seconds']:.0f} s",
                        flush=True,
                    )
                    arguments.json.write_text(json.dumps(data, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=list(SUITES), default="ppo", help="which table")
    parser.add_argument("--envs", nargs="+", choices=list(ENVIRONMENTS), help="(the suite's)")
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
    arguments.envs = arguments.envs or SUITES[arguments.suite]
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
    table = markdown_table(data, arguments.suite)
    print(table)
    if arguments.table:
        arguments.table.write_text(table + "\n")
    if arguments.docs:
        replace_table(arguments.docs, table_script(arguments.suite), table)


if __name__ == "__main__":
    sys.exit(main())
