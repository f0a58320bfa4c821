"""Parity with sb3-contrib's RecurrentPPO: the same weights give the same rollouts and the same
update, step for step.

The velocity-free CartPole preset (``+experiment=ppo_lstm_cartpole_novel``) has the zoo's
settings and sb3-contrib's ``MlpLstmPolicy`` layout, so the two implementations can be compared
exactly rather than by their learning curves, whose spread over seeds is large at 100k steps:

1. **Rollouts.** RecurrentPPO trains for ``--pretrain`` steps, its weights are copied into our
   model, and both collect ``--rollouts`` rollouts from freshly seeded environments with the
   most likely actions (so both take the same ones): observations (normalised), episode starts,
   values, log-probabilities, rewards, returns and advantages are compared, rollout after
   rollout, memory and normalisation statistics carried between them.
2. **One update.** On one RecurrentPPO rollout, RecurrentPPO's ``train()`` (20 epochs, Adam,
   gradient clipping, advantage normalisation) and our ``Learner.update`` from the same weights
   and a fresh Adam: the change of every parameter is compared.

Prints the largest absolute difference of each rollout quantity and the relative difference of
each parameter's change (float32 rounding gives about 1e-6).

    python benchmarks/sb3_recurrent_parity.py [--pretrain 4096] [--rollouts 8]
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Iterator
from typing import Any
from unittest import mock

import numpy as np
import torch
from common import app_config
from sb3_contrib import RecurrentPPO
from sb3_recurrent import ZOO, without_velocities
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize
from torch import Tensor

from hydra_pipeline.config import instantiate_node
from hydra_pipeline.engine.collector import RolloutCollector
from hydra_pipeline.engine.learner import Learner
from hydra_pipeline.engine.normalization import Normalization
from hydra_pipeline.engine.rollout import RolloutStorage
from hydra_pipeline.engine.statistics import TrainingStatistics
from hydra_pipeline.models import RecurrentActorCritic
from hydra_pipeline.models.distributions import Categorical
from hydra_pipeline.pipeline import TrainingPipeline
from hydra_pipeline.tasks import DiscreteActions, GymTask

ENV_ID, PRESET = "CartPole-v1", "ppo_lstm_cartpole_novel"
SETTINGS = {key: value for key, value in ZOO[ENV_ID].items() if key not in ("n_envs", "normalize")}
NUM_ENVS, STEPS = ZOO[ENV_ID]["n_envs"], ZOO[ENV_ID]["n_steps"]
PARTNERS = {
    "tower.core": "lstm_actor",
    "critic_tower.core": "lstm_critic",
    "actor.0": "mlp_extractor.policy_net.0",
    "actor.2": "action_net",
    "critic.0": "mlp_extractor.value_net.0",
    "critic.2": "value_net",
}
"""Our model's parameters (by prefix) and the RecurrentPPO policy's they correspond to."""
CPU = torch.device("cpu")


def environments() -> VecNormalize:
    """RecurrentPPO's environments, seeded as our task seeds its own."""
    envs = make_vec_env(ENV_ID, n_envs=NUM_ENVS, seed=0, wrapper_class=without_velocities)
    return VecNormalize(envs, gamma=SETTINGS["gamma"], **ZOO[ENV_ID]["normalize"])


def partner(name: str) -> str:
    """The RecurrentPPO parameter that our parameter ``name`` corresponds to."""
    prefix = next(prefix for prefix in PARTNERS if name.startswith(prefix))
    return PARTNERS[prefix] + name[len(prefix) :]


def copied_model(sb3: RecurrentPPO) -> RecurrentActorCritic:
    """Our model of the preset's layout, with RecurrentPPO's weights."""
    model = RecurrentActorCritic(
        (2,), DiscreteActions(2), rnn_type="lstm", hidden_size=64, encoder_hidden_sizes=[],
        separate_critic=True, head_hidden_sizes=[64], activation="relu", orthogonal_init=False,
    )  # fmt: skip
    theirs = dict(sb3.policy.named_parameters())
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.copy_(theirs[partner(name)])
    return model


def preset_pipeline(*overrides: str) -> TrainingPipeline:
    """The preset's pipeline, as the app builds it."""
    cfg = app_config(100_000, 0, f"+experiment={PRESET}", *overrides)
    pipeline: TrainingPipeline = instantiate_node(cfg, "pipeline")
    return pipeline


def start_collecting(sb3: RecurrentPPO) -> Any:
    """RecurrentPPO's callback, ready for ``collect_rollouts`` outside ``learn``."""
    _, callback = sb3._setup_learn(10**9, callback=None, reset_num_timesteps=True)
    callback.on_training_start(locals(), globals())
    return callback


def as_tensor(array: Any, like: Tensor) -> Tensor:
    return torch.as_tensor(np.asarray(array), dtype=torch.float32).reshape(like.shape)


def compare_rollouts(sb3: RecurrentPPO, rollouts: int) -> Iterator[tuple[int, str, float]]:
    """Each rollout quantity's largest absolute difference, rollout after rollout."""
    model = copied_model(sb3)
    sb3.set_env(environments())
    callback = start_collecting(sb3)
    pipeline = preset_pipeline()
    task = GymTask(ENV_ID, num_envs=NUM_ENVS, hide_observations=[1, 3])
    zoo = ZOO[ENV_ID]["normalize"]
    normalization = Normalization(
        observations=zoo["norm_obs"], rewards=zoo["norm_reward"], gamma=SETTINGS["gamma"]
    )
    statistics = TrainingStatistics(100)
    collector = RolloutCollector(pipeline, task, model, statistics, CPU, normalization, seed=0)

    def most_likely(distribution: CategoricalDistribution) -> Tensor:
        return distribution.distribution.probs.argmax(dim=1)

    with (
        mock.patch.object(CategoricalDistribution, "sample", most_likely),
        mock.patch.object(Categorical, "sample", Categorical.mode),
    ):
        for index in range(rollouts):
            assert sb3.env is not None  # set above
            sb3.collect_rollouts(sb3.env, callback, sb3.rollout_buffer, n_rollout_steps=STEPS)
            ours = collector.collect(pipeline.pipeline_stages[0])
            assert ours is not None
            theirs = sb3.rollout_buffer
            for name in ("observations", "episode_starts", "actions", "values", "log_probs",
                         "rewards", "returns", "advantages"):  # fmt: skip
                mine: Tensor = getattr(ours, name).float()
                difference = (mine - as_tensor(getattr(theirs, name), mine)).abs().max()
                yield index, name, float(difference)
    task.close()


def compare_update(sb3: RecurrentPPO) -> Iterator[tuple[str, float]]:
    """Each parameter's relative difference in change over one update of both sides."""
    lr, clip = 5e-4, 0.1  # fixed, so neither side's schedule is involved
    sb3.lr_schedule, sb3.clip_range = (lambda _: lr), (lambda _: clip)
    sb3.policy.optimizer = torch.optim.Adam(sb3.policy.parameters(), lr=lr, eps=1e-5)
    callback = start_collecting(sb3)
    assert sb3.env is not None  # the rollouts' environments
    sb3.collect_rollouts(sb3.env, callback, sb3.rollout_buffer, n_rollout_steps=STEPS)
    rollout = {
        name: copy.deepcopy(getattr(sb3.rollout_buffer, name))
        for name in ("observations", "episode_starts", "actions", "log_probs", "values",
                     "returns", "hidden_states_pi", "cell_states_pi", "hidden_states_vf",
                     "cell_states_vf")
    }  # fmt: skip
    model = copied_model(sb3)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    with mock.patch("numpy.random.randint", return_value=0):  # whole sequences, as ours
        sb3.train()
    pipeline = preset_pipeline(
        f"pipeline.optimizer_builder.lr={lr}",
        f"pipeline.named_losses.ppo_loss.clip_param={clip}",
        "pipeline.named_losses.ppo_loss.clip_decay=null",
        "lr_scheduler=constant",
    )
    storage = RolloutStorage(STEPS, NUM_ENVS, (2,), (), torch.int64, CPU)
    for name in ("observations", "actions", "log_probs", "values", "episode_starts"):
        target = getattr(storage, name)
        target.copy_(as_tensor(rollout[name], target).to(target.dtype))
    storage.compute_advantages(as_tensor(rollout["returns"], storage.returns))
    states = [
        torch.as_tensor(rollout[name][0, 0]) for name in
        ("hidden_states_pi", "cell_states_pi", "hidden_states_vf", "cell_states_vf")
    ]  # fmt: skip
    storage.memory = torch.stack(states, dim=1).unsqueeze(0)
    learner = Learner(pipeline, model, TrainingStatistics(100), CPU)
    stage = pipeline.pipeline_stages[0]
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
    parser.add_argument("--pretrain", type=int, default=4096, help="RecurrentPPO steps first")
    parser.add_argument("--rollouts", type=int, default=8)
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    sb3 = RecurrentPPO("MlpLstmPolicy", environments(), seed=0, verbose=0, **SETTINGS)
    if arguments.pretrain:
        sb3.learn(total_timesteps=arguments.pretrain)
    worst: dict[str, float] = {}
    for _, name, difference in compare_rollouts(sb3, arguments.rollouts):
        worst[name] = max(worst.get(name, 0.0), difference)
    print(f"Rollouts ({arguments.rollouts} of {STEPS} steps x {NUM_ENVS} environments), largest "
          "absolute difference:")  # fmt: skip
    for name, difference in worst.items():
        print(f"  {name:16s} {difference:.2e}")
    print("One update (20 epochs), relative difference of each parameter's change:")
    for name, relative in compare_update(sb3):
        print(f"  {name:36s} {relative:.2e}")


if __name__ == "__main__":
    main()
