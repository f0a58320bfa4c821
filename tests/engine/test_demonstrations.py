"""ExpertDemonstrations: recorded expert pairs, shuffled epochs, resumable order."""

from __future__ import annotations

import pytest
import torch

from hydra_pipeline import InvalidArgumentError
from hydra_pipeline.tasks import CartPoleTask, ExpertDemonstrations, StepResult
from hydra_pipeline.tasks.cartpole import EXPERT_GAINS


class RecordingCartPole(CartPoleTask):
    """Remembers each (observation, expert action) pair the expert was asked for."""

    def __init__(self, num_envs: int) -> None:
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.current: torch.Tensor | None = None
        self.closed = 0
        super().__init__(num_envs)

    def reset(self, *, seed: int | None = None) -> torch.Tensor:
        self.current = super().reset(seed=seed)
        return self.current

    def step(self, actions: torch.Tensor) -> StepResult:
        result = super().step(actions)
        self.current = result.observations
        return result

    def expert_actions(self) -> torch.Tensor:
        actions = super().expert_actions()
        assert self.current is not None
        self.pairs.append((self.current.clone(), actions.clone()))
        return actions

    def close(self) -> None:
        self.closed += 1


class NoExpertCartPole(CartPoleTask):
    has_expert = False


def epoch(demonstrations: ExpertDemonstrations) -> list[dict[str, torch.Tensor]]:
    return list(demonstrations())


def concatenated(batches: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.cat([b["observations"] for b in batches]),
        torch.cat([b["expert_actions"] for b in batches]),
    )


def sorted_pairs(observations: torch.Tensor, actions: torch.Tensor) -> list[tuple[float, ...]]:
    return sorted((*o.tolist(), float(a)) for o, a in zip(observations, actions, strict=True))


class TestRecording:
    def test_pairs_are_the_experts(self) -> None:
        """An epoch serves exactly the (observation, expert action) pairs the expert produced,
        num_steps per environment, and the task is closed after recording."""
        task = RecordingCartPole(num_envs=3)
        demonstrations = ExpertDemonstrations(task, num_steps=20, batch_size=7, seed=1)
        observations, actions = concatenated(epoch(demonstrations))
        assert observations.shape == (60, 4) and actions.shape == (60,)
        assert actions.dtype == torch.int64
        expected_observations = torch.cat([o for o, _ in task.pairs])
        expected_actions = torch.cat([a for _, a in task.pairs])
        assert len(task.pairs) == 20
        assert sorted_pairs(observations, actions) == sorted_pairs(
            expected_observations, expected_actions
        )
        assert task.closed == 1

    def test_actions_follow_the_linear_rule(self) -> None:
        """Each action is 1 exactly when the expert's gains dotted with the observation are
        positive (checked where the float32 observation leaves no doubt)."""
        demonstrations = ExpertDemonstrations(CartPoleTask(4), num_steps=50, batch_size=32)
        observations, actions = concatenated(epoch(demonstrations))
        scores = observations.double() @ torch.tensor(EXPERT_GAINS, dtype=torch.float64)
        clear = scores.abs() > 1e-5
        assert int(clear.sum()) > 150
        assert torch.equal(actions[clear], (scores[clear] > 0).long())
        assert 0 < int(actions.sum()) < len(actions)  # both actions occur

    def test_records_once(self) -> None:
        """The recording is made on the first call only."""
        task = RecordingCartPole(num_envs=2)
        demonstrations = ExpertDemonstrations(task, num_steps=5, batch_size=4)
        epoch(demonstrations)
        epoch(demonstrations)
        assert len(task.pairs) == 5 and task.closed == 1

    def test_batch_sizes(self) -> None:
        """Minibatches hold batch_size pairs; the last one of an epoch holds the rest."""
        demonstrations = ExpertDemonstrations(CartPoleTask(2), num_steps=11, batch_size=5)
        assert [len(b["observations"]) for b in epoch(demonstrations)] == [5, 5, 5, 5, 2]

    def test_same_seed_same_recording(self) -> None:
        """Two recordings with the same seed are identical, whatever the task's prior state."""
        first = ExpertDemonstrations(CartPoleTask(2), num_steps=10, batch_size=4, seed=3)
        other_task = CartPoleTask(2)
        other_task.step(torch.ones(2, dtype=torch.int64))
        second = ExpertDemonstrations(other_task, num_steps=10, batch_size=4, seed=3)
        for a, b in zip(epoch(first), epoch(second), strict=True):
            assert torch.equal(a["observations"], b["observations"])
            assert torch.equal(a["expert_actions"], b["expert_actions"])


class TestEpochs:
    def test_epochs_reshuffle(self) -> None:
        """Each call serves the same pairs in a new order."""
        demonstrations = ExpertDemonstrations(CartPoleTask(2), num_steps=20, batch_size=8)
        first, second = concatenated(epoch(demonstrations)), concatenated(epoch(demonstrations))
        assert sorted_pairs(*first) == sorted_pairs(*second)
        assert not torch.equal(first[0], second[0])
        assert demonstrations.state_dict() == {"epoch": 2}

    def test_state_dict_reproduces_order(self) -> None:
        """A fresh instance loaded with a saved state serves the same minibatches next."""
        original = ExpertDemonstrations(CartPoleTask(2), num_steps=20, batch_size=6, seed=5)
        epoch(original)
        state = original.state_dict()
        expected = epoch(original)
        restored = ExpertDemonstrations(CartPoleTask(2), num_steps=20, batch_size=6, seed=5)
        restored.load_state_dict(state)
        served = epoch(restored)
        assert len(served) == len(expected)
        for a, b in zip(served, expected, strict=True):
            assert torch.equal(a["observations"], b["observations"])
            assert torch.equal(a["expert_actions"], b["expert_actions"])
        # Without the state, the first epoch's order is served instead.
        fresh = epoch(ExpertDemonstrations(CartPoleTask(2), num_steps=20, batch_size=6, seed=5))
        assert not torch.equal(fresh[0]["observations"], expected[0]["observations"])


class TestValidation:
    def test_task_without_expert(self) -> None:
        """A task without an expert is refused."""
        with pytest.raises(InvalidArgumentError, match="'task' must have an expert to record"):
            ExpertDemonstrations(NoExpertCartPole(2))

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ({"num_steps": 0}, r"'num_steps' must be >= 1 \(got 0\)"),
            ({"batch_size": 0}, r"'batch_size' must be >= 1 \(got 0\)"),
        ],
    )
    def test_sizes(self, arguments: dict[str, int], message: str) -> None:
        """num_steps and batch_size must be positive."""
        with pytest.raises(InvalidArgumentError, match=message):
            ExpertDemonstrations(CartPoleTask(2), **arguments)
