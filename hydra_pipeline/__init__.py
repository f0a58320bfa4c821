"""hydra_pipeline: AllenAct-style staged RL training pipelines as typed Hydra configs.

The pipeline objects are importable from here without importing torch; :class:`Policy` (a
trained policy, see :mod:`hydra_pipeline.policy`) imports torch when first used.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from hydra_pipeline.policy import Policy

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
    "Policy",
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


def __getattr__(name: str) -> Any:
    # Policy imports torch and the config layer: only when asked for.
    if name == "Policy":
        from hydra_pipeline.policy import Policy

        return Policy
    raise AttributeError(f"module 'hydra_pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
