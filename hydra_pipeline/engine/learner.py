"""``Learner``: the optimizer, the learning-rate schedule and the update loop.

After each rollout, every component of the stage runs :meth:`Learner.update`: for
``update_repeats`` epochs, ``num_mini_batch`` minibatches of the rollout (split as
``minibatch_split`` says) or of the component's data source, and on each one a gradient step:
the model's forward pass (replaying whole sequences from their first memory, for a model with
memory), the weighted sum of the losses, backward, the gradients averaged over the ranks of a
distributed run, the losses' say on stopping the update (PPO's ``target_kl``), the gradient
clip and the optimizer step. The schedule follows the total step count.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from hydra_pipeline.engine import distributed
from hydra_pipeline.engine.acting import model_output
from hydra_pipeline.engine.fit import minibatch_split
from hydra_pipeline.engine.losses import Loss, update_stopper
from hydra_pipeline.engine.offpolicy import OffPolicyStream
from hydra_pipeline.engine.rollout import Minibatch, RolloutStorage
from hydra_pipeline.engine.statistics import TrainingStatistics, loss_metric_prefix
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.models.protocol import ActorCriticOutput
from hydra_pipeline.pipeline import PipelineStage, StageComponent, TrainingPipeline
from hydra_pipeline.tasks.observations import num_observations

__all__ = ["Deciding", "Learner", "UpdatePlan", "clip_gradients", "clip_scale", "stops_update"]

Deciding = tuple[Callable[[Mapping[str, float]], bool], dict[str, float]]
"""A loss's ``stops_update`` and the terms of the minibatch it decides on."""


class UpdatePlan(NamedTuple):
    """What an update of a stage component runs (see :meth:`Learner.plan`).

    Attributes:
        losses: The component's losses, by name.
        counts: Each loss's epochs (``update_repeats``, given per loss or once for all;
            ``None``: none).
        epochs: The update's epochs (the most any loss runs).
        num_mini_batch: Minibatches per epoch.
        max_grad_norm: The gradient clip.
        weights: Each loss's weight in the sum stepped on.
        on_rollout: Whether the component learns from the rollout (else from a data source).
        metric_prefix: What the metric names of its loss terms start with.
        split: How the rollout is split into minibatches.
        stoppers: Each loss's ``stops_update`` (``None``: it never stops the update), looked
            up once per update rather than per minibatch (a protocol check costs as much as
            a small minibatch's bookkeeping).
    """

    losses: dict[str, Loss]
    counts: list[int | None]
    epochs: int
    num_mini_batch: int
    max_grad_norm: float
    weights: Mapping[str, float]
    on_rollout: bool
    metric_prefix: str
    split: str
    stoppers: Mapping[str, Callable[[Mapping[str, float]], bool] | None]

    def losses_in(self, epoch: int) -> dict[str, Loss]:
        """The losses that run in ``epoch`` (a loss given fewer repeats sits out the later
        ones)."""
        return {
            name: loss
            for (name, loss), count in zip(self.losses.items(), self.counts, strict=True)
            if count is not None and count > epoch
        }


def stops_update(deciding: Mapping[str, Deciding], terms: Mapping[str, float]) -> bool:
    """Whether a loss ends the update on a minibatch: each deciding loss is asked with its
    terms as ``terms`` holds them (``<loss name>/<term>``; averaged over the ranks in a
    distributed run)."""
    stop = False
    for name, (decides, info) in deciding.items():
        stop = bool(decides({term: terms[f"{name}/{term}"] for term in info})) or stop
    return stop


def clip_gradients(parameters: Sequence[Tensor], max_norm: float) -> Tensor:
    """Scale the gradients of ``parameters`` (on one device) so that their norm over all of
    them is at most ``max_norm``, and return that norm before clipping.

    What ``torch.nn.utils.clip_grad_norm_(parameters, max_norm, foreach=True)`` computes, to
    the bit, in half its time at the zoo's shapes: its grouping of the gradients by device
    and dtype, twice per call, costs as much as the norms of a small model's gradients.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total: Tensor = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, clip_scale(max_norm, total))
    return total


def clip_scale(max_norm: float | Tensor, norm: Tensor) -> Tensor:
    """The factor that brings gradients of norm ``norm`` to at most ``max_norm`` (torch's
    ``clip_grad_norm_`` rule, its 1e-6 included); elementwise for a norm per member."""
    return (max_norm / (norm + 1e-6)).clamp(max=1.0)


class Learner:
    """Learns ``model``'s weights as ``pipeline``'s stages say.

    Args:
        pipeline: The losses, storages and settings (its sample counters advance here).
        model: The model whose trainable parameters the optimizer steps, on ``device``.
        statistics: Receives the loss terms, the learning rate and the explained variance.
        device: Where minibatches from data sources are moved.

    In a distributed run, gradients are averaged over the processes at every step, and the
    samples drawn from data sources count every process's.

    Attributes:
        optimizer: Built by ``pipeline.optimizer_builder(params=...)``.
        lr_scheduler: Built by ``pipeline.lr_scheduler_builder(optimizer=...)`` (``None``
            without a builder).
        data_streams: The minibatch streams of the data sources used so far, by storage name.
        first_update_time: The Unix time of this process's first optimizer step (for startup
            benchmarks).

    Raises:
        InvalidArgumentError: The optimizer or the scheduler cannot be built.
    """

    def __init__(
        self,
        pipeline: TrainingPipeline,
        model: nn.Module,
        statistics: TrainingStatistics,
        device: torch.device,
    ) -> None:
        self.pipeline = pipeline
        self.model = model
        self.device = device
        self.statistics = statistics
        self.world_size = distributed.ranks().world_size
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.optimizer: torch.optim.Optimizer = _build(
            "optimizer_builder", pipeline.optimizer_builder, params=self.parameters
        )
        scheduler = pipeline.lr_scheduler_builder
        self.lr_scheduler: Any = (
            None
            if scheduler is None
            else _build("lr_scheduler_builder", scheduler, optimizer=self.optimizer)
        )
        self.data_streams: dict[str, OffPolicyStream] = {}
        self.first_update_time: float | None = None

    def update(
        self, stage: PipelineStage, component: StageComponent, storage: RolloutStorage | None
    ) -> None:
        """``component``'s ``update_repeats`` epochs of gradient steps, each on
        ``num_mini_batch`` minibatches of the rollout in ``storage`` or of its data source.

        A loss given fewer repeats than the others (a per-loss list) sits out the later
        epochs. A loss may end the update early (PPO's ``target_kl``): the minibatch it stops
        on is not stepped, and no later one is.
        """
        plan = self.plan(stage, component)
        if plan is None:
            return
        for epoch in range(plan.epochs):
            if plan.on_rollout:
                assert storage is not None
                batches: Iterator[Minibatch] = storage.minibatches(
                    plan.num_mini_batch, storage.has_expert_actions, plan.split
                )
            else:
                batches = self._draw(component.storage_uuid, plan.num_mini_batch)
            losses = plan.losses_in(epoch)
            stepped_every_batch = all(
                self._gradient_step(stage, batch, losses, plan) for batch in batches
            )
            if not stepped_every_batch:  # a loss ended the update
                break
        if plan.on_rollout:
            assert storage is not None
            self.record_update(storage)

    def plan(self, stage: PipelineStage, component: StageComponent) -> UpdatePlan | None:
        """What an update of ``component`` in ``stage`` runs (``None``: nothing, as no loss
        has an epoch to run)."""
        settings = component.training_settings
        repeats, num_mini_batch = settings.update_repeats, settings.num_mini_batch
        max_grad_norm = settings.max_grad_norm
        losses = {name: self.pipeline.get_loss(name) for name in component.loss_names}
        counts: list[int | None] = (
            list(repeats) if isinstance(repeats, list) else [repeats] * len(losses)
        )
        epochs = max((count or 0 for count in counts), default=0)
        if epochs == 0 or not losses:
            return None
        assert num_mini_batch is not None and max_grad_norm is not None  # checked by the pipeline
        on_rollout = component.storage_uuid == self.pipeline.rollout_storage_uuid
        return UpdatePlan(
            losses=losses,
            counts=counts,
            epochs=epochs,
            num_mini_batch=num_mini_batch,
            max_grad_norm=max_grad_norm,
            weights=stage.component_loss_weights(component),
            on_rollout=on_rollout,
            metric_prefix=loss_metric_prefix(component.uuid, on_rollout),
            split=minibatch_split(component),
            stoppers={name: update_stopper(loss) for name, loss in losses.items()},
        )

    def record_update(self, storage: RolloutStorage) -> None:
        """Record what an update of the rollout in ``storage`` leaves: the learning rate and
        the explained variance of its returns."""
        self.statistics.record({"lr": self.optimizer.param_groups[0]["lr"]})
        explained = storage.explained_variance()
        if not math.isnan(explained):  # NaN: the returns do not vary, nothing to explain
            self.statistics.record({"explained_variance": explained})

    def _draw(self, storage_uuid: str, count: int) -> Iterator[Minibatch]:
        """``count`` minibatches from the data source ``storage_uuid``, counted as samples
        drawn from it in the current stage."""
        stream = self.data_streams.get(storage_uuid)
        if stream is None:
            source = self.pipeline.get_storage(storage_uuid)
            stream = self.data_streams[storage_uuid] = OffPolicyStream(source, self.device)
        for _ in range(count):
            batch = stream.next_batch()
            drawn = num_observations(batch.observations) * self.world_size  # every rank
            self.pipeline.record_samples(storage_uuid, drawn)
            yield batch

    def weighted_losses(
        self,
        stage: PipelineStage,
        batch: Minibatch,
        output: ActorCriticOutput,
        losses: Mapping[str, Loss],
        plan: UpdatePlan,
    ) -> tuple[Tensor, dict[str, Deciding]]:
        """The weighted sum of ``losses`` over ``batch`` (whose model output is ``output``),
        with their terms recorded, and the terms of the losses that may stop the update, by
        loss name."""
        total: Tensor | float = 0.0
        batch_size = num_observations(batch.observations)
        deciding: dict[str, Deciding] = {}
        for name, loss in losses.items():
            value, info = loss(step_count=stage.steps_taken_in_stage, batch=batch, output=output)
            total = total + plan.weights[name] * value
            self.record_terms(plan, name, info, batch_size, deciding)
        assert isinstance(total, Tensor)
        return total, deciding

    def record_terms(
        self,
        plan: UpdatePlan,
        name: str,
        info: Mapping[str, float],
        batch_size: int,
        deciding: dict[str, Deciding],
    ) -> None:
        """Record the terms ``info`` of the loss ``name`` on a minibatch of ``batch_size``
        samples, and add them to ``deciding`` when that loss may stop the update."""
        self.statistics.record(
            {f"{plan.metric_prefix}{name}/{term}": number for term, number in info.items()},
            n=batch_size,
        )
        stopper = plan.stoppers[name]
        if stopper is not None:
            deciding[name] = (stopper, dict(info))

    def _gradient_step(
        self,
        stage: PipelineStage,
        batch: Minibatch,
        losses: Mapping[str, Loss],
        plan: UpdatePlan,
    ) -> bool:
        """One optimizer step on the weighted sum of ``losses`` over ``batch``; ``False``,
        with no step taken, when a loss's ``stops_update`` ends the update on this batch."""
        output, _ = model_output(self.model, batch.observations, batch.memory, batch.episode_starts)
        total, deciding = self.weighted_losses(stage, batch, output, losses, plan)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()  # type: ignore[no-untyped-call]
        # The gradients and the terms a loss decides on are averaged over the ranks in one
        # exchange, so all ranks stop at the same minibatch, on the terms of all of it.
        averaged = distributed.average_gradients(
            self.parameters,
            {
                f"{name}/{term}": v
                for name, (_, info) in deciding.items()
                for term, v in info.items()
            },
        )
        if stops_update(deciding, averaged):
            return False
        clip_gradients(self.parameters, plan.max_grad_norm)
        self.optimizer.step()
        self.stepped()
        return True

    def stepped(self) -> None:
        """Note that the optimizer stepped (the time of the first step, for benchmarks)."""
        if self.first_update_time is None:
            self.first_update_time = time.time()

    def step_lr_scheduler(self, total_steps: int) -> None:
        """Set the learning rate for ``total_steps`` (the schedule's epochs are agent steps)."""
        if self.lr_scheduler is None:
            return
        with warnings.catch_warnings():
            # torch deprecates step(epoch) in favour of chained steps; schedules indexed by
            # total steps need the epoch form (closed-form schedules use it as is). On resume
            # the schedule is set before any optimizer step, which torch also warns about.
            warnings.filterwarnings("ignore", message=".*epoch parameter.*", category=UserWarning)
            warnings.filterwarnings(
                "ignore", message=".*before `optimizer.step", category=UserWarning
            )
            self.lr_scheduler.step(total_steps)

    # ----------------------------------------------------------------------------------------
    # Checkpoints

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state and the scheduler's (the same on every rank)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": None if self.lr_scheduler is None else self.lr_scheduler.state_dict(),
        }

    def rank_state_dict(self) -> dict[str, Any]:
        """This process's data streams."""
        return {"data_streams": {name: s.state_dict() for name, s in self.data_streams.items()}}

    def load_state_dict(
        self, shared: Mapping[str, Any], own: Mapping[str, Any], total_steps: int
    ) -> None:
        """Restore the optimizer and the data streams from what :meth:`state_dict` and
        :meth:`rank_state_dict` returned, and set the schedule for ``total_steps``.

        The schedule is a function of the total step count: it is set from this run's config
        (which may, say, lengthen a stage) rather than restored, since a restored
        ``LinearDecay`` would keep the old length.
        """
        self.optimizer.load_state_dict(shared["optimizer"])
        self.step_lr_scheduler(total_steps)
        for name, stream_state in own["data_streams"].items():
            stream = OffPolicyStream(self.pipeline.get_storage(name), self.device)
            stream.load_state_dict(stream_state)
            self.data_streams[name] = stream


def _build(argument: str, builder: Callable[..., Any], **kwargs: Any) -> Any:
    """``builder(**kwargs)``, with whatever the built class rejects named by ``argument``."""
    try:
        return builder(**kwargs)
    except Exception as error:  # torch's classes reject arguments with several types
        built = getattr(builder, "class_type", builder)
        raise InvalidArgumentError(
            argument,
            f"cannot be built: {type(error).__name__}: {error}",
            getattr(built, "__qualname__", built),
        ) from None
