"""Stable-Baselines3 PPO with rl-baselines3-zoo's tuned hyperparameters on one environment:
train for a budget, then evaluate the final policy deterministically on fresh episodes.

The baseline of ``ppo_zoo.py``, which starts this script in a process of its own. The
hyperparameters are those of the zoo's ``hyperparams/ppo.yml`` (zoo 2.x), the environments are
``make_vec_env`` ones (as the zoo builds them), observation and reward normalisation is SB3's
``VecNormalize`` with the algorithm's gamma where the zoo sets ``normalize``, and torch runs on
one thread (as the app does by default).

    python benchmarks/sb3_zoo.py --env Pendulum-v1 --steps 100000 --seed 0 --result sb3.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize


def linear(initial: float) -> Callable[[float], float]:
    """The zoo's ``lin_<initial>``: from ``initial`` at the start to 0 at the end."""
    return lambda progress_remaining: progress_remaining * initial


LUNAR_LANDER: dict[str, Any] = {
    "n_envs": 16,
    "n_steps": 1024,
    "batch_size": 64,
    "gae_lambda": 0.98,
    "gamma": 0.999,
    "n_epochs": 4,
    "ent_coef": 0.01,
}
"""The zoo's entry for both LunarLander-v3 and LunarLanderContinuous-v3."""

ZOO: dict[str, dict[str, Any]] = {
    "CartPole-v1": {
        "n_envs": 8,
        "n_steps": 32,
        "batch_size": 256,
        "gae_lambda": 0.8,
        "gamma": 0.98,
        "n_epochs": 20,
        "ent_coef": 0.0,
        "learning_rate": linear(0.001),
        "clip_range": linear(0.2),
    },
    "Acrobot-v1": {
        "normalize": True,
        "n_envs": 16,
        "n_steps": 256,
        "gae_lambda": 0.94,
        "gamma": 0.99,
        "n_epochs": 4,
        "ent_coef": 0.0,
    },
    "Pendulum-v1": {
        "n_envs": 4,
        "n_steps": 1024,
        "gae_lambda": 0.95,
        "gamma": 0.9,
        "n_epochs": 10,
        "ent_coef": 0.0,
        "learning_rate": 1e-3,
        "clip_range": 0.2,
        "use_sde": True,
        "sde_sample_freq": 4,
    },
    "LunarLander-v3": LUNAR_LANDER,
    "LunarLanderContinuous-v3": LUNAR_LANDER,
    "MountainCarContinuous-v0": {
        "normalize": True,
        "n_envs": 1,
        "batch_size": 256,
        "n_steps": 8,
        "gamma": 0.9999,
        "learning_rate": 7.77e-05,
        "ent_coef": 0.00429,
        "clip_range": 0.1,
        "n_epochs": 10,
        "gae_lambda": 0.9,
        "max_grad_norm": 5,
        "vf_coef": 0.19,
        "use_sde": True,
        "policy_kwargs": {"log_std_init": -3.29, "ortho_init": False},
    },
}
"""rl-baselines3-zoo's ``hyperparams/ppo.yml`` entries (without ``n_timesteps`` and
``policy``: the budget is an argument, the policy ``MlpPolicy``)."""


def train_and_evaluate(env_id: str, steps: int, seed: int, episodes: int) -> dict[str, Any]:
    """Train for ``steps`` and evaluate the final policy on ``episodes`` fresh episodes (none
    for 0: a training-speed run)."""
    settings = dict(ZOO[env_id])
    normalize = settings.pop("normalize", False)
    env = make_vec_env(env_id, n_envs=settings.pop("n_envs"), seed=seed)
    if normalize:
        env = VecNormalize(env, gamma=settings["gamma"])
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **settings)
    start, cpu_start = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=steps)
    train_seconds = time.perf_counter() - start
    timings = {"train_seconds": train_seconds, "train_cpu_seconds": time.process_time() - cpu_start}
    if episodes == 0:
        return {**timings, "returns": []}
    evaluation_env = make_vec_env(env_id, n_envs=1, seed=seed + 10_000)
    if normalize:
        assert isinstance(env, VecNormalize)
        evaluation_env = VecNormalize(evaluation_env, training=False, norm_reward=False)
        evaluation_env.obs_rms = env.obs_rms
    returns, _ = evaluate_policy(
        model,
        evaluation_env,
        n_eval_episodes=episodes,
        deterministic=True,
        return_episode_rewards=True,
    )
    return {**timings, "returns": [float(r) for r in returns]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, choices=sorted(ZOO))
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--result", type=Path, required=True)
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    result = train_and_evaluate(arguments.env, arguments.steps, arguments.seed, arguments.episodes)
    arguments.result.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
