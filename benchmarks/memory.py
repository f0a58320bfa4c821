"""Memory: what a recurrent policy costs, and what it buys.

1. Throughput: environment steps per second of ``model=gru`` against ``model=mlp`` (the
   baseline, of the same widths) on the default task (``CartPoleTask``, 64 environments) with
   the ``pipeline=ppo`` preset, through ``OnPolicyRunner``: end to end, and split into its two
   phases, the rollouts (the collector: acting, storing, returns) and the updates (the
   learner), timed inside the same runs. Same process, one torch thread, runs alternating,
   medians of the paired ratios.
2. The partially observed CartPole (``task.hide_velocities=true``): the evaluation return of a
   GRU and of an MLP of the same widths, each trained by imitation of the expert with teacher
   forcing from the same seeds (the recipe of the test suite's check, over more seeds).

    python benchmarks/memory.py [--repeats 5] [--steps 100000] [--seeds 0 1 2] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from common import Report, Row, app_config, describe_load, interleaved, median, print_report
from engine_overhead import engine_runner
from omegaconf import DictConfig
from torch import nn

from hydra_pipeline import Builder, LinearDecay, PipelineStage, TrainingPipeline, set_seed
from hydra_pipeline.engine import Imitation, OnPolicyRunner
from hydra_pipeline.engine.evaluation import Evaluator
from hydra_pipeline.models import MLPActorCritic, RecurrentActorCritic
from hydra_pipeline.tasks import CartPoleTask

MODELS = ("gru", "mlp")
STEPS, IMITATION_STEPS = 100_000, 16384
"""Steps per throughput run and of each imitation run (the suite's figures); ``--quick``: one
run of :data:`QUICK_STEPS` and imitation runs of :data:`QUICK_IMITATION_STEPS`."""
QUICK_STEPS, QUICK_IMITATION_STEPS = 4096, 1024
TARGET_RATIO = 0.6
"""The end-to-end steps/s of a recurrent model, as a share of the MLP's, that the recurrent
path aims at."""


@dataclass
class PhaseTimes:
    """One training run, timed as a whole and by phase (wall-clock seconds)."""

    steps: int
    seconds: float
    rollout_seconds: float
    update_seconds: float

    def rate(self, phase: str) -> float:
        """Environment steps per second of the whole run, or of one of its phases."""
        seconds = {"end to end": self.seconds, "rollouts": self.rollout_seconds}
        return self.steps / {**seconds, "updates": self.update_seconds}[phase]


PHASES = ("end to end", "rollouts", "updates")


def compose_config(model: str, total_steps: int, seed: int) -> DictConfig:
    """The app's config for ``pipeline=ppo`` and ``model``, one stage of ``total_steps``."""
    return app_config(total_steps, seed, "pipeline=ppo", f"model={model}")


def run_phases(cfg: DictConfig) -> PhaseTimes:
    """Train as the app does, timing the collector's rollouts and the learner's updates."""
    spent = {"collect": 0.0, "update": 0.0}

    def timed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start

        return call

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memory_") as folder:
        runner = engine_runner(cfg, Path(folder))
        runner.collector.collect = timed("collect", runner.collector.collect)  # type: ignore[method-assign]
        runner.learner.update = timed("update", runner.learner.update)  # type: ignore[method-assign]
        summary = runner.run()
    seconds = time.perf_counter() - start
    return PhaseTimes(summary.total_steps, seconds, spent["collect"], spent["update"])


def throughput(repeats: int, steps: int, seed: int) -> Report:
    """Rows for the end-to-end, rollout and update steps/s of ``gru`` against ``mlp``."""
    configs = {model: compose_config(model, steps, seed) for model in MODELS}
    for model in MODELS:  # warm-up: first calls
        run_phases(compose_config(model, 2048, seed))
    pairs = interleaved(
        repeats, lambda: run_phases(configs["gru"]), lambda: run_phases(configs["mlp"])
    )
    rows, runs = [], {}
    for phase in PHASES:
        gru_rates = [gru.rate(phase) for gru, _ in pairs]
        mlp_rates = [mlp.rate(phase) for _, mlp in pairs]
        ratio = median([g / m for g, m in zip(gru_rates, mlp_rates, strict=True)])
        print(
            f"{phase}: gru {median(gru_rates):,.0f} steps/s, mlp {median(mlp_rates):,.0f} "
            f"steps/s (medians); gru/mlp steps/s ratio: {ratio:.3f}; {describe_load()}",
            flush=True,
        )
        target = phase == "end to end"
        rows.append(
            Row(
                f"model=gru steps/s, {phase}",
                "model=mlp",
                median(mlp_rates),
                median(gru_rates),
                "steps/s",
                ratio,
                f">= {TARGET_RATIO}" if target else "",
                ratio >= TARGET_RATIO if target else None,
            )
        )
        runs[phase] = {"gru_steps_per_second": gru_rates, "mlp_steps_per_second": mlp_rates}
    return Report(rows, runs)


def imitation_return(model_name: str, seed: int, steps: int) -> float:
    """The evaluation return on the partially observed CartPole after imitation of the expert
    (teacher forcing handing control over) for ``steps`` steps: the test suite's recipe."""
    set_seed(seed)
    task = CartPoleTask(32, max_episode_steps=200, hide_velocities=True)
    model: nn.Module
    if model_name == "gru":
        model = RecurrentActorCritic(
            task.observation_shape, task.action_space, hidden_size=32, encoder_hidden_sizes=(32,)
        )
    else:
        model = MLPActorCritic(task.observation_shape, task.action_space, hidden_sizes=(32, 32))
    training = TrainingPipeline(
        named_losses={"imitation": Imitation()},
        pipeline_stages=[
            PipelineStage(["imitation"], steps, teacher_forcing=LinearDecay(steps=steps))
        ],
        optimizer_builder=Builder(torch.optim.Adam, {"lr": 1e-2}),
        num_mini_batch=1,
        update_repeats=4,
        max_grad_norm=0.5,
        num_steps=16,
        gamma=0.99,
        use_gae=True,
        gae_lambda=0.95,
        metric_accumulate_interval=steps,
    )
    with tempfile.TemporaryDirectory(prefix="memory_") as folder:
        OnPolicyRunner(
            training, task, model, output_dir=Path(folder), seed=seed, tensorboard=False
        ).run()
    evaluation = CartPoleTask(4, max_episode_steps=200, hide_velocities=True)
    return Evaluator(evaluation, model, episodes=8, seed=123).evaluate().summary()["reward"]


def partially_observed(seeds: list[int], steps: int) -> Report:
    """Rows for the mean evaluation return of ``gru`` against ``mlp`` over ``seeds``."""
    returns: dict[str, list[float]] = {model: [] for model in MODELS}
    for seed in seeds:
        for model in MODELS:
            returns[model].append(imitation_return(model, seed, steps))
        print(
            f"hide_velocities, seed {seed}: gru {returns['gru'][-1]:.1f}, "
            f"mlp {returns['mlp'][-1]:.1f} (evaluation return, 200 at most)",
            flush=True,
        )
    gru, mlp = (sum(returns[m]) / len(seeds) for m in MODELS)
    row = Row(
        f"hide_velocities CartPole, evaluation return (seeds {seeds})",
        "model=mlp",
        mlp,
        gru,
        "return",
        gru / mlp,
        "gru >= 195 > 100 > mlp",
        min(returns["gru"]) >= 195 and max(returns["mlp"]) < 100,
    )
    return Report([row], {"returns": returns})


def measure(
    repeats: int, steps: int, seeds: list[int], imitation_steps: int = IMITATION_STEPS
) -> Report:
    """Both parts, with one torch thread: throughput, then the partially observed CartPole."""
    torch.set_num_threads(1)
    print(f"memory: {describe_load()}", flush=True)
    report = throughput(repeats, steps, seed=0)
    observed = partially_observed(seeds, imitation_steps)
    return Report(report.rows + observed.rows, {**report.runs, **observed.runs})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="repetitions of each (default 5)")
    parser.add_argument("--steps", type=int, default=STEPS, help="steps per throughput run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--imitation-steps", type=int, default=IMITATION_STEPS)
    parser.add_argument("--quick", action="store_true", help="one short run of each")
    parser.add_argument("--json", type=Path, help="also save every number to this file")
    args = parser.parse_args(argv)
    if args.quick:
        report = measure(1, QUICK_STEPS, args.seeds[:1], QUICK_IMITATION_STEPS)
    else:
        report = measure(args.repeats, args.steps, args.seeds, args.imitation_steps)
    print_report("memory", report, args.quick, args.json)


if __name__ == "__main__":
    main()
