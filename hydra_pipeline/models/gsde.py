"""Generalized state-dependent exploration (gSDE; Raffin, Kober and Stulp, "Smooth Exploration
for Robotic Reinforcement Learning", CoRL 2021): continuous actions explored with noise that
is a function of the state, held fixed for several steps, instead of fresh noise at every step.

The policy's action is ``mean(s) + f(s) @ W``: ``f(s)`` are the features the actor computes
its mean from (its last hidden layer), and ``W`` an *exploration matrix* of shape
``(features, actions)`` drawn from a centred Gaussian whose standard deviations ``sigma`` are
learned (:class:`StateDependentNoise`). Given ``f(s)``, each action entry is then Gaussian with
variance ``sum_j f_j(s)^2 sigma_jk^2``: :class:`StateDependentGaussian` is that diagonal
Gaussian, which the losses read (log-probabilities, entropy) whatever the matrix was.

Each environment has its own matrix. The matrices are the acting side's state
(:class:`ExplorationMatrices`, kept by the engine's :class:`~hydra_pipeline.engine.acting.Actor`
beside a recurrent model's memory and saved in checkpoints), so training, evaluation and a
:class:`~hydra_pipeline.policy.Policy` explore independently. They are drawn anew at the start
of every rollout and, with ``sample_freq`` ``n > 0``, every ``n`` steps within it
(Stable-Baselines3's ``sde_sample_freq``; ``-1``: once per rollout).

The options follow Stable-Baselines3's (``use_sde``, ``sde_sample_freq``, ``log_std_init``,
``full_std``, ``use_expln``; ``learn_features``, which its PPO keeps off) without its
``squash_output`` (a tanh on actions): actions are clipped to the task's bounds as for any
Gaussian policy. Any model can use it: compute the mean from features and call
:meth:`StateDependentNoise.distribution` (see :class:`~hydra_pipeline.models.MLPActorCritic`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hydra_pipeline.arguments import require_at_least
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.models.distributions import DiagonalGaussian

__all__ = ["ExplorationMatrices", "StateDependentGaussian", "StateDependentNoise"]


class ExplorationMatrices:
    """The exploration matrices of a batch of environments, and when to draw them again.

    The matrices are drawn with torch's global generator at the first draw after
    :meth:`restart` (the start of a rollout, a reset), every ``sample_freq`` draws after that
    when ``sample_freq > 0``, and whenever the batch size or the matrices' shape changes.

    Attributes:
        matrices: ``(batch, features, actions)``: each environment's matrix (``None`` before
            the first draw).
        draws: Draws since the last :meth:`restart`.
    """

    def __init__(self) -> None:
        self.matrices: Tensor | None = None
        self.draws = 0

    def restart(self) -> None:
        """Draw new matrices at the next :meth:`draw` (the start of a rollout)."""
        self.draws = 0

    def draw(self, std: Tensor, batch_size: int, sample_freq: int) -> Tensor:
        """The matrices for the next step of ``batch_size`` environments, drawn anew from
        ``N(0, std^2)`` (``std``: ``(features, actions)``) when due.

        Args:
            std: The standard deviation of each matrix entry.
            batch_size: Environments acting.
            sample_freq: Draw new matrices every this many draws (``<= 0``: only after a
                restart).
        """
        shape = (batch_size, *std.shape)
        due = (
            self.matrices is None
            or tuple(self.matrices.shape) != shape
            or self.draws == 0
            or (sample_freq > 0 and self.draws % sample_freq == 0)
        )
        if due:
            std = std.detach()
            self.matrices = torch.randn(shape, dtype=std.dtype, device=std.device) * std
        self.draws += 1
        assert self.matrices is not None  # drawn above when missing
        return self.matrices

    def state_dict(self) -> dict[str, Any]:
        """The matrices (on the CPU) and the draws since the last restart."""
        return {
            "matrices": None if self.matrices is None else self.matrices.cpu().clone(),
            "draws": self.draws,
        }

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device) -> None:
        """Restore what :meth:`state_dict` returned, with the matrices on ``device``."""
        matrices = state["matrices"]
        self.matrices = None if matrices is None else matrices.to(device)
        self.draws = int(state["draws"])


class StateDependentGaussian(DiagonalGaussian):
    """gSDE's action distribution: a diagonal Gaussian around ``mean`` whose variance comes
    from the features and the matrices' standard deviations, and samples drawn through
    exploration matrices (:meth:`sample_with`; ``sample`` draws fresh noise, as if each row
    had a new matrix).

    Args:
        mean: ``(batch, *action_shape)``.
        features: ``(batch, features)``: what the noise is a function of.
        std: ``(features, actions)``: the standard deviation of each matrix entry.
        sample_freq: When :meth:`sample_with` draws new matrices (see
            :class:`ExplorationMatrices`).
        epsilon: Added to the variance, so that it never vanishes.

    Attributes:
        features: The features the noise is computed from.
        std: The matrices' standard deviations.
        sample_freq: See above.
    """

    def __init__(
        self, mean: Tensor, features: Tensor, std: Tensor, sample_freq: int, epsilon: float
    ) -> None:
        variance = features.square() @ std.square()  # (batch, actions)
        batch_dims = features.dim() - 1
        super().__init__(mean, 0.5 * (variance + epsilon).log().view_as(mean), batch_dims)
        self.features = features
        self.std = std
        self.sample_freq = sample_freq

    def sample_with(self, exploration: ExplorationMatrices) -> Tensor:
        """An action per row, the noise of row ``i`` being its features times matrix ``i`` of
        ``exploration`` (drawn anew when due)."""
        matrices = exploration.draw(self.std, self.features.shape[0], self.sample_freq)
        noise = torch.bmm(self.features.detach().unsqueeze(1), matrices).squeeze(1)
        return self.mean + noise.view_as(self.mean)


class StateDependentNoise(nn.Module):
    """gSDE's learned part: the log standard deviations of the exploration matrices' entries.

    Args:
        features: Size of the features the noise is a function of (the actor's last hidden
            layer).
        action_shape: Shape of one action.
        initial_log_std: The log standard deviations' initial value (SB3's ``log_std_init``).
        sample_freq: Draw new exploration matrices every this many steps of a rollout
            (``-1``: once per rollout; SB3's ``sde_sample_freq``).
        full_std: One standard deviation per feature and action entry; ``False``: one per
            feature, shared by the action entries.
        use_expln: Standard deviations through ``expln`` (``exp(x)`` for ``x <= 0``,
            ``log(1 + x) + 1`` above), which grows slowly, instead of ``exp``.
        learn_features: Let the losses' gradients reach the features through the variance;
            ``False`` (SB3's PPO) treats them as constants there.
        epsilon: Added to the action variance so that it never vanishes.

    Raises:
        InvalidArgumentError: ``features`` or an action dimension is below 1, or
            ``sample_freq`` is 0.
    """

    def __init__(
        self,
        features: int,
        action_shape: Sequence[int],
        initial_log_std: float = 0.0,
        *,
        sample_freq: int = -1,
        full_std: bool = True,
        use_expln: bool = False,
        learn_features: bool = False,
        epsilon: float = 1e-6,
    ) -> None:
        super().__init__()
        require_at_least("features", features, 1)
        for index, size in enumerate(action_shape):
            require_at_least(f"action_shape.{index}", size, 1)
        if sample_freq == 0:
            raise InvalidArgumentError(
                "sde_sample_freq",
                "must be a number of steps >= 1, or -1 for once per rollout",
                sample_freq,
            )
        self.action_shape = tuple(action_shape)
        self.sample_freq = int(sample_freq)
        self.use_expln = bool(use_expln)
        self.learn_features = bool(learn_features)
        self.epsilon = float(epsilon)
        columns = math.prod(self.action_shape) if full_std else 1
        self.log_std = nn.Parameter(torch.full((features, columns), float(initial_log_std)))

    def std(self, log_std: Tensor | None = None) -> Tensor:
        """``(features, actions)``: the standard deviation of each matrix entry, from
        ``log_std`` (``None``: this module's own; several members' log standard deviations
        stacked on a leading axis give theirs, ``(members, features, actions)``)."""
        log_std = self.log_std if log_std is None else log_std
        if self.use_expln:
            # log1p of the clamped value: no NaN gradients from the branch not taken.
            std = torch.where(log_std <= 0, log_std.exp(), torch.log1p(log_std.clamp(min=0)) + 1.0)
        else:
            std = log_std.exp()
        return std.expand(*std.shape[:-1], math.prod(self.action_shape))

    def distribution(
        self, mean: Tensor, features: Tensor, log_std: Tensor | None = None
    ) -> StateDependentGaussian:
        """The action distribution around ``mean`` ``(batch, *action_shape)`` for the
        ``features`` ``(batch, features)`` of the same states (with ``log_std`` of several
        members, see :meth:`std`: ``(members, batch, ...)`` each)."""
        if not self.learn_features:
            features = features.detach()
        std = self.std(log_std)
        return StateDependentGaussian(mean, features, std, self.sample_freq, self.epsilon)
