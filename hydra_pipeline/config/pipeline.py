"""Schemas of the pipeline objects: ``TrainingPipeline``, ``PipelineStage`` and their parts.

Field names are the constructors' parameter names, so a config reads like AllenAct's code and
the command line like its keys: ``pipeline.gamma=0.95``,
``pipeline.pipeline_stages.1.max_stage_steps=200000``. Fields that take one of several kinds of
object (a loss, an early-stopping criterion, a data source) hold any ``_target_`` node; the
application checks those against the target's schema or signature before training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from hydra_pipeline.config.lr_scheduler import LRSchedulerConf
from hydra_pipeline.config.optimizer import OptimizerConf
from hydra_pipeline.config.schedules import LinearDecayConf

__all__ = [
    "NeverEarlyStoppingCriterionConf",
    "OffPolicyPipelineComponentConf",
    "PipelineStageConf",
    "PlateauEarlyStoppingConf",
    "ThresholdEarlyStoppingConf",
    "TrainingPipelineConf",
]


@dataclass
class NeverEarlyStoppingCriterionConf:
    """A ``NeverEarlyStoppingCriterion``: the stage always runs to ``max_stage_steps``."""

    _target_: str = "hydra_pipeline.NeverEarlyStoppingCriterion"


@dataclass
class ThresholdEarlyStoppingConf:
    """A ``ThresholdEarlyStopping``: end the stage once a metric reaches a threshold.

    Attributes:
        metric: Training metric to watch (``reward`` is the mean episode return).
        threshold: Value to reach (``>=`` with mode ``max``, ``<=`` with ``min``).
        mode: ``max`` or ``min``.
        consecutive: Metric points in a row that must reach the threshold.
    """

    _target_: str = "hydra_pipeline.ThresholdEarlyStopping"
    metric: str = "reward"
    threshold: float = MISSING
    mode: str = "max"
    consecutive: int = 1


@dataclass
class PlateauEarlyStoppingConf:
    """A ``PlateauEarlyStopping``: end the stage when a metric stops improving.

    Attributes:
        metric: Training metric to watch.
        patience: Metric points without an improvement after which the stage ends.
        min_delta: Smallest change that counts as an improvement.
        mode: ``max`` (larger is better) or ``min``.
    """

    _target_: str = "hydra_pipeline.PlateauEarlyStopping"
    metric: str = "reward"
    patience: int = 10
    min_delta: float = 0.0
    mode: str = "max"


@dataclass
class OffPolicyPipelineComponentConf:
    """An ``OffPolicyPipelineComponent``: off-policy updates after each on-policy update.

    Attributes:
        data_iterator_builder: A ``_target_`` node for a callable that returns an iterator of
            minibatches, e.g. ``hydra_pipeline.tasks.ExpertDemonstrations``.
        loss_names: Losses (keys of ``named_losses``) computed on each off-policy minibatch.
        updates: Off-policy minibatch updates after each on-policy update.
        loss_weights: One weight per loss name; null means all 1.0.
    """

    _target_: str = "hydra_pipeline.OffPolicyPipelineComponent"
    data_iterator_builder: Any = MISSING
    loss_names: List[str] = MISSING
    updates: int = MISSING
    loss_weights: Optional[List[float]] = None


@dataclass
class PipelineStageConf:
    """A ``PipelineStage``.

    Attributes:
        loss_names: On-policy losses (keys of ``named_losses``) trained in this stage.
        max_stage_steps: Agent steps after which the stage ends (it ends on a whole rollout).
        early_stopping_criterion: A criterion ``_target_`` node ending the stage early, or null.
        loss_weights: One weight per loss name; null means all 1.0.
        teacher_forcing: Probability, decaying with the stage's steps, that the expert's
            action replaces the policy's; null for none.
        offpolicy_component: Off-policy updates after each on-policy update, or null.
    """

    _target_: str = "hydra_pipeline.PipelineStage"
    loss_names: List[str] = MISSING
    max_stage_steps: int = MISSING
    early_stopping_criterion: Any = None
    loss_weights: Optional[List[float]] = None
    teacher_forcing: Optional[LinearDecayConf] = None
    offpolicy_component: Optional[OffPolicyPipelineComponentConf] = None


@dataclass
class TrainingPipelineConf:
    """A ``TrainingPipeline`` (see its docstring for the meaning and units of each field).

    Attributes:
        named_losses: Loss name -> loss ``_target_`` node.
        pipeline_stages: The stages, trained in order.
        optimizer_builder: The optimizer (group ``optimizer``).
        num_mini_batch: Minibatches per update epoch (split by environment).
        update_repeats: Update epochs per rollout.
        max_grad_norm: Gradients are clipped to this L2 norm.
        num_steps: Rollout length, in steps per environment.
        gamma: Discount factor in [0, 1].
        use_gae: Use generalized advantage estimation.
        gae_lambda: GAE lambda in [0, 1].
        advance_scene_rollout_period: Reset all environments every this many rollouts; null
            never.
        save_interval: Checkpoint every this many total steps and at each stage end; <= 0
            only at stage ends; null never.
        metric_accumulate_interval: Log metrics and check early stopping every this many
            total steps, and at each stage end.
        should_log: Write metrics to the console and TensorBoard.
        lr_scheduler_builder: The learning-rate scheduler (group ``lr_scheduler``), or null.
    """

    _target_: str = "hydra_pipeline.TrainingPipeline"
    named_losses: Dict[str, Any] = field(default_factory=dict)
    pipeline_stages: List[PipelineStageConf] = MISSING
    optimizer_builder: OptimizerConf = MISSING
    num_mini_batch: int = MISSING
    update_repeats: int = MISSING
    max_grad_norm: float = MISSING
    num_steps: int = MISSING
    gamma: float = MISSING
    use_gae: bool = MISSING
    gae_lambda: float = MISSING
    advance_scene_rollout_period: Optional[int] = MISSING
    save_interval: Optional[int] = MISSING
    metric_accumulate_interval: int = MISSING
    should_log: bool = True
    lr_scheduler_builder: Optional[LRSchedulerConf] = None
