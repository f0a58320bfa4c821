"""Loss schemas (group ``loss``): the values of ``pipeline.named_losses``.

A pipeline preset places them by name, e.g. ``/loss@pipeline.named_losses.ppo_loss: ppo`` in
its defaults list, and the command line can add one:
``+loss@pipeline.named_losses.aux=a2c``. Their defaults are AllenAct's (``PPOConfig``,
``A2CConfig``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["A2CConf", "ImitationConf", "PPOConf"]


@dataclass
class PPOConf:
    """``hydra_pipeline.engine.losses.PPO``: the clipped surrogate objective.

    Attributes:
        clip_param: Clipping range of the probability ratio.
        value_loss_coef: Weight of the value loss.
        entropy_coef: Weight of the entropy bonus.
        use_clipped_value_loss: Clip value updates around the old estimates.
        clip_decay: Multiplier of ``clip_param`` over the stage's steps (a schedule
            ``_target_`` node: ``+schedule@<this key>.clip_decay=linear_decay``), or null.
        entropy_method_name: The action distribution's method giving the entropy bonus.
        normalize_advantage: Use normalised advantages (mean 0, standard deviation 1).
        show_ratios: Also log the mean probability ratios (ratio, ratio_clamped, ratio_used).
        advantage_normalization: rollout (AllenAct: over the whole rollout) or minibatch
            (Stable-Baselines3, CleanRL: over each minibatch).
        target_kl: End an update's epochs once the approximate KL divergence passes
            1.5 x target_kl (Stable-Baselines3's rule); null never.
    """

    _target_: str = "hydra_pipeline.engine.losses.PPO"
    clip_param: float = 0.1
    value_loss_coef: float = 0.5
    entropy_coef: float = 0.01
    use_clipped_value_loss: bool = True
    clip_decay: Any = None
    entropy_method_name: str = "entropy"
    normalize_advantage: bool = True
    show_ratios: bool = False
    advantage_normalization: str = "rollout"
    target_kl: Optional[float] = None


@dataclass
class A2CConf:
    """``hydra_pipeline.engine.losses.A2C``: advantage actor-critic.

    Attributes:
        value_loss_coef: Weight of the value loss.
        entropy_coef: Weight of the entropy bonus.
    """

    _target_: str = "hydra_pipeline.engine.losses.A2C"
    value_loss_coef: float = 0.5
    entropy_coef: float = 0.01


@dataclass
class ImitationConf:
    """``hydra_pipeline.engine.losses.Imitation``: cross-entropy against the expert's actions.

    Attributes:
        expert_sensor: AllenAct's expert sensor argument; kept but unused (the task supplies
            the expert's actions).
    """

    _target_: str = "hydra_pipeline.engine.losses.Imitation"
    expert_sensor: Any = None
