"""``ReachTask``: a minimal task written against hydra_pipeline's task protocol.

An agent on a line of ``size`` cells must reach a target cell; each step it moves left, stays,
or moves right. It earns 1 when it reaches the target (the episode then terminates) and -0.01
per step otherwise; episodes are truncated after ``max_episode_steps``. Each episode reports
``success`` (whether it reached the target), logged as ``success`` and ``eval/success``. The
expert walks straight to the target, so imitation and teacher forcing work on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from hydra_pipeline.tasks import DiscreteActions, StepResult


class ReachTask:
    """``num_envs`` agents on lines of ``size`` cells, stepped together."""

    def __init__(self, num_envs: int = 16, size: int = 9, max_episode_steps: int = 30) -> None:
        if num_envs < 1 or size < 2:
            raise ValueError("ReachTask needs num_envs >= 1 and size >= 2")
        self.num_envs = num_envs
        self.size = size
        self.max_episode_steps = max_episode_steps
        self.observation_shape = (2,)
        self.action_space = DiscreteActions(3)  # 0: left, 1: stay, 2: right
        self.has_expert = True
        self._generator = torch.Generator()
        self._position = torch.zeros(num_envs, dtype=torch.long)
        self._target = torch.zeros(num_envs, dtype=torch.long)
        self._steps = torch.zeros(num_envs, dtype=torch.long)

    def _observe(self) -> Tensor:
        return torch.stack((self._position, self._target), dim=1).float() / (self.size - 1)

    def _restart(self, which: Tensor) -> None:
        count = int(which.sum())
        self._position[which] = torch.randint(self.size, (count,), generator=self._generator)
        self._target[which] = torch.randint(self.size, (count,), generator=self._generator)
        self._steps[which] = 0

    def reset(self, *, seed: int | None = None) -> Tensor:
        if seed is not None:
            self._generator.manual_seed(seed)
        self._restart(torch.ones(self.num_envs, dtype=torch.bool))
        return self._observe()

    def step(self, actions: Tensor) -> StepResult:
        self._position = (self._position + actions - 1).clamp(0, self.size - 1)
        self._steps += 1
        terminated = self._position == self._target
        truncated = ~terminated & (self._steps >= self.max_episode_steps)
        rewards = torch.where(terminated, 1.0, -0.01)
        final_observations = self._observe()
        self._restart(terminated | truncated)
        success = {"success": terminated.float()}  # read where an episode ended
        return StepResult(
            self._observe(), rewards, terminated, truncated, final_observations, success
        )

    def expert_actions(self) -> Tensor:
        return torch.sign(self._target - self._position) + 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "position": self._position.clone(),
            "target": self._target.clone(),
            "steps": self._steps.clone(),
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._position = state["position"].clone()
        self._target = state["target"].clone()
        self._steps = state["steps"].clone()
        self._generator.set_state(state["generator"])

    def close(self) -> None:
        pass
