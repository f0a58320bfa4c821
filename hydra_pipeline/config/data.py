"""Schemas of data sources: values of ``offpolicy_component.data_iterator_builder``, and storages
of ``pipeline.named_storages`` that stage components learn from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra_pipeline.config.task import CartPoleTaskConf

__all__ = ["ExpertDemonstrationsConf"]


@dataclass
class ExpertDemonstrationsConf:
    """``hydra_pipeline.tasks.ExpertDemonstrations``: minibatches of expert demonstrations.

    Attributes:
        task: The task whose expert is recorded (a task ``_target_`` node with an expert; by
            default the built-in CartPole with 16 environments). An untyped node, so any
            task may replace it: ``pipeline.named_storages.<name>.task=${task}`` records the
            run's own task (a BabyAI level's bot, say).
        num_steps: Steps recorded in each of the task's environments.
        batch_size: Samples per minibatch.
        seed: Seeds the recording and the shuffling of each epoch.
    """

    _target_: str = "hydra_pipeline.tasks.ExpertDemonstrations"
    task: Any = field(
        default_factory=lambda: {"_target_": CartPoleTaskConf._target_, "num_envs": 16}
    )
    num_steps: int = 500
    batch_size: int = 256
    seed: int = 0
