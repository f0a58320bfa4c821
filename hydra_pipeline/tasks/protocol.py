"""The task protocol: a batch of environments stepped together with torch tensors.

A task is what the engine trains on. The built-in :class:`~hydra_pipeline.tasks.CartPoleTask`
and the Gymnasium adapter :class:`~hydra_pipeline.tasks.GymTask` follow it; so can any class of
yours, selected in a config with ``task._target_=your_module.YourTask``. The engine builds the
task first, then the model from the task's spaces.

Batching: every tensor has the environments on its first dimension. Observations are
``float32`` of shape ``(num_envs, *observation_shape)``, unless the task declares an
``observation_space`` (images, ``Dict`` spaces: see :mod:`hydra_pipeline.tasks.observations`),
which they then follow; rewards ``float32``, ``terminated``
and ``truncated`` ``bool``, all of shape ``(num_envs,)``; actions ``int64`` of shape
``(num_envs,)`` for :class:`DiscreteActions` and ``float32`` of shape ``(num_envs, *shape)`` for
:class:`ContinuousActions`. Tensors live on the CPU; the engine moves them to its device.

Autoreset: an environment whose episode ends in :meth:`Task.step` is reset in the same call.
The returned ``observations`` then hold the first observation of the next episode, and
``final_observations`` the last observation of the episode that ended (the engine bootstraps
truncated episodes from it). ``terminated`` means the episode reached a terminal state of the
MDP (no future reward); ``truncated`` means it was cut short from outside, e.g. by a time limit.

Episode metrics: a task may report per-episode results besides the return and the length (a
``success`` flag, say) in the ``episode_metrics`` of :class:`StepResult`: metric name ->
``float32`` tensor of shape ``(num_envs,)``, read at the environments whose episode ended in
that step (``NaN`` where the task has no value for an ended episode; other entries are
ignored). The engine
averages each over the episodes that report it and logs it next to ``reward`` (``eval/success``
in evaluations).

Rendering (optional): a task that can be watched has a ``render()`` method returning an RGB
picture of its first environment, ``uint8`` of shape ``(height, width, 3)`` (even sizes, as
video codecs need), and may set ``render_fps``, the frames per second its videos play at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from hydra_pipeline.errors import InvalidArgumentError

if TYPE_CHECKING:
    from torch import Tensor

    from hydra_pipeline.tasks.observations import Observations

__all__ = [
    "ActionSpace",
    "ContinuousActions",
    "DiscreteActions",
    "StepResult",
    "Task",
    "as_action_space",
]


@dataclass(frozen=True)
class DiscreteActions:
    """``n`` actions, numbered ``0 .. n - 1``."""

    n: int


@dataclass(frozen=True)
class ContinuousActions:
    """Real-valued action vectors of ``shape``, each entry within ``[low, high]``.

    The engine samples unbounded actions and clips them to the bounds before stepping.
    """

    shape: tuple[int, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]


ActionSpace = DiscreteActions | ContinuousActions
"""What a task's actions are: numbered choices or bounded real vectors."""


def as_action_space(value: Any) -> ActionSpace:
    """``value`` as an action space: an :data:`ActionSpace` as it is, or the mapping a config
    layer makes of one (``hydra.utils.instantiate`` turns a dataclass argument into a config
    node: ``{n: 2}`` or ``{shape: ..., low: ..., high: ...}``).

    Raises:
        InvalidArgumentError: ``value`` describes no action space.
    """
    if isinstance(value, (DiscreteActions, ContinuousActions)):
        return value
    if isinstance(value, Mapping):
        keys = set(value)
        if keys == {"n"}:
            return DiscreteActions(int(value["n"]))
        if keys == {"shape", "low", "high"} and all(
            isinstance(value[key], Sequence) for key in keys
        ):
            return ContinuousActions(
                shape=tuple(int(size) for size in value["shape"]),
                low=tuple(float(bound) for bound in value["low"]),
                high=tuple(float(bound) for bound in value["high"]),
            )
    raise InvalidArgumentError(
        "action_space",
        "must be a DiscreteActions or ContinuousActions (a task's action_space)",
        value,
        "Pass the task's own action_space; to load a trained policy, use "
        "hydra_pipeline.Policy.from_run(<run folder>).",
    )


class StepResult(NamedTuple):
    """What :meth:`Task.step` returns (shapes and ``episode_metrics`` in the module
    docstring)."""

    observations: Observations
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    final_observations: Observations
    episode_metrics: Mapping[str, Tensor] = MappingProxyType({})


@runtime_checkable
class Task(Protocol):
    """A batch of ``num_envs`` environments, stepped together.

    Attributes:
        num_envs: Number of environments stepped at once.
        observation_shape: Shape of one environment's observation (``()`` for a ``Dict``
            observation space).
        action_space: The actions one environment accepts.
        has_expert: Whether :meth:`expert_actions` is available (teacher forcing and
            imitation losses need it).

    Optional attributes:
        observation_space: A task whose observations are not ``float32`` tensors declares
            them: a :class:`~hydra_pipeline.tasks.observations.TensorSpace` (a ``uint8``
            image) or a mapping of names to them (a ``Dict`` space).
    """

    num_envs: int
    observation_shape: tuple[int, ...]
    action_space: ActionSpace
    has_expert: bool

    def reset(self, *, seed: int | None = None) -> Observations:
        """Reset every environment and return the first observations.

        Args:
            seed: Seeds the task's random generator; ``None`` keeps its current state. The
                engine seeds once, right after building the task.
        """
        ...

    def step(self, actions: Tensor) -> StepResult:
        """Apply one action per environment, autoresetting environments whose episode ends."""
        ...

    def expert_actions(self) -> Tensor:
        """The expert's action for every environment's current observation.

        Raises:
            NotImplementedError: The task has no expert (``has_expert`` is False).
        """
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly from here: environment states and random
        generator, as tensors and plain Python values (checkpoints load with
        ``weights_only=True``)."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> Observations | None:
        """Restore what :meth:`state_dict` returned.

        Returns:
            ``None`` when the task continues exactly from the saved state (the engine then acts
            on the observations it saved), or the first observations of fresh episodes when
            the environments could only be restarted (an approximate resume).
        """
        ...

    def close(self) -> None:
        """Release the environments' resources; calling it twice is harmless."""
        ...
