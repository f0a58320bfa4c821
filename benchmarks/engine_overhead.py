"""Engine overhead: ``OnPolicyRunner``'s environment steps per second against a minimal PPO loop.

Both train PPO on the default task (``CartPoleTask`` with 64 environments, ``MLPActorCritic``
with hidden layers [64, 64] and tanh) with the settings of the ``pipeline=ppo`` preset, read
from the composed config, for the same number of steps, in this process, with one torch
thread. The engine runs one fixed-length PPO stage as the preset defines it (no early stopping,
TensorBoard off, checkpoints every ``save_interval`` steps as configured); the baseline is
:func:`hand_written_ppo`, PPO written top to bottom in the style of CleanRL with nothing but
the algorithm: no logging, no checkpoints, no pipeline objects.

Each repetition runs both, alternating which goes first; the figure is the median over
repetitions of the paired ratio. Both are warmed up first: the first ``torch.optim`` optimizer
of a process imports ``torch._dynamo`` (about a second), which neither should be charged for.

    python benchmarks/engine_overhead.py [--repeats 5] [--steps 200000] [--quick]
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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
from omegaconf import DictConfig
from torch import nn

from hydra_pipeline import set_seed
from hydra_pipeline.config import instantiate_node
from hydra_pipeline.engine import OnPolicyRunner
from hydra_pipeline.models import MLPActorCritic
from hydra_pipeline.tasks import CartPoleTask

TARGET_STEPS_PER_SECOND = 45_000
TARGET_OVERHEAD = 0.10
STEPS = 200_000
"""Steps per run (the suite's figure); ``--quick`` runs :data:`QUICK_STEPS` (one rollout)."""
QUICK_STEPS = 1


@dataclass(frozen=True)
class Settings:
    """The task, model and PPO settings of the composed ``pipeline=ppo`` config."""

    num_envs: int
    max_episode_steps: int
    hidden_sizes: tuple[int, ...]
    activation: str
    num_steps: int
    num_mini_batch: int
    update_repeats: int
    gamma: float
    gae_lambda: float
    max_grad_norm: float
    lr: float
    eps: float
    betas: tuple[float, float]
    clip: float
    value_loss_coef: float
    entropy_coef: float

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Settings:
        """Read the settings, and refuse a config whose PPO the hand-written loop does not do
        (so that the two never silently compare different algorithms)."""
        pipeline = cfg.pipeline
        (stage,) = pipeline.pipeline_stages
        (loss_name,) = stage.loss_names
        loss = pipeline.named_losses[loss_name]
        optimizer = pipeline.optimizer_builder
        schedule = pipeline.lr_scheduler_builder.lr_lambda
        expected = {
            "loss": (loss._target_, "hydra_pipeline.engine.losses.PPO"),
            "the stage's own settings": (
                {
                    k: v
                    for k, v in stage.training_settings.items()
                    if k != "_target_" and v is not None
                },
                {},
            ),
            "use_gae": (pipeline.use_gae, True),
            "use_clipped_value_loss": (loss.use_clipped_value_loss, True),
            "normalize_advantage": (loss.normalize_advantage, True),
            "clip_decay": (loss.clip_decay, None),
            "optimizer": (optimizer.class_type, "torch.optim.Adam"),
            "weight_decay": (optimizer.weight_decay, 0.0),
            "lr schedule": ((schedule._target_, schedule.startp, schedule.endp), _LINEAR_TO_ZERO),
        }
        for name, (actual, wanted) in expected.items():
            if actual != wanted:
                raise ValueError(f"the hand-written loop assumes {name} = {wanted}, got {actual}")
        return cls(
            num_envs=cfg.task.num_envs,
            max_episode_steps=cfg.task.max_episode_steps,
            hidden_sizes=tuple(cfg.model.hidden_sizes),
            activation=cfg.model.activation,
            num_steps=pipeline.num_steps,
            num_mini_batch=pipeline.num_mini_batch,
            update_repeats=pipeline.update_repeats,
            gamma=pipeline.gamma,
            gae_lambda=pipeline.gae_lambda,
            max_grad_norm=pipeline.max_grad_norm,
            lr=optimizer.lr,
            eps=optimizer.eps,
            betas=(optimizer.betas[0], optimizer.betas[1]),
            clip=loss.clip_param,
            value_loss_coef=loss.value_loss_coef,
            entropy_coef=loss.entropy_coef,
        )


_LINEAR_TO_ZERO = ("hydra_pipeline.LinearDecay", 1.0, 0.0)


@dataclass
class Measurement:
    """One training run: how many environment steps it took, how long, and how it learned.

    Attributes:
        steps: Environment steps summed over environments.
        seconds: Wall time from building the task and model to the end of training.
        episode_length: Mean episode length at the end (a sanity check that it learns): the
            engine's logged mean; for the hand-written loop, steps per ended episode in the last
            rollout.
    """

    steps: int
    seconds: float
    episode_length: float

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds


def compose_config(total_steps: int, seed: int) -> DictConfig:
    """The app's config for ``pipeline=ppo`` with one stage of ``total_steps``, resolved."""
    return app_config(total_steps, seed, "pipeline=ppo")


def engine_runner(cfg: DictConfig, output_dir: Path) -> OnPolicyRunner:
    """An ``OnPolicyRunner`` built as ``train()`` builds it, minus Hydra's run folder."""
    set_seed(cfg.seed)
    pipeline = instantiate_node(cfg, "pipeline")
    task = instantiate_node(cfg, "task")
    model = instantiate_node(
        cfg, "model", observation_shape=task.observation_shape, action_space=task.action_space
    )
    return OnPolicyRunner(
        pipeline,
        task,
        model,
        output_dir=output_dir,
        seed=cfg.seed,
        device="cpu",
        tensorboard=cfg.tensorboard,
        progress_bar=cfg.progress_bar,
    )


def run_engine(cfg: DictConfig) -> Measurement:
    """Train with ``OnPolicyRunner`` as ``train()`` builds it, minus Hydra's run folder."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="engine_overhead_") as folder:
        summary = engine_runner(cfg, Path(folder)).run()
        seconds = time.perf_counter() - start
    return Measurement(
        summary.total_steps, seconds, summary.final_metrics.get("episode_length", math.nan)
    )


def hand_written_ppo(settings: Settings, total_steps: int, seed: int) -> Measurement:
    """PPO from scratch, CleanRL-style, with the engine's algorithm: rollouts of ``num_steps``
    in every environment, truncated episodes bootstrapped from their final observation, GAE,
    advantages normalised over the rollout, ``update_repeats`` epochs of minibatches that each
    take all steps of a random subset of environments, clipped surrogate and clipped value
    loss, gradient clipping, Adam with the learning rate decaying linearly to 0 over
    ``total_steps``."""
    start = time.perf_counter()
    s = settings
    torch.manual_seed(seed)
    task = CartPoleTask(num_envs=s.num_envs, max_episode_steps=s.max_episode_steps)
    model = MLPActorCritic(
        task.observation_shape, task.action_space, s.hidden_sizes, activation=s.activation
    )
    parameters = list(model.parameters())
    optimizer = torch.optim.Adam(parameters, lr=s.lr, betas=s.betas, eps=s.eps)
    num_steps, num_envs = s.num_steps, s.num_envs
    batch_size = num_steps * num_envs
    num_updates = math.ceil(total_steps / batch_size)

    # Rollout storage: row t holds the observation acted on at step t and what followed.
    observations = torch.zeros((num_steps, num_envs, *task.observation_shape))
    final_observations = torch.zeros_like(observations)
    actions = torch.zeros((num_steps, num_envs), dtype=torch.int64)
    log_probs = torch.zeros((num_steps, num_envs))
    values = torch.zeros((num_steps, num_envs))
    rewards = torch.zeros((num_steps, num_envs))
    terminated = torch.zeros((num_steps, num_envs), dtype=torch.bool)
    truncated = torch.zeros((num_steps, num_envs), dtype=torch.bool)

    next_observations = task.reset(seed=seed)
    for update in range(num_updates):
        # The learning rate after k steps is lr * (1 - k / total_steps), as the preset's LR
        # scheduler sets it after each update.
        optimizer.param_groups[0]["lr"] = s.lr * max(0.0, 1.0 - update * batch_size / total_steps)

        with torch.no_grad():
            for step in range(num_steps):
                output = model(next_observations)
                action = output.distribution.sample()
                result = task.step(action)
                observations[step] = next_observations
                actions[step] = action
                log_probs[step] = output.distribution.log_prob(action)
                values[step] = output.values
                rewards[step] = result.rewards
                terminated[step] = result.terminated
                truncated[step] = result.truncated
                final_observations[step] = result.final_observations
                next_observations = result.observations

            # A time limit is not the end of the MDP: credit the value of the last observation.
            cut_short = truncated & ~terminated
            if cut_short.any():
                rewards[cut_short] += s.gamma * model(final_observations[cut_short]).values
            # GAE: A_t = delta_t + gamma * lambda * A_{t+1}, nothing carried across an episode end.
            next_value = model(next_observations).values
            not_done = (~(terminated | truncated)).float()
            following_values = torch.cat((values[1:], next_value.unsqueeze(0)))
            deltas = rewards + s.gamma * not_done * following_values - values
            decays = s.gamma * s.gae_lambda * not_done
            advantages = torch.empty_like(rewards)
            advantage = torch.zeros(num_envs)
            for t in reversed(range(num_steps)):
                advantage = deltas[t] + decays[t] * advantage
                advantages[t] = advantage
            returns = advantages + values
            normalized = (advantages - advantages.mean()) / (advantages.std() + 1e-5)

        for _epoch in range(s.update_repeats):
            for envs in torch.tensor_split(torch.randperm(num_envs), s.num_mini_batch):
                # A minibatch is every step of a random subset of the environments.
                mb_observations = observations[:, envs].flatten(0, 1)
                mb_actions = actions[:, envs].flatten(0, 1)
                mb_log_probs = log_probs[:, envs].flatten(0, 1)
                mb_values = values[:, envs].flatten(0, 1)
                mb_returns = returns[:, envs].flatten(0, 1)
                mb_advantages = normalized[:, envs].flatten(0, 1)

                output = model(mb_observations)
                ratio = (output.distribution.log_prob(mb_actions) - mb_log_probs).exp()
                surrogate = ratio * mb_advantages
                clipped_surrogate = ratio.clamp(1.0 - s.clip, 1.0 + s.clip) * mb_advantages
                policy_loss = -torch.min(surrogate, clipped_surrogate).mean()
                new_values = output.values
                clipped_values = mb_values + (new_values - mb_values).clamp(-s.clip, s.clip)
                value_loss = (
                    0.5
                    * torch.max(
                        (new_values - mb_returns).square(), (clipped_values - mb_returns).square()
                    ).mean()
                )
                entropy = output.distribution.entropy().mean()
                loss = policy_loss + s.value_loss_coef * value_loss - s.entropy_coef * entropy

                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(parameters, s.max_grad_norm)
                optimizer.step()

    seconds = time.perf_counter() - start
    episode_ends = int((terminated | truncated).sum())
    episode_length = batch_size / episode_ends if episode_ends else math.inf
    return Measurement(num_updates * batch_size, seconds, episode_length)


def measure(repeats: int, steps: int, seed: int = 0) -> Report:
    """Warm both up, then run engine and hand-written loop ``repeats`` times each, alternating."""
    torch.set_num_threads(1)
    cfg = compose_config(steps, seed)
    settings = Settings.from_config(cfg)
    rollout = settings.num_steps * settings.num_envs
    warm_up_cfg = compose_config(rollout, seed)
    run_engine(warm_up_cfg)
    hand_written_ppo(settings, rollout, seed)

    run_steps = math.ceil(steps / rollout) * rollout  # both run whole rollouts
    print(f"engine overhead: {run_steps} steps per run, {repeats} repetitions; {describe_load()}")
    pairs = interleaved(
        repeats, lambda: run_engine(cfg), lambda: hand_written_ppo(settings, steps, seed)
    )
    for index, (engine, baseline) in enumerate(pairs):
        print(
            f"  run {index + 1}: engine {engine.steps_per_second:,.0f} steps/s "
            f"({engine.seconds:.2f} s, episode length {engine.episode_length:.0f}), "
            f"hand-written {baseline.steps_per_second:,.0f} steps/s "
            f"({baseline.seconds:.2f} s, episode length {baseline.episode_length:.0f}), "
            f"ratio {engine.steps_per_second / baseline.steps_per_second:.3f}",
            flush=True,
        )
    engine_rates = [engine.steps_per_second for engine, _ in pairs]
    baseline_rates = [baseline.steps_per_second for _, baseline in pairs]
    ratio = median([e / b for e, b in zip(engine_rates, baseline_rates, strict=True)])
    time_ratio = median([b / e for e, b in zip(engine_rates, baseline_rates, strict=True)])
    overhead = time_ratio - 1.0
    engine_median, baseline_median = median(engine_rates), median(baseline_rates)
    print(
        f"engine {engine_median:,.0f} steps/s, hand-written {baseline_median:,.0f} steps/s "
        f"(medians); engine/hand-written steps/s ratio: {ratio:.3f} "
        f"(overhead {100 * overhead:.1f}% more time per step); {describe_load()}"
    )
    rows = [
        Row(
            "engine throughput (PPO, default task)",
            "hand-written PPO",
            baseline_median,
            engine_median,
            "steps/s",
            ratio,
            f">= {TARGET_STEPS_PER_SECOND:,} steps/s",
            engine_median >= TARGET_STEPS_PER_SECOND,
        ),
        Row(
            "engine overhead (time per step)",
            "hand-written PPO",
            1e6 / baseline_median,
            1e6 / engine_median,
            "us/step",
            time_ratio,
            f"ratio <= {1 + TARGET_OVERHEAD:.2f}",
            overhead <= TARGET_OVERHEAD,
        ),
    ]
    runs = {
        "steps": [engine.steps for engine, _ in pairs],
        "engine_seconds": [engine.seconds for engine, _ in pairs],
        "hand_written_seconds": [baseline.seconds for _, baseline in pairs],
        "engine_steps_per_second": engine_rates,
        "hand_written_steps_per_second": baseline_rates,
        "engine_episode_length": [engine.episode_length for engine, _ in pairs],
        "hand_written_episode_length": [baseline.episode_length for _, baseline in pairs],
    }
    return Report(rows, runs)


if __name__ == "__main__":
    benchmark_main(
        "engine_overhead",
        __doc__,
        measure,
        repeats=5,
        steps=STEPS,
        quick_steps=QUICK_STEPS,
        seeded=True,
    )
