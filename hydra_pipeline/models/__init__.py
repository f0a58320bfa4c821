"""Actor-critic models and the action distributions they return."""

from hydra_pipeline.models.distributions import ActionDistribution, Categorical, DiagonalGaussian
from hydra_pipeline.models.mlp import ACTIVATIONS, MLPActorCritic
from hydra_pipeline.models.protocol import ActorCriticOutput, has_memory, reset_memory
from hydra_pipeline.models.recurrent import RNN_TYPES, RecurrentActorCritic

__all__ = [
    "ACTIVATIONS",
    "RNN_TYPES",
    "ActionDistribution",
    "ActorCriticOutput",
    "Categorical",
    "DiagonalGaussian",
    "MLPActorCritic",
    "RecurrentActorCritic",
    "has_memory",
    "reset_memory",
]
