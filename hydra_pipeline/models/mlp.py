"""``MLPActorCritic``: separate actor and critic multi-layer perceptrons."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.models.distributions import ActionDistribution, Categorical, DiagonalGaussian
from hydra_pipeline.models.protocol import ActorCriticOutput
from hydra_pipeline.pipeline.validation import require_at_least
from hydra_pipeline.tasks.protocol import ActionSpace, DiscreteActions, as_action_space

__all__ = ["ACTIVATIONS", "MLPActorCritic"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def _layer(inputs: int, outputs: int, gain: float) -> nn.Linear:
    """A linear layer with orthogonal weights and zero bias (the usual PPO initialisation)."""
    layer = nn.Linear(inputs, outputs)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def _perceptron(
    inputs: int,
    hidden_sizes: Sequence[int],
    outputs: int,
    activation: type[nn.Module],
    head_gain: float,
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [_layer(inputs, size, math.sqrt(2)), activation()]
        inputs = size
    layers.append(_layer(inputs, outputs, head_gain))
    return nn.Sequential(*layers)


class MLPActorCritic(nn.Module):
    """An actor MLP and a critic MLP over flattened observations.

    The actor's head gives the logits of a categorical distribution for discrete actions, or
    the mean of a diagonal Gaussian (with a learned, state-independent log standard
    deviation) for continuous ones.

    Args:
        observation_shape: Shape of one observation (flattened before the first layer).
        action_space: The task's action space (or the config node ``hydra.utils.instantiate``
            makes of it, see :func:`~hydra_pipeline.tasks.protocol.as_action_space`).
        hidden_sizes: Width of each hidden layer, shared by actor and critic.
        activation: One of ``tanh``, ``relu``, ``elu``, ``gelu``, ``silu``.
        initial_log_std: Initial log standard deviation of continuous actions.
    """

    def __init__(
        self,
        observation_shape: Sequence[int],
        action_space: ActionSpace,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
        initial_log_std: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise InvalidArgumentError(
                "activation", f"must be one of {sorted(ACTIVATIONS)}", activation
            )
        for index, size in enumerate(hidden_sizes):
            require_at_least(f"hidden_sizes.{index}", size, 1)
        action_space = as_action_space(action_space)
        inputs = math.prod(observation_shape)
        self.log_std: nn.Parameter | None = None
        if isinstance(action_space, DiscreteActions):
            outputs = action_space.n
        else:
            outputs = math.prod(action_space.shape)
            self.log_std = nn.Parameter(torch.full(action_space.shape, float(initial_log_std)))
        layer_type = ACTIVATIONS[activation]
        self.actor = _perceptron(inputs, hidden_sizes, outputs, layer_type, head_gain=0.01)
        self.critic = _perceptron(inputs, hidden_sizes, 1, layer_type, head_gain=1.0)

    def forward(self, observations: Tensor) -> ActorCriticOutput:
        flat = observations.flatten(start_dim=1)
        head = self.actor(flat)
        distribution: ActionDistribution
        if self.log_std is None:
            distribution = Categorical(head)
        else:
            mean = head.view(-1, *self.log_std.shape)
            distribution = DiagonalGaussian(mean, self.log_std)
        return ActorCriticOutput(distribution, self.critic(flat).squeeze(-1))
