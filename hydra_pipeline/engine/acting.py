"""Acting: a policy stepped on a task, the one code path of training rollouts, evaluation and
:class:`~hydra_pipeline.policy.Policy`.

:class:`Actor` is the policy's side: a batch of observations in, a batch of actions out (a
sample of the model's action distribution, or its mode when acting deterministically).
:class:`TaskStepper` steps an actor on a task: it keeps the observations to act on next, the
return and length of every episode in progress, and the per-episode metrics the task reports;
as an option of training, it queries the task's expert and lets it take over some steps
(teacher forcing). With a :class:`~hydra_pipeline.engine.normalization.Normalization`, the
actor sees normalised observations and the learner scaled rewards, while episode returns stay
the task's own; only a learning stepper (training rollouts) updates its statistics.

A model with memory (a recurrent policy, see :mod:`hydra_pipeline.models.protocol`) keeps its
memory in the :class:`Actor`, which tells the model where episodes start (after
:meth:`Actor.reset`) so that it forgets what came before. A model exploring with gSDE (see
:mod:`hydra_pipeline.models.gsde`) keeps its exploration matrices there too: each actor
(training's, an evaluation's, a policy's) explores with its own. :func:`model_output` is the
one call of a model, with or without memory, for acting and for the updates that replay a
rollout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from hydra_pipeline.engine.episodes import FinishedEpisodes, finished_episodes
from hydra_pipeline.engine.normalization import Normalization
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.models.gsde import ExplorationMatrices, StateDependentGaussian
from hydra_pipeline.models.protocol import ActorCriticOutput, has_memory, initial_memory
from hydra_pipeline.tasks.observations import (
    Observations,
    is_structured,
    map_observations,
    num_observations,
    observation_space_of,
)
from hydra_pipeline.tasks.protocol import ActionSpace, DiscreteActions, StepResult, Task

__all__ = ["Actor", "Choice", "TaskStepper", "Transition", "model_output"]


def model_output(
    model: nn.Module,
    observations: Observations,
    memory: Tensor | None = None,
    episode_starts: Tensor | None = None,
) -> tuple[ActorCriticOutput, Tensor | None]:
    """``model``'s output on ``observations``, and its memory after them (``None`` for a
    memoryless model, which is called with the observations alone).

    Args:
        observations: ``(steps * batch, *observation_shape)``, step-major.
        memory: ``(batch, *memory_shape)``: each sequence's memory before its first step
            (``None`` for a memoryless model).
        episode_starts: ``(steps, batch)`` ``bool``: where episodes start (with ``memory``).
    """
    if memory is None:
        output: ActorCriticOutput = model(observations)
        return output, None
    assert episode_starts is not None  # the engine passes both or neither
    output, memory = model(observations, memory, episode_starts)
    return output, memory


class Actor:
    """A model that acts: observations in, actions out.

    Args:
        model: An actor-critic module (see :mod:`hydra_pipeline.models.protocol`), already on
            ``device``.
        action_space: The actions the model chooses among.
        device: Where the model and the observations it acts on live.

    A model with memory is fed one step at a time: its memory of each batch entry (the
    environments, or a policy's batch) and where episodes start are kept here, made for the
    batch of the first :meth:`act` after :meth:`reset`.

    Attributes:
        action_shape: The shape of one action (``()`` for discrete actions).
        action_dtype: ``int64`` for discrete actions, ``float32`` for continuous ones.
        has_memory: Whether the model carries memory.
        memory: ``(batch, *memory_shape)``: the model's memory after the latest :meth:`act`
            (``None`` for a memoryless model, or before the first act).
        episode_starts: ``(batch,)`` ``bool``: where the next act starts an episode.
        acted_starts: The ``episode_starts`` the latest act used.
        exploration: The exploration matrices of a model exploring with gSDE, drawn anew
            after :meth:`restart_exploration` (and when due).
    """

    def __init__(self, model: nn.Module, action_space: ActionSpace, device: torch.device) -> None:
        self.model = model
        self.device = device
        self.has_memory = has_memory(model)
        self.memory: Tensor | None = None
        self.episode_starts: Tensor | None = None
        self.acted_starts: Tensor | None = None
        self.exploration = ExplorationMatrices()
        if isinstance(action_space, DiscreteActions):
            self.action_shape: tuple[int, ...] = ()
            self.action_dtype = torch.int64
            self._bounds: tuple[Tensor, Tensor] | None = None
        else:
            self.action_shape, self.action_dtype = tuple(action_space.shape), torch.float32
            self._bounds = (
                torch.tensor(action_space.low, dtype=torch.float32).view(action_space.shape),
                torch.tensor(action_space.high, dtype=torch.float32).view(action_space.shape),
            )

    def act(
        self,
        observations: Observations,
        *,
        deterministic: bool = False,
        output: ActorCriticOutput | None = None,
    ) -> tuple[Tensor, ActorCriticOutput]:
        """The actions for a batch of observations (on ``device``), and the model's output.

        Args:
            observations: ``(batch, *observation_shape)`` float32, or a batch of the task's
                ``observation_space`` (see :mod:`hydra_pipeline.tasks.observations`).
            deterministic: Take each distribution's mode instead of a sample (drawn with
                torch's global generator; through ``exploration`` for gSDE).
            output: The model's output on ``observations`` when it was computed elsewhere
                (a memoryless model's, run for several members at once: see
                :mod:`~hydra_pipeline.engine.lockstep`); ``None``: the model is called here.
        """
        if output is None:
            memory, starts = self.memory_for(num_observations(observations))
            output, memory = model_output(
                self.model, observations, memory, None if starts is None else starts.unsqueeze(0)
            )
            if memory is not None and starts is not None:
                self.memory = memory.detach()  # acting never backpropagates into earlier steps
                self.acted_starts = starts
                self.episode_starts = torch.zeros_like(starts)
        elif self.has_memory:
            raise ValueError("a model with memory acts on the memory kept here: pass no output")
        distribution = output.distribution
        if deterministic:
            actions = distribution.mode()
        elif isinstance(distribution, StateDependentGaussian):
            actions = distribution.sample_with(self.exploration)
        else:
            actions = distribution.sample()
        return actions, output

    def on_device(self, observations: Observations) -> Observations:
        """``observations`` moved to ``device`` (kept in their element types)."""
        device = self.device
        return map_observations(lambda tensor: tensor.to(device), observations)

    def memory_for(self, batch_size: int) -> tuple[Tensor | None, Tensor | None]:
        """The memory the next :meth:`act` starts from and where it starts episodes (both
        ``None`` for a memoryless model); fresh ones for ``batch_size`` after a reset.

        Raises:
            InvalidArgumentError: The memory is of another batch size.
        """
        if not self.has_memory:
            return None, None
        if self.memory is None or self.episode_starts is None:
            self.memory = initial_memory(self.model, batch_size).to(self.device)
            self.episode_starts = torch.ones(batch_size, dtype=torch.bool, device=self.device)
        elif self.memory.shape[0] != batch_size:
            raise InvalidArgumentError(
                "observations",
                f"must be a batch of {self.memory.shape[0]}, the batch whose memory the model "
                "keeps",
                batch_size,
                "Call reset() to start every episode over with another batch size.",
            )
        return self.memory, self.episode_starts

    def values(self, observations: Observations, rows: Tensor | None = None) -> Tensor:
        """The critic's values of ``observations``, leaving the memory as it is.

        Args:
            observations: The observations to act on next (where episodes start as
                :meth:`reset` said), or, with ``rows``, the last observations of the episodes
                that the latest act stepped in the batch entries ``rows`` (they continue those
                episodes, whatever :meth:`reset` said since).
            rows: ``int64`` indices into the batch.
        """
        memory, starts = self.memory, self.episode_starts
        if self.has_memory and rows is None:
            memory, starts = self.memory_for(num_observations(observations))
        elif memory is not None and rows is not None:
            memory = memory[rows]
            starts = torch.zeros(memory.shape[0], dtype=torch.bool, device=self.device)
        output, _ = model_output(
            self.model, observations, memory, None if starts is None else starts.unsqueeze(0)
        )
        return output.values

    def environment_actions(self, actions: Tensor) -> Tensor:
        """``actions`` as a task takes them: on the CPU, clipped to the action bounds (the
        model's unbounded samples are what it learns from)."""
        actions = actions.cpu()
        if self._bounds is not None:
            actions = torch.max(torch.min(actions, self._bounds[1]), self._bounds[0])
        return actions

    def restart_exploration(self) -> None:
        """Draw new exploration matrices at the next :meth:`act` (gSDE: at the start of each
        rollout, or of each evaluation)."""
        self.exploration.restart()

    def reset(self, episode_starts: Tensor | None = None) -> None:
        """Start new episodes where ``episode_starts`` ``(batch,)`` is True (everywhere, for
        any batch size, when ``None``, with new exploration matrices): the model forgets what
        it remembers of them at the next :meth:`act`."""
        if episode_starts is None:
            self.restart_exploration()
        if not self.has_memory:
            return
        if episode_starts is None:
            self.memory = self.episode_starts = None
        elif self.episode_starts is not None:
            self.episode_starts |= episode_starts.to(self.device, torch.bool)

    def state_dict(self) -> dict[str, Any]:
        """The memory and where episodes start (``None`` for a memoryless model), and the
        exploration matrices (``None`` before any), copied."""
        return {
            "memory": None if self.memory is None else self.memory.cpu().clone(),
            "episode_starts": (
                None if self.episode_starts is None else self.episode_starts.cpu().clone()
            ),
            "exploration": self.exploration.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Raises:
            ValueError: The state's memory does not fit the model (the model has none, or
                memory of another shape). A state without memory fits any model: its
                episodes start afresh.
        """
        memory, starts = state["memory"], state["episode_starts"]
        if memory is not None:
            if not self.has_memory:
                raise ValueError("it holds a model's memory, but this model has none")
            expected = tuple(initial_memory(self.model, 1).shape[1:])
            if tuple(memory.shape[1:]) != expected:
                raise ValueError(
                    f"its memory has shape {tuple(memory.shape[1:])} per environment, this "
                    f"model's {expected}"
                )
        self.memory = None if memory is None else memory.to(self.device)
        self.episode_starts = None if starts is None else starts.to(self.device)
        self.exploration.load_state_dict(state["exploration"], self.device)


class Choice(NamedTuple):
    """What a :class:`TaskStepper` acts with in a step, before the task steps (see
    :meth:`TaskStepper.prepare`; the fields are :class:`Transition`'s)."""

    observations: Observations
    output: ActorCriticOutput
    actions: Tensor
    expert_actions: Tensor | None
    forced: Tensor | None
    episode_starts: Tensor | None


class Transition(NamedTuple):
    """One step of every environment.

    Attributes:
        observations: What the actor acted on.
        output: The model's output for them.
        actions: The actions taken (the expert's where it took over), as the model sees them
            (unclipped).
        expert_actions: The expert's actions, when asked for.
        forced: True where the expert's action was taken, when teacher forcing was on.
        result: What the task returned, as the learner sees it: with observations (final ones
            included) normalised and rewards scaled when the stepper normalises.
        episode_starts: Where the actor started episodes in this step (``None`` for a
            memoryless model).
        final_values: When asked for, the values of the final observations of the episodes
            cut short (truncated, not terminated) in this step, zero elsewhere.
    """

    observations: Observations
    output: ActorCriticOutput
    actions: Tensor
    expert_actions: Tensor | None
    forced: Tensor | None
    result: StepResult
    episode_starts: Tensor | None = None
    final_values: Tensor | None = None


class TaskStepper:
    """Steps an :class:`Actor` on a :class:`~hydra_pipeline.tasks.Task` and keeps each
    episode's return, length and task metrics until it ends.

    Call :meth:`reset` (or :meth:`load_state`) first. :meth:`finished_episodes` hands out the
    episodes that ended since its previous call, computed once for all the steps in between.

    Args:
        task: The environments to act in.
        actor: The policy acting in them.
        normalization: Normalises what the actor sees (``None``: the task's observations as
            they are).
        learning: Whether this stepper collects training experience: it then adds what it
            sees to ``normalization``'s statistics and scales the rewards it hands out.
            Evaluation steppers leave the statistics as they are.

    Attributes:
        observations: The observations to act on next (on the actor's device, normalised).
        task_observations: The same, as the task returned them (what checkpoints keep).
        episode_returns: ``(num_envs,)`` float64 return so far of each episode in progress, as
            of the previous :meth:`finished_episodes`.
        episode_lengths: Their lengths so far.
    """

    def __init__(
        self,
        task: Task,
        actor: Actor,
        normalization: Normalization | None = None,
        *,
        learning: bool = False,
    ) -> None:
        self.task = task
        self.actor = actor
        self.normalization = normalization if normalization and normalization.active else None
        if self.normalization is not None and self.normalization.observations:
            _refuse_observation_normalization(task)
        self.learning = learning
        self.observations: Observations = torch.zeros(0)
        self.task_observations: Observations = torch.zeros(0)
        self.episode_returns = torch.zeros(task.num_envs, dtype=torch.float64)
        self.episode_lengths = torch.zeros(task.num_envs, dtype=torch.float64)
        self._rewards: list[Tensor] = []
        self._dones: list[Tensor] = []
        self._metrics: list[Mapping[str, Tensor]] = []

    def reset(self, seed: int | None = None) -> None:
        """Reset the task (seeding it when ``seed`` is given) and start every episode anew."""
        self.load_state(self.task.reset(seed=seed))

    def load_state(
        self,
        observations: Observations,
        episode_returns: Tensor | None = None,
        episode_lengths: Tensor | None = None,
        *,
        seen: bool = False,
    ) -> None:
        """Continue from the task's ``observations``, with the episodes in progress so far along
        (fresh episodes when not given); ``seen``: the statistics already count them (a
        checkpoint's)."""
        self.task_observations = observations
        self.observations = self._normalized(observations, update=not seen)
        zeros = torch.zeros(self.task.num_envs, dtype=torch.float64)
        self.episode_returns = zeros if episode_returns is None else episode_returns
        self.episode_lengths = zeros.clone() if episode_lengths is None else episode_lengths
        self._rewards, self._dones, self._metrics = [], [], []
        self.actor.reset()

    def step(
        self,
        *,
        deterministic: bool = False,
        expert: bool = False,
        forcing: float = 0.0,
        final_values: bool = False,
    ) -> Transition:
        """Act once in every environment and step the task.

        Args:
            deterministic: Act with the distributions' modes (see :meth:`Actor.act`).
            expert: Ask the task's expert for its actions too.
            forcing: Teacher forcing (with ``expert``): the probability that an environment
                takes the expert's action instead of the actor's, drawn per environment with
                torch's global generator.
            final_values: Value the final observations of episodes cut short, with the
                memory of the episodes they end (to bootstrap them).
        """
        choice = self.prepare(deterministic=deterministic, expert=expert, forcing=forcing)
        result = self.task.step(self.actor.environment_actions(choice.actions))
        return self.complete(choice, result, final_values=final_values)

    def prepare(
        self,
        *,
        deterministic: bool = False,
        expert: bool = False,
        forcing: float = 0.0,
        output: ActorCriticOutput | None = None,
    ) -> Choice:
        """The first half of :meth:`step` (same arguments; ``output``: the model's output on
        ``observations`` when computed elsewhere, see :meth:`Actor.act`): the actions to
        step the task with (apart from :meth:`complete` when several tasks step as one, see
        :mod:`~hydra_pipeline.engine.lockstep`)."""
        observations = self.observations
        actions, output = self.actor.act(observations, deterministic=deterministic, output=output)
        episode_starts = self.actor.acted_starts
        expert_actions = forced = None
        if expert:
            expert_actions = self.task.expert_actions().to(self.actor.device)
            if forcing > 0:
                num_envs = self.task.num_envs
                forced = torch.rand(num_envs, device=self.actor.device) < forcing
                mask = forced.view(num_envs, *([1] * (actions.dim() - 1)))
                actions = torch.where(mask, expert_actions, actions)
        return Choice(observations, output, actions, expert_actions, forced, episode_starts)

    def complete(self, choice: Choice, result: StepResult, *, final_values: bool) -> Transition:
        """The second half of :meth:`step`: keep what the task returned for ``choice``'s
        actions (see :meth:`step` for ``final_values``)."""
        dones = result.terminated | result.truncated
        self.task_observations = result.observations
        self.observations = self._normalized(result.observations, update=True)
        self.actor.reset(dones)
        self._rewards.append(result.rewards.to(torch.float64))
        self._dones.append(dones)
        self._metrics.append(result.episode_metrics)
        if self.normalization is not None:
            result = result._replace(
                observations=self.observations,
                final_observations=self._normalized(result.final_observations, update=False),
                rewards=self.normalization.reward(result.rewards, dones)
                if self.learning
                else result.rewards,
            )
        values = self._final_values(result) if final_values else None
        observations, output, actions, expert_actions, forced, episode_starts = choice
        return Transition(
            observations, output, actions, expert_actions, forced, result, episode_starts, values
        )

    def _final_values(self, result: StepResult) -> Tensor:
        """The values of the final observations (as the actor sees them) of the episodes
        ``result`` cut short, zero elsewhere: with the memory of the episodes they end."""
        device = self.actor.device
        values = torch.zeros(self.task.num_envs, device=device)
        cut_short = result.truncated & ~result.terminated
        if bool(cut_short.any()):
            rows = cut_short.nonzero().flatten().to(device)
            final_observations = map_observations(
                lambda tensor: tensor.to(device)[rows], result.final_observations
            )
            values[rows] = self.actor.values(final_observations, rows)
        return values

    def _normalized(self, observations: Observations, *, update: bool) -> Observations:
        """``observations`` on the actor's device, as the actor sees them; with ``update``, a
        learning stepper first adds them to the statistics."""
        observations = self.actor.on_device(observations)
        if self.normalization is None or not self.normalization.observations:
            return observations
        assert isinstance(observations, Tensor)  # other spaces are refused when built
        return self.normalization.observe(observations, update=update and self.learning)

    def finished_episodes(self) -> FinishedEpisodes:
        """The episodes that ended since the previous call (at least one step ago)."""
        rewards, dones = torch.stack(self._rewards), torch.stack(self._dones)
        episodes = finished_episodes(
            rewards, dones, self.episode_returns, self.episode_lengths, self._stacked_metrics()
        )
        self.episode_returns = episodes.carried_returns
        self.episode_lengths = episodes.carried_lengths
        self._rewards, self._dones, self._metrics = [], [], []
        return episodes

    def _stacked_metrics(self) -> dict[str, Tensor]:
        """The task's metrics of the buffered steps, each ``(steps, num_envs)``, ``NaN`` where
        a step did not report it."""
        names = dict.fromkeys(name for metrics in self._metrics for name in metrics)
        stacked = {}
        for name in names:
            values = torch.full((len(self._metrics), self.task.num_envs), torch.nan)
            for step, metrics in enumerate(self._metrics):
                if name in metrics:
                    values[step] = metrics[name]
            stacked[name] = values
        return stacked


def _refuse_observation_normalization(task: Task) -> None:
    """Observation normalisation is for ``float32`` vectors: images (``uint8``) and ``Dict``
    observations are refused, their encoders scale and embed them instead."""
    space = observation_space_of(task)
    if is_structured(space):
        raise InvalidArgumentError(
            "normalization.observations",
            f"applies to float32 observations only, and the task's are images or a Dict ({space})",
            True,
            "Set normalization.observations=false: image encoders scale uint8 values to "
            "[0, 1] and integers are embedded (normalization.rewards may stay on).",
        )
