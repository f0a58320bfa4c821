"""hydra_pipeline: AllenAct-style staged RL training pipelines as typed Hydra configs.

The pipeline objects are importable from here without importing torch.
"""

from hydra_pipeline.errors import CheckpointError, ConfigError, InvalidArgumentError
from hydra_pipeline.pipeline import (
    Builder,
    EarlyStoppingCriterion,
    LinearDecay,
    MetricGoal,
    MultiLinearDecay,
    NeverEarlyStoppingCriterion,
    OffPolicyPipelineComponent,
    PipelineStage,
    PlateauEarlyStopping,
    RolloutBlockStorage,
    ScalarMeanTracker,
    StageComponent,
    ThresholdEarlyStopping,
    ToBuildType,
    TrainingPipeline,
    TrainingSettings,
    evenly_distribute_count_into_bins,
    recursive_update,
    set_deterministic_cudnn,
    set_seed,
)

__all__ = [
    "Builder",
    "CheckpointError",
    "ConfigError",
    "EarlyStoppingCriterion",
    "InvalidArgumentError",
    "LinearDecay",
    "MetricGoal",
    "MultiLinearDecay",
    "NeverEarlyStoppingCriterion",
    "OffPolicyPipelineComponent",
    "PipelineStage",
    "PlateauEarlyStopping",
    "RolloutBlockStorage",
    "ScalarMeanTracker",
    "StageComponent",
    "ThresholdEarlyStopping",
    "ToBuildType",
    "TrainingPipeline",
    "TrainingSettings",
    "evenly_distribute_count_into_bins",
    "recursive_update",
    "set_deterministic_cudnn",
    "set_seed",
]
