"""``PipelineStage`` and ``OffPolicyPipelineComponent``: one step of a training pipeline."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.pipeline.early_stopping import EarlyStoppingCriterion
from hydra_pipeline.pipeline.validation import (
    require_at_least,
    require_int,
    require_matching_weights,
    require_names,
)

__all__ = ["OffPolicyPipelineComponent", "PipelineStage"]


class OffPolicyPipelineComponent(NamedTuple):
    """Off-policy updates performed after each on-policy update of a stage.

    Attributes:
        data_iterator_builder: Called with no arguments to get an iterator of minibatches; called
            again whenever the iterator is exhausted. If it also has ``state_dict`` and
            ``load_state_dict`` methods, the data stream resumes exactly from a checkpoint.
        loss_names: Names, in the pipeline's ``named_losses``, of the losses computed on each
            off-policy minibatch.
        updates: Number of off-policy minibatch updates after each on-policy update (>= 1).
        loss_weights: One weight per name in ``loss_names``; ``None`` means all 1.0.
    """

    data_iterator_builder: Callable[[], Iterator[Any]]
    loss_names: list[str]
    updates: int
    loss_weights: Sequence[float] | None = None


def _validated_component(component: Any) -> OffPolicyPipelineComponent | None:
    if component is None:
        return None
    if not isinstance(component, OffPolicyPipelineComponent):
        raise InvalidArgumentError(
            "offpolicy_component", "must be an OffPolicyPipelineComponent", component
        )
    if not callable(component.data_iterator_builder):
        raise InvalidArgumentError(
            "offpolicy_component.data_iterator_builder",
            "must be callable with no arguments",
            component.data_iterator_builder,
        )
    names = require_names("offpolicy_component.loss_names", component.loss_names)
    if not names:
        raise InvalidArgumentError(
            "offpolicy_component.loss_names", "must name at least one loss", names
        )
    weights = require_matching_weights(
        "offpolicy_component.loss_weights",
        component.loss_weights,
        "offpolicy_component.loss_names",
        names,
    )
    updates = require_at_least("offpolicy_component.updates", component.updates, 1)
    return OffPolicyPipelineComponent(component.data_iterator_builder, names, updates, weights)


class PipelineStage:
    """One stage of a :class:`TrainingPipeline`: which losses to train, and for how long.

    Args:
        loss_names: Names, in the pipeline's ``named_losses``, of the on-policy losses trained
            in this stage. May be empty only when ``offpolicy_component`` is given.
        max_stage_steps: Agent steps (environment steps summed over environments) after which
            the stage is complete; ``<= 0`` skips the stage. Either an int or a callable with no
            arguments returning one, evaluated once, when the stage first becomes current.
            Completion is checked between rollouts, so a stage ends on a whole number of rollouts.
        early_stopping_criterion: Ends the stage early when it returns True (see
            :class:`EarlyStoppingCriterion`); ``None`` never ends it early.
        loss_weights: One weight per name in ``loss_names``; ``None`` means all 1.0.
        teacher_forcing: Maps the stage's step count to the probability that each
            environment's action is replaced by the expert's (typically a ``LinearDecay``);
            ``None`` disables teacher forcing.
        offpolicy_component: Off-policy updates run after each on-policy update.

    Attributes:
        steps_taken_in_stage: Agent steps taken so far in this stage.
        early_stopping_criterion_met: Whether the criterion has ended the stage.
    """

    def __init__(
        self,
        loss_names: Sequence[str],
        max_stage_steps: int | Callable[[], int],
        early_stopping_criterion: EarlyStoppingCriterion | None = None,
        loss_weights: Sequence[float] | None = None,
        teacher_forcing: Callable[[float], float] | None = None,
        offpolicy_component: OffPolicyPipelineComponent | None = None,
    ) -> None:
        self.loss_names = require_names("loss_names", loss_names)
        self.offpolicy_component = _validated_component(offpolicy_component)
        if not self.loss_names and self.offpolicy_component is None:
            raise InvalidArgumentError(
                "loss_names",
                "must name at least one loss",
                loss_names,
                "A stage with no on-policy loss needs an offpolicy_component.",
            )
        self.loss_weights = require_matching_weights(
            "loss_weights", loss_weights, "loss_names", self.loss_names
        )
        if not callable(max_stage_steps):
            require_int("max_stage_steps", max_stage_steps)
        self.max_stage_steps = max_stage_steps
        if early_stopping_criterion is not None and not isinstance(
            early_stopping_criterion, EarlyStoppingCriterion
        ):
            raise InvalidArgumentError(
                "early_stopping_criterion",
                "must be an EarlyStoppingCriterion",
                early_stopping_criterion,
            )
        self.early_stopping_criterion = early_stopping_criterion
        if teacher_forcing is not None and not callable(teacher_forcing):
            raise InvalidArgumentError(
                "teacher_forcing", "must map a step count to a probability", teacher_forcing
            )
        self.teacher_forcing = teacher_forcing
        self._initial_criterion_state = (
            copy.deepcopy(early_stopping_criterion.state_dict())
            if early_stopping_criterion is not None
            else None
        )
        self.steps_taken_in_stage = 0
        self.early_stopping_criterion_met = False
        self._resolved_max_stage_steps: int | None = None
        self.reset()

    @property
    def resolved_max_stage_steps(self) -> int | None:
        """The stage's step limit; ``None`` while a callable limit has not been evaluated."""
        return self._resolved_max_stage_steps

    def resolve_max_stage_steps(self) -> int:
        """Evaluate a callable ``max_stage_steps`` (once) and return the stage's step limit."""
        if self._resolved_max_stage_steps is None:
            limit = self.max_stage_steps
            value = limit() if callable(limit) else limit
            self._resolved_max_stage_steps = require_int("max_stage_steps", value)
        return self._resolved_max_stage_steps

    @property
    def is_complete(self) -> bool:
        """Whether the criterion ended the stage or it has taken its ``max_stage_steps``."""
        if self.early_stopping_criterion_met:
            return True
        limit = self._resolved_max_stage_steps
        return limit is not None and self.steps_taken_in_stage >= limit

    @property
    def named_loss_weights(self) -> dict[str, float]:
        """Each on-policy loss name mapped to its weight (1.0 when ``loss_weights`` is None)."""
        weights = self.loss_weights or [1.0] * len(self.loss_names)
        return dict(zip(self.loss_names, weights, strict=True))

    def reset(self) -> None:
        """Put the stage back to its start: no steps, criterion unmet and at its initial state."""
        self.steps_taken_in_stage = 0
        self.early_stopping_criterion_met = False
        self._resolved_max_stage_steps = (
            None if callable(self.max_stage_steps) else int(self.max_stage_steps)
        )
        if self.early_stopping_criterion is not None and self._initial_criterion_state is not None:
            self.early_stopping_criterion.load_state_dict(
                copy.deepcopy(self._initial_criterion_state)
            )

    def state_dict(self) -> dict[str, Any]:
        """The stage's progress, made of plain Python values, for checkpoints."""
        criterion = self.early_stopping_criterion
        return {
            "loss_names": list(self.loss_names),
            "steps_taken_in_stage": self.steps_taken_in_stage,
            "early_stopping_criterion_met": self.early_stopping_criterion_met,
            "resolved_max_stage_steps": self._resolved_max_stage_steps,
            "early_stopping_criterion": None if criterion is None else criterion.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (loss names are checked by the pipeline).

        An evaluated callable limit is restored; an int limit stays the one given to the
        constructor, so a resumed run can be given a longer stage.
        """
        self.steps_taken_in_stage = int(state["steps_taken_in_stage"])
        self.early_stopping_criterion_met = bool(state["early_stopping_criterion_met"])
        if callable(self.max_stage_steps):  # an int limit comes from the constructor
            resolved = state["resolved_max_stage_steps"]
            self._resolved_max_stage_steps = None if resolved is None else int(resolved)
        criterion_state = state["early_stopping_criterion"]
        if self.early_stopping_criterion is not None and criterion_state is not None:
            self.early_stopping_criterion.load_state_dict(criterion_state)

    def __repr__(self) -> str:
        return (
            f"PipelineStage(loss_names={self.loss_names}, max_stage_steps={self.max_stage_steps}, "
            f"steps_taken_in_stage={self.steps_taken_in_stage}, is_complete={self.is_complete})"
        )
