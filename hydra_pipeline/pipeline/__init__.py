"""The AllenAct training-pipeline objects: plain Python, no Hydra, no engine.

Nothing here imports torch at module level, so configuration-only commands stay fast.
"""

from hydra_pipeline.pipeline.bins import evenly_distribute_count_into_bins
from hydra_pipeline.pipeline.builder import Builder, ToBuildType, recursive_update
from hydra_pipeline.pipeline.early_stopping import (
    EarlyStoppingCriterion,
    MetricGoal,
    NeverEarlyStoppingCriterion,
    PlateauEarlyStopping,
    ThresholdEarlyStopping,
)
from hydra_pipeline.pipeline.metrics import ScalarMeanTracker
from hydra_pipeline.pipeline.schedules import LinearDecay, MultiLinearDecay
from hydra_pipeline.pipeline.seeding import set_deterministic_cudnn, set_seed
from hydra_pipeline.pipeline.settings import TrainingSettings
from hydra_pipeline.pipeline.stage import (
    OffPolicyPipelineComponent,
    PipelineStage,
    StageComponent,
)
from hydra_pipeline.pipeline.storage import RolloutBlockStorage
from hydra_pipeline.pipeline.training_pipeline import TrainingPipeline

__all__ = [
    "Builder",
    "EarlyStoppingCriterion",
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
