"""``MiniGridTask``: MiniGrid and BabyAI environments, with the BabyAI bot as the expert.

Needs the optional ``minigrid`` package (``pip install "hydra-pipeline[minigrid]"``), imported
only when a :class:`MiniGridTask` is built.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from hydra_pipeline.arguments import require_at_least
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.tasks.gym import GymTask
from hydra_pipeline.tasks.observations import Observations, TensorSpace
from hydra_pipeline.tasks.protocol import StepResult

if TYPE_CHECKING:
    from types import ModuleType

    from gymnasium import Space

__all__ = ["MISSION_VOCABULARY", "MiniGridTask", "mission_tokens"]

# The words of BabyAI's instruction grammar (minigrid.envs.babyai.core.verifier): verbs,
# object types and colours, locations, and the connectives of sequences. Written out, not read
# from the installed package, so a token's number never changes and checkpoints stay valid.
_BABYAI_WORDS = [
    *("a", "after", "and", "ball", "behind", "blue", "box", "door", "front", "go", "green"),
    *("grey", "in", "key", "left", "next", "object", "of", "on", "open", "pick", "purple"),
    *("put", "red", "right", "the", "then", "to", "up", "you", "your", "yellow"),
]
MISSION_VOCABULARY: dict[str, int] = {
    "<pad>": 0,
    "<unknown>": 1,
    **{word: index for index, word in enumerate(_BABYAI_WORDS, start=2)},
}
"""Token numbers of mission words: 0 pads, 1 stands for any word outside BabyAI's grammar (the
missions of other MiniGrid environments), then BabyAI's words in alphabetical order."""

_IMAGE_HIGH = 10  # the largest object number of MiniGrid's encoding (agent); colours <= 5
_DIRECTIONS = 4
_REMEMBERED_MISSIONS = 4096
_WORD = re.compile(r"[a-z]+")


def mission_tokens(mission: str, length: int) -> list[int]:
    """A mission's words as token numbers (:data:`MISSION_VOCABULARY`), padded with 0 or cut
    to ``length``."""
    unknown = MISSION_VOCABULARY["<unknown>"]
    tokens = [MISSION_VOCABULARY.get(word, unknown) for word in _WORD.findall(mission.lower())]
    return (tokens + [0] * length)[:length]


class MiniGridTask(GymTask):
    """``num_envs`` MiniGrid or BabyAI environments (any registered id), stepped as one task.

    Observations are a ``Dict``: ``image``, the agent's egocentric view in MiniGrid's encoding
    (object, colour and state numbers, ``uint8`` of shape ``(view, view, 3)``), ``direction``
    (``int64``, 0-3) and, for BabyAI levels (ids starting ``BabyAI-``), ``mission``: the
    instruction's words as ``mission_length`` tokens of :data:`MISSION_VOCABULARY`. Episodes
    report ``success`` (the goal was reached: a positive reward at the end).

    For BabyAI levels the BabyAI bot shipped with ``minigrid`` is the expert (imitation,
    teacher forcing, expert demonstrations), in ``"sync"`` vectorisation only, where the bot
    can see the environments. A bot follows its environment through the actions really taken;
    one that missed a step (no expert actions asked) or whose episode ended is rebuilt, and so
    is one that gives up because the agent opened a box (which vanishes), as a policy acting
    under teacher forcing below 1 may.

    Args:
        env_id: A registered MiniGrid or BabyAI id, such as
            ``"MiniGrid-Empty-Random-5x5-v0"`` or ``"BabyAI-GoToLocal-v0"``.
        num_envs: Number of environments stepped at once.
        vectorization_mode: ``"sync"`` or ``"async"`` (no expert).
        mission_length: Tokens of the ``mission`` observation (BabyAI levels).
        env_kwargs: Keyword arguments for the environment's constructor (for instance
            ``agent_view_size``).

    Raises:
        ImportError: ``minigrid`` is not installed.
        InvalidArgumentError: An argument is out of range, or the id is unknown or not a
            MiniGrid environment.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int = 8,
        vectorization_mode: str = "sync",
        mission_length: int = 16,
        env_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        _import_minigrid()
        self.mission_length = require_at_least("mission_length", mission_length, 1)
        self.babyai = env_id.startswith("BabyAI-")
        self._missions: dict[str, list[int]] = {}
        self.num_envs = require_at_least("num_envs", num_envs, 1)
        self._forget_bots()
        super().__init__(
            env_id,
            num_envs=num_envs,
            vectorization_mode=vectorization_mode,
            env_kwargs=env_kwargs,
        )
        self.has_expert = self.babyai and vectorization_mode == "sync"

    def _describe_observations(self, gymnasium: ModuleType, space: Space[Any]) -> None:
        image = getattr(space, "spaces", {}).get("image")
        if image is None or len(image.shape) != 3:
            raise InvalidArgumentError(
                "env_id",
                "names no MiniGrid environment (its observations have no 'image')",
                self.env_id,
            )
        self.observation_shape = ()
        self.observation_space = {
            "image": TensorSpace(tuple(image.shape), "uint8", high=_IMAGE_HIGH),
            "direction": TensorSpace((), "int64", high=_DIRECTIONS - 1),
        }
        if self.babyai:
            self.observation_space["mission"] = TensorSpace(
                (self.mission_length,), "int64", high=len(MISSION_VOCABULARY) - 1
            )

    def _convert(self, observations: Any) -> Observations:
        converted = {
            "image": torch.tensor(np.asarray(observations["image"]), dtype=torch.uint8),
            "direction": torch.tensor(np.asarray(observations["direction"]), dtype=torch.int64),
        }
        if self.babyai:
            converted["mission"] = torch.tensor(
                [self._tokens(str(text)) for text in observations["mission"]],
                dtype=torch.int64,
            )
        return converted

    def _tokens(self, mission: str) -> list[int]:
        """A mission's tokens, remembered (a level has few distinct missions)."""
        tokens = self._missions.get(mission)
        if tokens is None:
            if len(self._missions) >= _REMEMBERED_MISSIONS:
                self._missions.clear()
            tokens = self._missions[mission] = mission_tokens(mission, self.mission_length)
        return tokens

    def _convert_each(self, observations: list[Any]) -> Observations:
        return self._convert(
            {
                key: [single[key] for single in observations]
                for key in ("image", "direction", "mission")
            }
        )

    def reset(self, *, seed: int | None = None) -> Observations:
        self._forget_bots()
        with _quiet():
            return super().reset(seed=seed)

    def load_state_dict(self, state: Mapping[str, Any]) -> Observations:
        self._forget_bots()
        with _quiet():
            return super().load_state_dict(state)

    def step(self, actions: Tensor) -> StepResult:
        with _quiet():
            result = super().step(actions)
        ended = (result.terminated | result.truncated).tolist()
        taken = actions.tolist()
        for index in range(self.num_envs):
            if ended[index] or self._suggested[index] is None:
                self._bots[index] = None  # a new episode, or a step its bot did not see
            self._taken[index] = taken[index]
            self._suggested[index] = None
        metrics = dict(result.episode_metrics)
        metrics["success"] = (result.terminated & (result.rewards > 0)).to(torch.float32)
        return result._replace(episode_metrics=metrics)

    def expert_actions(self) -> Tensor:
        """The BabyAI bot's actions for the current state of every environment.

        Raises:
            NotImplementedError: Not a BabyAI level, or ``"async"`` vectorisation.
        """
        if not self.has_expert:
            raise NotImplementedError(
                f"MiniGridTask({self.env_id!r}) has no expert: the BabyAI bot needs a BabyAI "
                "level (BabyAI-...) and vectorization_mode=sync."
            )
        from gymnasium.vector import SyncVectorEnv
        from minigrid.utils import baby_ai_bot

        make_bot: Any = baby_ai_bot.BabyAIBot  # untyped
        assert isinstance(self._envs, SyncVectorEnv)  # the bot needs them in this process
        environments = self._envs.envs
        for index in range(self.num_envs):
            if self._suggested[index] is not None:
                continue  # asked twice in one step
            bot = self._bots[index]
            if bot is not None:
                try:
                    self._suggested[index] = int(bot.replan(self._taken[index]))
                    continue
                except baby_ai_bot.DisappearedBoxError:
                    pass  # the agent opened a box, which vanished: plan again from here
            bot = self._bots[index] = make_bot(environments[index])
            self._suggested[index] = int(bot.replan(None))
        return torch.tensor(self._suggested, dtype=torch.int64)

    def _forget_bots(self) -> None:
        """Every environment starts over: their bots are rebuilt when next asked."""
        self._bots: list[Any] = [None] * self.num_envs
        self._taken: list[int | None] = [None] * self.num_envs
        self._suggested: list[int | None] = [None] * self.num_envs


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence what BabyAI's level generator prints on every reset ("Sampling rejected: ...")."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _import_minigrid() -> ModuleType:
    """``minigrid`` (which registers its environments with Gymnasium), or an ImportError that
    says how to install it."""
    try:
        return importlib.import_module("minigrid")  # typed alike whether it is installed or not
    except ImportError as error:
        raise ImportError(
            'MiniGridTask needs the minigrid package: pip install "hydra-pipeline[minigrid]"'
        ) from error
