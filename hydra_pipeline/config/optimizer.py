"""Optimizer schemas (group ``optimizer``, placed at ``pipeline.optimizer_builder``).

Each schema lists its torch class's keyword arguments with torch's defaults; instantiating one
gives a ``Builder`` of the class, called by the engine with the model's parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from omegaconf import MISSING

from hydra_pipeline.config.builder import BUILDER_TARGET

__all__ = ["AdamConf", "AdamWConf", "OptimizerConf", "RMSpropConf", "SGDConf"]


@dataclass
class OptimizerConf:
    """Base of the optimizer schemas.

    Attributes:
        class_type: Dotted path of the ``torch.optim.Optimizer`` class to build.
        lr: Learning rate.
    """

    _target_: str = BUILDER_TARGET
    _convert_: str = "all"
    class_type: str = MISSING
    lr: float = 0.001


@dataclass
class AdamConf(OptimizerConf):
    """``torch.optim.Adam``.

    Attributes:
        betas: Decay rates of the first and second moment estimates.
        eps: Added to the denominator for numerical stability.
        weight_decay: L2 penalty.
        amsgrad: Use the AMSGrad variant.
        foreach: Use the multi-tensor implementation (null: torch decides).
        maximize: Maximize the objective instead of minimizing it.
        capturable: Allow CUDA graph capture.
        differentiable: Allow autograd through the optimizer step.
        fused: Use torch's fused implementation: one kernel for all parameters, several
            times faster than torch's own default (null) on the CPU, where that is a loop
            over the parameters, for the small models of RL (same update rule).
        decoupled_weight_decay: Decouple weight decay as in AdamW.
    """

    class_type: str = "torch.optim.Adam"
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-08
    weight_decay: float = 0.0
    amsgrad: bool = False
    foreach: Optional[bool] = None
    maximize: bool = False
    capturable: bool = False
    differentiable: bool = False
    fused: Optional[bool] = True
    decoupled_weight_decay: bool = False


@dataclass
class AdamWConf(OptimizerConf):
    """``torch.optim.AdamW``.

    Attributes:
        betas: Decay rates of the first and second moment estimates.
        eps: Added to the denominator for numerical stability.
        weight_decay: Decoupled weight decay coefficient.
        amsgrad: Use the AMSGrad variant.
        maximize: Maximize the objective instead of minimizing it.
        foreach: Use the multi-tensor implementation (null: torch decides).
        capturable: Allow CUDA graph capture.
        differentiable: Allow autograd through the optimizer step.
        fused: Use torch's fused implementation: one kernel for all parameters, several
            times faster than torch's own default (null) on the CPU, where that is a loop
            over the parameters, for the small models of RL (same update rule).
    """

    class_type: str = "torch.optim.AdamW"
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-08
    weight_decay: float = 0.01
    amsgrad: bool = False
    maximize: bool = False
    foreach: Optional[bool] = None
    capturable: bool = False
    differentiable: bool = False
    fused: Optional[bool] = True


@dataclass
class SGDConf(OptimizerConf):
    """``torch.optim.SGD``.

    Attributes:
        momentum: Momentum factor.
        dampening: Dampening for momentum.
        weight_decay: L2 penalty.
        nesterov: Use Nesterov momentum.
        maximize: Maximize the objective instead of minimizing it.
        foreach: Use the multi-tensor implementation (null: torch decides).
        differentiable: Allow autograd through the optimizer step.
        fused: Use the fused implementation (null: torch decides).
    """

    class_type: str = "torch.optim.SGD"
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    maximize: bool = False
    foreach: Optional[bool] = None
    differentiable: bool = False
    fused: Optional[bool] = None


@dataclass
class RMSpropConf(OptimizerConf):
    """``torch.optim.RMSprop``.

    Attributes:
        alpha: Smoothing constant.
        eps: Added to the denominator for numerical stability.
        weight_decay: L2 penalty.
        momentum: Momentum factor.
        centered: Normalize by an estimate of the gradient's variance.
        capturable: Allow CUDA graph capture.
        foreach: Use the multi-tensor implementation (null: torch decides).
        maximize: Maximize the objective instead of minimizing it.
        differentiable: Allow autograd through the optimizer step.
    """

    class_type: str = "torch.optim.RMSprop"
    lr: float = 0.01
    alpha: float = 0.99
    eps: float = 1e-08
    weight_decay: float = 0.0
    momentum: float = 0.0
    centered: bool = False
    capturable: bool = False
    foreach: Optional[bool] = None
    maximize: bool = False
    differentiable: bool = False
