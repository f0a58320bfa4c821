"""The model protocol: an actor-critic ``torch.nn.Module`` built from a task's spaces.

The engine builds a model by calling the configured class (the ``model`` config's
``_target_``) with the task's ``observation_shape`` and ``action_space`` plus the config's own
fields, so a model of yours needs only this constructor and a ``forward`` returning an
:class:`ActorCriticOutput`::

    class MyModel(torch.nn.Module):
        def __init__(self, observation_shape, action_space, hidden_size: int = 128): ...
        def forward(self, observations: Tensor) -> ActorCriticOutput: ...

``observations`` is a float32 batch ``(batch, *observation_shape)`` for the usual tasks. A
task whose observations are anything else (``uint8`` images, a ``Dict`` space: see
:mod:`hydra_pipeline.tasks.observations`) declares an ``observation_space``; the engine then
passes it to the constructor as ``observation_space`` too (:func:`model_arguments`), and
``observations`` are batches of that space: a tensor of its element type, or a dict of them.
:func:`~hydra_pipeline.models.make_encoder` turns any of them into feature vectors. The output's
``distribution`` is a :class:`~hydra_pipeline.models.distributions.Categorical` for
:class:`~hydra_pipeline.tasks.DiscreteActions` and a
:class:`~hydra_pipeline.models.distributions.DiagonalGaussian` for
:class:`~hydra_pipeline.tasks.ContinuousActions` (any object with the
:class:`~hydra_pipeline.models.distributions.ActionDistribution` methods works), and
``values`` holds the critic's value estimates, shape ``(batch,)``.

A model may carry **memory** (a recurrent policy). It then also defines
``initial_memory(batch_size)``, returning the memory of ``batch_size`` fresh episodes as one
tensor ``(batch_size, *memory_shape)``, and its ``forward`` takes and returns memory::

    def initial_memory(self, batch_size: int) -> Tensor: ...
    def forward(self, observations: Tensor, memory: Tensor, episode_starts: Tensor)
        -> tuple[ActorCriticOutput, Tensor]: ...

``episode_starts`` is ``bool`` of shape ``(steps, batch)`` and ``observations`` hold those
``steps * batch`` observations in step-major order (row ``t * batch + i`` is sequence ``i``
at step ``t``), so acting passes one step (``steps == 1``) and updates replay whole rollouts
of some environments. ``memory`` is each sequence's memory before its first step. Where
``episode_starts[t, i]`` is true, sequence ``i`` starts a new episode at step ``t``: the
model must forget what came before, as if it started from ``initial_memory`` (zeros, for
which :func:`reset_memory` zeroes those rows). The output covers the ``steps * batch`` rows in
the same order; the returned memory is ``(batch, *memory_shape)`` after the last step. The
engine keeps memory in the acting component (:class:`~hydra_pipeline.engine.acting.Actor`),
stores each rollout's first memory and its episode starts, and checkpoints the memory. A
model without ``initial_memory`` is memoryless and is called as ``forward(observations)``.

Built through ``hydra.utils.instantiate(cfg.model, observation_shape=..., action_space=...)``,
a model receives the action space as a config node rather than the dataclass:
:func:`~hydra_pipeline.tasks.protocol.as_action_space` turns it back (``MLPActorCritic`` does).
To use a trained model, ``hydra_pipeline.Policy.from_run`` rebuilds it from its run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol, cast, runtime_checkable

from torch import Tensor, nn

from hydra_pipeline.models.distributions import ActionDistribution
from hydra_pipeline.tasks.observations import Observations, is_structured, observation_space_of

__all__ = [
    "ActorCriticOutput",
    "StacksMembers",
    "has_memory",
    "initial_memory",
    "model_arguments",
    "reset_memory",
    "stacks_members",
]


class ActorCriticOutput(NamedTuple):
    """What a model returns for a batch of observations."""

    distribution: ActionDistribution
    values: Tensor


def model_arguments(task: Any) -> dict[str, Any]:
    """What the engine passes a model's constructor besides the model config's own fields:
    the task's ``observation_shape`` and ``action_space``, and its ``observation_space`` when
    its observations are not ``float32`` tensors (a model for vectors needs no more, so
    models written for them keep working)."""
    arguments = {"observation_shape": task.observation_shape, "action_space": task.action_space}
    space = observation_space_of(task)
    if is_structured(space):
        arguments["observation_space"] = space
    return arguments


@runtime_checkable
class StacksMembers(Protocol):
    """Optional: a memoryless model that runs several members' copies of itself (the seeds of
    one config trained as one batch, see :mod:`hydra_pipeline.engine.stacked`) in one
    computation, their parameters stacked on a leading member axis, instead of once per
    member under ``torch.vmap`` (whose per-operation cost outweighs what it saves on small
    layers).

    Attributes:
        stacks_members: Whether this model can (an :class:`MLPActorCritic
            <hydra_pipeline.models.MLPActorCritic>` can when its encoder has no parameters).
    """

    stacks_members: bool

    def forward_members(
        self, parameters: Mapping[str, Tensor], observations: Observations
    ) -> ActorCriticOutput:
        """Each member's output on its own batch: ``parameters`` are the model's trainable
        parameters by name, each ``(members, *shape)``; ``observations`` are ``(members,
        batch, *observation_shape)``; the output's distribution and values cover
        ``(members, batch)``, member ``m``'s rows as its own model gives them."""
        ...


def stacks_members(model: nn.Module) -> bool:
    """Whether ``model`` runs several members' copies of itself in one computation
    (:class:`StacksMembers`)."""
    return isinstance(model, StacksMembers) and bool(model.stacks_members)


def has_memory(model: nn.Module) -> bool:
    """Whether ``model`` carries memory (defines ``initial_memory``, see the module docstring)."""
    return callable(getattr(model, "initial_memory", None))


def initial_memory(model: nn.Module, batch_size: int) -> Tensor:
    """The memory of ``batch_size`` fresh episodes of a model with memory."""
    memory: Tensor = cast(Any, model).initial_memory(batch_size)
    return memory


def reset_memory(memory: Tensor, episode_starts: Tensor) -> Tensor:
    """``memory`` ``(batch, ...)`` with the rows where ``episode_starts`` ``(batch,)`` is true
    zeroed: the fresh memory of the episodes starting there."""
    keep = episode_starts.logical_not().to(memory.dtype)
    return memory * keep.view(-1, *([1] * (memory.dim() - 1)))
