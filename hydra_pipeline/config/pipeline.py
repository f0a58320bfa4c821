"""Schemas of the pipeline objects: ``TrainingPipeline``, ``PipelineStage`` and their parts.

Field names are the constructors' parameter names, so a config reads like AllenAct's code and
the command line like its keys: ``pipeline.gamma=0.95``,
``pipeline.pipeline_stages.1.max_stage_steps=200000``. Fields that take one of several kinds of
object (a loss, an early-stopping criterion, a schedule, a storage) hold any ``_target_`` node;
the application checks those against the target's schema or signature before training.

Training settings take one form in configs: the pipeline's are its own keys
(``pipeline.num_mini_batch=4``, AllenAct's keyword form), a stage's or a stage component's sit
under its ``training_settings`` (``pipeline.pipeline_stages.1.training_settings.num_mini_batch=8``,
AllenAct 0.5's object form), where null means "as in the pipeline (or the stage)".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from hydra_pipeline.config.lr_scheduler import LRSchedulerConf
from hydra_pipeline.config.optimizer import OptimizerConf

__all__ = [
    "NeverEarlyStoppingCriterionConf",
    "OffPolicyPipelineComponentConf",
    "PipelineStageConf",
    "PlateauEarlyStoppingConf",
    "StageComponentConf",
    "ThresholdEarlyStoppingConf",
    "TrainingPipelineConf",
    "TrainingSettingsConf",
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
class _TrainingSettingFields:
    """The training settings as fields of a node, after its ``_target_`` (see
    ``TrainingSettings`` for units and ranges): the pipeline's, and a stage's or stage
    component's ``training_settings``. A test keeps them equal to ``TRAINING_SETTING_KEYS``.

    Attributes:
        num_mini_batch: Minibatches per update epoch (split as minibatch_split says); 0 where
            nothing is learned from the rollout.
        update_repeats: Update epochs per rollout.
        max_grad_norm: Gradients are clipped to this L2 norm.
        num_steps: Rollout length, in steps per environment.
        gamma: Discount factor in [0, 1].
        use_gae: Use generalized advantage estimation.
        gae_lambda: GAE lambda in [0, 1].
        advance_scene_rollout_period: Reset all environments every this many rollouts; null
            (after falling back) never.
        save_interval: Checkpoint every this many total steps and at each stage end; <= 0
            only at stage ends; null (after falling back) never.
        metric_accumulate_interval: Log metrics and check early stopping every this many
            total steps, and at each stage end.
        minibatch_split: How num_mini_batch divides a rollout: ``environments`` (null's meaning:
            whole environments, at most num_envs minibatches; memory models need it) or
            ``transitions`` (single transitions shuffled across steps and environments, as
            Stable-Baselines3 does: num_mini_batch = num_steps * num_envs / batch_size).
        sequence_length: Steps per sequence a model with memory learns from (truncated
            backpropagation through time; must divide num_steps when shorter); null or at
            least num_steps: whole rollouts. Set by a stage, not a component; memoryless
            models ignore it.
    """

    _target_: str = MISSING
    num_mini_batch: Optional[int] = None
    update_repeats: Optional[int] = None
    max_grad_norm: Optional[float] = None
    num_steps: Optional[int] = None
    gamma: Optional[float] = None
    use_gae: Optional[bool] = None
    gae_lambda: Optional[float] = None
    advance_scene_rollout_period: Optional[int] = None
    save_interval: Optional[int] = None
    metric_accumulate_interval: Optional[int] = None
    minibatch_split: Optional[str] = None
    sequence_length: Optional[int] = None


@dataclass
class TrainingSettingsConf(_TrainingSettingFields):
    """A ``TrainingSettings``: a stage's or stage component's settings; null falls back to the
    pipeline's (or, in a component, the stage's). A component sets only num_mini_batch,
    update_repeats, max_grad_norm and minibatch_split.

    Attributes:
        update_repeats: Update epochs per rollout; in a stage component, also a list with one
            count per loss.
    """

    _target_: str = "hydra_pipeline.TrainingSettings"
    update_repeats: Any = None


@dataclass
class StageComponentConf:
    """A ``StageComponent``: losses learning from one of ``pipeline.named_storages``.

    Attributes:
        uuid: The component's name, unique in its stage.
        storage_uuid: The storage (a key of ``pipeline.named_storages``) its minibatches come
            from.
        loss_names: Losses (keys of ``named_losses``) computed on each minibatch.
        training_settings: Only num_mini_batch, update_repeats, max_grad_norm and
            minibatch_split; null ones fall back to the stage's.
        loss_weights: One weight per loss name; null takes each loss's weight in the stage.
    """

    _target_: str = "hydra_pipeline.StageComponent"
    uuid: str = MISSING
    storage_uuid: str = MISSING
    loss_names: List[str] = MISSING
    training_settings: TrainingSettingsConf = field(default_factory=TrainingSettingsConf)
    loss_weights: Optional[List[float]] = None


@dataclass
class PipelineStageConf:
    """A ``PipelineStage``.

    Attributes:
        loss_names: Losses (keys of ``named_losses``) trained in this stage.
        max_stage_steps: Agent steps after which the stage ends (it ends on a whole rollout).
        early_stopping_criterion: A criterion ``_target_`` node ending the stage early, or null.
        loss_weights: One weight per loss name; null means all 1.0.
        teacher_forcing: Probability, by the stage's steps, that the expert's action replaces
            the policy's: a schedule ``_target_`` node (LinearDecay, MultiLinearDecay), or null.
        offpolicy_component: Off-policy updates after each rollout's updates, or null.
        stage_components: What learns in the stage and from which storage; null trains every
            loss of loss_names on the rollout storage.
        training_settings: The stage's own settings; null ones are the pipeline's.
    """

    _target_: str = "hydra_pipeline.PipelineStage"
    loss_names: List[str] = MISSING
    max_stage_steps: int = MISSING
    early_stopping_criterion: Any = None
    loss_weights: Optional[List[float]] = None
    teacher_forcing: Any = None
    offpolicy_component: Optional[OffPolicyPipelineComponentConf] = None
    stage_components: Optional[List[StageComponentConf]] = None
    training_settings: TrainingSettingsConf = field(default_factory=TrainingSettingsConf)


@dataclass
class TrainingPipelineConf(_TrainingSettingFields):
    """A ``TrainingPipeline`` (see its docstring for the meaning and units of each field); its
    training settings are its own fields (a null one must be set by each stage that needs it).

    Attributes:
        named_losses: Loss name -> loss ``_target_`` node.
        pipeline_stages: The stages, trained in order.
        optimizer_builder: The optimizer (group ``optimizer``).
        should_log: Write metrics to the console and TensorBoard.
        lr_scheduler_builder: The learning-rate scheduler (group ``lr_scheduler``), or null.
        named_storages: Storage name -> storage ``_target_`` node (group ``storage``); empty
            gives the rollout storage ``onpolicy``.
        rollout_storage_uuid: The rollout storage's name; null infers it.
        valid_pipeline_stage: AllenAct's validation-time stage; kept, not run: validation is
            the evaluation node (evaluation.interval), which computes no losses.
        test_pipeline_stage: AllenAct's test-time stage; kept, not run: testing is the
            evaluate command (python -m hydra_pipeline.evaluate run=<folder>).
    """

    _target_: str = "hydra_pipeline.TrainingPipeline"
    named_losses: Dict[str, Any] = field(default_factory=dict)
    pipeline_stages: List[PipelineStageConf] = MISSING
    optimizer_builder: OptimizerConf = MISSING
    should_log: bool = True
    lr_scheduler_builder: Optional[LRSchedulerConf] = None
    named_storages: Dict[str, Any] = field(default_factory=dict)
    rollout_storage_uuid: Optional[str] = None
    valid_pipeline_stage: Optional[PipelineStageConf] = None
    test_pipeline_stage: Optional[PipelineStageConf] = None
