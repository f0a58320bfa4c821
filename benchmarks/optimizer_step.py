"""The PPO gradient step with torch's fused Adam against its default one, in this process.

At rl-baselines3-zoo's settings most of PPO's time is small-minibatch gradient steps (64 to
256 transitions through actor and critic MLPs of [64, 64]). Each step here is what the engine
does per minibatch: the model's forward pass, the PPO loss, backward, the gradient clip and the
optimizer step, on the ``ppo_pendulum`` preset's shapes (3 observations, 1 continuous action,
separate actor and critic of [64, 64] tanh, minibatches of 64). The candidate is the configs'
optimizer (``fused=True``, gradients clipped with the multi-tensor norm); the baseline is
torch's default Adam on the CPU (a loop over the parameters) with the default clip. Both run
alternately, in the same process, with one torch thread; the figure is the median of the
paired ratios of their time per step.

    python benchmarks/optimizer_step.py [--repeats 7] [--steps 2000] [--quick]
"""

from __future__ import annotations

import time

import torch
from common import Report, benchmark_main, describe_load, interleaved, timing_pairs_report
from torch import nn

from hydra_pipeline.engine.acting import model_output
from hydra_pipeline.engine.losses import PPO
from hydra_pipeline.engine.rollout import Minibatch
from hydra_pipeline.models import MLPActorCritic
from hydra_pipeline.tasks.protocol import ContinuousActions

BATCH = 64


def time_per_step(fused: bool, steps: int) -> float:
    """Seconds per gradient step with the configs' fused Adam (``fused``) or torch's default."""
    torch.manual_seed(0)
    model = MLPActorCritic(
        [3],
        ContinuousActions(shape=(1,), low=(-2.0,), high=(2.0,)),
        actor_hidden_sizes=[64, 64],
        critic_hidden_sizes=[64, 64],
    )
    parameters = list(model.parameters())
    optimizer = torch.optim.Adam(parameters, lr=1e-3, fused=True if fused else None)
    loss = PPO(clip_param=0.2, value_loss_coef=1.0, entropy_coef=0.0)
    batch = Minibatch(
        observations=torch.randn(BATCH, 3),
        actions=torch.randn(BATCH, 1),
        old_log_probs=torch.randn(BATCH) - 1.0,
        old_values=torch.randn(BATCH),
        returns=torch.randn(BATCH),
        advantages=torch.randn(BATCH),
        normalized_advantages=torch.randn(BATCH),
    )

    def step() -> None:
        output, _ = model_output(model, batch.observations)
        total, _ = loss(step_count=0, batch=batch, output=output)
        optimizer.zero_grad(set_to_none=True)
        total.backward()  # type: ignore[no-untyped-call]
        nn.utils.clip_grad_norm_(parameters, 0.5, foreach=True if fused else None)
        optimizer.step()

    for _ in range(50):  # warm-up: the first optimizer step imports torch._dynamo
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def measure(repeats: int, steps: int) -> Report:
    """The fused step against the default one: one table row."""
    torch.set_num_threads(1)
    print(f"optimizer step: {repeats} repetitions of {steps} steps; {describe_load()}")
    pairs = interleaved(
        repeats, lambda: time_per_step(True, steps), lambda: time_per_step(False, steps)
    )
    return timing_pairs_report(
        "optimizer_step",
        "PPO gradient step (ppo_pendulum shapes), fused Adam vs torch's default",
        ("fused", "default Adam"),
        pairs,
    )


if __name__ == "__main__":
    benchmark_main("optimizer_step", __doc__, measure, repeats=7, steps=2000, quick_steps=20)
