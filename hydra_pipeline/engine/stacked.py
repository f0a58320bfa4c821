"""The members' models (the seeds of one config) stacked: one architecture, their trainable
parameters along a new first axis (the member axis), run for all members at once.

:class:`StackedModels` runs them in one computation where the architecture offers one
(:class:`~hydra_pipeline.models.protocol.StacksMembers`: the MLPs of vector observations, whose
linear layers become batched matrix products) and the batch is small enough to gain from it,
else once per member under ``torch.vmap``. Each member keeps its own model and optimizer:
:meth:`StackedModels.gather` copies the members' weights and optimizer states into the stack
before an update, and :meth:`StackedModels.scatter` hands them back after it. See
:mod:`~hydra_pipeline.engine.batched` for the update itself.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor

from hydra_pipeline.engine.learner import Learner
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.models.protocol import (
    ActorCriticOutput,
    StacksMembers,
    has_memory,
    stacks_members,
)
from hydra_pipeline.tasks.observations import (
    Observations,
    num_observations,
    stack_observations,
)

__all__ = ["STACKED_ACTIVATIONS", "StackedModels", "output_part", "outputs_by_member"]

STACKED_ACTIVATIONS = 1 << 18
"""The most values (members x rows x the widest layer's outputs) a layer of one stacked
forward produces: about a megabyte of float32; more members are run in groups of that size.
Beyond it the layers' outputs leave the CPU's caches, and smaller groups, each within them,
are faster (measured with ``benchmarks/seed_batch.py --forward``: the forward and backward of
8 CartPole members with 64-unit layers on 2,048 rows each took 1.27 times their own forwards'
time in one group, 1.00 times in groups of this size; on 64 rows each, in one group, 0.57
times)."""


class StackedModels:
    """The trainable parameters of ``learners``' models stacked along a member axis, their
    optimizer over them, and one call of the architecture for all members.

    Args:
        learners: One per member, in member order; their models of one architecture (the
            same parameter names and shapes) and optimizers of one kind.

    Attributes:
        parameters: The stacked parameters by name, each ``(members, *shape)``.
        optimizer: Steps ``parameters``, built by the first member's optimizer builder.
        stacks_members: Whether the architecture runs the members in one computation
            (:class:`~hydra_pipeline.models.protocol.StacksMembers`); else they run under
            ``torch.vmap``.

    Raises:
        InvalidArgumentError: There are no learners, a model has memory, buffers or frozen
            parameters, or the models' parameters differ in names or shapes.
    """

    def __init__(self, learners: Sequence[Learner]) -> None:
        if not learners:
            raise InvalidArgumentError("learners", "must hold at least one member", learners)
        self.learners = list(learners)
        models = [learner.model for learner in learners]
        if any(has_memory(model) for model in models):
            raise InvalidArgumentError(
                "model",
                "has memory; seeds trained in one batch (vectorize_seeds) support memoryless "
                "models only, for now",
                type(models[0]).__qualname__,
                "Train the seeds one after the other: vectorize_seeds=false.",
            )
        shapes = [self._named_shapes(learner) for learner in learners]
        if any(named != shapes[0] for named in shapes):
            raise InvalidArgumentError(
                "models",
                "must have the same parameters (names and shapes) to be trained in one batch",
                [type(model).__qualname__ for model in models],
            )
        self.names = list(shapes[0])
        self.count = len(learners)
        self._template = copy.deepcopy(models[0]).to("meta")
        self.stacks_members = stacks_members(self._template)
        self._widest = max(
            (p.shape[0] for p in self._template.parameters() if p.dim() > 1), default=1
        )
        fixed = [name for name, value in models[0].named_parameters() if not value.requires_grad]
        fixed += [name for name, _ in models[0].named_buffers()]
        if fixed:
            raise InvalidArgumentError(
                "model",
                "has buffers or frozen parameters, which seeds trained in one batch do not "
                "stack yet",
                fixed,
                "Train the seeds one after the other: vectorize_seeds=false.",
            )
        with torch.no_grad():
            self.parameters = {
                name: torch.stack([self._trained(learner)[name] for learner in learners])
                .detach()
                .requires_grad_()
                for name in self.names
            }
        first = learners[0]
        builder = first.pipeline.optimizer_builder
        self.optimizer: torch.optim.Optimizer = builder(params=list(self.parameters.values()))

    @staticmethod
    def _trained(learner: Learner) -> dict[str, Tensor]:
        """The trainable parameters of ``learner``'s model, by name, in its optimizer's
        order."""
        return {name: p for name, p in learner.model.named_parameters() if p.requires_grad}

    @classmethod
    def _named_shapes(cls, learner: Learner) -> dict[str, tuple[int, ...]]:
        return {name: tuple(p.shape) for name, p in cls._trained(learner).items()}

    # ----------------------------------------------------------------------------------------
    # Members in, members out

    def gather(self) -> bool:
        """Copy the members' weights into the stack and, when their optimizers are of one class
        with the same settings (learning rates included), their optimizer states and settings
        into the stack's optimizer.

        Returns:
            Whether the stack's optimizer steps every member (settings alike); otherwise each
            member's own optimizer steps its own weights (see :meth:`step`).

        Raises:
            InvalidArgumentError: The members' optimizers, alike in their settings, differ in
                their step counts.
        """
        groups = [learner.optimizer.param_groups for learner in self.learners]
        settings = [
            [{k: v for k, v in group.items() if k != "params"} for group in member]
            for member in groups
        ]
        self.pull_weights()
        kinds = {type(learner.optimizer) for learner in self.learners}
        if len(kinds) > 1 or any(member != settings[0] for member in settings):
            return False
        for group, wanted in zip(self.optimizer.param_groups, settings[0], strict=True):
            group.update(wanted)
        for index, name in enumerate(self.names):
            stacked = self.parameters[name]
            self.optimizer.state[stacked] = self._stacked_state(index, stacked)
        return True

    def step(self, together: bool) -> None:
        """Step every member on its slices of the stacked gradients: with the stack's
        optimizer (``together``, see :meth:`gather`), or with each member's own optimizer on
        its own weights (members whose settings differ: a sweep over learning rates, say),
        whose new weights are then copied into the stack."""
        if together:
            self.optimizer.step()
            return
        for member, learner in enumerate(self.learners):
            for own, name in zip(learner.parameters, self.names, strict=True):
                gradient = self.parameters[name].grad
                own.grad = None if gradient is None else gradient[member]
            learner.optimizer.step()
        self.pull_weights()

    def pull_weights(self) -> None:
        """Copy the members' current weights into the stack (before a forward of all)."""
        with torch.no_grad():
            for name in self.names:
                torch.stack(
                    [self._trained(learner)[name] for learner in self.learners],
                    out=self.parameters[name],
                )

    def _stacked_state(self, index: int, stacked: Tensor) -> dict[str, Any]:
        """The optimizer state of the ``index``-th parameter for the stack: each member's
        per-element tensors stacked, the values every member shares (step counts) once."""
        states = [learner.optimizer.state[learner.parameters[index]] for learner in self.learners]
        if not states[0]:
            if any(states):
                raise self._unequal_steps()
            return {}
        joined: dict[str, Any] = {}
        for key, value in states[0].items():
            if isinstance(value, Tensor) and value.shape == stacked.shape[1:]:
                joined[key] = torch.stack([state[key] for state in states])
            elif all(_equal(state[key], value) for state in states):
                joined[key] = value.clone() if isinstance(value, Tensor) else value
            else:
                raise self._unequal_steps()
        return joined

    @staticmethod
    def _unequal_steps() -> InvalidArgumentError:
        return InvalidArgumentError(
            "optimizer",
            "state (its step counts) must be the same for every seed trained in one batch",
            "differs",
        )

    def scatter(self) -> None:
        """Copy the stack's weights and optimizer state back into the members' (after an
        update that the stack's optimizer stepped)."""
        with torch.no_grad():
            for index, name in enumerate(self.names):
                stacked = self.parameters[name]
                state = self.optimizer.state[stacked]
                for member, learner in enumerate(self.learners):
                    own = self._trained(learner)[name]
                    own.copy_(stacked[member])
                    learner.optimizer.state[learner.parameters[index]] = {
                        key: (
                            value[member].clone()
                            if isinstance(value, Tensor) and value.shape == stacked.shape
                            else value.clone()
                            if isinstance(value, Tensor)
                            else value
                        )
                        for key, value in state.items()
                    }

    # ----------------------------------------------------------------------------------------
    # The forward

    def outputs(self, observations: Sequence[Observations]) -> list[ActorCriticOutput]:
        """Each member's output on its own batch of ``observations`` (equally many each)."""
        return [
            own
            for _, output in self.grouped_outputs(observations)
            for own in outputs_by_member(output)
        ]

    def grouped_outputs(
        self, observations: Sequence[Observations]
    ) -> list[tuple[slice, ActorCriticOutput]]:
        """The members' outputs on their own batches of ``observations`` (equally many each),
        by group of members: each group's members and their output, a member axis first.

        Where the architecture runs members in one computation
        (:class:`~hydra_pipeline.models.protocol.StacksMembers`), it runs them in as few
        groups as keep each group's layer outputs within :data:`STACKED_ACTIVATIONS`; else
        the architecture is called once per member under ``vmap``, all in one group.
        """
        if not self.stacks_members:
            everyone = slice(0, self.count)
            return [(everyone, self._vmapped(stack_observations(observations)))]
        model = cast(StacksMembers, self._template)
        size = max(1, STACKED_ACTIVATIONS // (num_observations(observations[0]) * self._widest))
        groups = []
        for start in range(0, self.count, size):
            group = slice(start, min(start + size, self.count))
            parameters = {name: value[group] for name, value in self.parameters.items()}
            output = model.forward_members(parameters, stack_observations(observations[group]))
            groups.append((group, output))
        return groups

    def _vmapped(self, observations: Observations) -> ActorCriticOutput:
        """The members' output on their parts of ``observations`` (stacked), the
        architecture called once per member under ``vmap``."""
        kinds: list[tuple[type, dict[str, Any]]] = []

        def member_output(
            parameters: Mapping[str, Tensor], observations: Observations
        ) -> tuple[dict[str, Tensor], Tensor]:
            output: ActorCriticOutput = torch.func.functional_call(
                self._template, dict(parameters), (observations,)
            )
            kind, constants, tensors = _distribution_parts(output.distribution)
            kinds.append((kind, constants))
            return tensors, output.values

        tensors, values = torch.vmap(member_output)(self.parameters, observations)
        kind, constants = kinds[0]
        return ActorCriticOutput(_distribution(kind, {**constants, **tensors}), values)


def outputs_by_member(output: ActorCriticOutput) -> list[ActorCriticOutput]:
    """Each member's part of an output of several members, a member axis first."""
    return [output_part(output, member) for member in range(output.values.shape[0])]


def output_part(output: ActorCriticOutput, members: int | slice) -> ActorCriticOutput:
    """The part of an output of several members (a member axis first) that belongs to one
    member, or to a slice of them (keeping the member axis): a distribution of the class
    every member's model returns, its tensors sliced by member."""
    kind, constants, tensors = _distribution_parts(output.distribution)
    parts = {name: value[members] for name, value in tensors.items()}
    return ActorCriticOutput(_distribution(kind, {**constants, **parts}), output.values[members])


def _distribution_parts(distribution: Any) -> tuple[type, dict[str, Any], dict[str, Tensor]]:
    """A distribution's class, its plain attributes (numbers, such as gSDE's ``sample_freq``:
    the architecture's, the same for every member) and its tensors, by attribute name.

    Raises:
        InvalidArgumentError: It holds attributes other than tensors and numbers (which
            cannot be split by member).
    """
    attributes = vars(distribution)
    tensors = {k: v for k, v in attributes.items() if isinstance(v, Tensor)}
    constants = {k: v for k, v in attributes.items() if k not in tensors}
    if not all(isinstance(value, int | float | bool | str) for value in constants.values()):
        raise InvalidArgumentError(
            "model",
            "returns an action distribution with attributes other than tensors and "
            "numbers, which seeds trained in one batch cannot split by member yet",
            type(distribution).__qualname__,
            "Train the seeds one after the other: vectorize_seeds=false.",
        )
    return type(distribution), constants, tensors


def _equal(first: Any, second: Any) -> bool:
    """Whether two optimizer state values are equal (tensors by value)."""
    if isinstance(first, Tensor) and isinstance(second, Tensor):
        return bool(torch.equal(first, second))
    return bool(first == second)


def _distribution(kind: type, attributes: Mapping[str, Any]) -> Any:
    """A distribution of class ``kind`` with ``attributes`` (a member's slice of a stacked
    one)."""
    distribution: Any = object.__new__(kind)
    vars(distribution).update(attributes)
    return distribution
