"""``RecurrentActorCritic``: an observation encoder, a GRU or LSTM core, and actor-critic heads.

The model carries memory (see :mod:`hydra_pipeline.models.protocol`): acting feeds it one step
at a time, and updates replay a rollout's sequences through the same core, resetting the
memory where episodes start. On the CPU a replay runs each core layer over the whole sequence
in one loop, and acting steps it once, the actor's and critic's cores together
(:mod:`hydra_pipeline.models.scan`); every call on a GPU uses the library's kernels, once per
stretch of steps without an episode start.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hydra_pipeline.arguments import require_at_least
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.models.encoders import make_encoder
from hydra_pipeline.models.heads import Exploration, action_distribution, exploration_parameters
from hydra_pipeline.models.mlp import ACTIVATIONS, orthogonal_gains, perceptron
from hydra_pipeline.models.protocol import ActorCriticOutput, reset_memory
from hydra_pipeline.models.scan import gru_layer, gru_step, lstm_layer, lstm_step
from hydra_pipeline.tasks.observations import Observations, ObservationSpace
from hydra_pipeline.tasks.protocol import ActionSpace, as_action_space

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


_LSTM_STRETCHES_PER_STEP = 8
"""An LSTM's sequence goes through the library's kernel when it has at most one stretch
without an episode start per this many steps (measured on a 2-core CPU: 32 steps in 2
stretches ran 3x faster there, in 9 stretches 1.6x slower)."""


class RecurrentTower(nn.Module):
    """An observation encoder (an MLP after :func:`observation_encoder`) and a recurrent
    core: the part of a recurrent model that remembers. Its memory of ``batch`` sequences is
    ``(batch, rows, hidden_size)``: each layer's hidden state, then (LSTM) each layer's cell.
    :func:`run_towers` runs it.

    Args:
        reader: The observation encoder, and the size of its features.
        encoder_hidden_sizes: The MLP's layers (empty: the features enter the core directly).
        activation: The MLP's activation.
        rnn_type: ``gru`` or ``lstm``.
        hidden_size: Size of the core's state and output.
        num_layers: Stacked recurrent layers.
        gain: The MLP layers' orthogonal gain (``None``: torch's initialisation, for the core
            too; otherwise the core gets orthogonal weights and zero biases).
    """

    def __init__(
        self,
        reader: tuple[nn.Module, int],
        encoder_hidden_sizes: Sequence[int],
        activation: type[nn.Module],
        rnn_type: str,
        hidden_size: int,
        num_layers: int,
        gain: float | None,
    ) -> None:
        super().__init__()
        module, features = reader
        layers = perceptron(features, encoder_hidden_sizes, None, activation, (gain, None))
        self.encoder = nn.Sequential(module, *layers)
        inputs = encoder_hidden_sizes[-1] if encoder_hidden_sizes else features
        self.is_lstm = rnn_type == "lstm"
        self.num_layers = num_layers
        self.core = RNN_TYPES[rnn_type](inputs, hidden_size, num_layers)
        if gain is not None:
            for name, parameter in self.core.named_parameters():
                if name.startswith("weight"):
                    nn.init.orthogonal_(parameter)
                else:
                    nn.init.zeros_(parameter)

    @property
    def memory_rows(self) -> int:
        return 2 * self.num_layers if self.is_lstm else self.num_layers

    def stretches(
        self, features: Tensor, memory: Tensor, episode_starts: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The core over ``features`` ``(steps, batch, inputs)``, each stretch of steps in
        which no episode starts with one call of the library's fused kernels, resetting
        memory where the next stretch starts: the outputs and the memory after them."""
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
        """The library's core over ``features`` ``(steps, batch, inputs)`` from ``memory``:
        its outputs and the memory after them (batch first, as the engine keeps it)."""
        state = memory.transpose(0, 1).contiguous()
        if self.is_lstm:
            output, (hidden, cell) = self.core(features, tuple(state.chunk(2)))
            state = torch.cat((hidden, cell))
        else:
            output, state = self.core(features, state)
        return output, state.transpose(0, 1)


class RecurrentActorCritic(nn.Module):
    """An encoder (the observations, read by :func:`observation_encoder`, then an MLP), a
    recurrent core (GRU or LSTM), and actor and critic heads on the core's output.

    With ``separate_critic`` the critic has an encoder and a core of its own (Stable-Baselines3
    contrib's ``RecurrentPPO`` default): value learning then never reshapes the memory the
    policy acts on, which matters most when a stage of PPO follows imitation (the critic
    starts untrained, and its large early errors would otherwise flow into the shared core).

    The memory of ``batch`` sequences is one tensor ``(batch, rows, hidden_size)``: each
    layer's hidden state, then (LSTM) each layer's cell state, then, with ``separate_critic``,
    the same rows of the critic's core. Fresh memory is zeros.

    Args:
        observation_shape: Shape of one observation.
        action_space: The task's action space (or the config node of it).
        rnn_type: The core: ``gru`` or ``lstm``.
        hidden_size: Size of the core's state and output.
        num_layers: Stacked recurrent layers.
        encoder_hidden_sizes: Width of each layer of the MLP between the observations and the
            core (empty: the observations enter the core directly).
        activation: The MLPs' activation: ``tanh``, ``relu``, ``elu``, ``gelu`` or ``silu``.
        initial_log_std: Initial log standard deviation of continuous actions (with
            ``use_sde``, of the exploration matrices' entries).
        orthogonal_init: Orthogonal weights scaled by the gains below (the core's with gain
            1), zero biases; ``False`` keeps torch's default initialisation.
        hidden_gain: Gain of the MLP layers' weights.
        actor_gain: Gain of the actor head's (small: nearly uniform first actions).
        critic_gain: Gain of the critic head's.
        observation_space: The task's observation space, when its observations are not
            ``float32`` vectors (images, ``Dict`` spaces; the engine passes it then);
            ``None``: ``float32`` observations of ``observation_shape``.
        cnn_channels: Output channels of each convolution of image encoders.
        embedding_dim: Size of the embeddings of integer observations and tokens.
        separate_critic: Give the critic its own encoder and core.
        head_hidden_sizes: Width of each hidden layer of the actor's and of the critic's own
            MLP between the core and their output layer (Stable-Baselines3's ``net_arch``
            after the LSTM; empty: linear heads).
        use_sde: Explore continuous actions with gSDE from the actor's last hidden layer
            (see :mod:`hydra_pipeline.models.gsde`) instead of independent Gaussian noise.
        sde_sample_freq: With ``use_sde``, draw new exploration matrices every this many
            steps of a rollout (``-1``: once per rollout).
        full_std: With ``use_sde``, one standard deviation per feature and action entry
            (``False``: per feature).
        use_expln: With ``use_sde``, standard deviations through ``expln`` instead of
            ``exp``.
        learn_features: With ``use_sde``, let the losses' gradients reach the actor's
            features through the action variance.
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
        separate_critic: bool = False,
        head_hidden_sizes: Sequence[int] = (),
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        full_std: bool = True,
        use_expln: bool = False,
        learn_features: bool = False,
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
        for name, sizes in (
            ("encoder_hidden_sizes", encoder_hidden_sizes),
            ("head_hidden_sizes", head_hidden_sizes),
        ):
            for index, size in enumerate(sizes):
                require_at_least(f"{name}.{index}", size, 1)
        hidden, actor, critic = orthogonal_gains(
            orthogonal_init, hidden_gain, actor_gain, critic_gain
        )
        action_space = as_action_space(action_space)
        exploration = Exploration(
            initial_log_std, use_sde, sde_sample_freq, full_std, use_expln, learn_features
        )
        features = head_hidden_sizes[-1] if head_hidden_sizes else self.hidden_size
        outputs, self.log_std, noise = exploration_parameters(action_space, features, exploration)

        def tower() -> RecurrentTower:
            reader = observation_encoder(
                observation_shape if observation_space is None else observation_space,
                cnn_channels,
                embedding_dim,
            )
            return RecurrentTower(
                reader,
                encoder_hidden_sizes,
                ACTIVATIONS[activation],
                rnn_type,
                self.hidden_size,
                self.num_layers,
                hidden,
            )

        self.tower = tower()
        self.critic_tower = tower() if separate_critic else None
        heads = head_hidden_sizes
        activation_type = ACTIVATIONS[activation]
        self.actor = perceptron(self.hidden_size, heads, outputs, activation_type, (hidden, actor))
        self.critic = perceptron(self.hidden_size, heads, 1, activation_type, (hidden, critic))
        self.noise = noise
        self.register_load_state_dict_pre_hook(_renamed_parameters)  # type: ignore[no-untyped-call]

    def initial_memory(self, batch_size: int) -> Tensor:
        """Zeros: the memory of ``batch_size`` fresh episodes, on the model's device."""
        towers = 1 if self.critic_tower is None else 2
        rows = towers * self.tower.memory_rows
        device = self.log_std.device if self.log_std is not None else _device(self.tower)
        return torch.zeros(batch_size, rows, self.hidden_size, device=device)

    def forward(
        self, observations: Observations, memory: Tensor, episode_starts: Tensor
    ) -> tuple[ActorCriticOutput, Tensor]:
        """The outputs of ``steps`` steps of ``batch`` sequences and the memory after them
        (shapes in :mod:`hydra_pipeline.models.protocol`)."""
        towers = [self.tower] if self.critic_tower is None else [self.tower, self.critic_tower]
        cores, memory = run_towers(towers, observations, memory, episode_starts)
        distribution = action_distribution(self.actor, cores[0], self.log_std, self.noise)
        return ActorCriticOutput(distribution, self.critic(cores[-1]).squeeze(-1)), memory


def run_towers(
    towers: Sequence[RecurrentTower],
    observations: Observations,
    memory: Tensor,
    episode_starts: Tensor,
) -> tuple[list[Tensor], Tensor]:
    """Run towers of the same shape over the same observations: each one's core outputs
    ``(steps * batch, hidden_size)``, and their memory after them (the towers' rows one after
    the other, as ``memory`` holds them).

    On the CPU the towers' cores run together (:mod:`hydra_pipeline.models.scan`): a replay
    of several steps through the scan layers, except for LSTMs whose sequences have few
    stretches without an episode start (the library's LSTM runs on oneDNN's fused kernel
    there, its GRU does not), and acting (one step) through the one-step cells. A GPU takes
    the library's kernels.
    """
    steps, batch = episode_starts.shape
    rows = towers[0].memory_rows
    features = [tower.encoder(observations).view(steps, batch, -1) for tower in towers]
    if _scans(towers[0], episode_starts, features[0].device):
        memories = memory.reshape(batch, len(towers), rows, -1).transpose(0, 1)
        outputs, memory = _scan(towers, torch.stack(features), memories, episode_starts)
        return list(outputs.flatten(1, 2).unbind(0)), memory
    results = [
        tower.stretches(tower_features, tower_memory, episode_starts)
        for tower, tower_features, tower_memory in zip(
            towers, features, torch.split(memory, rows, dim=1), strict=True
        )
    ]
    return [output.flatten(0, 1) for output, _ in results], torch.cat(
        [tower_memory for _, tower_memory in results], dim=1
    )


def _scans(tower: RecurrentTower, episode_starts: Tensor, device: torch.device) -> bool:
    """Whether the scan is the faster path (see :func:`run_towers`)."""
    steps = episode_starts.shape[0]
    if device.type != "cpu":
        return False
    if steps == 1 or not tower.is_lstm:
        return True
    stretches = 1 + int(episode_starts[1:].any(dim=1).sum())
    return stretches > steps // _LSTM_STRETCHES_PER_STEP


_LAYER_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _scan(
    towers: Sequence[RecurrentTower], features: Tensor, memories: Tensor, episode_starts: Tensor
) -> tuple[Tensor, Tensor]:
    """The towers' cores over the whole sequences, layer after layer, each layer of every
    tower in one scan (one cell update, for a single step): ``features`` ``(towers, steps,
    batch, inputs)`` and ``memories`` ``(towers, batch, rows, hidden)`` in; the outputs
    ``(towers, steps, batch, hidden)`` and the memory ``(batch, towers * rows, hidden)`` out."""
    keep = episode_starts.logical_not().unsqueeze(-1).to(features.dtype)
    layers, is_lstm = towers[0].num_layers, towers[0].is_lstm
    states: list[Tensor] = []
    cells: list[Tensor] = []
    outputs = features
    one_step = episode_starts.shape[0] == 1
    for layer in range(layers):
        weights = tuple(
            torch.stack([getattr(tower.core, f"{name}_l{layer}") for tower in towers])
            for name in _LAYER_WEIGHTS
        )
        state = memories[:, :, layer]
        if is_lstm:
            cell = memories[:, :, layers + layer]
            if one_step:
                state, cell = lstm_step(outputs[:, 0], state * keep[0], cell * keep[0], weights)
                outputs = state.unsqueeze(1)
            else:
                outputs, state, cell = lstm_layer(outputs, state, cell, keep, weights)
            cells.append(cell)
        elif one_step:
            state = gru_step(outputs[:, 0], state * keep[0], weights)
            outputs = state.unsqueeze(1)
        else:
            outputs, state = gru_layer(outputs, state, keep, weights)
        states.append(state)
    memory = torch.stack(states + cells, dim=2)  # (towers, batch, rows, hidden)
    return outputs, memory.transpose(0, 1).flatten(1, 2)


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


_RENAMED = (("encoder.", "tower.encoder."), ("core.", "tower.core."))
"""Parameter names of the model before its towers (version 0.1 checkpoints), and today's."""


def _renamed_parameters(
    module: nn.Module, state: dict[str, Any], prefix: str, *_: Any, **__: Any
) -> None:
    """Load a checkpoint written before the towers and head MLPs: its encoder and core
    parameters move into the tower, its linear heads become the heads' only layer."""
    for key in list(state):
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        for old, new in _RENAMED:
            if name.startswith(old):
                state[prefix + new + name[len(old) :]] = state.pop(key)
        if name in ("actor.weight", "actor.bias", "critic.weight", "critic.bias"):
            head, parameter = name.split(".")
            state[f"{prefix}{head}.0.{parameter}"] = state.pop(key)
