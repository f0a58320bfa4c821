"""hydra_pipeline: AllenAct-style staged RL training pipelines as typed Hydra configs.

The pipeline objects are importable from here without importing torch.
"""

from hydra_pipeline.errors import CheckpointError, ConfigError, InvalidArgumentError
from hydra_pipeline.pipeline import (
    Builder,
    EarlyStoppingCriterion,
    LinearDecay,
    MetricGoal,
    NeverEarlyStoppingCriterion,
    OffPolicyPipelineComponent,
    PipelineStage,
    PlateauEarlyStopping,
    ScalarMeanTracker,
    ThresholdEarlyStopping,
    ToBuildType,
    TrainingPipeline,
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
    "NeverEarlyStoppingCriterion",
    "OffPolicyPipelineComponent",
    "PipelineStage",
    "PlateauEarlyStopping",
    "ScalarMeanTracker",
    "ThresholdEarlyStopping",
    "ToBuildType",
    "TrainingPipeline",
    "recursive_update",
    "set_deterministic_cudnn",
    "set_seed",
]
