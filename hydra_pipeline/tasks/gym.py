"""Any Gymnasium environment as a task, through Gymnasium's vector environments.

Gymnasium is imported only when a :class:`GymTask` is built, so the rest of the package works
without it.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor

from hydra_pipeline.arguments import require_at_least, require_seed
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.tasks.observations import (
    Observations,
    ObservationSpace,
    TensorSpace,
    assign_observations,
    map_observations,
    visible_entries,
)
from hydra_pipeline.tasks.protocol import (
    ActionSpace,
    ContinuousActions,
    DiscreteActions,
    StepResult,
)

if TYPE_CHECKING:
    from types import ModuleType

    from gymnasium import Space
    from gymnasium.spaces import Box
    from gymnasium.vector import VectorEnv

__all__ = ["GymTask"]

VECTORIZATION_MODES = ("sync", "async")
_RENDER_MODE = "rgb_array"
_DEFAULT_FPS = 30


class GymTask:
    """``num_envs`` copies of a Gymnasium environment, stepped as one task.

    Observations from a ``Box`` space of floats are flattened to ``float32`` vectors. Images
    (a ``uint8`` ``Box`` of rank 3) stay ``uint8`` images, and a ``Dict`` space of such
    ``Box`` and ``Discrete`` spaces gives ``Dict`` observations (``Discrete`` entries as
    ``int64`` numbers from 0); these tasks declare their ``observation_space`` (see
    :mod:`hydra_pipeline.tasks.observations`).
    Actions may come from a ``Discrete`` space (numbered from 0 whatever the space's ``start``)
    or a ``Box`` space (clipped to its bounds before stepping). Gymnasium's same-step autoreset
    provides the protocol's ``final_observations``; where no episode ended they equal
    ``observations``.

    Numeric entries of the ``info`` an environment returns when its episode ends (say
    ``is_success``) are the task's episode metrics (see :mod:`hydra_pipeline.tasks.protocol`);
    entries that are not numbers (nested dicts, strings) are left out. Environments that can
    render ``rgb_array`` pictures are made with that render mode (unless ``env_kwargs`` sets
    one), so :meth:`render` can show the first of them; they draw only when asked.

    Resuming is approximate: a Gymnasium environment cannot snapshot its state, so
    :meth:`state_dict` holds only the seed and the number of steps taken, and
    :meth:`load_state_dict` restarts every environment with a seed derived from both. Training
    continues from fresh episodes, reproducibly, but not from where the checkpoint stopped.

    Args:
        env_id: A registered Gymnasium id such as ``"CartPole-v1"``, optionally prefixed by the
            module that registers it (``"my_package.envs:MyEnv-v0"``).
        num_envs: Number of environments stepped at once.
        vectorization_mode: ``"sync"`` steps them one after another in this process;
            ``"async"`` steps each in a subprocess.
        expert: Maps the current observations (``float32``, ``(num_envs, *observation_shape)``,
            every entry, hidden ones included) to expert actions; ``None`` means the task has
            no expert.
        env_kwargs: Keyword arguments for the environment's constructor.
        hide_observations: Indices of the entries of a ``float32`` observation vector the
            policy does not see: a partially observed variant of the environment, as the zoo
            defines its velocity-free ones (``CartPole-v1``: ``[1, 3]``; ``Pendulum-v1``:
            ``[2]``; ``MountainCarContinuous-v0``: ``[1]``; ``LunarLander-v3``:
            ``[2, 3, 5]``). The entries are removed, not zeroed.

    Raises:
        ImportError: Gymnasium is not installed.
        InvalidArgumentError: An argument is out of range, the id is unknown, or the
            environment's spaces are not supported.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int = 8,
        vectorization_mode: str = "sync",
        expert: Callable[[Observations], Tensor] | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        hide_observations: Sequence[int] = (),
    ) -> None:
        gymnasium = _import_gymnasium()
        self.num_envs = require_at_least("num_envs", num_envs, 1)
        if vectorization_mode not in VECTORIZATION_MODES:
            raise InvalidArgumentError(
                "vectorization_mode",
                f"must be one of {list(VECTORIZATION_MODES)}",
                vectorization_mode,
            )
        self.env_id = _check_env_id(gymnasium, env_id)
        kwargs = dict(env_kwargs or {})
        if "render_mode" not in kwargs and _RENDER_MODE in _render_modes(gymnasium, env_id):
            kwargs["render_mode"] = _RENDER_MODE
        with _headless_pictures():  # inherited by environments in processes of their own
            self._envs: VectorEnv[Any, Any, Any] = gymnasium.make_vec(
                env_id,
                num_envs=self.num_envs,
                vectorization_mode=vectorization_mode,
                vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
                **kwargs,
            )
        self.render_fps = int(self._envs.metadata.get("render_fps") or _DEFAULT_FPS)
        try:
            self._describe_observations(gymnasium, self._envs.single_observation_space)
            self._visible = self._visible_entries(hide_observations)
            self.action_space = _describe_action_space(
                gymnasium, self._envs.single_action_space, env_id
            )
        except InvalidArgumentError:
            self._envs.close()
            raise
        single_action_space = self._envs.single_action_space
        self._action_start = int(getattr(single_action_space, "start", 0))
        self._actions_shape = torch.Size([self.num_envs, *single_action_space.shape])
        self._expert = expert
        self.has_expert = expert is not None
        self._seed: int | None = None
        self._steps_taken = 0
        self.reset()

    def reset(self, *, seed: int | None = None) -> Observations:
        """Reset every environment and return the first observations.

        Args:
            seed: Environment ``i`` is seeded with ``seed + i``; ``None`` continues from the
                environments' current random state.
        """
        if seed is not None:
            self._seed = require_seed("seed", seed)
            self._steps_taken = 0
        observations, _ = self._envs.reset(seed=seed)
        self._observations = self._convert(observations)
        return self._shown(self._observations)

    def step(self, actions: Tensor) -> StepResult:
        """Apply one action per environment; those whose episode ends restart at once.

        Args:
            actions: ``int64`` of shape ``(num_envs,)`` for discrete actions, ``float32`` of
                shape ``(num_envs, *shape)`` for continuous ones.
        """
        if actions.shape != self._actions_shape:
            raise InvalidArgumentError(
                "actions", f"must have shape {tuple(self._actions_shape)}", tuple(actions.shape)
            )
        env_actions = actions.numpy(force=True)
        if isinstance(self.action_space, DiscreteActions):
            env_actions = env_actions + self._action_start
        else:
            space = cast("Box", self._envs.single_action_space)
            env_actions = np.clip(env_actions, space.low, space.high).astype(space.dtype)
        observations, rewards, terminated, truncated, infos = self._envs.step(env_actions)
        self._steps_taken += 1
        self._observations = self._convert(observations)
        final_observations = map_observations(Tensor.clone, self._observations)
        if "_final_obs" in infos:
            ended = np.flatnonzero(infos["_final_obs"])
            ended_observations = self._convert_each([infos["final_obs"][index] for index in ended])
            assign_observations(final_observations, torch.from_numpy(ended), ended_observations)
        return StepResult(
            observations=self._shown(self._observations),
            rewards=torch.tensor(rewards, dtype=torch.float32),
            terminated=torch.tensor(terminated, dtype=torch.bool),
            truncated=torch.tensor(truncated, dtype=torch.bool),
            final_observations=self._shown(final_observations),
            episode_metrics=_episode_metrics(infos.get("final_info", {}), self.num_envs),
        )

    def render(self) -> Tensor:
        """The first environment's ``rgb_array`` picture, ``uint8`` ``(height, width, 3)``.

        Raises:
            InvalidArgumentError: The environment cannot render ``rgb_array`` pictures.
        """
        if self._envs.render_mode != _RENDER_MODE:
            raise InvalidArgumentError(
                "env_id",
                f"names an environment that renders no {_RENDER_MODE!r} pictures (render mode "
                f"{self._envs.render_mode!r})",
                self.env_id,
            )
        with _headless_pictures():
            if hasattr(self._envs, "envs"):  # in this process: draw the first environment only
                frame = self._envs.envs[0].render()
            else:
                frame = cast("tuple[Any, ...]", self._envs.render())[0]
        return torch.from_numpy(np.ascontiguousarray(frame, dtype=np.uint8))

    def expert_actions(self) -> Tensor:
        """The expert's actions for the current observations.

        Raises:
            NotImplementedError: The task was built without ``expert``.
        """
        if self._expert is None:
            raise NotImplementedError(
                f"GymTask({self.env_id!r}) has no expert: pass 'expert', a callable from "
                "observations to actions."
            )
        return self._expert(self._observations)

    def state_dict(self) -> dict[str, Any]:
        """The last seed and the steps taken since: all a resumed task needs to reseed."""
        return {"seed": self._seed, "steps_taken": self._steps_taken}

    def load_state_dict(self, state: Mapping[str, Any]) -> Observations:
        """Restart every environment with a seed derived from the saved seed and step count,
        and return their first observations.

        Unseeded tasks restart unseeded. See the class docstring for why this is approximate.
        """
        self._seed = state["seed"]
        self._steps_taken = state["steps_taken"]
        if self._seed is None:
            observations, _ = self._envs.reset()
        else:
            entropy = np.random.SeedSequence([self._seed, self._steps_taken])
            observations, _ = self._envs.reset(seed=int(entropy.generate_state(1)[0]))
        self._observations = self._convert(observations)
        return self._shown(self._observations)

    def close(self) -> None:
        """Close the environments (and the subprocesses of ``"async"`` mode)."""
        self._envs.close()

    def _describe_observations(self, gymnasium: ModuleType, space: Space[Any]) -> None:
        """Set ``observation_shape`` and, for images and ``Dict`` spaces,
        ``observation_space`` from the environments' observation space."""
        self.observation_space: ObservationSpace | None = None
        if isinstance(space, gymnasium.spaces.Dict):
            self.observation_shape: tuple[int, ...] = ()
            self.observation_space = {
                key: _describe_part(gymnasium, part, self.env_id, key)
                for key, part in space.spaces.items()
            }
            return
        part = _describe_part(gymnasium, space, self.env_id, None)
        self.observation_shape = part.shape
        self._environment_shape = part.shape  # before hiding entries
        if part.dtype != "float32":
            self.observation_space = part

    def _visible_entries(self, hidden: Sequence[int]) -> Tensor | None:
        """The entries of the observation vector the policy sees (``None``: all), and the
        task's ``observation_shape`` set to them."""
        if not hidden:
            return None
        if self.observation_space is not None:
            raise InvalidArgumentError(
                "hide_observations",
                "applies to float32 observation vectors only, and this environment's "
                f"observations are {self.observation_space}",
                list(hidden),
            )
        visible = visible_entries(self.observation_shape[0], hidden, "hide_observations")
        if visible is not None:
            self.observation_shape = (len(visible),)
        return visible

    def _shown(self, observations: Observations) -> Observations:
        """``observations`` without the hidden entries."""
        if self._visible is None:
            return observations
        assert isinstance(observations, Tensor)  # float32 vectors, see _visible_entries
        return observations[:, self._visible]

    def _convert(self, observations: Any) -> Observations:
        """A batch of observations as the environments give them (an array, or a dict of
        arrays), as tensors of the task's observation space."""
        space = self.observation_space
        if space is None:
            return _as_tensor(observations, TensorSpace(self._environment_shape))
        if isinstance(space, TensorSpace):
            return _as_tensor(observations, space)
        return {key: _as_tensor(observations[key], part) for key, part in space.items()}

    def _convert_each(self, observations: list[Any]) -> Observations:
        """Single observations (the final ones of ended episodes) as one batch."""
        if isinstance(self.observation_space, Mapping):
            return self._convert(
                {
                    key: np.stack([single[key] for single in observations])
                    for key in self.observation_space
                }
            )
        return self._convert(np.stack(observations))


def _as_tensor(values: Any, space: TensorSpace) -> Tensor:
    """A copy of a batch of arrays as a tensor of ``space`` (flat rows for ``float32``)."""
    array = np.asarray(values)
    return torch.tensor(array.reshape(len(array), *space.shape), dtype=space.torch_dtype)


def _describe_part(
    gymnasium: ModuleType, space: Space[Any], env_id: str, key: str | None
) -> TensorSpace:
    """The tensor of one observation (or one entry of a ``Dict`` one): ``float32`` vectors
    for float ``Box`` spaces, ``uint8`` images for ``uint8`` ``Box`` spaces of rank 3, and
    ``int64`` numbers for ``Discrete`` spaces."""
    if isinstance(space, gymnasium.spaces.Discrete) and int(space.start) == 0:
        return TensorSpace((), "int64", high=int(space.n) - 1)
    if isinstance(space, gymnasium.spaces.Box):
        if space.dtype == np.uint8 and len(space.shape) == 3:
            return TensorSpace(tuple(space.shape), "uint8", high=int(space.high.max()))
        return TensorSpace((int(np.prod(space.shape)),))
    described = space if key is None else f"{space} (entry {key!r})"
    raise _unsupported_space_error("observation", described, env_id)


def _episode_metrics(final_info: Mapping[str, Any], num_envs: int) -> dict[str, Tensor]:
    """The numeric entries of the infos of the episodes that ended (Gymnasium's vector
    layout: an array per key, and a ``_key`` mask of the environments that have it), ``NaN``
    where an environment has none."""
    metrics = {}
    for key, values in final_info.items():
        mask = final_info.get(f"_{key}")
        if key.startswith("_") or mask is None or not isinstance(values, np.ndarray):
            continue
        if values.shape != (num_envs,) or values.dtype.kind not in "biuf":  # bool, int, float
            continue
        reported = torch.tensor(values, dtype=torch.float32)
        metrics[key] = reported.masked_fill_(~torch.from_numpy(np.asarray(mask, bool)), torch.nan)
    return metrics


_HEADLESS_SDL = {"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
"""SDL drivers that need no display or sound server: pygame, which draws the pictures of many
environments, then starts without complaining about a missing desktop session (no
XDG_RUNTIME_DIR, no sound card); rgb_array pictures need neither."""


@contextlib.contextmanager
def _headless_pictures() -> Iterator[None]:
    """While the block runs, SDL (pygame) uses the drivers of ``_HEADLESS_SDL`` unless the
    environment variables choose otherwise; afterwards they are as they were."""
    added = [name for name in _HEADLESS_SDL if name not in os.environ]
    os.environ.update({name: _HEADLESS_SDL[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _render_modes(gymnasium: ModuleType, env_id: str) -> list[str]:
    """The render modes the environment registered as ``env_id`` declares."""
    creator = gymnasium.spec(env_id.rpartition(":")[2]).entry_point
    if isinstance(creator, str):
        creator = gymnasium.envs.registration.load_env_creator(creator)
    return list(getattr(creator, "metadata", {}).get("render_modes") or [])


def _import_gymnasium() -> ModuleType:
    """Gymnasium, or an ImportError that says how to install it."""
    try:
        return importlib.import_module("gymnasium")  # typed alike whether it is installed or not
    except ImportError as error:
        raise ImportError('GymTask needs Gymnasium: pip install "hydra-pipeline[gym]"') from error


def _check_env_id(gymnasium: ModuleType, env_id: Any) -> str:
    """Return ``env_id`` if Gymnasium knows it, after importing the module it may name."""
    if not isinstance(env_id, str):
        raise InvalidArgumentError("env_id", "must be a string", env_id)
    module, _, name = env_id.rpartition(":")
    if module:
        importlib.import_module(module)
    registered: dict[str, Any] = gymnasium.registry
    if name not in registered:
        by_lower_case = {registered_id.lower(): registered_id for registered_id in registered}
        matches = difflib.get_close_matches(name.lower(), by_lower_case, n=3)
        hint = _did_you_mean([by_lower_case[match] for match in matches]) or (
            "gymnasium.pprint_registry() lists the registered environments."
        )
        raise InvalidArgumentError(
            "env_id", "is not a registered Gymnasium environment", env_id, hint
        )
    return env_id


def _did_you_mean(candidates: list[str]) -> str:
    """``"Did you mean 'a', 'b' or 'c'?"``, or an empty string when there is no candidate."""
    quoted = [repr(candidate) for candidate in candidates]
    if len(quoted) > 1:
        quoted = [", ".join(quoted[:-1]), quoted[-1]]
    return f"Did you mean {' or '.join(quoted)}?" if quoted else ""


def _describe_action_space(gymnasium: ModuleType, space: Space[Any], env_id: str) -> ActionSpace:
    """The protocol's description of a ``Discrete`` or ``Box`` Gymnasium action space."""
    if isinstance(space, gymnasium.spaces.Discrete):
        return DiscreteActions(int(space.n))
    if isinstance(space, gymnasium.spaces.Box):
        return ContinuousActions(
            shape=tuple(space.shape),
            low=tuple(float(bound) for bound in space.low.flat),
            high=tuple(float(bound) for bound in space.high.flat),
        )
    raise _unsupported_space_error("action", space, env_id)


def _unsupported_space_error(kind: str, space: Any, env_id: str) -> InvalidArgumentError:
    """The error for an environment whose observation or action space GymTask cannot handle."""
    supported = (
        "Box, or Dict of Box and Discrete (from 0)" if kind == "observation" else "Discrete or Box"
    )
    return InvalidArgumentError(
        "env_id",
        f"names an environment with {kind} space {space}; GymTask supports {supported} only",
        env_id,
        "Write a task of your own for it (see hydra_pipeline.tasks.protocol).",
    )
