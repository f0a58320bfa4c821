"""``RecurrentActorCritic``: an observation encoder, a GRU or LSTM core, and actor-critic heads.

The model carries memory (see :mod:`hydra_pipeline.models.protocol`): acting feeds it one step
at a time, and updates replay a rollout's whole per-environment sequences through the same
core, resetting the memory where episodes start.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hydra_pipeline.arguments import require_at_least
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.models.distributions import ActionDistribution, Categorical, DiagonalGaussian
from hydra_pipeline.models.encoders import make_encoder
from hydra_pipeline.models.mlp import ACTIVATIONS, linear_layer, orthogonal_gains, perceptron
from hydra_pipeline.models.protocol import ActorCriticOutput, reset_memory
from hydra_pipeline.models.scan import gru_layer, lstm_layer
from hydra_pipeline.tasks.observations import Observations, ObservationSpace
from hydra_pipeline.tasks.protocol import ActionSpace, DiscreteActions, as_action_space

__all__ = ["RNN_TYPES", "RecurrentActorCritic", "observation_encoder"]

RNN_TYPES: dict[str, type[nn.GRU | nn.LSTM]] = {"gru": nn.GRU, "lstm": nn.LSTM}
"""The recurrent cores, by ``rnn_type``."""


def observation_encoder(
    observation_space: ObservationSpace | Sequence[int],
    cnn_channels: Sequence[int] = (16, 32),
    embedding_dim: int = 16,
) -> tuple[nn.Module, int]:
    """The module that turns a batch of observations into feature vectors, chosen by the
    observation space (:func:`~hydra_pipeline.models.make_encoder`: ``float32`` observations
    are flattened, images go through a small convolutional network, integers and tokens are
    embedded, ``Dict`` spaces get one encoder per key), and the size of its features."""
    encoder = make_encoder(
        observation_space, cnn_channels=cnn_channels, embedding_dim=embedding_dim
    )
    return encoder, encoder.output_size


class RecurrentActorCritic(nn.Module):
    """An encoder (the observations, read by :func:`observation_encoder`, then an MLP), a
    recurrent core (GRU or LSTM), and linear actor and critic heads on the core's output.

    The memory of ``batch`` sequences is one tensor: ``(batch, num_layers, hidden_size)`` for
    a GRU (its hidden state), ``(batch, 2 * num_layers, hidden_size)`` for an LSTM (its hidden
    and cell states). Fresh memory is zeros.

    Args:
        observation_shape: Shape of one observation.
        action_space: The task's action space (or the config node of it).
        rnn_type: The core: ``gru`` or ``lstm``.
        hidden_size: Size of the core's state and output.
        num_layers: Stacked recurrent layers.
        encoder_hidden_sizes: Width of each layer of the MLP between the observations and the
            core (empty: the observations enter the core directly).
        activation: The encoder's activation: ``tanh``, ``relu``, ``elu``, ``gelu`` or
            ``silu``.
        initial_log_std: Initial log standard deviation of continuous actions.
        orthogonal_init: Orthogonal weights scaled by the gains below (the core's with gain
            1), zero biases; ``False`` keeps torch's default initialisation.
        hidden_gain: Gain of the encoder layers' weights.
        actor_gain: Gain of the actor head's (small: nearly uniform first actions).
        critic_gain: Gain of the critic head's.
        observation_space: The task's observation space, when its observations are not
            ``float32`` vectors (images, ``Dict`` spaces; the engine passes it then);
            ``None``: ``float32`` observations of ``observation_shape``.
        cnn_channels: Output channels of each convolution of image encoders.
        embedding_dim: Size of the embeddings of integer observations and tokens.
    """

    def __init__(
        self,
        observation_shape: Sequence[int],
        action_space: ActionSpace,
        rnn_type: str = "gru",
        hidden_size: int = 64,
        num_layers: int = 1,
        encoder_hidden_sizes: Sequence[int] = (64,),
        activation: str = "tanh",
        initial_log_std: float = 0.0,
        orthogonal_init: bool = True,
        hidden_gain: float = math.sqrt(2),
        actor_gain: float = 0.01,
        critic_gain: float = 1.0,
        observation_space: ObservationSpace | None = None,
        cnn_channels: Sequence[int] = (16, 32),
        embedding_dim: int = 16,
    ) -> None:
        super().__init__()
        if rnn_type not in RNN_TYPES:
            raise InvalidArgumentError("rnn_type", f"must be one of {sorted(RNN_TYPES)}", rnn_type)
        if activation not in ACTIVATIONS:
            raise InvalidArgumentError(
                "activation", f"must be one of {sorted(ACTIVATIONS)}", activation
            )
        self.hidden_size = require_at_least("hidden_size", hidden_size, 1)
        self.num_layers = require_at_least("num_layers", num_layers, 1)
        for index, size in enumerate(encoder_hidden_sizes):
            require_at_least(f"encoder_hidden_sizes.{index}", size, 1)
        hidden, actor, critic = orthogonal_gains(
            orthogonal_init, hidden_gain, actor_gain, critic_gain
        )
        action_space = as_action_space(action_space)
        self.log_std: nn.Parameter | None = None
        if isinstance(action_space, DiscreteActions):
            outputs = action_space.n
        else:
            outputs = math.prod(action_space.shape)
            self.log_std = nn.Parameter(torch.full(action_space.shape, float(initial_log_std)))

        reader, features = observation_encoder(
            observation_shape if observation_space is None else observation_space,
            cnn_channels,
            embedding_dim,
        )
        layers = perceptron(
            features, encoder_hidden_sizes, None, ACTIVATIONS[activation], (hidden, None)
        )
        self.encoder = nn.Sequential(reader, *layers)
        inputs = encoder_hidden_sizes[-1] if encoder_hidden_sizes else features
        self.is_lstm = rnn_type == "lstm"
        self.core = RNN_TYPES[rnn_type](inputs, self.hidden_size, self.num_layers)
        if orthogonal_init:
            for name, parameter in self.core.named_parameters():
                if name.startswith("weight"):
                    nn.init.orthogonal_(parameter)
                else:
                    nn.init.zeros_(parameter)
        self.actor = linear_layer(self.hidden_size, outputs, actor)
        self.critic = linear_layer(self.hidden_size, 1, critic)

    def initial_memory(self, batch_size: int) -> Tensor:
        """Zeros: the memory of ``batch_size`` fresh episodes, on the model's device."""
        rows = 2 * self.num_layers if self.is_lstm else self.num_layers
        device = self.actor.weight.device
        return torch.zeros(batch_size, rows, self.hidden_size, device=device)

    def forward(
        self, observations: Observations, memory: Tensor, episode_starts: Tensor
    ) -> tuple[ActorCriticOutput, Tensor]:
        """The outputs of ``steps`` steps of ``batch`` sequences and the memory after them
        (shapes in :mod:`hydra_pipeline.models.protocol`)."""
        steps, batch = episode_starts.shape
        features = self.encoder(observations).view(steps, batch, -1)
        # Replaying several steps on the CPU, the scan is the faster path; acting (one step)
        # and on a GPU, the library's kernels are.
        if steps > 1 and features.device.type == "cpu":
            outputs, memory = self._scan(features, memory, episode_starts)
        else:
            outputs, memory = self._stretches(features, memory, episode_starts)
        core = outputs.flatten(0, 1)
        head = self.actor(core)
        distribution: ActionDistribution
        if self.log_std is None:
            distribution = Categorical(head)
        else:
            distribution = DiagonalGaussian(head.view(-1, *self.log_std.shape), self.log_std)
        return ActorCriticOutput(distribution, self.critic(core).squeeze(-1)), memory

    def _scan(
        self, features: Tensor, memory: Tensor, episode_starts: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The core over the whole sequence in one loop per layer that applies the resets
        itself (:mod:`hydra_pipeline.models.scan`): the CPU's fast path."""
        keep = episode_starts.logical_not().unsqueeze(-1).to(features.dtype)
        layers = self.num_layers
        states: list[Tensor] = []
        cells: list[Tensor] = []
        outputs = features
        for layer in range(layers):
            weights = tuple(
                getattr(self.core, f"{name}_l{layer}")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            )
            if self.is_lstm:
                cell = memory[:, layers + layer]
                outputs, state, cell = lstm_layer(outputs, memory[:, layer], cell, keep, weights)
                cells.append(cell)
            else:
                outputs, state = gru_layer(outputs, memory[:, layer], keep, weights)
            states.append(state)
        # Memory rows: each layer's hidden state, then (LSTM) each layer's cell.
        return outputs, torch.stack(states + cells, dim=1)

    def _stretches(
        self, features: Tensor, memory: Tensor, episode_starts: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The core over each stretch of steps in which no episode starts, with the library's
        fused kernels (one call when acting, a few per replayed rollout), resetting memory
        where the next one starts."""
        steps = features.shape[0]
        bounds = [0, steps]
        if steps > 1:
            starting = torch.nonzero(episode_starts[1:].any(dim=1)).flatten() + 1
            bounds[1:1] = starting.tolist()
        outputs = []
        for begin, end in itertools.pairwise(bounds):
            memory = reset_memory(memory, episode_starts[begin])
            output, memory = self._core(features[begin:end], memory)
            outputs.append(output)
        return (torch.cat(outputs) if len(outputs) > 1 else outputs[0]), memory

    def _core(self, features: Tensor, memory: Tensor) -> tuple[Tensor, Tensor]:
        """The core over ``features`` ``(steps, batch, inputs)`` from ``memory``: its outputs
        and the memory after them (batch first, as the engine keeps it)."""
        state = memory.transpose(0, 1).contiguous()
        if self.is_lstm:
            output, (hidden, cell) = self.core(features, tuple(state.chunk(2)))
            state = torch.cat((hidden, cell))
        else:
            output, state = self.core(features, state)
        return output, state.transpose(0, 1)
