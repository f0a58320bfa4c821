"""AllenAct's ``utils.experiment_utils`` names, so porting an experiment is a one-line change.

Replace ``from allenact.utils.experiment_utils import ...`` (or the 2020
``from utils.experiment_utils import ...``) with
``from hydra_pipeline.experiment_utils import ...``. The names follow AllenAct 0.5.4, the last
release, and keep AllenAct 2020's positional forms working. ``RolloutBlockStorage`` is here as
in AllenAct's module, which imports it; the losses (``PPO``, ``A2C``, ``Imitation`` and the
``PPOConfig`` / ``A2CConfig`` defaults) are in :mod:`hydra_pipeline.engine.losses`.
"""

from hydra_pipeline.pipeline import (
    Builder,
    EarlyStoppingCriterion,
    LinearDecay,
    MultiLinearDecay,
    NeverEarlyStoppingCriterion,
    OffPolicyPipelineComponent,
    PipelineStage,
    RolloutBlockStorage,
    ScalarMeanTracker,
    StageComponent,
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
    "EarlyStoppingCriterion",
    "LinearDecay",
    "MultiLinearDecay",
    "NeverEarlyStoppingCriterion",
    "OffPolicyPipelineComponent",
    "PipelineStage",
    "RolloutBlockStorage",
    "ScalarMeanTracker",
    "StageComponent",
    "ToBuildType",
    "TrainingPipeline",
    "TrainingSettings",
    "evenly_distribute_count_into_bins",
    "recursive_update",
    "set_deterministic_cudnn",
    "set_seed",
]
