"""Task schemas (group ``task``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

from omegaconf import MISSING

__all__ = ["IMPORTS_MODULE", "CartPoleTaskConf", "GymTaskConf", "MiniGridTaskConf"]

IMPORTS_MODULE = "imports_module"
"""Field metadata marking a field whose value may name a module to import, written
``module:Name`` (a Gymnasium id such as ``my_envs:Maze-v0``); the startup checks hold that
module to the allow-list."""


@dataclass
class CartPoleTaskConf:
    """``hydra_pipeline.tasks.CartPoleTask``: Gymnasium's CartPole-v1, batched in torch.

    Attributes:
        num_envs: Environments stepped at once.
        max_episode_steps: Episodes are truncated after this many steps.
        hide_velocities: Observe the cart's position and the pole's angle only (a partially
            observed CartPole, for models with memory): hide_observations=[1,3].
        hide_observations: Indices of the entries of (x, x_dot, theta, theta_dot) the policy
            does not see.
    """

    _target_: str = "hydra_pipeline.tasks.CartPoleTask"
    num_envs: int = 64
    max_episode_steps: int = 500
    hide_velocities: bool = False
    hide_observations: List[int] = field(default_factory=list)


@dataclass
class GymTaskConf:
    """``hydra_pipeline.tasks.GymTask``: any Gymnasium environment, vectorised.

    Attributes:
        env_id: A registered Gymnasium id, e.g. ``LunarLander-v3``, or ``module:Id`` to import
            the module that registers it first (the module must be allowed with
            allowed_targets on the command line).
        num_envs: Environments stepped at once.
        vectorization_mode: ``sync`` (one process) or ``async`` (one process per env).
        expert: A ``_target_`` node for a callable mapping observations to expert actions,
            or null.
        env_kwargs: Keyword arguments for ``gymnasium.make``.
        hide_observations: Indices of the entries of a float32 observation vector the policy
            does not see (removed): the zoo's velocity-free variants hide CartPole-v1's [1,3],
            Pendulum-v1's [2], MountainCarContinuous-v0's [1] and LunarLander-v3's [2,3,5].
    """

    _target_: str = "hydra_pipeline.tasks.GymTask"
    env_id: str = field(default=MISSING, metadata={IMPORTS_MODULE: True})
    num_envs: int = 8
    vectorization_mode: str = "sync"
    expert: Any = None
    env_kwargs: Dict[str, Any] = field(default_factory=dict)
    hide_observations: List[int] = field(default_factory=list)


@dataclass
class MiniGridTaskConf:
    """``hydra_pipeline.tasks.MiniGridTask``: MiniGrid and BabyAI environments (the minigrid
    extra), with the egocentric image, the direction and, for BabyAI, the mission as tokens;
    the BabyAI bot is the expert of BabyAI levels.

    Attributes:
        env_id: A MiniGrid or BabyAI id, e.g. ``MiniGrid-Empty-Random-5x5-v0`` or
            ``BabyAI-GoToLocal-v0``.
        num_envs: Environments stepped at once.
        vectorization_mode: ``sync`` (one process; needed by the bot) or ``async``.
        mission_length: Tokens of the mission observation of BabyAI levels.
        env_kwargs: Keyword arguments for ``gymnasium.make``, e.g. ``agent_view_size``.
    """

    _target_: str = "hydra_pipeline.tasks.MiniGridTask"
    env_id: str = field(default=MISSING, metadata={IMPORTS_MODULE: True})
    num_envs: int = 8
    vectorization_mode: str = "sync"
    mission_length: int = 16
    env_kwargs: Dict[str, Any] = field(default_factory=dict)
