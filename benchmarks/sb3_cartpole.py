"""Stable-Baselines3 PPO on Gymnasium's ``CartPole-v1``, stopped as soon as it is solved.

The baseline of ``time_to_solve.py``, which starts this script in a process of its own, as it
starts the app, and times it from just before ``Popen`` to its exit.

Hyperparameters: rl-baselines3-zoo's tuned entry for CartPole-v1 in ``hyperparams/ppo.yml``
(https://github.com/DLR-RM/rl-baselines3-zoo/blob/master/hyperparams/ppo.yml)::

    CartPole-v1:
      n_envs: 8
      n_timesteps: !!float 1e5
      policy: 'MlpPolicy'
      n_steps: 32
      batch_size: 256
      gae_lambda: 0.8
      gamma: 0.98
      n_epochs: 20
      ent_coef: 0.0
      learning_rate: lin_0.001
      clip_range: lin_0.2

The zoo's ``lin_<x>`` is ``progress_remaining * x`` (:func:`linear`); its environments are
``make_vec_env`` ones (``DummyVecEnv`` with a ``Monitor`` per environment), as here. Solved:
the mean return of the last 20 finished episodes is >= 475 (a callback checks after every
step). A seed that is not solved within the zoo's 1e5 steps continues, up to ``--max-steps``,
in a second ``learn`` call (SB3 then stretches the linear schedules over the new total, so the
learning rate rises again to two thirds of its start); the result says which happened.

    python benchmarks/sb3_cartpole.py --seed 0 --result sb3.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

ZOO_TIMESTEPS = 100_000
SOLVED_RETURN = 475.0
WINDOW = 20


def linear(initial: float) -> Callable[[float], float]:
    """rl-zoo's ``lin_<initial>``: from ``initial`` at the start to 0 at the end of training."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    return schedule


class StopWhenSolved(BaseCallback):
    """Ends training once the mean return of the last ``WINDOW`` finished episodes reaches
    ``SOLVED_RETURN``; it reads the episodes from the ``Monitor`` infos of every step."""

    def __init__(self) -> None:
        super().__init__()
        self.returns: deque[float] = deque(maxlen=WINDOW)
        self.solved_at: int | None = None

    @property
    def mean_return(self) -> float:
        return sum(self.returns) / len(self.returns) if self.returns else float("nan")

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            episode = info.get("episode")
            if episode is not None:
                self.returns.append(float(episode["r"]))
        if len(self.returns) == WINDOW and self.mean_return >= SOLVED_RETURN:
            self.solved_at = self.num_timesteps
            return False
        return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=300_000, help="give up after these")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1, as the app)")
    parser.add_argument("--result", type=Path, help="write the outcome here as JSON")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    env = make_vec_env("CartPole-v1", n_envs=8, seed=args.seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=linear(1e-3),
        clip_range=linear(0.2),
        seed=args.seed,
        device="cpu",
        verbose=0,
    )
    callback = StopWhenSolved()
    start = time.perf_counter()
    model.learn(total_timesteps=min(ZOO_TIMESTEPS, args.max_steps), callback=callback)
    within_zoo_budget = callback.solved_at is not None
    if callback.solved_at is None and model.num_timesteps < args.max_steps:
        model.learn(
            total_timesteps=args.max_steps - model.num_timesteps,
            callback=callback,
            reset_num_timesteps=False,
        )
    training_seconds = time.perf_counter() - start
    env.close()
    outcome = {
        "seed": args.seed,
        "solved": callback.solved_at is not None,
        "solved_within_zoo_budget": within_zoo_budget,
        "timesteps": model.num_timesteps,
        "mean_return_last_20": callback.mean_return,
        "training_seconds": training_seconds,
        "steps_per_second": model.num_timesteps / training_seconds,
    }
    print(json.dumps(outcome))
    if args.result:
        args.result.write_text(json.dumps(outcome, indent=2) + "\n")


if __name__ == "__main__":
    main()
