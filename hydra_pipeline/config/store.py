"""The index of every schema in Hydra's ConfigStore: the only place that calls ``store()``.

Schemas are stored as ``base_<name>`` options of their group (Hydra's "extending configs"
pattern): the YAML presets in ``conf/`` list their schema first in their defaults list, so
every value they set is type-checked. Selecting a schema directly (``optimizer=base_sgd``)
gives torch's defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from hydra_pipeline.config.builder import BUILDER_TARGET
from hydra_pipeline.config.callbacks import MLflowTrackerConf, WandbTrackerConf
from hydra_pipeline.config.data import ExpertDemonstrationsConf
from hydra_pipeline.config.evaluation import EvaluateConfig
from hydra_pipeline.config.loss import A2CConf, ImitationConf, PPOConf
from hydra_pipeline.config.lr_scheduler import CosineAnnealingLRConf, LambdaLRConf, StepLRConf
from hydra_pipeline.config.model import MLPActorCriticConf, RecurrentActorCriticConf
from hydra_pipeline.config.optimizer import AdamConf, AdamWConf, RMSpropConf, SGDConf
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
from hydra_pipeline.config.root import Config
from hydra_pipeline.config.schedules import LinearDecayConf, MultiLinearDecayConf
from hydra_pipeline.config.storage import RolloutBlockStorageConf
from hydra_pipeline.config.task import CartPoleTaskConf, GymTaskConf, MiniGridTaskConf
from hydra_pipeline.errors import ConfigError

__all__ = ["SCHEMAS", "StoredSchema", "register_configs", "schema_for_target", "target_of"]


class StoredSchema(NamedTuple):
    """One ConfigStore entry.

    Attributes:
        group: Its config group (``None``: a primary config).
        name: Its option name.
        node: The schema.
        package: Where it is placed in the composed config.
        open_keys: Fields that accept keys the schema does not declare, so that the command
            line sets them without ``+`` (the evaluate command's ``task`` overrides).
    """

    group: str | None
    name: str
    node: type[Any]
    package: str | None = None
    open_keys: tuple[str, ...] = ()


_OPTIMIZER = "pipeline.optimizer_builder"
_LR_SCHEDULER = "pipeline.lr_scheduler_builder"

SCHEMAS: tuple[StoredSchema, ...] = (
    StoredSchema(None, "base_config", Config),
    StoredSchema(None, "base_evaluate", EvaluateConfig, open_keys=("task",)),
    StoredSchema("pipeline", "base_training_pipeline", TrainingPipelineConf, "pipeline"),
    # Optimizers and schedulers place themselves where the pipeline expects them.
    StoredSchema("optimizer", "base_adam", AdamConf, _OPTIMIZER),
    StoredSchema("optimizer", "base_adamw", AdamWConf, _OPTIMIZER),
    StoredSchema("optimizer", "base_sgd", SGDConf, _OPTIMIZER),
    StoredSchema("optimizer", "base_rmsprop", RMSpropConf, _OPTIMIZER),
    StoredSchema("lr_scheduler", "base_lambda_lr", LambdaLRConf, _LR_SCHEDULER),
    StoredSchema("lr_scheduler", "base_cosine", CosineAnnealingLRConf, _LR_SCHEDULER),
    StoredSchema("lr_scheduler", "base_step", StepLRConf, _LR_SCHEDULER),
    StoredSchema("task", "base_cartpole", CartPoleTaskConf, "task"),
    StoredSchema("task", "base_gym", GymTaskConf, "task"),
    StoredSchema("task", "base_minigrid", MiniGridTaskConf, "task"),
    StoredSchema("model", "base_mlp", MLPActorCriticConf, "model"),
    StoredSchema("model", "base_recurrent", RecurrentActorCriticConf, "model"),
    # Parts of a pipeline, placed by name: +loss@pipeline.named_losses.aux=a2c. The PPO options
    # `ppo` and `ppo_cartpole` are presets in conf/loss/, which extend this schema.
    StoredSchema("loss", "base_ppo", PPOConf),
    StoredSchema("loss", "a2c", A2CConf),
    StoredSchema("loss", "imitation", ImitationConf),
    StoredSchema("stage", "base_pipeline_stage", PipelineStageConf),
    StoredSchema("stage_component", "base_stage_component", StageComponentConf),
    StoredSchema("training_settings", "base_training_settings", TrainingSettingsConf),
    StoredSchema("early_stopping", "never", NeverEarlyStoppingCriterionConf),
    StoredSchema("early_stopping", "threshold", ThresholdEarlyStoppingConf),
    StoredSchema("early_stopping", "plateau", PlateauEarlyStoppingConf),
    # Schedules fill null schedule fields by name:
    # +schedule@pipeline.named_losses.ppo_loss.clip_decay=linear_decay.
    StoredSchema("schedule", "linear_decay", LinearDecayConf),
    StoredSchema("schedule", "multi_linear_decay", MultiLinearDecayConf),
    StoredSchema("offpolicy", "base_component", OffPolicyPipelineComponentConf),
    StoredSchema("data", "expert_demonstrations", ExpertDemonstrationsConf),
    # Storages, placed by name: +storage@pipeline.named_storages.demos=expert_demonstrations.
    StoredSchema("storage", "rollout", RolloutBlockStorageConf),
    StoredSchema("storage", "expert_demonstrations", ExpertDemonstrationsConf),
    # Run callbacks, each at callbacks.<name>: callbacks=[wandb,mlflow].
    StoredSchema("callbacks", "wandb", WandbTrackerConf, "callbacks.wandb"),
    StoredSchema("callbacks", "mlflow", MLflowTrackerConf, "callbacks.mlflow"),
)
"""Every schema and where it is stored."""


def register_configs(store: ConfigStore | None = None) -> None:
    """Store every schema of :data:`SCHEMAS` in Hydra's ConfigStore.

    Hydra silently replaces an entry stored twice; this refuses instead, so two packages (or
    two calls) cannot clobber each other's configs.

    Raises:
        ConfigError: An entry of the same group and name is already stored.
    """
    store = store or ConfigStore.instance()
    for schema in SCHEMAS:
        if _is_stored(store, schema.group, schema.name):
            where = f"{schema.group}/{schema.name}" if schema.group else schema.name
            raise ConfigError(
                f"ConfigStore already holds '{where}'; hydra_pipeline's schemas are registered "
                "once, when hydra_pipeline.config is first imported. Rename your own entry."
            )
    for schema in SCHEMAS:
        node: Any = schema.node
        if schema.open_keys:
            node = OmegaConf.structured(schema.node)
            for key in schema.open_keys:
                OmegaConf.set_struct(node[key], False)
        store.store(group=schema.group, name=schema.name, node=node, package=schema.package)


def _is_stored(store: ConfigStore, group: str | None, name: str) -> bool:
    try:
        return f"{name}.yaml" in store.list(group or "")
    except OSError:  # the group does not exist yet
        return False


def target_of(schema: type[Any]) -> str | None:
    """The ``_target_`` a schema instantiates (``None`` for a schema without one)."""
    fields = {f.name: f.default for f in dataclasses.fields(schema)}
    target = fields.get("_target_")
    return None if target is None else str(target)


def _built_class(schema: type[Any]) -> str | None:
    """What a schema builds: its ``_target_``, or the ``class_type`` of a builder schema."""
    target = target_of(schema)
    if target == BUILDER_TARGET:
        return str(next(f.default for f in dataclasses.fields(schema) if f.name == "class_type"))
    return target


_BY_TARGET: dict[str, type[Any]] = {
    built: schema.node for schema in SCHEMAS if (built := _built_class(schema.node)) is not None
}


def schema_for_target(target: str) -> type[Any] | None:
    """The schema of the object at ``target`` (a ``_target_``, or a builder's ``class_type``)."""
    return _BY_TARGET.get(target)
