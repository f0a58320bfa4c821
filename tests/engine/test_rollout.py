"""RolloutStorage: minibatches split by environment, expert actions, advantages."""

from __future__ import annotations

import pytest
import torch

from hydra_pipeline.engine import Minibatch, RolloutStorage

NUM_STEPS, NUM_ENVS = 5, 7


def filled_storage(num_steps: int = NUM_STEPS, num_envs: int = NUM_ENVS) -> RolloutStorage:
    """A storage whose entries encode their (step, environment) position."""
    storage = RolloutStorage(num_steps, num_envs, (3,), (), torch.int64, torch.device("cpu"))
    steps = torch.arange(num_steps, dtype=torch.float32).view(-1, 1).expand(num_steps, num_envs)
    envs = torch.arange(num_envs, dtype=torch.float32).view(1, -1).expand(num_steps, num_envs)
    code = 100 * steps + envs  # unique per (t, e)
    storage.observations.copy_(torch.stack((steps, envs, code), dim=-1))
    storage.actions.copy_(code.long())
    storage.expert_actions.copy_(code.long() + 1)
    storage.log_probs.copy_(code + 0.25)
    storage.values.copy_(code + 0.5)
    storage.returns.copy_(code + 0.75)
    storage.advantages.copy_(code + 0.125)
    storage.normalized_advantages.copy_(code + 0.375)
    return storage


def positions(minibatch: Minibatch) -> list[tuple[int, int]]:
    """The (step, environment) of every sample of a minibatch, in order."""
    return [(int(s), int(e)) for s, e, _ in minibatch.observations.tolist()]


class TestMinibatches:
    @pytest.mark.parametrize("num_mini_batch", [1, 2, 3, 7])
    def test_partition_of_environments(self, num_mini_batch: int) -> None:
        """Each epoch, every environment lands in exactly one minibatch, with all its steps in
        time order, and the minibatch sizes are as even as possible."""
        torch.manual_seed(0)
        storage = filled_storage()
        for _ in range(3):
            batches = list(storage.minibatches(num_mini_batch, with_expert_actions=False))
            assert len(batches) == num_mini_batch
            seen: list[int] = []
            for minibatch in batches:
                samples = positions(minibatch)
                envs = list(dict.fromkeys(env for _, env in samples))
                seen += envs
                # Per environment: steps 0..T-1 in order.
                for env in envs:
                    assert [s for s, e in samples if e == env] == list(range(NUM_STEPS))
                assert len(samples) == NUM_STEPS * len(envs)
            assert sorted(seen) == list(range(NUM_ENVS))
            sizes = sorted(len(positions(b)) // NUM_STEPS for b in batches)
            assert sizes[-1] - sizes[0] <= 1

    def test_fields_line_up(self) -> None:
        """Every field of a sample comes from the same (step, environment) as its observation."""
        torch.manual_seed(1)
        storage = filled_storage()
        for minibatch in storage.minibatches(3, with_expert_actions=True):
            code = minibatch.observations[:, 2]
            assert minibatch.actions is not None and minibatch.expert_actions is not None
            assert torch.equal(minibatch.actions, code.long())
            assert torch.equal(minibatch.expert_actions, code.long() + 1)
            assert torch.equal(minibatch.old_log_probs, code + 0.25)
            assert torch.equal(minibatch.old_values, code + 0.5)
            assert torch.equal(minibatch.returns, code + 0.75)
            assert torch.equal(minibatch.advantages, code + 0.125)
            assert torch.equal(minibatch.normalized_advantages, code + 0.375)

    def test_environment_order_is_random(self) -> None:
        """The split changes between epochs (the environments are shuffled)."""
        torch.manual_seed(2)
        storage = filled_storage()
        splits = {
            tuple(
                tuple(sorted({e for _, e in positions(b)}))
                for b in storage.minibatches(2, with_expert_actions=False)
            )
            for _ in range(10)
        }
        assert len(splits) > 1

    def test_with_expert_actions_controls_field(self) -> None:
        """expert_actions is filled only when asked for."""
        storage = filled_storage()
        without = list(storage.minibatches(2, with_expert_actions=False))
        with_expert = list(storage.minibatches(2, with_expert_actions=True))
        assert all(b.expert_actions is None for b in without)
        assert all(b.expert_actions is not None for b in with_expert)
        assert all(b.actions is not None for b in without)

    def test_continuous_action_shape(self) -> None:
        """Continuous actions keep their shape after flattening steps and environments."""
        storage = RolloutStorage(4, 3, (2,), (2, 2), torch.float32, torch.device("cpu"))
        storage.actions.copy_(torch.randn(4, 3, 2, 2))
        (minibatch,) = storage.minibatches(1, with_expert_actions=True)
        assert minibatch.actions is not None and minibatch.expert_actions is not None
        assert minibatch.actions.shape == (12, 2, 2)
        assert minibatch.expert_actions.shape == (12, 2, 2)
        assert minibatch.observations.shape == (12, 2)


class TestTransitionMinibatches:
    @pytest.mark.parametrize("num_mini_batch", [1, 4, 35])
    def test_every_transition_exactly_once_per_epoch(self, num_mini_batch: int) -> None:
        """split=transitions partitions the T x N transitions, shuffled across steps and
        environments, into minibatches of as even sizes as possible."""
        torch.manual_seed(2)
        storage = filled_storage()
        orders = []
        for _ in range(3):
            batches = list(storage.minibatches(num_mini_batch, False, split="transitions"))
            assert len(batches) == num_mini_batch
            samples = [position for b in batches for position in positions(b)]
            assert sorted(samples) == [(s, e) for s in range(NUM_STEPS) for e in range(NUM_ENVS)]
            sizes = sorted(len(positions(b)) for b in batches)
            assert sizes[-1] - sizes[0] <= 1
            orders.append(samples)
        assert orders[0] != orders[1]  # reshuffled each epoch
        first = positions(batches[0])
        if 4 <= len(first) < NUM_STEPS * NUM_ENVS:  # a minibatch mixes environments and steps
            assert len({e for _, e in first}) > 1 and len({s for s, _ in first}) > 1

    def test_fields_line_up(self) -> None:
        torch.manual_seed(3)
        for minibatch in filled_storage().minibatches(4, True, split="transitions"):
            code = minibatch.observations[:, 2]
            assert minibatch.expert_actions is not None
            assert torch.equal(minibatch.actions, code.long())
            assert torch.equal(minibatch.expert_actions, code.long() + 1)
            assert torch.equal(minibatch.returns, code + 0.75)


class TestExplainedVariance:
    def test_by_definition(self) -> None:
        storage = filled_storage()
        storage.values.normal_()
        storage.compute_advantages(storage.returns.clone())
        expected = 1 - (storage.returns - storage.values).var() / storage.returns.var()
        assert storage.explained_variance() == pytest.approx(float(expected), rel=1e-3)
        storage.values.copy_(storage.returns)
        storage.compute_advantages(storage.returns.clone())
        assert storage.explained_variance() == 1.0


class TestAdvantages:
    def test_raw_and_normalized(self) -> None:
        """advantages = returns - values; normalised with the rollout's mean and sample std."""
        storage = RolloutStorage(2, 2, (1,), (), torch.int64, torch.device("cpu"))
        storage.values.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        returns = torch.tensor([[2.0, 2.0], [5.0, 8.0]])
        storage.compute_advantages(returns)
        assert storage.returns.tolist() == returns.tolist()
        assert storage.advantages.tolist() == [[1.0, 0.0], [2.0, 4.0]]
        # mean 1.75; sample variance ((-.75)^2 + 1.75^2 + .25^2 + 2.25^2) / 3 = 8.75 / 3.
        std = (8.75 / 3) ** 0.5
        expected = [[(a - 1.75) / (std + 1e-5) for a in row] for row in [[1, 0], [2, 4]]]
        torch.testing.assert_close(storage.normalized_advantages, torch.tensor(expected))

    def test_normalized_has_zero_mean_unit_std(self) -> None:
        """On random data the normalised advantages have mean 0 and std 1."""
        generator = torch.Generator().manual_seed(3)
        storage = RolloutStorage(8, 4, (1,), (), torch.int64, torch.device("cpu"))
        storage.values.copy_(torch.randn(8, 4, generator=generator))
        storage.compute_advantages(5.0 + 3.0 * torch.randn(8, 4, generator=generator))
        assert float(storage.normalized_advantages.mean()) == pytest.approx(0.0, abs=1e-6)
        assert float(storage.normalized_advantages.std()) == pytest.approx(1.0, abs=1e-4)

    def test_single_sample_normalizes_to_zero(self) -> None:
        """One step of one environment: the lone advantage normalises to 0, not NaN."""
        storage = RolloutStorage(1, 1, (1,), (), torch.int64, torch.device("cpu"))
        storage.values.fill_(1.0)
        storage.compute_advantages(torch.tensor([[3.0]]))
        assert storage.advantages.tolist() == [[2.0]]
        assert storage.normalized_advantages.tolist() == [[0.0]]
