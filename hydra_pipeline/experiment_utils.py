"""AllenAct's ``utils.experiment_utils`` names, so porting an experiment is a one-line change.

Replace ``from allenact.utils.experiment_utils import ...`` (or the 2020
``from utils.experiment_utils import ...``) with
``from hydra_pipeline.experiment_utils import ...``.
"""

from hydra_pipeline.pipeline import (
    Builder,
    EarlyStoppingCriterion,
    LinearDecay,
    NeverEarlyStoppingCriterion,
    OffPolicyPipelineComponent,
    PipelineStage,
    ScalarMeanTracker,
    ToBuildType,
    TrainingPipeline,
    recursive_update,
    set_deterministic_cudnn,
    set_seed,
)

__all__ = [
    "Builder",
    "EarlyStoppingCriterion",
    "LinearDecay",
    "NeverEarlyStoppingCriterion",
    "OffPolicyPipelineComponent",
    "PipelineStage",
    "ScalarMeanTracker",
    "ToBuildType",
    "TrainingPipeline",
    "recursive_update",
    "set_deterministic_cudnn",
    "set_seed",
]
