"""Actor-critic models and the action distributions they return."""

from hydra_pipeline.models.distributions import ActionDistribution, Categorical, DiagonalGaussian
from hydra_pipeline.models.encoders import Encoder, make_encoder
from hydra_pipeline.models.mlp import ACTIVATIONS, MLPActorCritic
from hydra_pipeline.models.protocol import (
    ActorCriticOutput,
    has_memory,
    model_arguments,
    reset_memory,
)
from hydra_pipeline.models.recurrent import RNN_TYPES, RecurrentActorCritic

__all__ = [
    "ACTIVATIONS",
    "RNN_TYPES",
    "ActionDistribution",
    "ActorCriticOutput",
    "Categorical",
    "DiagonalGaussian",
    "Encoder",
    "MLPActorCritic",
    "RecurrentActorCritic",
    "has_memory",
    "make_encoder",
    "model_arguments",
    "reset_memory",
]
