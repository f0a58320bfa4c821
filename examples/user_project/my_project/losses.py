"""``ValueRegression``: a loss written against hydra_pipeline's loss protocol.

It trains only the critic, towards the rollout's returns. Added to an imitation stage, it
hands the next (reinforcement learning) stage a critic that already knows the task.
"""

from __future__ import annotations

from torch import Tensor

from hydra_pipeline.engine import Minibatch
from hydra_pipeline.models import ActorCriticOutput


class ValueRegression:
    """Half the squared error between the critic's values and the returns."""

    needs_expert_actions = False

    def __init__(self, coef: float = 0.5) -> None:
        self.coef = coef

    def __call__(
        self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput
    ) -> tuple[Tensor, dict[str, float]]:
        (returns,) = batch.require("returns")
        loss = 0.5 * (output.values - returns).square().mean()
        return self.coef * loss, {"value": loss.item()}
