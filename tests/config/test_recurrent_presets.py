"""The velocity-free presets hold rl-baselines3-zoo's ``ppo_lstm`` settings, key by key, as the
baseline they are compared with (``benchmarks/sb3_recurrent.py``) spells them, with
sb3-contrib's ``RecurrentPPO`` defaults where the zoo leaves a key out.

A transcription slip here (a preset without the zoo's normalisation or policy layout) trains a
different algorithm than the table's other side, which is how the Pendulum preset once failed
to learn. Needs ``sb3-contrib`` (the ``benchmark`` extra).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig

pytest.importorskip("sb3_contrib")

from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from sb3_recurrent import HIDDEN, ZOO

PRESETS = {"CartPole-v1": "ppo_lstm_cartpole_novel", "Pendulum-v1": "ppo_lstm_pendulum_novel"}
ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh"}


def defaults(function: Callable[..., Any]) -> dict[str, Any]:
    """The default of each keyword argument of ``function``."""
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def schedule(value: Any) -> tuple[str, float]:
    """A zoo setting as (kind, initial value): ``lin_<x>`` is linear from ``x`` to 0."""
    return ("linear", value(1.0)) if callable(value) else ("constant", value)


def our_schedule(decay: Any, initial: float, budget: int) -> tuple[str, float]:
    """A preset's ``LinearDecay`` (or none) on ``initial`` as (kind, initial value)."""
    if decay is None:
        return ("constant", initial)
    assert (decay.startp, decay.endp, decay.steps) == (1.0, 0.0, budget)
    return ("linear", initial)


def zoo_settings(env_id: str) -> dict[str, Any]:
    """The zoo's settings of ``env_id`` in its vocabulary, RecurrentPPO's and its policy's
    defaults filled in."""
    zoo = {**defaults(RecurrentPPO), **ZOO[env_id]}
    policy = {**defaults(RecurrentActorCriticPolicy), **zoo["policy_kwargs"]}
    return {
        "hidden": HIDDEN[env_id],
        "n_envs": zoo["n_envs"],
        "n_steps": zoo["n_steps"],
        "batch_size": zoo["batch_size"],
        "n_epochs": zoo["n_epochs"],
        "gamma": zoo["gamma"],
        "gae_lambda": zoo["gae_lambda"],
        "learning_rate": schedule(zoo["learning_rate"]),
        "clip_range": schedule(zoo["clip_range"]),
        "ent_coef": zoo["ent_coef"],
        "vf_coef": zoo["vf_coef"],
        "max_grad_norm": zoo["max_grad_norm"],
        "target_kl": zoo["target_kl"],
        "normalize": zoo["normalize"],
        "use_sde": zoo["use_sde"],
        "sde_sample_freq": zoo["sde_sample_freq"] if zoo["use_sde"] else None,
        "lstm": (policy["lstm_hidden_size"], policy["n_lstm_layers"], policy["shared_lstm"]),
        "critic_lstm": policy["enable_critic_lstm"],
        "net_arch": policy["net_arch"],
        "activation": ACTIVATIONS[policy["activation_fn"].__name__],
        "ortho_init": policy["ortho_init"],
        "log_std_init": policy["log_std_init"],
    }


def preset_settings(cfg: DictConfig) -> dict[str, Any]:
    """A composed preset's settings in the zoo's vocabulary."""
    pipeline, model, task = cfg.pipeline, cfg.model, cfg.task
    (stage,) = pipeline.pipeline_stages
    ppo = pipeline.named_losses.ppo_loss
    builder = pipeline.lr_scheduler_builder
    lr_decay = None if builder is None else builder.lr_lambda
    assert model.encoder_hidden_sizes == []  # the LSTMs read the observations, as sb3-contrib's
    assert pipeline.minibatch_split == "environments" and ppo.advantage_normalization == "minibatch"
    return {
        "hidden": list(task.hide_observations),
        "n_envs": task.num_envs,
        "n_steps": pipeline.num_steps,
        "batch_size": task.num_envs * pipeline.num_steps // pipeline.num_mini_batch,
        "n_epochs": pipeline.update_repeats,
        "gamma": pipeline.gamma,
        "gae_lambda": pipeline.gae_lambda,
        "learning_rate": our_schedule(
            lr_decay, pipeline.optimizer_builder.lr, stage.max_stage_steps
        ),
        "clip_range": our_schedule(ppo.clip_decay, ppo.clip_param, stage.max_stage_steps),
        "ent_coef": ppo.entropy_coef,
        "vf_coef": ppo.value_loss_coef / 2,  # our value loss is half the squared error
        "max_grad_norm": pipeline.max_grad_norm,
        "target_kl": ppo.target_kl,
        "normalize": {
            "norm_obs": cfg.normalization.observations,
            "norm_reward": cfg.normalization.rewards,
        },
        "use_sde": model.use_sde,
        "sde_sample_freq": model.sde_sample_freq if model.use_sde else None,
        "lstm": (model.hidden_size, model.num_layers, False),
        "critic_lstm": model.separate_critic,
        "net_arch": {"pi": list(model.head_hidden_sizes), "vf": list(model.head_hidden_sizes)},
        "activation": model.activation,
        "ortho_init": model.orthogonal_init,
        "log_std_init": model.initial_log_std,
    }


@pytest.mark.parametrize("env_id", sorted(PRESETS))
def test_the_preset_has_the_zoos_ppo_lstm_settings(
    compose: Callable[..., DictConfig], env_id: str
) -> None:
    cfg = compose(f"+experiment={PRESETS[env_id]}")
    assert cfg.task.env_id == env_id
    assert cfg.normalization.gamma is None  # the return's discount is the pipeline's gamma
    assert preset_settings(cfg) == zoo_settings(env_id)
