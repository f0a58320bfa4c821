"""MiniGrid throughput: steps per second of the MiniGrid task and of training on it, against the
environments' own stepping speed (the ceiling).

Three measurements on the ``minigrid_tutorial`` experiment's environments
(``MiniGrid-Empty-Random-5x5-v0``, 5x5 view, 128 environments), in this process, one torch
thread:

- ceiling: Gymnasium's own vector environment (``gymnasium.make_vec``, sync, same-step
  autoreset) stepped with random actions drawn beforehand: nothing but MiniGrid;
- task: ``MiniGridTask`` stepped with random actions: the ceiling plus converting
  observations to tensors and mission tokens;
- training: the ``+experiment=minigrid_tutorial`` run (PPO, GRU with 512 units, rollouts of 16
  steps, 4 minibatches, 3 epochs) for ``--steps`` steps, TensorBoard and checkpoints off.

The figures are the ratios to the ceiling, medians over paired runs: short stepping runs of
the ceiling and the task alternate (three pairs per repetition), and each training run is
paired with a ceiling run just before it.

    python benchmarks/minigrid_throughput.py [--repeats 3] [--steps 16384] [--quick]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import (
    Report,
    Row,
    app_config,
    benchmark_main,
    describe_load,
    interleaved,
    median,
)
from omegaconf import DictConfig, OmegaConf

from hydra_pipeline import set_seed
from hydra_pipeline.config import instantiate_node
from hydra_pipeline.engine import OnPolicyRunner
from hydra_pipeline.models import model_arguments

EXPERIMENT = "minigrid_tutorial"
REPEATS, STEPS = 3, 16_384
"""Repetitions and training steps per run (the suite's figures); ``--quick``: one run of
:data:`QUICK_STEPS`."""
QUICK_STEPS = 2048


def compose_config(total_steps: int, seed: int) -> DictConfig:
    """The app's config for the tutorial experiment, with one stage of ``total_steps``."""
    return app_config(total_steps, seed, f"+experiment={EXPERIMENT}", "pipeline.save_interval=null")


def ceiling(cfg: DictConfig, vector_steps: int, seed: int) -> float:
    """Environment steps per second of Gymnasium's vector environment alone."""
    import gymnasium
    import minigrid  # noqa: F401  (registers the environments)

    num_envs = cfg.task.num_envs
    envs: Any = gymnasium.make_vec(
        cfg.task.env_id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
        **OmegaConf.to_container(cfg.task.env_kwargs),
    )
    actions = np.random.default_rng(seed).integers(0, 3, size=(vector_steps, num_envs))
    envs.reset(seed=seed)
    start = time.perf_counter()
    for step_actions in actions:
        envs.step(step_actions)
    seconds = time.perf_counter() - start
    envs.close()
    return vector_steps * num_envs / seconds


def task_rate(cfg: DictConfig, vector_steps: int, seed: int) -> float:
    """Environment steps per second of ``MiniGridTask`` with random actions."""
    task = instantiate_node(cfg, "task")
    generator = torch.Generator().manual_seed(seed)
    actions = torch.randint(0, 3, (vector_steps, task.num_envs), generator=generator)
    task.reset(seed=seed)
    start = time.perf_counter()
    for step_actions in actions:
        task.step(step_actions)
    seconds = time.perf_counter() - start
    task.close()
    return float(vector_steps * task.num_envs / seconds)


def training_rate(cfg: DictConfig) -> tuple[float, dict[str, float]]:
    """Environment steps per second of training the experiment, and its final metrics."""
    set_seed(cfg.seed)
    pipeline = instantiate_node(cfg, "pipeline")
    task = instantiate_node(cfg, "task")
    model = instantiate_node(cfg, "model", **model_arguments(task))
    with tempfile.TemporaryDirectory(prefix="minigrid_throughput_") as folder:
        runner = OnPolicyRunner(
            pipeline,
            task,
            model,
            output_dir=Path(folder),
            seed=cfg.seed,
            tensorboard=False,
            progress_bar=False,
        )
        start = time.perf_counter()
        summary = runner.run()
        seconds = time.perf_counter() - start
    task.close()
    return summary.total_steps / seconds, dict(summary.final_metrics)


def measure(repeats: int, steps: int, seed: int = 0) -> Report:
    """Ceiling, task and training, ``repeats`` times each, interleaved."""
    torch.set_num_threads(1)
    cfg = compose_config(steps, seed)
    rollout = cfg.pipeline.num_steps * cfg.task.num_envs
    vector_steps = max(1, steps // (4 * cfg.task.num_envs))
    training_rate(compose_config(rollout, seed))  # warm-up: torch's first optimizer import
    print(
        f"minigrid throughput: {cfg.task.env_id}, {cfg.task.num_envs} environments, "
        f"{vector_steps * cfg.task.num_envs} steps per stepping run, {steps} training steps, "
        f"{repeats} repetitions; {describe_load()}",
        flush=True,
    )
    # Stepping: short runs of the ceiling and the task alternate (which goes first too), so a
    # busy phase of the shared machine hits both.
    pairs = interleaved(
        3 * repeats,
        lambda: ceiling(cfg, vector_steps, seed),
        lambda: task_rate(cfg, vector_steps, seed),
    )
    ceilings = [gymnasium for gymnasium, _ in pairs]
    tasks = [task for _, task in pairs]
    print(
        f"  stepping: gymnasium {median(ceilings):,.0f} steps/s, task {median(tasks):,.0f} "
        f"steps/s (medians of {len(pairs)} pairs)",
        flush=True,
    )
    trainings, training_ceilings = [], []
    for run in range(repeats):
        training_ceilings.append(ceiling(cfg, vector_steps, seed + run))
        rate, metrics = training_rate(cfg)
        trainings.append(rate)
        print(
            f"  run {run + 1}: gymnasium {training_ceilings[-1]:,.0f} steps/s, training "
            f"{rate:,.0f} steps/s (success {metrics.get('success', 0):.2f}, episode length "
            f"{metrics.get('episode_length', 0):.1f})",
            flush=True,
        )
    task_ratio = median([t / c for t, c in zip(tasks, ceilings, strict=True)])
    training_ratio = median([t / c for t, c in zip(trainings, training_ceilings, strict=True)])
    print(
        f"task/gymnasium steps/s ratio: {task_ratio:.3f}; training/gymnasium steps/s ratio: "
        f"{training_ratio:.3f}; {describe_load()}"
    )
    ceiling_median = median(ceilings + training_ceilings)
    rows = [
        Row(
            "MiniGrid task stepping",
            "gymnasium vector env",
            ceiling_median,
            median(tasks),
            "steps/s",
            task_ratio,
        ),
        Row(
            "MiniGrid training (tutorial: PPO, GRU 512)",
            "gymnasium vector env",
            ceiling_median,
            median(trainings),
            "steps/s",
            training_ratio,
        ),
    ]
    runs = {
        "gymnasium": ceilings,
        "task": tasks,
        "gymnasium_beside_training": training_ceilings,
        "training": trainings,
    }
    return Report(rows, runs)


if __name__ == "__main__":
    benchmark_main(
        "minigrid_throughput",
        __doc__,
        measure,
        repeats=REPEATS,
        steps=STEPS,
        quick_steps=QUICK_STEPS,
        seeded=True,
    )
