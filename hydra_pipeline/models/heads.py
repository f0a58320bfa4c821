"""The actor's exploration and action distribution, shared by every model.

A model's actor is an MLP whose output layer gives the logits of a categorical distribution
(discrete actions) or the mean of a Gaussian (continuous ones). How continuous actions explore
is one rule for every model: a learned, state-independent log standard deviation, or, with
``use_sde``, generalized state-dependent exploration from the actor's last hidden layer (see
:mod:`hydra_pipeline.models.gsde`). :class:`Exploration` holds that choice's options,
:func:`exploration_parameters` makes its learned parameters and :func:`action_distribution`
turns an actor's output into the distribution the engine samples from and the losses read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.models.distributions import ActionDistribution, Categorical, DiagonalGaussian
from hydra_pipeline.models.gsde import StateDependentNoise
from hydra_pipeline.tasks.protocol import ActionSpace, DiscreteActions

__all__ = ["Exploration", "action_distribution", "exploration_parameters"]


@dataclass(frozen=True)
class Exploration:
    """How a model's continuous actions explore (the model options of the same names).

    Attributes:
        initial_log_std: Initial log standard deviation of the actions (with ``use_sde``, of
            the exploration matrices' entries: SB3's ``log_std_init``).
        use_sde: Explore with gSDE instead of independent Gaussian noise at every step.
        sde_sample_freq: With ``use_sde``, draw new exploration matrices every this many steps
            of a rollout (``-1``: once per rollout).
        full_std: With ``use_sde``, one standard deviation per feature and action entry
            (``False``: per feature).
        use_expln: With ``use_sde``, standard deviations through ``expln`` instead of ``exp``.
        learn_features: With ``use_sde``, let the losses' gradients reach the actor's features
            through the action variance.
    """

    initial_log_std: float = 0.0
    use_sde: bool = False
    sde_sample_freq: int = -1
    full_std: bool = True
    use_expln: bool = False
    learn_features: bool = False


def exploration_parameters(
    action_space: ActionSpace, features: int, exploration: Exploration
) -> tuple[int, nn.Parameter | None, StateDependentNoise | None]:
    """The size of the actor's output layer, and what its continuous actions explore with.

    Args:
        action_space: The task's actions.
        features: Size of the actor's last hidden layer (gSDE's noise is a function of it).
        exploration: The model's exploration options.

    Returns:
        The output size (the number of discrete actions, or of action entries), the learned
        log standard deviation (continuous actions without gSDE) and gSDE's noise (with it);
        neither for discrete actions.

    Raises:
        InvalidArgumentError: ``use_sde`` is asked of discrete actions, or a gSDE option is
            out of range.
    """
    if isinstance(action_space, DiscreteActions):
        if exploration.use_sde:
            raise InvalidArgumentError(
                "use_sde",
                "applies to continuous actions, and the task's are discrete",
                exploration.use_sde,
                "Set use_sde=false.",
            )
        return action_space.n, None, None
    outputs = math.prod(action_space.shape)
    if not exploration.use_sde:
        log_std = nn.Parameter(torch.full(action_space.shape, float(exploration.initial_log_std)))
        return outputs, log_std, None
    noise = StateDependentNoise(
        features,
        tuple(action_space.shape),
        exploration.initial_log_std,
        sample_freq=exploration.sde_sample_freq,
        full_std=exploration.full_std,
        use_expln=exploration.use_expln,
        learn_features=exploration.learn_features,
    )
    return outputs, None, noise


def action_distribution(
    actor: Iterable[Callable[[Tensor], Tensor]],
    inputs: Tensor,
    log_std: Tensor | None,
    noise: StateDependentNoise | None,
    noise_log_std: Tensor | None = None,
) -> ActionDistribution:
    """The actions' distribution for ``inputs`` ``(batch, features)`` of the ``actor`` MLP
    (its layers), explored as :func:`exploration_parameters` made ``log_std`` and ``noise``.

    Several members' copies of one model run at once (see
    :meth:`~hydra_pipeline.models.mlp.MLPActorCritic.forward_members`) give ``inputs``
    ``(members, batch, features)``, ``actor`` layers that take them, and their own
    ``log_std`` (``(members, *action_shape)``) or gSDE's ``noise_log_std`` (``(members,
    features, columns)``); the distribution then covers ``(members, batch)``.
    """
    *hidden_layers, output_layer = actor
    features = inputs
    for layer in hidden_layers:
        features = layer(features)
    outputs = output_layer(features)
    batch, members = inputs.shape[:-1], inputs.shape[:-2]
    if noise is not None:
        # gSDE's noise is a function of the actor's last hidden layer.
        mean = outputs.view(*batch, *noise.action_shape)
        return noise.distribution(mean, features, noise_log_std)
    if log_std is None:
        return Categorical(outputs)
    action_shape = log_std.shape[len(members) :]
    # One log standard deviation per member, the same for every row of its batch.
    return DiagonalGaussian(
        outputs.view(*batch, *action_shape), log_std.unsqueeze(len(members)), len(batch)
    )
