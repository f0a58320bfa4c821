"""``Policy``: a trained policy acting in a program of yours (a notebook, a robot, a game).

``Policy.from_run(run_folder)`` rebuilds the run's model from its saved config (the task is
built once to read its spaces, then closed), loads a checkpoint's weights (weights-only) and
acts with the same :class:`~hydra_pipeline.engine.acting.Actor` as training and evaluation. No
Hydra application runs, and the global random generators, the working folder and logging are
left as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from hydra_pipeline.config import instantiate_node
from hydra_pipeline.config.normalization import build_normalization
from hydra_pipeline.config.saved_run import saved_run_config
from hydra_pipeline.config.trust import AllowList, allowing
from hydra_pipeline.engine.acting import Actor
from hydra_pipeline.engine.checkpoint import (
    BEST_OR_LAST,
    checkpoints_named,
    load_weights,
    picked_by_default,
    restore_normalization,
)
from hydra_pipeline.engine.evaluation import isolated_random_state
from hydra_pipeline.engine.normalization import Normalization
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.models.protocol import model_arguments
from hydra_pipeline.tasks.observations import (
    Observations,
    ObservationSpace,
    TensorSpace,
    as_observation_space,
    observation_space_of,
)
from hydra_pipeline.tasks.protocol import ActionSpace, as_action_space

__all__ = ["Policy"]

log = logging.getLogger("hydra_pipeline")

Batch = TypeVar("Batch", np.ndarray, Tensor)


class Policy:
    """A model that acts on batches of observations, as it did in training.

    Args:
        model: An actor-critic module (see :mod:`hydra_pipeline.models.protocol`).
        observation_shape: The shape of one observation.
        action_space: The actions the model chooses among.
        device: Where the model runs.
        normalization: The observation statistics the model was trained with, applied to
            every batch as they are (``from_run`` restores a run's); ``None``: none.
        observation_space: The task's observation space when its observations are not
            ``float32`` vectors (images, ``Dict`` spaces); ``None``: ``float32`` observations
            of ``observation_shape``.

    Attributes:
        checkpoint: The checkpoint file the weights come from (``from_run``), or ``None``.
        total_steps: The agent steps the run had trained for at that checkpoint, or ``None``.
    """

    def __init__(
        self,
        model: nn.Module,
        observation_shape: Sequence[int],
        action_space: ActionSpace,
        device: str | torch.device = "cpu",
        normalization: Normalization | None = None,
        observation_space: ObservationSpace | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.normalization = normalization
        self.model = model.to(self.device).eval()
        self.observation_shape = tuple(observation_shape)
        self.observation_space = (
            TensorSpace(self.observation_shape)
            if observation_space is None
            else as_observation_space(observation_space)
        )
        self.action_space = as_action_space(action_space)
        self.actor = Actor(self.model, self.action_space, self.device)
        self.checkpoint: Path | None = None
        self.total_steps: int | None = None

    @classmethod
    def from_run(
        cls,
        run_folder: str | Path,
        checkpoint: str = BEST_OR_LAST,
        *,
        device: str | torch.device = "cpu",
        allowed_targets: Sequence[str] = (),
    ) -> Policy:
        """The policy of a training run.

        Args:
            run_folder: The run's output folder (it holds ``.hydra/`` and ``checkpoints/``).
            checkpoint: ``"auto"`` (``best.pt`` when the run kept one, else the latest;
                which was loaded is logged and kept in the ``checkpoint`` attribute), ``"best"``
                (``best.pt``, kept when the run evaluates), ``"last"``, or a checkpoint file
                (a path, or a file name in the run's ``checkpoints/``).
            device: Where the model runs.
            allowed_targets: Import prefixes of your own code that the run's config builds
                (its task or model), as given to the run with ``allowed_targets=[...]``.

        Raises:
            ConfigError: The folder is not a run's, or its config does not pass the checks.
            CheckpointError: The checkpoint is missing, unreadable, or does not fit the model.
            InvalidArgumentError: ``checkpoint`` is ``"all"``.
        """
        if checkpoint == "all":
            raise InvalidArgumentError(
                "checkpoint", "must name one checkpoint: auto, best, last or a file", checkpoint
            )
        run = Path(run_folder)
        allow_list = AllowList.of(allowed_targets)
        with allowing(allow_list), isolated_random_state():
            cfg = saved_run_config(run, allow_list=allow_list, key="run_folder")
            path = checkpoints_named(run, checkpoint)[0]
            task = instantiate_node(cfg, "task")
            try:
                arguments = model_arguments(task)
                observation_space = observation_space_of(task)
            finally:
                task.close()
            model = instantiate_node(cfg, "model", **arguments)
            normalization = build_normalization(cfg)
        payload = load_weights(model, path)
        restore_normalization(normalization, payload, path)
        policy = cls(
            model,
            arguments["observation_shape"],
            arguments["action_space"],
            device,
            normalization,
            observation_space=observation_space,
        )
        policy.checkpoint, policy.total_steps = path, int(payload["total_steps"])
        if checkpoint == BEST_OR_LAST:
            log.info("Policy.from_run loaded %s.", picked_by_default(path))
        return policy

    def __repr__(self) -> str:
        source = "" if self.checkpoint is None else f", checkpoint='{self.checkpoint}'"
        steps = "" if self.total_steps is None else f", total_steps={self.total_steps}"
        return f"Policy({type(self.model).__name__}{source}{steps}, device={self.device})"

    def act(self, observations: Batch | Mapping[str, Batch], deterministic: bool = True) -> Batch:
        """The actions for a batch of observations, as the task takes them.

        Args:
            observations: ``(batch, *observation_shape)``, a NumPy array or a torch tensor
                (for a ``Dict`` observation space, a mapping of its keys to them).
            deterministic: Take each action distribution's mode (the policy's best guess)
                rather than a sample (drawn with torch's global generator).

        Returns:
            One action per observation, of the same kind as ``observations`` (a torch tensor
            on the same device): ``int64`` action numbers for discrete actions (from 0),
            ``float32`` vectors clipped to the bounds for continuous ones.

        Raises:
            InvalidArgumentError: ``observations`` is not a batch of this policy's
                observations, or (a model with memory) not of the batch size it remembers
                since the last full :meth:`reset`.
        """
        batch = _checked_batch(observations, self.observation_space, self.device)
        if self.normalization is not None:
            assert isinstance(batch, Tensor)  # normalisation is refused for other spaces
            batch = self.normalization.observe(batch, update=False)
        with torch.no_grad():
            actions, _ = self.actor.act(batch, deterministic=deterministic)
        taken = self.actor.environment_actions(actions)
        first: Any = observations
        if isinstance(observations, Mapping):
            first = next(iter(observations.values()))
        if isinstance(first, np.ndarray):
            return taken.numpy()  # type: ignore[return-value]  # the kind of observations
        return taken.to(first.device)  # type: ignore[return-value]

    def reset(self, episode_starts: Batch | None = None) -> None:
        """Start new episodes: forget what the model remembers of the batch entries where
        ``episode_starts`` is True (of all when ``None``, after which the next batch may have
        another size). Call it whenever episodes start. A model with memory (``model=gru``)
        remembers the batch it acts on between calls of :meth:`act`, so consecutive calls
        must be consecutive steps of the same episodes; memoryless models have nothing to
        forget."""
        self.actor.reset(None if episode_starts is None else torch.as_tensor(episode_starts))


def _checked_batch(given: Any, space: ObservationSpace, device: torch.device) -> Observations:
    """``given`` as a batch of ``space``'s observations on ``device``, in its element types.

    Raises:
        InvalidArgumentError: ``given`` is not a batch of such observations.
    """
    if isinstance(space, TensorSpace):
        if isinstance(given, Mapping):
            raise InvalidArgumentError(
                "observations", "must be one array or tensor, not a mapping", sorted(given)
            )
        return _checked_tensor(torch.as_tensor(given), space, device, "observations")
    if not isinstance(given, Mapping) or set(given) != set(space):
        raise InvalidArgumentError(
            "observations",
            f"must be a mapping with the keys {sorted(space)} (a Dict observation space)",
            sorted(given) if isinstance(given, Mapping) else type(given).__name__,
        )
    return {
        key: _checked_tensor(torch.as_tensor(given[key]), part, device, f"observations.{key}")
        for key, part in space.items()
    }


def _checked_tensor(tensor: Tensor, space: TensorSpace, device: torch.device, key: str) -> Tensor:
    """One tensor of a batch, checked against its space and converted to its element type."""
    if tuple(tensor.shape[1:]) != space.shape:
        shape = ", ".join(["batch", *map(str, space.shape)])
        raise InvalidArgumentError(
            key,
            f"must be a batch of shape ({shape})",
            tuple(tensor.shape),
            "Add a leading batch dimension to a single observation (observations[None]).",
        )
    return tensor.to(device, space.torch_dtype)
