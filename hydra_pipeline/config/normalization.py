"""The ``normalization`` node: running-statistics normalisation of observations and rewards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from omegaconf import DictConfig, OmegaConf

from hydra_pipeline.errors import ConfigError, InvalidArgumentError

if TYPE_CHECKING:
    from hydra_pipeline.engine.normalization import Normalization

__all__ = ["NormalizationConf", "build_normalization"]


@dataclass
class NormalizationConf:
    """Stable-Baselines3's ``VecNormalize`` for any task (the ``normalization`` node). The
    statistics are updated by training rollouts only, kept in every checkpoint, and used as
    they are by evaluations, the evaluate command and ``Policy.from_run``.

    Attributes:
        observations: Normalise observations by the running mean and variance of those seen
            in training, then clip them.
        rewards: Divide rewards by the running standard deviation of the discounted return,
            then clip them (episode returns in the metrics stay the task's own).
        clip_observations: Normalised observations are clipped to [-this, this].
        clip_rewards: Scaled rewards are clipped to [-this, this].
        epsilon: Added to variances before their square root.
        gamma: Discount of the return whose spread scales rewards; null: the pipeline's gamma.
    """

    observations: bool = False
    rewards: bool = False
    clip_observations: float = 10.0
    clip_rewards: float = 10.0
    epsilon: float = 1e-8
    gamma: Optional[float] = None


def build_normalization(cfg: DictConfig) -> Normalization | None:
    """The normalisation ``cfg.normalization`` asks for, with fresh statistics; ``None`` when it
    normalises nothing (or ``cfg`` is a run config saved before the node existed).

    Raises:
        ConfigError: A value is out of range, or ``gamma`` is null and the pipeline sets none.
    """
    node = OmegaConf.select(cfg, "normalization")
    if node is None or not (node.observations or node.rewards):
        return None
    from hydra_pipeline.engine.normalization import Normalization

    gamma = node.gamma if node.gamma is not None else OmegaConf.select(cfg, "pipeline.gamma")
    if gamma is None:
        raise ConfigError(
            "'normalization.gamma' is null and the pipeline sets no gamma to take instead. "
            "Set normalization.gamma=<discount>."
        )
    try:
        return Normalization(
            observations=node.observations,
            rewards=node.rewards,
            clip_observations=node.clip_observations,
            clip_rewards=node.clip_rewards,
            epsilon=node.epsilon,
            gamma=gamma,
        )
    except InvalidArgumentError as error:
        raise ConfigError(error.message_at("normalization")) from None
