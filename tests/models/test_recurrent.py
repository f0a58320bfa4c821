"""RecurrentActorCritic: the memory protocol, reset at episode starts, sequences, the config."""

from __future__ import annotations

import hydra.utils
import pytest
import torch
from omegaconf import OmegaConf

from hydra_pipeline import InvalidArgumentError
from hydra_pipeline.config import RecurrentActorCriticConf
from hydra_pipeline.models import (
    Categorical,
    DiagonalGaussian,
    MLPActorCritic,
    RecurrentActorCritic,
    has_memory,
    reset_memory,
)
from hydra_pipeline.tasks import ContinuousActions, DiscreteActions


def model(rnn_type: str = "gru", **kwargs: object) -> RecurrentActorCritic:
    torch.manual_seed(0)
    return RecurrentActorCritic(
        (3,), DiscreteActions(2), rnn_type=rnn_type, hidden_size=8, **kwargs
    )


class TestShapes:
    @pytest.mark.parametrize(("rnn_type", "rows"), [("gru", 2), ("lstm", 4)])
    def test_memory_and_outputs(self, rnn_type: str, rows: int) -> None:
        """Memory is (batch, layers or 2 x layers, hidden); the output covers steps x batch."""
        net = model(rnn_type, num_layers=2)
        memory = net.initial_memory(5)
        assert memory.shape == (5, rows, 8) and not bool(memory.any())
        starts = torch.zeros(4, 5, dtype=torch.bool)
        output, after = net(torch.randn(20, 3), memory, starts)
        assert isinstance(output.distribution, Categorical)
        assert output.distribution.logits.shape == (20, 2)
        assert output.values.shape == (20,)
        assert after.shape == memory.shape and bool(after.any())

    def test_continuous_actions(self) -> None:
        """Continuous actions: a diagonal Gaussian with a learned log std."""
        space = ContinuousActions((2,), (-1.0, -1.0), (1.0, 1.0))
        net = RecurrentActorCritic((3,), space, hidden_size=8, initial_log_std=-0.5)
        output, _ = net(torch.randn(6, 3), net.initial_memory(3), torch.zeros(2, 3).bool())
        assert isinstance(output.distribution, DiagonalGaussian)
        assert output.distribution.sample().shape == (6, 2)
        assert net.log_std is not None and float(net.log_std.detach()[0]) == -0.5

    def test_has_memory(self) -> None:
        """The protocol tells models with memory from memoryless ones."""
        assert has_memory(model())
        assert not has_memory(MLPActorCritic((3,), DiscreteActions(2)))

    @pytest.mark.parametrize(("rnn_type", "rows"), [("gru", 2), ("lstm", 4)])
    def test_a_separate_critic_remembers_on_its_own(self, rnn_type: str, rows: int) -> None:
        """With separate_critic the memory holds both cores' rows, and the value loss's
        gradient reaches the critic's core only: the policy's memory is the actor's."""
        net = model(rnn_type, separate_critic=True, head_hidden_sizes=(4,))
        memory = net.initial_memory(3)
        assert memory.shape == (3, rows, 8)
        starts = torch.zeros(2, 3, dtype=torch.bool)
        output, after = net(torch.randn(6, 3), memory, starts)
        assert after.shape == memory.shape
        output.values.sum().backward()
        assert net.critic_tower is not None
        assert all(p.grad is None or not p.grad.any() for p in net.tower.parameters())
        assert all(p.grad is not None for p in net.critic_tower.parameters())

    def test_weights_of_the_earlier_layout_load(self) -> None:
        """A checkpoint of the model before its towers (encoder.*, core.*, linear heads)
        loads into today's model."""
        net = model()
        earlier = {}
        for name, value in net.state_dict().items():
            name = name.removeprefix("tower.")
            for head in ("actor", "critic"):
                name = name.replace(f"{head}.0.", f"{head}.")
            earlier[name] = value.clone() + 1
        fresh = model()
        fresh.load_state_dict(earlier)
        for name, value in fresh.state_dict().items():
            torch.testing.assert_close(value, net.state_dict()[name] + 1)

    def test_bad_arguments(self) -> None:
        with pytest.raises(InvalidArgumentError, match="'rnn_type' must be one of"):
            model("rnn")
        with pytest.raises(InvalidArgumentError, match="'hidden_size' must be >= 1"):
            RecurrentActorCritic((3,), DiscreteActions(2), hidden_size=0)


class TestSequences:
    @pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
    def test_steps_one_at_a_time_equal_the_whole_sequence(self, rnn_type: str) -> None:
        """Feeding a sequence step by step (as acting does) gives the outputs and memory of
        one call over all of it (as an update's replay does), episode starts included."""
        net = model(rnn_type)
        observations = torch.randn(6, 2, 3)
        starts = torch.zeros(6, 2, dtype=torch.bool)
        starts[0] = True
        starts[3, 1] = True
        starts[4, 0] = True
        memory = torch.randn(2, *net.initial_memory(1).shape[1:])
        whole, whole_memory = net(observations.flatten(0, 1), memory, starts)
        logits, values = [], []
        stepped = memory
        for t in range(6):
            output, stepped = net(observations[t], stepped, starts[t : t + 1])
            logits.append(output.distribution.logits)
            values.append(output.values)
        assert isinstance(whole.distribution, Categorical)
        torch.testing.assert_close(whole.distribution.logits, torch.cat(logits))
        torch.testing.assert_close(whole.values, torch.cat(values))
        torch.testing.assert_close(whole_memory, stepped)

    def test_memory_is_reset_at_episode_starts(self) -> None:
        """On a hand-made sequence: where an episode starts, the outputs from there on are those
        of a fresh model on that episode's observations, whatever came before; before the
        start, and in the other sequence, the memory carries through."""
        net = model()
        observations = torch.randn(5, 2, 3)
        starts = torch.zeros(5, 2, dtype=torch.bool)
        starts[2, 0] = True  # sequence 0 starts an episode at step 2
        memory = torch.randn(2, 1, 8)  # what it remembered of earlier episodes
        output, _ = net(observations.flatten(0, 1), memory, starts)
        values = output.values.view(5, 2)
        fresh, _ = net(observations[2:, :1].flatten(0, 1), net.initial_memory(1), starts[2:, :1])
        torch.testing.assert_close(values[2:, 0], fresh.values)
        # Without the start, the same steps depend on the earlier memory.
        carried, _ = net(observations.flatten(0, 1), memory, torch.zeros(5, 2, dtype=torch.bool))
        carried_values = carried.values.view(5, 2)
        assert not torch.allclose(carried_values[2:, 0], fresh.values)
        torch.testing.assert_close(carried_values[:2], values[:2])
        torch.testing.assert_close(carried_values[:, 1], values[:, 1])

    def test_reset_memory_zeroes_the_starting_rows(self) -> None:
        memory = torch.ones(3, 2, 4)
        reset = reset_memory(memory, torch.tensor([False, True, False]))
        assert reset[1].abs().sum() == 0 and bool((reset[[0, 2]] == 1).all())


class TestConfig:
    @pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
    def test_schema_instantiates(self, rnn_type: str) -> None:
        """The schema builds the model, given the task's spaces as the engine passes them."""
        cfg = OmegaConf.structured(RecurrentActorCriticConf)
        cfg.rnn_type = rnn_type
        cfg.hidden_size = 16
        built = hydra.utils.instantiate(
            cfg, observation_shape=(4,), action_space=DiscreteActions(2)
        )
        assert isinstance(built, RecurrentActorCritic)
        assert isinstance(built.tower.core, torch.nn.GRU if rnn_type == "gru" else torch.nn.LSTM)
        assert built.tower.core.hidden_size == 16
