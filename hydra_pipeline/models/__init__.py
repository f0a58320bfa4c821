"""Actor-critic models and the action distributions they return."""

from hydra_pipeline.models.distributions import ActionDistribution, Categorical, DiagonalGaussian
from hydra_pipeline.models.mlp import ACTIVATIONS, MLPActorCritic
from hydra_pipeline.models.protocol import ActorCriticOutput

__all__ = [
    "ACTIVATIONS",
    "ActionDistribution",
    "ActorCriticOutput",
    "Categorical",
    "DiagonalGaussian",
    "MLPActorCritic",
]
