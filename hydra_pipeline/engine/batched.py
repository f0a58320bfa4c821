"""Several members (the seeds of one config) learning as one batched computation.

The members' models share one architecture, stacked in a
:class:`~hydra_pipeline.engine.stacked.StackedModels` (their weights and optimizer state
gathered into it before an update and scattered back after it). Each member keeps its own
model, optimizer, pipeline, losses and statistics, so its checkpoints, evaluations and
outputs are exactly those of a run of its own.

:func:`update_members` runs an update of a stage component for every member: each member's
minibatches come from its own rollout, drawn with its own generator; one forward for all
members; the members' losses in one computation where they are alike (the built-in losses,
:class:`~hydra_pipeline.engine.losses.MemberLosses`), each with its own advantage
normalisation and its own terms recorded in its own statistics; one backward of the sum of the
members' losses (which gives each member's parameters exactly its own gradient); gradient
clipping by each member's own norm; one optimizer step over the stacked parameters. An
element-wise optimizer (Adam, SGD, RMSprop) stepping stacked parameters steps each member's
slice exactly as the member's own optimizer would.

Each member's settings stay its own where the shapes allow: its losses and their
coefficients (clip range, entropy and value coefficients, the stage's loss weights), its
gradient clip, its discounting (its collector computes its returns) and its learning rate
(its own schedule steps its own optimizer). Members whose optimizers' settings differ (a
sweep over learning rates, say) are each stepped by their own optimizer, on their slices of
the stacked gradients (:meth:`~hydra_pipeline.engine.stacked.StackedModels.step`): the
forward, the losses and the backward stay batched.

Only memoryless models, on one process, for now; a loss that stops an update early (PPO's
``target_kl``) cannot stop one member alone yet and is refused when it tries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import Tensor

from hydra_pipeline.engine.checkpoint import capture_rng_state, restore_rng_state
from hydra_pipeline.engine.learner import Deciding, Learner, UpdatePlan, clip_scale, stops_update
from hydra_pipeline.engine.losses import Loss, MemberLosses
from hydra_pipeline.engine.rollout import Minibatch, RolloutStorage
from hydra_pipeline.engine.stacked import StackedModels, output_part, outputs_by_member
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.models.protocol import ActorCriticOutput
from hydra_pipeline.pipeline import PipelineStage, StageComponent
from hydra_pipeline.tasks.observations import num_observations, stack_observations

__all__ = [
    "MemberUpdate",
    "RandomStreams",
    "clip_by_member",
    "stack_minibatches",
    "update_members",
]


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
    total: Tensor | float = 0.0
    deciding: list[dict[str, Deciding]] = [{} for _ in members]
    for group, output in stack.grouped_outputs([batch.observations for batch in batches]):
        for name in _loss_names(plans, epoch):
            total = total + _group_loss(
                name, members[group], batches[group], output, plans[group], epoch, deciding[group]
            )
    for index, decisions in enumerate(deciding):
        terms = {
            f"{name}/{term}": v for name, (_, info) in decisions.items() for term, v in info.items()
        }
        if stops_update(decisions, terms):
            raise InvalidArgumentError(
                "loss",
                f"stopped the update of member {index} early (PPO's target_kl); seeds "
                "trained in one batch cannot stop one member's update alone yet",
                sorted(decisions),
                "Leave target_kl unset, or train the seeds one after the other: "
                "vectorize_seeds=false.",
            )
    assert isinstance(total, Tensor)
    stack.optimizer.zero_grad(set_to_none=True)
    total.backward()  # type: ignore[no-untyped-call]
    max_norms = torch.tensor([plan.max_grad_norm for plan in plans if plan is not None])
    clip_by_member(list(stack.parameters.values()), max_norms)
    stack.step(together)
    for member in members:
        member.learner.stepped()


def _loss_names(plans: Sequence[UpdatePlan | None], epoch: int) -> list[str]:
    """The names of the losses the members minimise in ``epoch`` (the same for every member:
    their stages' components are checked alike, see :func:`_check_plans`)."""
    first = plans[0]
    assert first is not None
    return list(first.losses_in(epoch))


def _group_loss(
    name: str,
    members: Sequence[MemberUpdate],
    batches: Sequence[Minibatch],
    output: ActorCriticOutput,
    plans: Sequence[UpdatePlan | None],
    epoch: int,
    deciding: Sequence[dict[str, Deciding]],
) -> Tensor:
    """The sum over a group of members of each one's weighted loss ``name`` on its minibatch
    (``output``: the group's, a member axis first), its terms recorded in its statistics (and
    in its ``deciding`` when the loss may stop the update).

    Members whose losses ``name`` are alike (one class, the same settings, the same stage
    step count) get theirs in one computation when the loss can
    (:class:`~hydra_pipeline.engine.losses.MemberLosses`); otherwise each member's loss is
    computed on its own, the same way (a member axis of one). Each computation reads its own
    view of ``output``, so that the gradients reaching a member's output are summed in the
    same order whoever it is batched with: a member's result does not depend on its company.
    """
    ready = [plan for plan in plans if plan is not None]
    losses = [plan.losses_in(epoch)[name] for plan in ready]
    steps = [member.stage.steps_taken_in_stage for member in members]
    if len(set(steps)) == 1 and _alike(losses):
        parts = [slice(0, len(members))]
    else:
        parts = [slice(member, member + 1) for member in range(len(members))]
    computed = [
        _losses(losses[part.start], steps[part.start], batches[part], output_part(output, part))
        for part in parts
    ]
    values = torch.cat([value for value, _ in computed])
    infos = [info for _, part_infos in computed for info in part_infos]
    batch_size = num_observations(batches[0].observations)
    for member, plan, info, decisions in zip(members, ready, infos, deciding, strict=True):
        member.learner.record_terms(plan, name, info, batch_size, decisions)
    return (values * torch.tensor([plan.weights[name] for plan in ready])).sum()


def _losses(
    loss: Loss, step_count: int, batches: Sequence[Minibatch], output: ActorCriticOutput
) -> tuple[Tensor, list[dict[str, float]]]:
    """``loss`` of members with alike losses on their ``batches`` (``output``: theirs, a
    member axis first), in one computation when the loss can: each member's loss
    ``(members,)`` and terms."""
    if isinstance(loss, MemberLosses):
        values, terms = loss.member_losses(
            step_count=step_count, batch=stack_minibatches(batches), output=output
        )
        rows = torch.stack(list(terms.values()), dim=1).tolist()
        return values, [dict(zip(terms, row, strict=True)) for row in rows]
    computed = [
        loss(step_count=step_count, batch=batch, output=own)
        for batch, own in zip(batches, outputs_by_member(output), strict=True)
    ]
    return torch.stack([value for value, _ in computed]), [info for _, info in computed]


def _alike(losses: Sequence[Any]) -> bool:
    """Whether ``losses`` are of one class with the same settings (their attributes equal)."""
    first = losses[0]
    return all(type(loss) is type(first) and vars(loss) == vars(first) for loss in losses)


def stack_minibatches(batches: Sequence[Minibatch]) -> Minibatch:
    """Several members' minibatches (equally many samples each) as one, each field with a
    leading member axis (fields that none has stay ``None``)."""
    fields = {
        field: None if values[0] is None else torch.stack(values)
        for field, values in zip(
            Minibatch._fields[1:], zip(*(batch[1:] for batch in batches), strict=True), strict=True
        )
    }
    return Minibatch(stack_observations([batch.observations for batch in batches]), **fields)


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
