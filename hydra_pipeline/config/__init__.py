"""Structured configs: every pipeline object as a typed dataclass in Hydra's ConfigStore.

Importing this module registers the schemas (see :mod:`hydra_pipeline.config.store`) and the
resolvers the presets use. It imports Hydra and OmegaConf, never torch.
"""

from hydra_pipeline.config.builder import BUILDER_TARGET, builder_of
from hydra_pipeline.config.checks import check_config
from hydra_pipeline.config.data import ExpertDemonstrationsConf
from hydra_pipeline.config.distributed import DistributedConf
from hydra_pipeline.config.evaluation import EvaluateConfig, EvaluationConf
from hydra_pipeline.config.instantiation import instantiate_node
from hydra_pipeline.config.loss import A2CConf, ImitationConf, PPOConf
from hydra_pipeline.config.lr_scheduler import (
    CosineAnnealingLRConf,
    LambdaLRConf,
    LRSchedulerConf,
    StepLRConf,
)
from hydra_pipeline.config.model import MLPActorCriticConf, RecurrentActorCriticConf
from hydra_pipeline.config.optimizer import AdamConf, AdamWConf, OptimizerConf, RMSpropConf, SGDConf
from hydra_pipeline.config.pipeline import (
    NeverEarlyStoppingCriterionConf,
    OffPolicyPipelineComponentConf,
    PipelineStageConf,
    PlateauEarlyStoppingConf,
    StageComponentConf,
    ThresholdEarlyStoppingConf,
    TrainingPipelineConf,
    TrainingSettingsConf,
)
from hydra_pipeline.config.resolvers import register_resolvers
from hydra_pipeline.config.root import Config
from hydra_pipeline.config.schedules import LinearDecayConf, MultiLinearDecayConf
from hydra_pipeline.config.storage import RolloutBlockStorageConf
from hydra_pipeline.config.store import SCHEMAS, register_configs, schema_for_target
from hydra_pipeline.config.task import CartPoleTaskConf, GymTaskConf, MiniGridTaskConf
from hydra_pipeline.config.trust import AllowList, active_allow_list, allowing

register_configs()
register_resolvers()

__all__ = [
    "BUILDER_TARGET",
    "SCHEMAS",
    "A2CConf",
    "AdamConf",
    "AdamWConf",
    "AllowList",
    "CartPoleTaskConf",
    "Config",
    "CosineAnnealingLRConf",
    "DistributedConf",
    "EvaluateConfig",
    "EvaluationConf",
    "ExpertDemonstrationsConf",
    "GymTaskConf",
    "ImitationConf",
    "LRSchedulerConf",
    "LambdaLRConf",
    "LinearDecayConf",
    "MLPActorCriticConf",
    "MiniGridTaskConf",
    "MultiLinearDecayConf",
    "NeverEarlyStoppingCriterionConf",
    "OffPolicyPipelineComponentConf",
    "OptimizerConf",
    "PPOConf",
    "PipelineStageConf",
    "PlateauEarlyStoppingConf",
    "RMSpropConf",
    "RecurrentActorCriticConf",
    "RolloutBlockStorageConf",
    "SGDConf",
    "StageComponentConf",
    "StepLRConf",
    "ThresholdEarlyStoppingConf",
    "TrainingPipelineConf",
    "TrainingSettingsConf",
    "active_allow_list",
    "allowing",
    "builder_of",
    "check_config",
    "instantiate_node",
    "register_configs",
    "register_resolvers",
    "schema_for_target",
]
