"""Tasks: batches of environments stepped together with torch tensors.

:class:`Task` is the protocol the engine trains on (see :mod:`hydra_pipeline.tasks.protocol`).
:class:`CartPoleTask` is CartPole written in torch, fast enough that the policy, not the
environment, sets the training speed; :class:`GymTask` wraps any Gymnasium environment and
imports Gymnasium only when built; :class:`MiniGridTask` runs MiniGrid and BabyAI (the
``minigrid`` extra), with the BabyAI bot as expert; :class:`ExpertDemonstrations` records a
task's expert as an off-policy data source.
"""

from hydra_pipeline.tasks.cartpole import CartPoleTask
from hydra_pipeline.tasks.demonstrations import ExpertDemonstrations
from hydra_pipeline.tasks.gym import GymTask
from hydra_pipeline.tasks.minigrid import MiniGridTask
from hydra_pipeline.tasks.observations import Observations, ObservationSpace, TensorSpace
from hydra_pipeline.tasks.protocol import (
    ActionSpace,
    ContinuousActions,
    DiscreteActions,
    StepResult,
    Task,
    as_action_space,
)

__all__ = [
    "ActionSpace",
    "CartPoleTask",
    "ContinuousActions",
    "DiscreteActions",
    "ExpertDemonstrations",
    "GymTask",
    "MiniGridTask",
    "ObservationSpace",
    "Observations",
    "StepResult",
    "Task",
    "TensorSpace",
    "as_action_space",
]
