"""The model protocol: an actor-critic ``torch.nn.Module`` built from a task's spaces.

The engine builds a model by calling the configured class (the ``model`` config's
``_target_``) with the task's ``observation_shape`` and ``action_space`` plus the config's own
fields, so a model of yours needs only this constructor and a ``forward`` returning an
:class:`ActorCriticOutput`::

    class MyModel(torch.nn.Module):
        def __init__(self, observation_shape, action_space, hidden_size: int = 128): ...
        def forward(self, observations: Tensor) -> ActorCriticOutput: ...

``observations`` is a float32 batch ``(batch, *observation_shape)``; the output's
``distribution`` is a :class:`~hydra_pipeline.models.distributions.Categorical` for
:class:`~hydra_pipeline.tasks.DiscreteActions` and a
:class:`~hydra_pipeline.models.distributions.DiagonalGaussian` for
:class:`~hydra_pipeline.tasks.ContinuousActions` (any object with the
:class:`~hydra_pipeline.models.distributions.ActionDistribution` methods works), and
``values`` holds the critic's value estimates, shape ``(batch,)``.

Built through ``hydra.utils.instantiate(cfg.model, observation_shape=..., action_space=...)``,
a model receives the action space as a config node rather than the dataclass:
:func:`~hydra_pipeline.tasks.protocol.as_action_space` turns it back (``MLPActorCritic`` does).
To use a trained model, ``hydra_pipeline.Policy.from_run`` rebuilds it from its run.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from hydra_pipeline.models.distributions import ActionDistribution

__all__ = ["ActorCriticOutput"]


class ActorCriticOutput(NamedTuple):
    """What a model returns for a batch of observations."""

    distribution: ActionDistribution
    values: Tensor
