"""Learning quality of the MiniGrid and BabyAI presets: each trains with its own settings
(``python -m hydra_pipeline +experiment=<preset> seed=<seed>``), then the evaluate command tests
its last checkpoint on fresh episodes (seed ``10000 + seed``, one environment), acting with the
mode of each action distribution and again sampling actions.

- ``ppo_minigrid_doorkey`` (DoorKey-5x5, 100k steps), seeds 0 1 2: goal, a mean deterministic
  evaluation return of at least rl-baselines3-zoo's published 0.96;
- ``minigrid_tutorial`` (AllenAct's tutorial, 150k steps), seed 0: goal, AllenAct's success 1
  and mean episode length below 4;
- ``babyai_go_to_local_cpu`` (BabyAI GoToLocal, imitation then PPO sized for a CPU), seed 0:
  its success rate (AllenAct publishes none for its own configuration).

The table gives, per preset and seed, the training wall time (``summary.json``'s
``wall_seconds``), return, episode length and success of both evaluations, and whether the goal
is met. Every per-run number is written to ``--json`` as it arrives.

    python benchmarks/minigrid_presets.py                      # all three, their seeds
    python benchmarks/minigrid_presets.py --presets doorkey --seeds 0 1 2 --episodes 200
    python benchmarks/minigrid_presets.py --quick              # a smoke run of tiny budgets

``--runs <folder>`` keeps the run folders (checkpoints, logs) for other checkpoints to be
evaluated, such as the BabyAI run's imitation stage.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import QUICK_NOTE, describe_load, python_command, run_timed

Record = dict[str, Any]
"""One evaluation as the evaluate command writes it (``reward_mean``, ``metrics``, ...)."""


def success(record: Record) -> float:
    """The evaluation's success rate (MiniGrid episodes report ``success``)."""
    return float(record["metrics"]["success"])


@dataclass(frozen=True)
class Preset:
    """One benchmarked preset.

    Attributes:
        experiment: The ``experiment`` option that trains it.
        seeds: The seeds run by default.
        goal: The goal, in words, for the table.
        met: Whether the deterministic evaluations (one per seed) meet the goal.
        quick: Overrides shrinking it to a smoke run of a tiny model.
    """

    experiment: str
    seeds: tuple[int, ...]
    goal: str
    met: Callable[[list[Record]], bool]
    quick: tuple[str, ...]


QUICK_COMMON = (
    "task.num_envs=2",
    "pipeline.num_steps=8",
    "pipeline.num_mini_batch=2",
    "pipeline.save_interval=0",
)
"""Every smoke run: rollouts of 2 x 8 steps in 2 minibatches, a checkpoint at each stage end."""

PRESETS = {
    "doorkey": Preset(
        "ppo_minigrid_doorkey",
        (0, 1, 2),
        "mean return >= 0.96 (zoo)",
        lambda records: statistics.fmean(record["reward_mean"] for record in records) >= 0.96,
        ("pipeline.pipeline_stages.0.max_stage_steps=32",),
    ),
    "tutorial": Preset(
        "minigrid_tutorial",
        (0,),
        "success 1, length < 4 (AllenAct)",
        lambda records: all(
            success(record) == 1.0 and record["episode_length_mean"] < 4 for record in records
        ),
        ("pipeline.pipeline_stages.0.max_stage_steps=32", "model.hidden_size=8"),
    ),
    "babyai": Preset(
        "babyai_go_to_local_cpu",
        (0,),
        "a success rate (none published)",
        lambda records: True,
        (
            "pipeline.pipeline_stages.0.max_stage_steps=16",
            "pipeline.pipeline_stages.0.teacher_forcing.steps=16",
            "pipeline.pipeline_stages.1.max_stage_steps=16",
            "pipeline.sequence_length=4",
            "model.hidden_size=8",
        ),
    ),
}


def run_checked(what: str, *arguments: str) -> None:
    """Run ``python <arguments>`` to its end, or raise with the end of its output."""
    process = run_timed(python_command(*arguments), timeout=4 * 3600)
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{process.stdout[-3000:]}")


def evaluate(run: Path, seed: int, episodes: int, deterministic: bool) -> Record:
    """The evaluate command's record of the run's last checkpoint."""
    run_checked(
        f"evaluating {run}",
        *("-m", "hydra_pipeline.evaluate", f"run={run}", "checkpoint=last"),
        *(f"episodes={episodes}", "task.num_envs=1", f"seed={seed + 10_000}"),
        f"deterministic={str(deterministic).lower()}",
    )
    # Each evaluation of the same checkpoint rewrites this file: read it before the next.
    record: Record = json.loads(next((run / "evaluation").glob("*.json")).read_text())
    return record


def train_and_evaluate(
    preset: Preset, seed: int, episodes: int, quick: bool, folder: Path
) -> dict[str, Any]:
    """Train the preset, then evaluate its last checkpoint both ways."""
    run = folder / f"{preset.experiment}-{seed}"
    overrides = (*QUICK_COMMON, *preset.quick) if quick else ()
    run_checked(
        f"training {preset.experiment}",
        *("-m", "hydra_pipeline", f"+experiment={preset.experiment}", f"seed={seed}"),
        *overrides,
        *("tensorboard=false", "progress_bar=false", f"hydra.run.dir={run}"),
    )
    summary = json.loads((run / "summary.json").read_text())
    return {
        "seed": seed,
        "total_steps": summary["total_steps"],
        "train_seconds": summary["speed"]["wall_seconds"],
        "deterministic": evaluate(run, seed, episodes, deterministic=True),
        "sampled": evaluate(run, seed, episodes, deterministic=False),
    }


def describe(record: Record) -> str:
    """Return, length and success of one evaluation."""
    return (
        f"{record['reward_mean']:.3f} / {record['episode_length_mean']:.1f} / {success(record):.3f}"
    )


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    """The markdown table: one line per run, with whether its preset meets its goal."""
    lines = [
        "| preset | seed | steps | train s | deterministic: return / length / success "
        "| sampled: return / length / success | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        preset = PRESETS[name]
        met = preset.met([run["deterministic"] for run in runs])
        for run in runs:
            lines.append(
                f"| {preset.experiment} | {run['seed']} | {run['total_steps']} "
                f"| {run['train_seconds']:.0f} | {describe(run['deterministic'])} "
                f"| {describe(run['sampled'])} | {preset.goal}: {'met' if met else 'missed'} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--seeds", nargs="+", type=int, help="instead of each preset's own")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run")
    parser.add_argument("--json", type=Path, default=Path("minigrid_presets.json"))
    parser.add_argument("--runs", type=Path, help="keep the run folders here (default: deleted)")
    arguments = parser.parse_args()
    episodes = 4 if arguments.quick else arguments.episodes
    print(describe_load(), flush=True)
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as temporary:
        folder = arguments.runs or Path(temporary)
        for name in arguments.presets:
            preset = PRESETS[name]
            for seed in arguments.seeds or preset.seeds:
                outcome = train_and_evaluate(preset, seed, episodes, arguments.quick, folder)
                results.setdefault(name, []).append(outcome)
                print(
                    f"{preset.experiment} seed {seed}: {outcome['train_seconds']:.0f} s, "
                    f"deterministic {describe(outcome['deterministic'])}, "
                    f"sampled {describe(outcome['sampled'])}",
                    flush=True,
                )
                arguments.json.write_text(json.dumps(results, indent=2) + "\n")
    print(describe_load())
    if arguments.quick:
        print(QUICK_NOTE)
    print(table(results))


if __name__ == "__main__":
    sys.exit(main())
