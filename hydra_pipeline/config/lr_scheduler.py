"""Learning-rate scheduler schemas (group ``lr_scheduler``, at ``pipeline.lr_scheduler_builder``).

The engine steps the scheduler after every update with the total step count, so every
schedule's unit is agent steps (AllenAct's convention): ``T_max``, ``step_size`` and the
``LinearDecay``'s ``steps`` count environment steps summed over environments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from hydra_pipeline.config.builder import BUILDER_TARGET

__all__ = ["CosineAnnealingLRConf", "LRSchedulerConf", "LambdaLRConf", "StepLRConf"]


@dataclass
class LRSchedulerConf:
    """Base of the scheduler schemas.

    Attributes:
        class_type: Dotted path of the ``torch.optim.lr_scheduler`` class to build.
    """

    _target_: str = BUILDER_TARGET
    _convert_: str = "all"
    class_type: str = MISSING


@dataclass
class LambdaLRConf(LRSchedulerConf):
    """``torch.optim.lr_scheduler.LambdaLR``: the learning rate times a schedule.

    Attributes:
        lr_lambda: The multiplier of the initial learning rate, by total steps: a schedule
            ``_target_`` node (a ``LinearDecay`` or a ``MultiLinearDecay``).
        last_epoch: Index of the last epoch (-1 to start fresh).
    """

    class_type: str = "torch.optim.lr_scheduler.LambdaLR"
    lr_lambda: Any = MISSING
    last_epoch: int = -1


@dataclass
class CosineAnnealingLRConf(LRSchedulerConf):
    """``torch.optim.lr_scheduler.CosineAnnealingLR``.

    Attributes:
        T_max: Total steps of the half cosine from the initial learning rate to ``eta_min``.
        eta_min: Learning rate at ``T_max``.
        last_epoch: Index of the last epoch (-1 to start fresh).
    """

    class_type: str = "torch.optim.lr_scheduler.CosineAnnealingLR"
    T_max: int = MISSING
    eta_min: float = 0.0
    last_epoch: int = -1


@dataclass
class StepLRConf(LRSchedulerConf):
    """``torch.optim.lr_scheduler.StepLR``.

    Attributes:
        step_size: Total steps between two decays of the learning rate.
        gamma: Multiplicative decay factor.
        last_epoch: Index of the last epoch (-1 to start fresh).
    """

    class_type: str = "torch.optim.lr_scheduler.StepLR"
    step_size: int = MISSING
    gamma: float = 0.1
    last_epoch: int = -1
