"""``ExpertDemonstrations``: an off-policy data source recorded from a task's expert."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from hydra_pipeline.arguments import require_at_least, require_seed
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.tasks.observations import (
    Observations,
    concatenate_observations,
    map_observations,
    num_observations,
)
from hydra_pipeline.tasks.protocol import Task

__all__ = ["ExpertDemonstrations"]


class ExpertDemonstrations:
    """Observation/expert-action pairs recorded by letting a task's expert act, served in
    shuffled minibatches.

    Use it as an ``OffPolicyPipelineComponent``'s ``data_iterator_builder``: each call returns
    an iterator over one epoch of the recording (reshuffled every epoch), yielding
    ``{"observations": ..., "expert_actions": ...}`` minibatches. The recording is made once,
    on the first call. Shuffles depend only on ``seed`` and the epoch number, which
    :meth:`state_dict` saves, so a resumed run draws the same minibatches.

    Args:
        task: A task with an expert; it is closed once recorded.
        num_steps: Steps recorded in each of the task's environments.
        batch_size: Pairs per minibatch (the last minibatch of an epoch may be smaller).
        seed: Seeds the task for the recording and the shuffles.
    """

    def __init__(self, task: Task, num_steps: int = 500, batch_size: int = 256, seed: int = 0):
        if not task.has_expert:
            raise InvalidArgumentError("task", "must have an expert to record", task)
        self.task = task
        self.num_steps = require_at_least("num_steps", num_steps, 1)
        self.batch_size = require_at_least("batch_size", batch_size, 1)
        self.seed = require_seed("seed", seed)
        self.epoch = 0
        self._recording: tuple[Observations, Tensor] | None = None

    def _record(self) -> tuple[Observations, Tensor]:
        observations = [self.task.reset(seed=self.seed)]
        actions = []
        for _ in range(self.num_steps):
            actions.append(self.task.expert_actions())
            observations.append(self.task.step(actions[-1]).observations)
        self.task.close()
        return concatenate_observations(observations[:-1]), torch.cat(actions)

    def __call__(self) -> Iterator[dict[str, Any]]:
        if self._recording is None:
            self._recording = self._record()
        observations, actions = self._recording
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(num_observations(observations), generator=generator)
        return (
            {
                "observations": map_observations(lambda tensor: tensor[chunk], observations),  # noqa: B023
                "expert_actions": actions[chunk],
            }
            for chunk in torch.split(order, self.batch_size)
        )

    def state_dict(self) -> dict[str, Any]:
        """The number of epochs served so far."""
        return {"epoch": self.epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.epoch = int(state["epoch"])
