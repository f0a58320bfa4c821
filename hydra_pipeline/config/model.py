"""Model schemas (group ``model``).

The engine adds the task's ``observation_shape`` and ``action_space`` when it builds the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

__all__ = ["MLPActorCriticConf"]


@dataclass
class MLPActorCriticConf:
    """``hydra_pipeline.models.MLPActorCritic``: separate actor and critic MLPs.

    Attributes:
        hidden_sizes: Width of each hidden layer.
        activation: ``tanh``, ``relu``, ``elu``, ``gelu`` or ``silu``.
        initial_log_std: Initial log standard deviation of continuous actions.
    """

    _target_: str = "hydra_pipeline.models.MLPActorCritic"
    hidden_sizes: List[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    initial_log_std: float = 0.0
