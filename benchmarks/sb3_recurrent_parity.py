"""Parity with sb3-contrib's RecurrentPPO: the same weights give the same rollouts and the same
update, step for step.

The velocity-free presets (``+experiment=ppo_lstm_cartpole_novel`` and
``ppo_lstm_pendulum_novel``) have the zoo's settings and sb3-contrib's ``MlpLstmPolicy``
layout, so the two implementations can be compared exactly rather than by their learning
curves, whose spread over seeds is large at 100k steps. Our side is built from the preset as
the app builds it (task, model, normalisation, pipeline), RecurrentPPO's from
``sb3_recurrent.py``'s settings:

1. **Rollouts.** RecurrentPPO trains for ``--pretrain`` steps, its weights are copied into our
   model, and both collect ``--rollouts`` rollouts from freshly seeded environments with the
   most likely actions (so both take the same ones; with gSDE, the mean): observations
   (normalised), episode starts, actions, values, log-probabilities, rewards (scaled), returns
   and advantages are compared, rollout after rollout, memory and normalisation statistics
   carried between them. Pendulum's episodes end by its time limit every 200 steps, so its
   rollouts also check the bootstrapped value of a truncated episode.
2. **One update.** On one RecurrentPPO rollout, RecurrentPPO's ``train()`` (its epochs, Adam,
   gradient clipping, advantage normalisation; its minibatches in rollout order) and our
   ``Learner.update`` (the same sequences per minibatch, in the same order) from the same
   weights and a fresh Adam: the change of every parameter is compared (with gSDE, the
   exploration matrices' log standard deviations too).

Prints the largest absolute difference of each rollout quantity and the relative difference of
each parameter's change. One difference is known: our minibatch advantage normalisation divides
by ``std + 1e-5`` (AllenAct's), SB3's by ``std + 1e-8``; it shows over many gradient steps
(Pendulum's update has 32 minibatches an epoch: ``--epochs 1`` compares 32 steps, the zoo's 10
epochs 320), and ``--sb3-epsilon`` gives our side SB3's, leaving float32 rounding (about 1e-6).

    python benchmarks/sb3_recurrent_parity.py [--env Pendulum-v1] [--pretrain 4096]
        [--rollouts 8] [--epochs 1] [--sb3-epsilon]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

import numpy as np
import torch
from common import app_config
from sb3_contrib import RecurrentPPO
from sb3_recurrent import ZOO, without_velocities
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize
from torch import Tensor, nn

from hydra_pipeline.config import instantiate_node
from hydra_pipeline.config.normalization import build_normalization
from hydra_pipeline.engine import losses
from hydra_pipeline.engine.acting import Actor
from hydra_pipeline.engine.collector import RolloutCollector
from hydra_pipeline.engine.distributed import moments
from hydra_pipeline.engine.fit import sequence_steps
from hydra_pipeline.engine.learner import Learner
from hydra_pipeline.engine.rollout import RolloutStorage
from hydra_pipeline.engine.statistics import TrainingStatistics
from hydra_pipeline.models.distributions import Categorical
from hydra_pipeline.models.gsde import StateDependentGaussian
from hydra_pipeline.models.protocol import model_arguments
from hydra_pipeline.pipeline import TrainingPipeline
from hydra_pipeline.tasks import GymTask
from hydra_pipeline.tasks.observations import observation_space_of

PRESETS = {"CartPole-v1": "ppo_lstm_cartpole_novel", "Pendulum-v1": "ppo_lstm_pendulum_novel"}
"""The preset of each velocity-free environment."""
PARTNERS = {
    "tower.core": "lstm_actor",
    "critic_tower.core": "lstm_critic",
    "actor.0": "mlp_extractor.policy_net.0",
    "actor.2": "action_net",
    "critic.0": "mlp_extractor.value_net.0",
    "critic.2": "value_net",
    "noise.log_std": "log_std",
}
"""Our model's parameters (by prefix) and the RecurrentPPO policy's they correspond to."""
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Case:
    """One environment's comparison: the zoo's settings on RecurrentPPO's side, the preset on
    ours.

    Attributes:
        env_id: The Gymnasium id.
        preset: Our ``experiment`` preset for it.
        settings: RecurrentPPO's keyword arguments.
        num_envs: Environments stepped at once (both sides).
        steps: Steps of each rollout (both sides).
    """

    env_id: str
    preset: str
    settings: dict[str, Any]
    num_envs: int
    steps: int

    @classmethod
    def of(cls, env_id: str) -> Case:
        zoo = ZOO[env_id]
        settings = {key: value for key, value in zoo.items() if key not in ("n_envs", "normalize")}
        return cls(env_id, PRESETS[env_id], settings, zoo["n_envs"], zoo["n_steps"])

    def config(self, *overrides: str) -> Any:
        """The preset's config, as the app composes it."""
        return app_config(100_000, 0, f"+experiment={self.preset}", *overrides)

    def pipeline(self, *overrides: str) -> TrainingPipeline:
        """The preset's pipeline, as the app builds it."""
        pipeline: TrainingPipeline = instantiate_node(self.config(*overrides), "pipeline")
        return pipeline

    def task(self) -> GymTask:
        """The preset's task (its velocities hidden), as the app builds it."""
        task: GymTask = instantiate_node(self.config(), "task")
        return task

    def environments(self) -> VecNormalize:
        """RecurrentPPO's environments, seeded as our task seeds its own."""
        envs = make_vec_env(
            self.env_id, n_envs=self.num_envs, seed=0, wrapper_class=without_velocities
        )
        return VecNormalize(envs, gamma=self.settings["gamma"], **ZOO[self.env_id]["normalize"])

    def copied_model(self, sb3: RecurrentPPO, task: GymTask) -> nn.Module:
        """The preset's model, with RecurrentPPO's weights."""
        model: nn.Module = instantiate_node(self.config(), "model", **model_arguments(task))
        theirs = dict(sb3.policy.named_parameters())
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                parameter.copy_(theirs[partner(name)])
        return model


def partner(name: str) -> str:
    """The RecurrentPPO parameter that our parameter ``name`` corresponds to."""
    prefix = next(prefix for prefix in PARTNERS if name.startswith(prefix))
    return PARTNERS[prefix] + name[len(prefix) :]


def start_collecting(sb3: RecurrentPPO) -> Any:
    """RecurrentPPO's callback, ready for ``collect_rollouts`` outside ``learn``."""
    _, callback = sb3._setup_learn(10**9, callback=None, reset_num_timesteps=True)
    callback.on_training_start(locals(), globals())
    return callback


def as_tensor(array: Any, like: Tensor) -> Tensor:
    return torch.as_tensor(np.asarray(array), dtype=torch.float32).reshape(like.shape)


def most_likely_actions() -> contextlib.ExitStack:
    """Both sides act with their distributions' modes (gSDE: the mean, whatever the
    exploration matrices), so that they take the same actions."""
    stack = contextlib.ExitStack()
    for owner, method in (
        (CategoricalDistribution, "sample"),
        (StateDependentNoiseDistribution, "sample"),
        (Categorical, "sample"),
    ):
        stack.enter_context(mock.patch.object(owner, method, owner.mode))
    stack.enter_context(
        mock.patch.object(StateDependentGaussian, "sample_with", lambda self, _: self.mode())
    )
    return stack


def compare_rollouts(
    case: Case, sb3: RecurrentPPO, rollouts: int
) -> Iterator[tuple[int, str, float]]:
    """Each rollout quantity's largest absolute difference, rollout after rollout."""
    sb3.set_env(case.environments())
    callback = start_collecting(sb3)
    pipeline, task = case.pipeline(), case.task()
    model = case.copied_model(sb3, task)
    normalization = build_normalization(case.config())
    statistics = TrainingStatistics(100)
    collector = RolloutCollector(pipeline, task, model, statistics, CPU, normalization, seed=0)
    with most_likely_actions():
        for index in range(rollouts):
            assert sb3.env is not None  # set above
            sb3.collect_rollouts(sb3.env, callback, sb3.rollout_buffer, n_rollout_steps=case.steps)
            ours = collector.collect(pipeline.pipeline_stages[0])
            assert ours is not None
            theirs = sb3.rollout_buffer
            for name in ("observations", "episode_starts", "actions", "values", "log_probs",
                         "rewards", "returns", "advantages"):  # fmt: skip
                mine: Tensor = getattr(ours, name).float()
                difference = (mine - as_tensor(getattr(theirs, name), mine)).abs().max()
                yield index, name, float(difference)
    task.close()


def rollout_order(storage: RolloutStorage) -> Tensor:
    """Our sequences in the order of RecurrentPPO's minibatches when it starts at the
    rollout's first step: environment after environment, each one's sequences in time order
    (our sequence ``u`` is environment ``u % num_envs``'s ``(u // num_envs)``-th)."""
    per_environment = storage.num_steps // storage.sequence_length
    chunks = torch.arange(per_environment * storage.num_envs)
    return (chunks % per_environment) * storage.num_envs + chunks // per_environment


def sb3_normalized(advantages: Tensor) -> Tensor:
    """Stable-Baselines3's minibatch advantage normalisation: ``std + 1e-8`` below, where ours
    (AllenAct's) adds 1e-5."""
    mean, std = moments(advantages)
    return (advantages - mean) / (std + 1e-8)


def compare_update(
    case: Case, sb3: RecurrentPPO, epochs: int, sb3_epsilon: bool
) -> Iterator[tuple[str, float]]:
    """Each parameter's relative difference in change over one update of ``epochs`` epochs
    of both sides (with ``sb3_epsilon``, ours normalising advantages as SB3 does)."""
    lr, clip = 5e-4, 0.1  # fixed, so neither side's schedule is involved
    sb3.n_epochs = epochs
    sb3.lr_schedule, sb3.clip_range = (lambda _: lr), (lambda _: clip)
    sb3.policy.optimizer = torch.optim.Adam(sb3.policy.parameters(), lr=lr, eps=1e-5)
    callback = start_collecting(sb3)
    assert sb3.env is not None  # the rollouts' environments
    sb3.collect_rollouts(sb3.env, callback, sb3.rollout_buffer, n_rollout_steps=case.steps)
    rollout = {
        name: copy.deepcopy(getattr(sb3.rollout_buffer, name))
        for name in ("observations", "episode_starts", "actions", "log_probs", "values",
                     "returns", "hidden_states_pi", "cell_states_pi", "hidden_states_vf",
                     "cell_states_vf")
    }  # fmt: skip
    task = case.task()
    model = case.copied_model(sb3, task)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    with mock.patch("numpy.random.randint", return_value=0):  # minibatches in rollout order
        sb3.train()
    pipeline = case.pipeline(
        f"pipeline.optimizer_builder.lr={lr}",
        f"pipeline.named_losses.ppo_loss.clip_param={clip}",
        "pipeline.named_losses.ppo_loss.clip_decay=null",
        "lr_scheduler=constant",
        f"pipeline.update_repeats={epochs}",
    )
    stage = pipeline.pipeline_stages[0]
    actor = Actor(model, task.action_space, CPU)
    storage = RolloutStorage(
        case.steps, case.num_envs, observation_space_of(task), actor.action_shape,
        actor.action_dtype, CPU, sequence_steps(stage.training_settings),
    )  # fmt: skip
    task.close()
    for name in ("observations", "actions", "log_probs", "values", "episode_starts"):
        target = getattr(storage, name)
        target.copy_(as_tensor(rollout[name], target).to(target.dtype))
    storage.compute_advantages(as_tensor(rollout["returns"], storage.returns))
    starts = slice(None, None, storage.sequence_length)  # each sequence's first step, layer 0
    states = [
        torch.as_tensor(rollout[name][starts, 0]) for name in
        ("hidden_states_pi", "cell_states_pi", "hidden_states_vf", "cell_states_vf")
    ]  # fmt: skip
    storage.memory = torch.stack(states, dim=2)  # (sequences, environments, 4, hidden)
    learner = Learner(pipeline, model, TrainingStatistics(100), CPU)
    order = rollout_order(storage)
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(torch, "randperm", lambda *_, **__: order))
        if sb3_epsilon:
            stack.enter_context(mock.patch.object(losses, "normalized", sb3_normalized))
        for component in stage.stage_components:
            learner.update(stage, component, storage)
    theirs = dict(sb3.policy.named_parameters())
    for name, parameter in model.named_parameters():
        ours_change = parameter.detach() - before[name]
        sb3_change = theirs[partner(name)].detach() - before[name]
        relative = (ours_change - sb3_change).norm() / sb3_change.norm().clamp(min=1e-12)
        yield name, float(relative)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=sorted(PRESETS), default="CartPole-v1")
    parser.add_argument("--pretrain", type=int, default=4096, help="RecurrentPPO steps first")
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--epochs", type=int, help="of the update (default: the zoo's)")
    parser.add_argument(
        "--sb3-epsilon",
        action="store_true",
        help="normalise our minibatch advantages with SB3's std + 1e-8 (ours: + 1e-5)",
    )
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    case = Case.of(arguments.env)
    sb3 = RecurrentPPO("MlpLstmPolicy", case.environments(), seed=0, verbose=0, **case.settings)
    if arguments.pretrain:
        sb3.learn(total_timesteps=arguments.pretrain)
    worst: dict[str, float] = {}
    for _, name, difference in compare_rollouts(case, sb3, arguments.rollouts):
        worst[name] = max(worst.get(name, 0.0), difference)
    print(f"{case.env_id}: rollouts ({arguments.rollouts} of {case.steps} steps x "
          f"{case.num_envs} environments), largest absolute difference:")  # fmt: skip
    for name, difference in worst.items():
        print(f"  {name:16s} {difference:.2e}")
    epochs = arguments.epochs or sb3.n_epochs
    print(f"One update ({epochs} epochs), relative difference of each parameter's change:")
    for name, relative in compare_update(case, sb3, epochs, arguments.sb3_epsilon):
        print(f"  {name:36s} {relative:.2e}")


if __name__ == "__main__":
    main()
