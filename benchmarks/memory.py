"""Memory: what a recurrent policy costs, and what it buys.

1. Throughput: environment steps per second of ``model=gru`` against ``model=mlp`` (the
   baseline) on the default task (``CartPoleTask``, 64 environments) with the ``pipeline=ppo``
   preset, end to end through ``OnPolicyRunner`` (rollouts and updates), and for the rollouts
   alone (the acting component stepping the task, no updates). Same process, one torch thread,
   runs alternating, medians of the paired ratios.
2. The partially observed CartPole (``task.hide_velocities=true``): the evaluation return of a
   GRU and of an MLP of the same widths, each trained by imitation of the expert with teacher
   forcing from the same seeds (the recipe of the test suite's check, over more seeds).

    python benchmarks/memory.py [--repeats 5] [--steps 100000] [--seeds 0 1 2] [--quick]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from common import Report, Row, app_config, describe_load, interleaved, median, print_report
from engine_overhead import Measurement, run_engine
from omegaconf import DictConfig
from torch import nn

from hydra_pipeline import Builder, LinearDecay, PipelineStage, TrainingPipeline, set_seed
from hydra_pipeline.config import instantiate_node
from hydra_pipeline.engine import Imitation, OnPolicyRunner
from hydra_pipeline.engine.acting import Actor, TaskStepper
from hydra_pipeline.engine.evaluation import Evaluator
from hydra_pipeline.models import MLPActorCritic, RecurrentActorCritic
from hydra_pipeline.tasks import CartPoleTask

MODELS = ("gru", "mlp")
STEPS, IMITATION_STEPS = 100_000, 16384
"""Steps per throughput run and of each imitation run (the suite's figures); ``--quick``: one
run of :data:`QUICK_STEPS` and imitation runs of :data:`QUICK_IMITATION_STEPS`."""
QUICK_STEPS, QUICK_IMITATION_STEPS = 4096, 1024


def compose_config(model: str, total_steps: int, seed: int) -> DictConfig:
    """The app's config for ``pipeline=ppo`` and ``model``, one stage of ``total_steps``."""
    return app_config(total_steps, seed, "pipeline=ppo", f"model={model}")


def run_acting(cfg: DictConfig, total_steps: int) -> Measurement:
    """Step the config's model on its task with the acting component, as rollouts do (no
    gradients, sampled actions, memory carried), for ``total_steps`` environment steps."""
    set_seed(cfg.seed)
    task = instantiate_node(cfg, "task")
    model = instantiate_node(
        cfg, "model", observation_shape=task.observation_shape, action_space=task.action_space
    )
    stepper = TaskStepper(task, Actor(model, task.action_space, torch.device("cpu")))
    stepper.reset(seed=cfg.seed)
    steps = math.ceil(total_steps / task.num_envs)
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            stepper.step(final_values=True)
    seconds = time.perf_counter() - start
    lengths = stepper.finished_episodes().lengths
    length = float(lengths.mean()) if lengths.numel() else math.nan
    return Measurement(steps * task.num_envs, seconds, length)


def paired(
    repeats: int, run: Callable[[DictConfig], Measurement], configs: dict[str, DictConfig]
) -> list[tuple[Measurement, Measurement]]:
    """``run`` of the ``gru`` and ``mlp`` configs, ``repeats`` times each, alternating."""
    return interleaved(repeats, lambda: run(configs["gru"]), lambda: run(configs["mlp"]))


def throughput(repeats: int, steps: int, seed: int) -> Report:
    """Rows for the end-to-end and rollout-only steps/s of ``gru`` against ``mlp``."""
    configs = {model: compose_config(model, steps, seed) for model in MODELS}
    for model in MODELS:  # warm-up: torch._dynamo's import, first calls
        run_engine(compose_config(model, 2048, seed))
    rows, runs = [], {}
    for name, run in (
        ("end to end (PPO)", run_engine),
        ("rollouts only", lambda cfg: run_acting(cfg, steps)),
    ):
        pairs = paired(repeats, run, configs)
        gru_rates = [gru.steps_per_second for gru, _ in pairs]
        mlp_rates = [mlp.steps_per_second for _, mlp in pairs]
        ratio = median([g / m for g, m in zip(gru_rates, mlp_rates, strict=True)])
        print(
            f"{name}: gru {median(gru_rates):,.0f} steps/s, mlp {median(mlp_rates):,.0f} "
            f"steps/s (medians); gru/mlp steps/s ratio: {ratio:.3f}; {describe_load()}",
            flush=True,
        )
        rows.append(
            Row(
                f"model=gru steps/s, {name}",
                "model=mlp",
                median(mlp_rates),
                median(gru_rates),
                "steps/s",
                ratio,
            )
        )
        runs[name] = {"gru_steps_per_second": gru_rates, "mlp_steps_per_second": mlp_rates}
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
