"""``MLPActorCritic``: separate actor and critic multi-layer perceptrons."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial

import torch
from torch import Tensor, nn

from hydra_pipeline.arguments import require_at_least, require_positive
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.models.encoders import FlattenEncoder, make_encoder
from hydra_pipeline.models.heads import Exploration, action_distribution, exploration_parameters
from hydra_pipeline.models.protocol import ActorCriticOutput
from hydra_pipeline.tasks.observations import Observations, ObservationSpace
from hydra_pipeline.tasks.protocol import ActionSpace, as_action_space

__all__ = ["ACTIVATIONS", "MLPActorCritic", "member_layers"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}
"""The hidden layers' activation functions, by the name a model config's ``activation`` gives."""


def linear_layer(inputs: int, outputs: int, gain: float | None) -> nn.Linear:
    """A linear layer: orthogonal weights scaled by ``gain`` and zero bias (the usual PPO
    initialisation), or torch's default initialisation when ``gain`` is ``None``."""
    layer = nn.Linear(inputs, outputs)
    if gain is not None:
        nn.init.orthogonal_(layer.weight, gain)
        nn.init.zeros_(layer.bias)
    return layer


def orthogonal_gains(
    orthogonal_init: bool, hidden_gain: float, actor_gain: float, critic_gain: float
) -> tuple[float | None, float | None, float | None]:
    """The hidden layers', actor head's and critic head's gains for :func:`linear_layer`, each
    checked to be > 0; all ``None`` (torch's default initialisation) without
    ``orthogonal_init``."""
    gains = {"hidden_gain": hidden_gain, "actor_gain": actor_gain, "critic_gain": critic_gain}
    hidden, actor, critic = (
        require_positive(name, gain) if orthogonal_init else None for name, gain in gains.items()
    )
    return hidden, actor, critic


def perceptron(
    inputs: int,
    hidden_sizes: Sequence[int],
    outputs: int | None,
    activation: type[nn.Module],
    gains: tuple[float | None, float | None],
) -> nn.Sequential:
    """Hidden layers (each followed by ``activation``) and, unless ``outputs`` is ``None``, a
    linear head; ``gains`` are the hidden layers' and the head's."""
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [linear_layer(inputs, size, gains[0]), activation()]
        inputs = size
    if outputs is not None:
        layers.append(linear_layer(inputs, outputs, gains[1]))
    return nn.Sequential(*layers)


Layer = Callable[[Tensor], Tensor]
"""A layer as a function of its inputs."""


def member_layers(
    layers: nn.Sequential, parameters: Mapping[str, Tensor], prefix: str
) -> list[Layer]:
    """The layers of a :func:`perceptron` for several members at once, taking ``(members,
    batch, inputs)``: each linear layer with the members' own weights and biases from
    ``parameters`` (``<prefix>.<index>.weight`` and ``.bias``, stacked on a leading member
    axis) as one batched matrix product, the activations (element-wise) as they are."""
    return [
        partial(
            _members_linear,
            parameters[f"{prefix}.{index}.weight"],
            parameters[f"{prefix}.{index}.bias"],
        )
        if isinstance(layer, nn.Linear)
        else layer
        for index, layer in enumerate(layers)
    ]


def _members_linear(weight: Tensor, bias: Tensor, inputs: Tensor) -> Tensor:
    """``inputs`` ``(members, batch, in)`` through each member's linear layer (``weight``
    ``(members, out, in)``, ``bias`` ``(members, out)``): for each member, the very product
    ``torch.nn.functional.linear`` computes for it alone."""
    return torch.baddbmm(bias.unsqueeze(1), inputs, weight.transpose(1, 2))


def _through(layers: Iterable[Layer], inputs: Tensor) -> Tensor:
    """``inputs`` through ``layers``, one after the other."""
    for layer in layers:
        inputs = layer(inputs)
    return inputs


class MLPActorCritic(nn.Module):
    """An actor MLP and a critic MLP over encoded observations, optionally behind shared
    layers.

    The encoder is chosen by the observation space (see
    :func:`~hydra_pipeline.models.make_encoder`): ``float32`` observations are flattened (no
    parameters), images go through a small convolutional network, integers and tokens are
    embedded, and ``Dict`` observations get one encoder per key.

    The actor's head gives the logits of a categorical distribution for discrete actions, or
    the mean of a diagonal Gaussian for continuous ones: with a learned, state-independent log
    standard deviation, or, with ``use_sde``, explored by generalized state-dependent
    exploration (see :mod:`hydra_pipeline.models.gsde`) from the actor's last hidden layer.

    Args:
        observation_shape: Shape of one observation (flattened before the first layer).
        action_space: The task's action space (or the config node ``hydra.utils.instantiate``
            makes of it, see :func:`~hydra_pipeline.tasks.protocol.as_action_space`).
        hidden_sizes: Width of each hidden layer of the actor and of the critic (unless they
            have their own sizes).
        activation: One of ``tanh``, ``relu``, ``elu``, ``gelu``, ``silu``.
        initial_log_std: Initial log standard deviation of continuous actions (with
            ``use_sde``, of the exploration matrices' entries: SB3's ``log_std_init``).
        actor_hidden_sizes: The actor's own hidden layers (``None``: ``hidden_sizes``).
        critic_hidden_sizes: The critic's own hidden layers (``None``: ``hidden_sizes``).
        shared_hidden_sizes: Hidden layers shared by actor and critic, before their own
            (empty: two separate networks).
        orthogonal_init: Initialise weights orthogonally, scaled by the gains below, with zero
            biases (the usual PPO choice); ``False`` keeps torch's default initialisation
            (Stable-Baselines3's ``ortho_init=False``).
        hidden_gain: Gain of the hidden layers' orthogonal weights.
        actor_gain: Gain of the actor head's (small: nearly uniform first actions).
        critic_gain: Gain of the critic head's.
        observation_space: The task's observation space, when its observations are not
            ``float32`` vectors (images, ``Dict`` spaces; the engine passes it then);
            ``None``: ``float32`` observations of ``observation_shape``.
        cnn_channels: Output channels of each convolution of image encoders.
        embedding_dim: Size of the embeddings of integer observations and tokens.
        use_sde: Explore continuous actions with gSDE instead of independent Gaussian noise.
        sde_sample_freq: With ``use_sde``, draw new exploration matrices every this many
            steps of a rollout (``-1``: once per rollout).
        full_std: With ``use_sde``, one standard deviation per feature and action entry
            (``False``: per feature).
        use_expln: With ``use_sde``, standard deviations through ``expln`` instead of
            ``exp``.
        learn_features: With ``use_sde``, let the losses' gradients reach the actor's
            features through the action variance.

    Raises:
        InvalidArgumentError: An argument is out of range, or ``use_sde`` is asked of
            discrete actions.
    """

    def __init__(
        self,
        observation_shape: Sequence[int],
        action_space: ActionSpace,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
        initial_log_std: float = 0.0,
        actor_hidden_sizes: Sequence[int] | None = None,
        critic_hidden_sizes: Sequence[int] | None = None,
        shared_hidden_sizes: Sequence[int] = (),
        orthogonal_init: bool = True,
        hidden_gain: float = math.sqrt(2),
        actor_gain: float = 0.01,
        critic_gain: float = 1.0,
        observation_space: ObservationSpace | None = None,
        cnn_channels: Sequence[int] = (16, 32),
        embedding_dim: int = 16,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        full_std: bool = True,
        use_expln: bool = False,
        learn_features: bool = False,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise InvalidArgumentError(
                "activation", f"must be one of {sorted(ACTIVATIONS)}", activation
            )
        sizes = {
            "hidden_sizes": hidden_sizes,
            "actor_hidden_sizes": (
                hidden_sizes if actor_hidden_sizes is None else actor_hidden_sizes
            ),
            "critic_hidden_sizes": (
                hidden_sizes if critic_hidden_sizes is None else critic_hidden_sizes
            ),
            "shared_hidden_sizes": shared_hidden_sizes,
        }
        for argument, layers in sizes.items():
            for index, size in enumerate(layers):
                require_at_least(f"{argument}.{index}", size, 1)
        hidden, actor, critic = orthogonal_gains(
            orthogonal_init, hidden_gain, actor_gain, critic_gain
        )
        action_space = as_action_space(action_space)
        self.encoder = make_encoder(
            observation_shape if observation_space is None else observation_space,
            cnn_channels=cnn_channels,
            embedding_dim=embedding_dim,
        )
        inputs = self.encoder.output_size
        actor_sizes = sizes["actor_hidden_sizes"]
        features = actor_sizes[-1] if actor_sizes else ([inputs, *shared_hidden_sizes][-1])
        exploration = Exploration(
            initial_log_std, use_sde, sde_sample_freq, full_std, use_expln, learn_features
        )
        # Registered in the order of earlier versions (log_std first, noise last), which
        # optimizer states in checkpoints index by.
        outputs, self.log_std, noise = exploration_parameters(action_space, features, exploration)
        layer_type = ACTIVATIONS[activation]
        self.trunk: nn.Sequential | None = None
        if shared_hidden_sizes:
            self.trunk = perceptron(inputs, shared_hidden_sizes, None, layer_type, (hidden, None))
            inputs = shared_hidden_sizes[-1]
        self.actor = perceptron(inputs, actor_sizes, outputs, layer_type, (hidden, actor))
        self.critic = perceptron(
            inputs, sizes["critic_hidden_sizes"], 1, layer_type, (hidden, critic)
        )
        self.noise = noise

    def forward(self, observations: Observations) -> ActorCriticOutput:
        flat = self.encoder(observations)
        if self.trunk is not None:
            flat = self.trunk(flat)
        distribution = action_distribution(self.actor, flat, self.log_std, self.noise)
        return ActorCriticOutput(distribution, self.critic(flat).squeeze(-1))

    @property
    def stacks_members(self) -> bool:
        """Whether :meth:`forward_members` can run this model: its encoder has no parameters
        (flattened vectors; images and embeddings are run per member under ``vmap``)."""
        return isinstance(self.encoder, FlattenEncoder)

    def forward_members(
        self, parameters: Mapping[str, Tensor], observations: Observations
    ) -> ActorCriticOutput:
        """Several members' copies of this model on their own batches, in one computation
        (see :class:`~hydra_pipeline.models.protocol.StacksMembers`): ``parameters`` by name,
        each ``(members, *shape)``; ``observations`` ``(members, batch, *observation_shape)``.
        """
        assert self.stacks_members and isinstance(observations, Tensor)
        flat = self.encoder(observations.flatten(0, 1)).unflatten(0, observations.shape[:2])
        if self.trunk is not None:
            flat = _through(member_layers(self.trunk, parameters, "trunk"), flat)
        distribution = action_distribution(
            member_layers(self.actor, parameters, "actor"),
            flat,
            parameters.get("log_std"),
            self.noise,
            parameters.get("noise.log_std"),
        )
        values = _through(member_layers(self.critic, parameters, "critic"), flat)
        return ActorCriticOutput(distribution, values.squeeze(-1))
