"""The AllenAct training-pipeline objects: plain Python, no Hydra, no engine.

Nothing here imports torch at module level, so configuration-only commands stay fast.
"""

from hydra_pipeline.pipeline.builder import Builder, ToBuildType, recursive_update
from hydra_pipeline.pipeline.early_stopping import (
    EarlyStoppingCriterion,
    MetricGoal,
    NeverEarlyStoppingCriterion,
    PlateauEarlyStopping,
    ThresholdEarlyStopping,
)
from hydra_pipeline.pipeline.metrics import ScalarMeanTracker
from hydra_pipeline.pipeline.schedules import LinearDecay
from hydra_pipeline.pipeline.seeding import set_deterministic_cudnn, set_seed
from hydra_pipeline.pipeline.stage import OffPolicyPipelineComponent, PipelineStage
from hydra_pipeline.pipeline.training_pipeline import TrainingPipeline

__all__ = [
    "Builder",
    "EarlyStoppingCriterion",
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
