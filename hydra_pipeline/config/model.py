"""Model schemas (group ``model``).

The engine adds the task's ``observation_shape`` and ``action_space`` when it builds the model,
and its ``observation_space`` when its observations are images or a ``Dict``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

__all__ = ["MLPActorCriticConf", "RecurrentActorCriticConf"]


@dataclass
class MLPActorCriticConf:
    """``hydra_pipeline.models.MLPActorCritic``: actor and critic MLPs, separate or behind
    shared layers.

    Attributes:
        hidden_sizes: Width of each hidden layer (of the actor and the critic, unless they
            have their own sizes).
        activation: ``tanh``, ``relu``, ``elu``, ``gelu`` or ``silu``.
        initial_log_std: Initial log standard deviation of continuous actions (with use_sde,
            of the exploration matrices' entries: SB3's log_std_init).
        actor_hidden_sizes: The actor's own hidden layers (null: hidden_sizes).
        critic_hidden_sizes: The critic's own hidden layers (null: hidden_sizes).
        shared_hidden_sizes: Hidden layers shared by actor and critic, before their own.
        orthogonal_init: Orthogonal weights scaled by the gains, zero biases (false: torch's
            default initialisation, Stable-Baselines3's ortho_init=False).
        hidden_gain: Gain of the hidden layers' weights.
        actor_gain: Gain of the actor head's weights.
        critic_gain: Gain of the critic head's weights.
        cnn_channels: Output channels of each convolution of the encoder of image
            observations.
        embedding_dim: Size of the embeddings of integer observations (a direction) and of
            tokens (a mission).
        use_sde: Explore continuous actions with generalized state-dependent exploration
            (gSDE) instead of independent Gaussian noise per step (SB3's use_sde).
        sde_sample_freq: With use_sde, draw new exploration matrices every this many steps of
            a rollout (-1: once per rollout).
        full_std: With use_sde, one standard deviation per feature and action entry (false:
            one per feature).
        use_expln: With use_sde, standard deviations through expln (slow growth above 0)
            instead of exp.
        learn_features: With use_sde, let the losses' gradients reach the actor's features
            through the action variance (false, as SB3's PPO).
    """

    _target_: str = "hydra_pipeline.models.MLPActorCritic"
    hidden_sizes: List[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    initial_log_std: float = 0.0
    actor_hidden_sizes: Optional[List[int]] = None
    critic_hidden_sizes: Optional[List[int]] = None
    shared_hidden_sizes: List[int] = field(default_factory=list)
    orthogonal_init: bool = True
    hidden_gain: float = math.sqrt(2)
    actor_gain: float = 0.01
    critic_gain: float = 1.0
    cnn_channels: List[int] = field(default_factory=lambda: [16, 32])
    embedding_dim: int = 16
    use_sde: bool = False
    sde_sample_freq: int = -1
    full_std: bool = True
    use_expln: bool = False
    learn_features: bool = False


@dataclass
class RecurrentActorCriticConf:
    """``hydra_pipeline.models.RecurrentActorCritic``: an encoder MLP, a GRU or LSTM core and
    linear actor-critic heads; a model with memory (options ``gru`` and ``lstm``).

    Attributes:
        rnn_type: The recurrent core: ``gru`` or ``lstm``.
        hidden_size: Size of the core's state and output.
        num_layers: Stacked recurrent layers.
        encoder_hidden_sizes: Width of each layer of the MLP between the observations and the
            core (empty: the observations enter the core directly).
        activation: The encoder's activation: ``tanh``, ``relu``, ``elu``, ``gelu`` or
            ``silu``.
        initial_log_std: Initial log standard deviation of continuous actions (with use_sde,
            of the exploration matrices' entries).
        orthogonal_init: Orthogonal weights scaled by the gains (the core's with gain 1), zero
            biases (false: torch's default initialisation).
        hidden_gain: Gain of the encoder layers' weights.
        actor_gain: Gain of the actor head's weights.
        critic_gain: Gain of the critic head's weights.
        cnn_channels: Output channels of each convolution of the encoder of image
            observations.
        embedding_dim: Size of the embeddings of integer observations (a direction) and of
            tokens (a mission).
        separate_critic: Give the critic an encoder and a core of its own (Stable-Baselines3
            contrib's default), so value learning does not reshape the policy's memory.
        head_hidden_sizes: Hidden layers of the actor's and of the critic's own MLP after the
            core (empty: linear heads).
        use_sde: Explore continuous actions with gSDE from the actor's last hidden layer
            (as the MLP's option of the same name; sb3-contrib's RecurrentPPO has it too).
        sde_sample_freq: With use_sde, draw new exploration matrices every this many steps of
            a rollout (-1: once per rollout).
        full_std: With use_sde, one standard deviation per feature and action entry.
        use_expln: With use_sde, standard deviations through expln instead of exp.
        learn_features: With use_sde, let the losses' gradients reach the actor's features.
    """

    _target_: str = "hydra_pipeline.models.RecurrentActorCritic"
    rnn_type: str = "gru"
    hidden_size: int = 64
    num_layers: int = 1
    encoder_hidden_sizes: List[int] = field(default_factory=lambda: [64])
    activation: str = "tanh"
    initial_log_std: float = 0.0
    orthogonal_init: bool = True
    hidden_gain: float = math.sqrt(2)
    actor_gain: float = 0.01
    critic_gain: float = 1.0
    cnn_channels: List[int] = field(default_factory=lambda: [16, 32])
    embedding_dim: int = 16
    separate_critic: bool = False
    head_hidden_sizes: List[int] = field(default_factory=list)
    use_sde: bool = False
    sde_sample_freq: int = -1
    full_std: bool = True
    use_expln: bool = False
    learn_features: bool = False
