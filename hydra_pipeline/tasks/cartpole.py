"""CartPole in torch: a batch of environments with the physics of Gymnasium's ``CartPole-v1``.

Stepping 64 CartPoles through Gymnasium costs far more than the policy that drives them, so this
task keeps all of them in one ``float64`` tensor and advances them with the same thirty-odd tensor
operations per step, whatever ``num_envs`` is. The constants, the Euler integrator, the
termination limits, the reset distribution, the reward and the time limit are Gymnasium's, so
results compare with those of any ``CartPole-v1`` agent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from hydra_pipeline.arguments import require_at_least, require_seed
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.tasks.observations import visible_entries
from hydra_pipeline.tasks.protocol import DiscreteActions, StepResult

__all__ = ["CartPoleTask"]

GRAVITY = 9.8
CART_MASS = 1.0
POLE_MASS = 0.1
TOTAL_MASS = POLE_MASS + CART_MASS
POLE_HALF_LENGTH = 0.5
POLE_MASS_LENGTH = POLE_MASS * POLE_HALF_LENGTH
FORCE_MAGNITUDE = 10.0
SECONDS_PER_STEP = 0.02
# Written as Gymnasium writes them, so that the float64 values are bit-identical.
ANGLE_LIMIT = 12 * 2 * math.pi / 360
POSITION_LIMIT = 2.4
RESET_BOUND = 0.05
VELOCITY_ENTRIES = (1, 3)
"""Where the velocities are in an observation ``(x, x_dot, theta, theta_dot)``."""

EXPERT_GAINS = (1.0, 2.0, 10.0, 3.0)
"""Feedback gains of the expert on (x, x_dot, theta, theta_dot): it pushes right exactly when
their dot product with the state is positive. Chosen by a grid search; from 50,000 random
reset states and a 7^4 grid over the reset box, no 500-step episode terminates, |x| stays
below 0.2 and |theta| below its initial value."""

# Pictures: the track spans the width, and the cart (40 x 24 cm), the pole (8 cm thick) and
# their colours are Gymnasium's CartPole drawing, at a smaller scale.
RENDER_HEIGHT, RENDER_WIDTH = 240, 400
CART_SIZE = (0.4, 0.24)
POLE_THICKNESS = 0.08
POLE_COLOUR = (202, 152, 101)
AXLE_COLOUR = (129, 132, 203)


class CartPoleTask:
    """``num_envs`` CartPoles stepped together, with Gymnasium's ``CartPole-v1`` dynamics.

    Each environment's state is ``(x, x_dot, theta, theta_dot)`` in ``float64``, as in
    Gymnasium; observations are the same four values in ``float32``, without the entries
    ``hide_observations`` lists: ``hide_velocities`` hides both velocities, leaving the
    position and the angle ``(x, theta)`` (a partially observed CartPole, the zoo's
    ``CartPoleNoVel``: a policy must remember earlier observations to tell where the cart and
    the pole are heading).
    Action 0 pushes the cart left, 1 right. Every step earns reward 1; an episode terminates
    when ``|theta|`` exceeds 12 degrees or ``|x|`` exceeds 2.4, and is truncated after
    ``max_episode_steps`` steps.
    Ended episodes restart in the same step (see :mod:`hydra_pipeline.tasks.protocol`), from a
    state drawn uniformly from ``[-0.05, 0.05)^4`` by the task's own generator. For the
    environments that did not end, ``final_observations`` equals ``observations``.

    The expert is a linear state-feedback rule (:data:`EXPERT_GAINS`) that balances the pole
    and keeps the cart inside the track for whole 500-step episodes. :meth:`render` draws the
    first environment, as Gymnasium draws CartPole, for videos played at 50 frames per second
    (real time).

    Args:
        num_envs: Number of environments stepped at once.
        max_episode_steps: Steps after which an episode is truncated.
        hide_velocities: Hide the velocities (entries 1 and 3): observe ``(x, theta)`` only.
        hide_observations: Indices of the state entries the policy does not see (the expert
            still sees the whole state).
    """

    has_expert = True
    render_fps = round(1 / SECONDS_PER_STEP)

    def __init__(
        self,
        num_envs: int = 64,
        max_episode_steps: int = 500,
        hide_velocities: bool = False,
        hide_observations: Sequence[int] = (),
    ) -> None:
        self.num_envs = require_at_least("num_envs", num_envs, 1)
        self.max_episode_steps = require_at_least("max_episode_steps", max_episode_steps, 1)
        self.hide_velocities = bool(hide_velocities)
        visible_entries(4, hide_observations, "hide_observations")  # checked as given
        hidden = sorted({*hide_observations, *(VELOCITY_ENTRIES if hide_velocities else ())})
        self._visible = visible_entries(4, hidden, "hide_observations")
        self.observation_shape = (4 if self._visible is None else len(self._visible),)
        self.action_space = DiscreteActions(2)

        # Constants as 0-dim tensors: an operation with a Python number costs more than one
        # with a tensor, and per-operation overhead dominates at this size.
        def constant(value: float) -> Tensor:
            return torch.tensor(value, dtype=torch.float64)

        self._gravity = constant(GRAVITY)
        self._pole_mass = constant(POLE_MASS)
        self._total_mass = constant(TOTAL_MASS)
        self._pole_half_length = constant(POLE_HALF_LENGTH)
        self._pole_mass_length = constant(POLE_MASS_LENGTH)
        self._four_thirds = constant(4.0 / 3.0)
        self._seconds_per_step = constant(SECONDS_PER_STEP)
        self._zero = constant(0.0)
        self._one_step = torch.tensor(1)
        self._max_episode_steps = torch.tensor(self.max_episode_steps)
        self._forces = torch.tensor([-FORCE_MAGNITUDE, FORCE_MAGNITUDE], dtype=torch.float64)
        self._limits = torch.tensor([POSITION_LIMIT, ANGLE_LIMIT], dtype=torch.float64)
        self._expert_gains = torch.tensor(EXPERT_GAINS, dtype=torch.float64)
        self._actions_shape = torch.Size([self.num_envs])

        # Every buffer below is updated in place, so the column views stay valid.
        self._bind(
            torch.empty(self.num_envs, 4, dtype=torch.float64),
            torch.zeros(self.num_envs, dtype=torch.int64),
        )
        self._derivative = torch.empty(self.num_envs, 4, dtype=torch.float64)
        self._derivative_of_positions = self._derivative[:, 0::2]
        self._acceleration = self._derivative[:, 1]
        self._angular_acceleration = self._derivative[:, 3]
        self._restart_states = torch.empty(self.num_envs, 4, dtype=torch.float64)
        self._distances = torch.empty(self.num_envs, 2, dtype=torch.float64)
        self._beyond_limits = torch.empty(self.num_envs, 2, dtype=torch.bool)
        self._beyond_position_limit = self._beyond_limits[:, 0]
        self._beyond_angle_limit = self._beyond_limits[:, 1]
        self._ended_column = torch.empty(self.num_envs, 1, dtype=torch.bool)
        self._ended = self._ended_column[:, 0]

        # Unseeded, the generator starts from fresh entropy, as Gymnasium does.
        self._generator = torch.Generator()
        self._generator.seed()
        # Where ended episodes restart from, and with which generator: the whole batch with
        # the task's own, or, for a joined task, each block with its task's (see joined()).
        self._restarts = [(self._restart_states, self._generator)]
        self._joined = False
        self.reset()

    def _bind(self, state: Tensor, steps: Tensor) -> None:
        """Keep the environments' states in ``state`` ``(num_envs, 4)`` and their step counts
        in ``steps`` (a joined task's block, see :meth:`joined`), with the column views of
        them that stepping updates in place."""
        self._state = state
        self._positions = state[:, 0::2]
        self._velocities = state[:, 1::2]
        self._angle = state[:, 2]
        self._angular_velocity = state[:, 3]
        self._steps = steps

    def _refuse_if_joined(self, method: str) -> None:
        """A joined task is stepped only: its tasks are reset, saved and restored."""
        if self._joined:
            raise InvalidArgumentError(
                method, "is not for a joined task", None, f"Call {method}() of the tasks it joins."
            )

    @classmethod
    def joined(cls, tasks: Sequence[CartPoleTask]) -> CartPoleTask:
        """One task that steps the environments of ``tasks`` (alike but for their number of
        environments) as one batch, with one call per step for all of them (the seeds of one
        run trained in one batch).

        The joined task's environments are the tasks' in blocks, in order, and it shares
        their states: each task's state becomes its block of the joined one (so a task
        stepped, reset, saved or restored on its own acts on its block), and each block
        restarts its episodes with its task's own generator. A block thus sees exactly the
        episodes its task would see stepped alone. Step the joined task only: reset, save and
        restore the tasks.

        Raises:
            InvalidArgumentError: No tasks, or tasks that differ in their episodes' length or
                in what they show.
        """
        if not tasks:
            raise InvalidArgumentError("tasks", "must hold at least one task to join", tasks)
        first = tasks[0]
        if any(
            (task.max_episode_steps, task._visible) != (first.max_episode_steps, first._visible)
            for task in tasks
        ):
            raise InvalidArgumentError(
                "tasks",
                "must have the same max_episode_steps and hidden observations to be joined",
                [(task.max_episode_steps, task._visible) for task in tasks],
            )
        joint = cls(sum(task.num_envs for task in tasks), first.max_episode_steps)
        joint._visible, joint.observation_shape = first._visible, first.observation_shape
        joint.hide_velocities = first.hide_velocities
        joint._joined = True
        joint._restarts = []
        start = 0
        for task in tasks:
            rows = slice(start, start + task.num_envs)
            start = rows.stop
            joint._state[rows] = task._state
            joint._steps[rows] = task._steps
            task._bind(joint._state[rows], joint._steps[rows])
            joint._restarts.append((joint._restart_states[rows], task._generator))
        return joint

    def reset(self, *, seed: int | None = None) -> Tensor:
        """Restart every environment and return the first observations.

        Args:
            seed: Seeds the task's generator; ``None`` continues from its current state.
        """
        self._refuse_if_joined("reset")
        if seed is not None:
            self._generator.manual_seed(require_seed("seed", seed))
        self._state.uniform_(-RESET_BOUND, RESET_BOUND, generator=self._generator)
        self._steps.zero_()
        return self._observations()

    def step(self, actions: Tensor) -> StepResult:
        """Advance every environment by one Euler step of 0.02 s and restart those that ended.

        Args:
            actions: ``int64`` of shape ``(num_envs,)``: 0 pushes left, 1 pushes right.
        """
        if actions.shape != self._actions_shape:
            raise InvalidArgumentError(
                "actions", f"must have shape ({self.num_envs},)", tuple(actions.shape)
            )
        # Each expression rounds in Gymnasium's order (no fused multiply-adds such as addcmul),
        # so the float64 results match Gymnasium's up to the last bit of sin and cos.
        force = self._forces.index_select(0, actions)
        cos, sin = self._angle.cos(), self._angle.sin()
        angular_velocity = self._angular_velocity
        net_force_per_mass = torch.mul(angular_velocity, angular_velocity)
        net_force_per_mass.mul_(self._pole_mass_length).mul_(sin)
        net_force_per_mass.add_(force).div_(self._total_mass)
        numerator = torch.mul(sin, self._gravity).sub_(torch.mul(cos, net_force_per_mass))
        mass_ratio_term = torch.mul(cos, cos).mul_(self._pole_mass)
        denominator = torch.addcdiv(self._four_thirds, mass_ratio_term, self._total_mass, value=-1)
        denominator.mul_(self._pole_half_length)
        torch.div(numerator, denominator, out=self._angular_acceleration)
        coupling = torch.mul(self._angular_acceleration, self._pole_mass_length).mul_(cos)
        torch.addcdiv(
            net_force_per_mass, coupling, self._total_mass, value=-1, out=self._acceleration
        )
        self._derivative_of_positions.copy_(self._velocities)
        self._state.add_(self._derivative.mul_(self._seconds_per_step))

        # Reductions such as any() cost more than an elementwise op on precomputed views.
        torch.abs(self._positions, out=self._distances)
        torch.gt(self._distances, self._limits, out=self._beyond_limits)
        terminated = torch.logical_or(self._beyond_position_limit, self._beyond_angle_limit)
        self._steps.add_(self._one_step)
        truncated = torch.ge(self._steps, self._max_episode_steps)
        torch.logical_or(terminated, truncated, out=self._ended)
        self._steps.masked_fill_(self._ended, 0)
        final_observations = self._observations()
        for restart_states, generator in self._restarts:
            restart_states.uniform_(-RESET_BOUND, RESET_BOUND, generator=generator)
        torch.where(self._ended_column, self._restart_states, self._state, out=self._state)
        return StepResult(
            observations=self._observations(),
            rewards=torch.ones(self.num_envs),
            terminated=terminated,
            truncated=truncated,
            final_observations=final_observations,
        )

    def _observations(self) -> Tensor:
        """What the environments show of their states, in ``float32``."""
        shown = self._state if self._visible is None else self._state[:, self._visible]
        return shown.float()

    def expert_actions(self) -> Tensor:
        """The linear-feedback expert's action for every environment: 1 (right) or 0 (left)."""
        return torch.mv(self._state, self._expert_gains).gt_(self._zero).long()

    def render(self) -> Tensor:
        """A picture of the first environment, ``uint8`` ``(240, 400, 3)``: the track, the
        cart at its position and the pole at its angle, drawn from the state."""
        position, _, angle, _ = self._state[0].tolist()
        scale = RENDER_WIDTH / (2 * POSITION_LIMIT)  # pixels per metre
        rows = torch.arange(RENDER_HEIGHT, dtype=torch.float32).unsqueeze(1)
        columns = torch.arange(RENDER_WIDTH, dtype=torch.float32).unsqueeze(0)
        image = torch.full((RENDER_HEIGHT, RENDER_WIDTH, 3), 255, dtype=torch.uint8)
        track = round(RENDER_HEIGHT * 0.7)
        image[track] = 0
        cart_column = RENDER_WIDTH / 2 + position * scale
        cart_width, cart_height = CART_SIZE[0] * scale, CART_SIZE[1] * scale
        cart = ((columns - cart_column).abs() <= cart_width / 2) & (
            (rows - track).abs() <= cart_height / 2
        )
        image[cart] = 0
        # The pole: every pixel within half its thickness of the segment from the axle (a
        # quarter of the cart's height above its centre) to the tip.
        axle_row = track - cart_height / 4
        length = 2 * POLE_HALF_LENGTH * scale
        along_column, along_row = length * math.sin(angle), -length * math.cos(angle)
        share = ((columns - cart_column) * along_column + (rows - axle_row) * along_row).div(
            length**2
        )
        share = share.clamp(0.0, 1.0)
        distance = (columns - cart_column - share * along_column).square() + (
            rows - axle_row - share * along_row
        ).square()
        radius = (POLE_THICKNESS * scale / 2) ** 2
        image[distance <= radius] = torch.tensor(POLE_COLOUR, dtype=torch.uint8)
        axle = (columns - cart_column).square() + (rows - axle_row).square() <= radius
        image[axle] = torch.tensor(AXLE_COLOUR, dtype=torch.uint8)
        return image

    def state_dict(self) -> dict[str, Any]:
        """The physical states, the step counters and the generator state."""
        self._refuse_if_joined("state_dict")
        return {
            "state": self._state.clone(),
            "steps": self._steps.clone(),
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the task then continues bit-identically
        (so it returns ``None``: the engine keeps acting on its saved observations).

        Raises:
            InvalidArgumentError: The state comes from a task with another ``num_envs``, or
                this task is a joined one (see :meth:`joined`).
        """
        self._refuse_if_joined("load_state_dict")
        saved_num_envs = state["state"].shape[0]
        if saved_num_envs != self.num_envs:
            raise InvalidArgumentError(
                "num_envs",
                f"differs from the saved state's {saved_num_envs}",
                self.num_envs,
                "Load a checkpoint made with the same task.",
            )
        self._state.copy_(state["state"])
        self._steps.copy_(state["steps"])
        self._generator.set_state(state["generator"])

    def close(self) -> None:
        """Nothing to release: the environments are tensors."""
