"""sb3-contrib's RecurrentPPO with rl-baselines3-zoo's tuned ``ppo_lstm`` settings on a
velocity-free environment: train for a budget, then evaluate the final policy deterministically
on fresh episodes.

The baseline of ``ppo_zoo.py --suite recurrent``, which starts this script in a process of
its own. The settings are the zoo's ``hyperparams/ppo_lstm.yml`` (zoo 2.x; its
``normalize: True`` is ``VecNormalize``'s defaults, observations and rewards, with the
algorithm's gamma), sb3-contrib's ``RecurrentPPO`` defaults for what it leaves out; the
velocity-free environments remove the entries the zoo's
``NoVel`` variants hide (the same ones as this project's ``task.hide_observations``), with
Gymnasium's ``TransformObservation``; torch runs on one thread (as the app does by default).

    python benchmarks/sb3_recurrent.py --env CartPole-v1 --steps 100000 --seed 0 --result r.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from sb3_contrib import RecurrentPPO
from sb3_zoo import linear
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

HIDDEN = {"CartPole-v1": [1, 3], "Pendulum-v1": [2]}
"""The entries the zoo's velocity-free variants hide, by environment."""


POLICY: dict[str, Any] = {
    "ortho_init": False,
    "activation_fn": torch.nn.ReLU,
    "lstm_hidden_size": 64,
    "enable_critic_lstm": True,
    "net_arch": {"pi": [64], "vf": [64]},
}
"""The zoo's ``policy_kwargs`` of both environments' ``MlpLstmPolicy``."""

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
        "normalize": {"norm_obs": True, "norm_reward": True},
        "policy_kwargs": POLICY,
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
        "normalize": {"norm_obs": True, "norm_reward": True},
        "policy_kwargs": POLICY,
    },
}
"""The zoo's ``ppo_lstm`` settings for ``CartPoleNoVel-v1`` and ``PendulumNoVel-v1``."""


def without_velocities(env: gymnasium.Env[Any, Any]) -> gymnasium.Env[Any, Any]:
    """``env`` with the entries of :data:`HIDDEN` removed from its observations."""
    assert env.spec is not None
    space = env.observation_space
    assert isinstance(space, gymnasium.spaces.Box)
    keep = np.array([i for i in range(space.shape[0]) if i not in HIDDEN[env.spec.id]])
    visible = gymnasium.spaces.Box(space.low[keep], space.high[keep], dtype=space.dtype)
    return gymnasium.wrappers.TransformObservation(env, lambda obs: obs[keep], visible)


def train_and_evaluate(env_id: str, steps: int, seed: int, episodes: int) -> dict[str, Any]:
    """Train RecurrentPPO with the zoo's settings for ``steps``, then evaluate it."""
    torch.set_num_threads(1)
    settings = dict(ZOO[env_id])
    n_envs, normalize = settings.pop("n_envs"), settings.pop("normalize", None)
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed, wrapper_class=without_velocities)
    if normalize is not None:
        env = VecNormalize(env, gamma=settings["gamma"], **normalize)
    model = RecurrentPPO("MlpLstmPolicy", env, seed=seed, verbose=0, **settings)
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    train_seconds = time.perf_counter() - start
    evaluation = make_vec_env(
        env_id, n_envs=1, seed=seed + 10_000, wrapper_class=without_velocities
    )
    if isinstance(env, VecNormalize):  # the training statistics, frozen
        evaluation = VecNormalize(evaluation, training=False, norm_reward=False)
        evaluation.obs_rms = env.obs_rms
    returns, _ = evaluate_policy(
        model, evaluation, n_eval_episodes=episodes, deterministic=True, return_episode_rewards=True
    )
    return {
        "env": env_id,
        "seed": seed,
        "steps": steps,
        "reward": float(np.mean(returns)),
        "returns": [float(value) for value in returns],
        "train_seconds": train_seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=sorted(ZOO), required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--result", type=Path, required=True, help="where to write the JSON")
    args = parser.parse_args(argv)
    result = train_and_evaluate(args.env, args.steps, args.seed, args.episodes)
    args.result.write_text(json.dumps(result) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
