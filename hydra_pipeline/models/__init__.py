"""Actor-critic models and the action distributions they return."""

from hydra_pipeline.models.distributions import ActionDistribution, Categorical, DiagonalGaussian
from hydra_pipeline.models.encoders import Encoder, make_encoder
from hydra_pipeline.models.mlp import ACTIVATIONS, MLPActorCritic
from hydra_pipeline.models.protocol import ActorCriticOutput, model_arguments

__all__ = [
    "ACTIVATIONS",
    "ActionDistribution",
    "ActorCriticOutput",
    "Categorical",
    "DiagonalGaussian",
    "Encoder",
    "MLPActorCritic",
    "make_encoder",
    "model_arguments",
]
