"""Several members (the seeds of one config) learning as one batched computation.

The members' models share one architecture; :class:`StackedModels` holds their trainable
parameters stacked along a new first axis (the member axis) and runs them for all members at
once: in one computation where the architecture offers one
(:class:`~hydra_pipeline.models.protocol.StacksMembers`: the MLPs of vector observations,
whose linear layers become batched matrix products) and the batch is small enough to gain
from it, else once per member on its slice of the stacked weights. Each member keeps its own
model, optimizer, pipeline, losses and statistics, so its checkpoints, evaluations and
outputs are exactly those of a run of its own: :meth:`StackedModels.gather` copies the
members' weights and optimizer states into the stack before an update, and
:meth:`StackedModels.scatter` hands them back after it.

:func:`update_members` runs an update of a stage component for every member: each member's
minibatches come from its own rollout, drawn with its own generator; one forward for all
members; each member's losses on its own slice of the output (its own advantage
normalisation, its own terms recorded in its own statistics); one backward of the sum of the
members' losses (which gives each member's parameters exactly its own gradient); gradient
clipping by each member's own norm; one optimizer step over the stacked parameters. An
element-wise optimizer (Adam, SGD, RMSprop) stepping stacked parameters steps each member's
slice exactly as the member's own optimizer would.

Each member's settings stay its own where the shapes allow: its losses and their
coefficients (clip range, entropy and value coefficients, the stage's loss weights), its
gradient clip, its discounting (its collector computes its returns) and its learning rate
(its own schedule steps its own optimizer). Members whose optimizers' settings differ (a
sweep over learning rates, say) are each stepped by their own optimizer, on their slices of
the stacked gradients (:meth:`StackedModels.step`): the forward, the losses and the backward
stay batched.

Only memoryless models, on one process, for now; a loss that stops an update early (PPO's
``target_kl``) cannot stop one member alone yet and is refused when it tries.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor

from hydra_pipeline.engine.checkpoint import capture_rng_state, restore_rng_state
from hydra_pipeline.engine.learner import Learner, UpdatePlan, clip_scale, stops_update
from hydra_pipeline.engine.rollout import Minibatch, RolloutStorage
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.models.protocol import (
    ActorCriticOutput,
    StacksMembers,
    has_memory,
    stacks_members,
)
from hydra_pipeline.pipeline import PipelineStage, StageComponent
from hydra_pipeline.tasks.observations import (
    Observations,
    num_observations,
    stack_observations,
)

__all__ = [
    "MemberUpdate",
    "RandomStreams",
    "StackedModels",
    "clip_by_member",
    "update_members",
]


STACKED_ACTIVATIONS = 1 << 18
"""The most values (members x rows x the widest layer's outputs) a layer of one stacked
forward produces: about a megabyte of float32; more members are run in groups of that size.
Beyond it the layers' outputs leave the CPU's caches, and smaller groups, each within them,
are faster (measured with ``benchmarks/seed_batch.py --forward``: 8 CartPole members with
64-unit layers, a forward and backward of 64 rows each in one group take 0.57 times their own
forwards' time, of 512 rows 0.95 times, of 2,048 rows 1.37 times)."""


class StackedModels:
    """The trainable parameters of ``learners``' models stacked along a member axis, their
    optimizer over them, and one call of the architecture for all members.

    Args:
        learners: One per member, in member order; their models of one architecture (the
            same parameter names and shapes) and optimizers of one kind.

    Attributes:
        parameters: The stacked parameters by name, each ``(members, *shape)``.
        optimizer: Steps ``parameters``, built by the first member's optimizer builder.

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
        """Each member's output on its own batch of ``observations`` (equally many each).

        Where the architecture runs members in one computation
        (:class:`~hydra_pipeline.models.protocol.StacksMembers`), it runs them in as few
        groups as keep each group's layer outputs within :data:`STACKED_ACTIVATIONS`; else
        the architecture is called once per member under ``vmap``.
        """
        if not self.stacks_members:
            return self._vmapped(stack_observations(observations))
        model = cast(StacksMembers, self._template)
        size = max(1, STACKED_ACTIVATIONS // (num_observations(observations[0]) * self._widest))
        outputs: list[ActorCriticOutput] = []
        for start in range(0, self.count, size):
            group = slice(start, start + size)
            parameters = {name: value[group] for name, value in self.parameters.items()}
            output = model.forward_members(parameters, stack_observations(observations[group]))
            kind, constants, tensors = _distribution_parts(output.distribution)
            outputs += _by_member(kind, constants, tensors, output.values)
        return outputs

    def _vmapped(self, observations: Observations) -> list[ActorCriticOutput]:
        """Each member's output on its part of ``observations`` (stacked), the architecture
        called once per member under ``vmap``."""
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
        return _by_member(*kinds[0], tensors, values)


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


def _by_member(
    kind: type, constants: Mapping[str, Any], tensors: Mapping[str, Tensor], values: Tensor
) -> list[ActorCriticOutput]:
    """Each member's output from several members' distribution parts (see
    :func:`_distribution_parts`) and values, their member axis first."""
    return [
        ActorCriticOutput(
            _distribution(kind, {**constants, **{k: v[member] for k, v in tensors.items()}}),
            values[member],
        )
        for member in range(values.shape[0])
    ]


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


class RandomStreams:
    """A member's own state of the global random generators (Python's, NumPy's, torch's),
    swapped in while the member works (``with streams: ...``), so that every draw it makes
    (actions, teacher forcing, minibatches, evaluations, checkpoints) comes from its own
    streams, exactly as in a process of its own.

    Args:
        state: The generators' state to start from (see
            :func:`~hydra_pipeline.engine.checkpoint.capture_rng_state`; ``None``: the
            current one).
    """

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state = capture_rng_state() if state is None else state
        self._outside: list[dict[str, Any]] = []

    def __enter__(self) -> RandomStreams:
        self._outside.append(capture_rng_state())
        restore_rng_state(self.state)
        return self

    def __exit__(self, *exception: object) -> None:
        self.state = capture_rng_state()
        restore_rng_state(self._outside.pop())

    @contextmanager
    def torch_draws(self, device: torch.device) -> Iterator[None]:
        """Only torch's generators (the CPU's, and ``device``'s when it is a GPU) swapped in:
        a step of a batched collection draws from nothing else, and swapping them costs a few
        microseconds where swapping every generator costs hundreds."""
        cpu = torch.default_generator
        outside = cpu.get_state()
        cpu.set_state(self.state["torch"])
        gpu = (device.index or 0) if device.type == "cuda" else None
        if gpu is not None:
            outside_gpu = torch.cuda.get_rng_state(gpu)
            torch.cuda.set_rng_state(self.state["cuda"][gpu], gpu)
        try:
            yield
        finally:
            self.state["torch"] = cpu.get_state()
            cpu.set_state(outside)
            if gpu is not None:
                self.state["cuda"][gpu] = torch.cuda.get_rng_state(gpu)
                torch.cuda.set_rng_state(outside_gpu, gpu)


class MemberUpdate(NamedTuple):
    """What one member learns from in an update.

    Attributes:
        learner: The member's learner (its pipeline, losses, optimizer, statistics).
        stage: The member's current stage.
        storage: The member's rollout.
        random: The member's random generators (its minibatches are drawn with them).
    """

    learner: Learner
    stage: PipelineStage
    storage: RolloutStorage
    random: RandomStreams


def update_members(
    stack: StackedModels, members: Sequence[MemberUpdate], component_index: int
) -> None:
    """The update of each member's stage component ``component_index`` (on its rollout), as
    one batched computation: what each member's
    :meth:`~hydra_pipeline.engine.learner.Learner.update` does alone, with the stack's weights
    and optimizer state (gathered before, scattered after).

    Raises:
        InvalidArgumentError: The members' updates differ in shape (epochs, minibatches), a
            component learns from a data source, or a loss stops one member's update early.
    """
    components = [member.stage.stage_components[component_index] for member in members]
    plans = [
        member.learner.plan(member.stage, component)
        for member, component in zip(members, components, strict=True)
    ]
    first = plans[0]
    if first is None:
        return
    _check_plans(plans, components)
    together = stack.gather()
    for epoch in range(first.epochs):
        drawn = []
        for member in members:
            with member.random:
                storage = member.storage
                split = storage.minibatches(
                    first.num_mini_batch, storage.has_expert_actions, first.split
                )
                drawn.append(list(split))
        for batches in zip(*drawn, strict=True):
            _gradient_step(stack, members, batches, plans, epoch, together)
    if together:
        stack.scatter()
    for member in members:
        member.learner.record_update(member.storage)


def _check_plans(plans: Sequence[UpdatePlan | None], components: Sequence[StageComponent]) -> None:
    """Refuse updates that cannot run as one batch."""
    shapes = {
        None if plan is None else (plan.epochs, plan.num_mini_batch, plan.split, tuple(plan.counts))
        for plan in plans
    }
    if len(shapes) > 1:
        raise InvalidArgumentError(
            "update", "must have the same epochs and minibatches for every member", shapes
        )
    for plan, component in zip(plans, components, strict=True):
        assert plan is not None
        if not plan.on_rollout:
            raise InvalidArgumentError(
                f"stage component {component.uuid!r}",
                "learns from a data source; seeds trained in one batch learn from rollouts "
                "only, for now",
                component.storage_uuid,
                "Train the seeds one after the other: vectorize_seeds=false.",
            )


def _gradient_step(
    stack: StackedModels,
    members: Sequence[MemberUpdate],
    batches: Sequence[Minibatch],
    plans: Sequence[UpdatePlan | None],
    epoch: int,
    together: bool,
) -> None:
    """One optimizer step of every member on its minibatch of ``batches`` (``together``:
    with the stack's optimizer, see :meth:`StackedModels.step`)."""
    outputs = stack.outputs([batch.observations for batch in batches])
    total: Tensor | float = 0.0
    for index, (member, batch, output, plan) in enumerate(
        zip(members, batches, outputs, plans, strict=True)
    ):
        assert plan is not None
        loss, deciding = member.learner.weighted_losses(
            member.stage, batch, output, plan.losses_in(epoch), plan
        )
        terms = {
            f"{name}/{term}": v for name, (_, info) in deciding.items() for term, v in info.items()
        }
        if stops_update(deciding, terms):
            raise InvalidArgumentError(
                "loss",
                f"stopped the update of member {index} early (PPO's target_kl); seeds "
                "trained in one batch cannot stop one member's update alone yet",
                sorted(deciding),
                "Leave target_kl unset, or train the seeds one after the other: "
                "vectorize_seeds=false.",
            )
        total = total + loss
    assert isinstance(total, Tensor)
    stack.optimizer.zero_grad(set_to_none=True)
    total.backward()  # type: ignore[no-untyped-call]
    max_norms = torch.tensor([plan.max_grad_norm for plan in plans if plan is not None])
    clip_by_member(list(stack.parameters.values()), max_norms)
    stack.step(together)
    for member in members:
        member.learner.stepped()


def clip_by_member(parameters: Sequence[Tensor], max_norms: Tensor) -> None:
    """Scale the gradients of stacked ``parameters`` so that each member's gradient norm (over
    its slices of all of them) is at most its entry of ``max_norms``, as
    ``torch.nn.utils.clip_grad_norm_`` does for a member's own parameters."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    count = max_norms.shape[0]
    norms = torch.stack(
        [torch.linalg.vector_norm(grad.reshape(count, -1), dim=1) for grad in grads]
    )
    total = torch.linalg.vector_norm(norms, dim=0)
    scale = clip_scale(max_norms, total)
    for grad in grads:
        grad.mul_(scale.view(count, *([1] * (grad.dim() - 1))))
