"""``TrainingPipeline``: the stages of a training run, their shared settings, and where it is."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.pipeline.builder import Builder
from hydra_pipeline.pipeline.metrics import ScalarMeanTracker
from hydra_pipeline.pipeline.stage import PipelineStage
from hydra_pipeline.pipeline.validation import (
    check_builder_arguments,
    require_at_least,
    require_int,
    require_positive,
    require_unit_interval,
)

__all__ = ["TrainingPipeline"]


class TrainingPipeline:
    """A sequence of :class:`PipelineStage` s trained one after the other, with shared settings.

    The pipeline keeps a cursor on the current stage. It is iterable: ``for stage in pipeline:``
    visits each incomplete stage once, in order, starting from the current one (so a pipeline
    restored from a checkpoint starts mid-way), and ``pipeline.current_stage is stage`` inside
    the loop body.

    Args:
        named_losses: Loss name -> loss object, or a :class:`Builder` of one. Builders are built
            lazily, once, and the loss is shared by every stage that names it.
        pipeline_stages: The stages, trained in order. Each stage object may appear only once.
        optimizer_builder: Called once with ``params=...`` to make the single optimizer used by
            every stage.
        num_mini_batch: Minibatches each rollout is split into (by environment) per update
            epoch (>= 1).
        update_repeats: Passes (epochs) over each rollout per update (>= 1).
        max_grad_norm: Gradients are clipped to this L2 norm before each optimizer step (> 0;
            ``inf`` never clips).
        num_steps: Rollout length: steps taken in every environment between updates (>= 1).
        gamma: Discount factor, in [0, 1].
        use_gae: Whether returns use Generalized Advantage Estimation.
        gae_lambda: GAE's lambda, in [0, 1].
        advance_scene_rollout_period: Reset every environment after this many rollouts
            (>= 1); ``None`` never forces a reset.
        save_interval: Checkpoint period in total agent steps. ``None`` never saves; ``<= 0``
            saves only at the end of each stage; ``> 0`` saves every ``save_interval`` total
            steps and at the end of each stage. See :meth:`should_save`.
        metric_accumulate_interval: Metrics are logged, and the stage's early-stopping
            criterion is called, every this many total agent steps and at the end of each
            stage (>= 1).
        should_log: Whether metrics are written to the console and to TensorBoard (they are
            still accumulated for early stopping and the run summary).
        lr_scheduler_builder: Called once with ``optimizer=...``; the scheduler is stepped
            after every update with the total step count. ``None`` keeps the learning rate.
    """

    def __init__(
        self,
        named_losses: Mapping[str, Any],
        pipeline_stages: Sequence[PipelineStage],
        optimizer_builder: Builder[Any] | Callable[..., Any],
        num_mini_batch: int,
        update_repeats: int,
        max_grad_norm: float,
        num_steps: int,
        gamma: float,
        use_gae: bool,
        gae_lambda: float,
        advance_scene_rollout_period: int | None,
        save_interval: int | None,
        metric_accumulate_interval: int,
        should_log: bool = True,
        lr_scheduler_builder: Builder[Any] | Callable[..., Any] | None = None,
    ) -> None:
        self.named_losses: dict[str, Any] = dict(named_losses)
        self.pipeline_stages = _validated_stages(pipeline_stages, self.named_losses)
        if not callable(optimizer_builder):
            raise InvalidArgumentError(
                "optimizer_builder", "must be a Builder of an optimizer", optimizer_builder
            )
        check_builder_arguments("optimizer_builder", optimizer_builder, "optimizer")
        self.optimizer_builder = optimizer_builder
        self.num_mini_batch = require_at_least("num_mini_batch", num_mini_batch, 1)
        self.update_repeats = require_at_least("update_repeats", update_repeats, 1)
        self.max_grad_norm = require_positive("max_grad_norm", max_grad_norm, allow_infinite=True)
        self.num_steps = require_at_least("num_steps", num_steps, 1)
        self.gamma = require_unit_interval("gamma", gamma)
        self.use_gae = bool(use_gae)
        self.gae_lambda = require_unit_interval("gae_lambda", gae_lambda)
        self.advance_scene_rollout_period = (
            None
            if advance_scene_rollout_period is None
            else require_at_least("advance_scene_rollout_period", advance_scene_rollout_period, 1)
        )
        self.save_interval = (
            None if save_interval is None else require_int("save_interval", save_interval)
        )
        self.metric_accumulate_interval = require_at_least(
            "metric_accumulate_interval", metric_accumulate_interval, 1
        )
        self.should_log = bool(should_log)
        if lr_scheduler_builder is not None and not callable(lr_scheduler_builder):
            raise InvalidArgumentError(
                "lr_scheduler_builder", "must be a Builder of a scheduler", lr_scheduler_builder
            )
        check_builder_arguments("lr_scheduler_builder", lr_scheduler_builder, "lr_scheduler")
        self.lr_scheduler_builder = lr_scheduler_builder
        self._built_losses: dict[str, Any] = {}
        self._current_index: int | None = None
        self._move_cursor(start=0)

    # ----------------------------------------------------------------------------------------
    # The stage cursor

    @property
    def current_stage_index(self) -> int | None:
        """Index of the current stage; ``None`` once every stage is complete."""
        return self._current_index

    @property
    def current_stage(self) -> PipelineStage | None:
        """The current stage; ``None`` once every stage is complete."""
        index = self._current_index
        return None if index is None else self.pipeline_stages[index]

    @property
    def total_steps(self) -> int:
        """Agent steps taken in all stages."""
        return sum(stage.steps_taken_in_stage for stage in self.pipeline_stages)

    def _move_cursor(self, start: int) -> None:
        """Point the cursor at the first incomplete stage from ``start`` on (or at ``None``)."""
        for index in range(start, len(self.pipeline_stages)):
            stage = self.pipeline_stages[index]
            stage.resolve_max_stage_steps()
            if not stage.is_complete:
                self._current_index = index
                return
        self._current_index = None

    def before_rollout(self, training_metrics: ScalarMeanTracker | None = None) -> bool:
        """Call the current stage's criterion (when metrics are given), then advance the cursor.

        Args:
            training_metrics: Metrics accumulated since the previous call; when given, the
                current stage's early-stopping criterion (if any) decides whether it ends now
                (it is not called once the stage has reached ``max_stage_steps``).

        Returns:
            Whether the current stage changed.
        """
        stage = self.current_stage
        if stage is None:
            return False
        criterion = stage.early_stopping_criterion
        # A stage that has run to its step limit ends anyway: only an earlier end counts as
        # early stopping.
        if training_metrics is not None and criterion is not None and not stage.is_complete:
            stage.early_stopping_criterion_met = bool(
                criterion(
                    stage_steps=stage.steps_taken_in_stage,
                    total_steps=self.total_steps,
                    training_metrics=training_metrics,
                )
            )
        if stage.is_complete:
            assert self._current_index is not None
            self._move_cursor(start=self._current_index + 1)
        return self.current_stage is not stage

    def restart_pipeline(self) -> None:
        """Put every stage back to its start and the cursor on the first stage to train."""
        for stage in self.pipeline_stages:
            stage.reset()
        self._move_cursor(start=0)

    def __iter__(self) -> Iterator[PipelineStage]:
        start = self._current_index
        if start is None:
            return
        for index in range(start, len(self.pipeline_stages)):
            stage = self.pipeline_stages[index]
            stage.resolve_max_stage_steps()
            if stage.is_complete:
                continue
            self._current_index = index
            yield stage
        if self._current_index is not None:
            self._move_cursor(start=self._current_index)

    # ----------------------------------------------------------------------------------------
    # What the engine asks

    def should_save(self, *, steps_since_last_save: int, stage_completed: bool) -> bool:
        """Whether the engine should write a checkpoint after the rollout it just finished.

        The single home of the ``save_interval`` rule: ``None`` never; ``<= 0`` only when a
        stage has just completed; ``> 0`` when ``save_interval`` total steps have passed since
        the last save, or a stage has just completed.
        """
        if self.save_interval is None:
            return False
        if stage_completed:
            return True
        return self.save_interval > 0 and steps_since_last_save >= self.save_interval

    def should_accumulate_metrics(
        self, *, steps_since_last_log: int, stage_completed: bool
    ) -> bool:
        """Whether metrics are due: every ``metric_accumulate_interval`` steps and at stage end."""
        return stage_completed or steps_since_last_log >= self.metric_accumulate_interval

    def loss(self, name: str) -> Any:
        """The loss named ``name``, built on first use if ``named_losses`` holds a builder."""
        if name not in self._built_losses:
            value = self.named_losses[name]
            self._built_losses[name] = value() if isinstance(value, Builder) else value
        return self._built_losses[name]

    @property
    def current_stage_losses(self) -> dict[str, Any]:
        """The current stage's on-policy losses by name (empty when the pipeline is done)."""
        stage = self.current_stage
        return {} if stage is None else {name: self.loss(name) for name in stage.loss_names}

    @property
    def current_stage_loss_weights(self) -> dict[str, float]:
        """The current stage's loss weights by name (empty when the pipeline is done)."""
        stage = self.current_stage
        return {} if stage is None else stage.named_loss_weights

    # ----------------------------------------------------------------------------------------
    # Checkpoints

    def state_dict(self) -> dict[str, Any]:
        """The cursor and every stage's progress and criterion state, as plain Python values."""
        return {
            "current_stage_index": self._current_index,
            "stages": [stage.state_dict() for stage in self.pipeline_stages],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Raises:
            InvalidArgumentError: The state comes from a pipeline with a different number of
                stages, or with different loss names in some stage.
        """
        saved_stages = list(state["stages"])
        if len(saved_stages) != len(self.pipeline_stages):
            raise InvalidArgumentError(
                "pipeline_stages",
                f"has {len(self.pipeline_stages)} stages but the saved state has "
                f"{len(saved_stages)}",
                [stage.loss_names for stage in self.pipeline_stages],
                "Load a checkpoint made with the same pipeline.",
            )
        pairs = list(zip(self.pipeline_stages, saved_stages, strict=True))
        for index, (stage, saved) in enumerate(pairs):
            if list(saved["loss_names"]) != stage.loss_names:
                raise InvalidArgumentError(
                    f"pipeline_stages.{index}.loss_names",
                    f"differs from the saved state's {list(saved['loss_names'])}",
                    stage.loss_names,
                    "Load a checkpoint made with the same pipeline.",
                )
        for stage, saved in pairs:
            stage.load_state_dict(saved)
        # Resume at the saved stage, or, if the pipeline had finished, at its last trained
        # stage (a longer limit given on resume makes it incomplete again).
        index = state["current_stage_index"]
        if index is None:
            trained = [
                i for i, stage in enumerate(self.pipeline_stages) if stage.steps_taken_in_stage
            ]
            index = trained[-1] if trained else len(self.pipeline_stages)
        self._move_cursor(start=int(index))

    def __repr__(self) -> str:
        return (
            f"TrainingPipeline(stages={[stage.loss_names for stage in self.pipeline_stages]}, "
            f"current_stage_index={self._current_index}, total_steps={self.total_steps})"
        )


def _validated_stages(
    stages: Sequence[PipelineStage], named_losses: Mapping[str, Any]
) -> list[PipelineStage]:
    """The stages as a list, after the checks that need the whole pipeline."""
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not stages:
        raise InvalidArgumentError(
            "pipeline_stages", "must be a non-empty list of PipelineStage", stages
        )
    seen: dict[int, int] = {}
    for index, stage in enumerate(stages):
        if not isinstance(stage, PipelineStage):
            raise InvalidArgumentError(f"pipeline_stages.{index}", "must be a PipelineStage", stage)
        if id(stage) in seen:
            raise InvalidArgumentError(
                f"pipeline_stages.{index}",
                f"is the same object as pipeline_stages.{seen[id(stage)]}",
                stage,
                "Stages hold their own progress, so each must be a separate PipelineStage.",
            )
        seen[id(stage)] = index
        named = [("loss_names", stage.loss_names)]
        if stage.offpolicy_component is not None:
            named.append(("offpolicy_component.loss_names", stage.offpolicy_component.loss_names))
        for field_name, names in named:
            unknown = [name for name in names if name not in named_losses]
            if unknown:
                raise InvalidArgumentError(
                    f"pipeline_stages.{index}.{field_name}",
                    f"names {unknown}, which named_losses does not define",
                    names,
                    f"Defined losses: {sorted(named_losses)}.",
                )
    return list(stages)
