"""The scan layers (the recurrent cores' CPU path) compute what torch's GRU and LSTM compute,
with exact gradients, and forget their state where a sequence resets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hydra_pipeline.models import RecurrentActorCritic
from hydra_pipeline.models.scan import gru_layer, lstm_layer
from hydra_pipeline.tasks import CartPoleTask

STEPS, BATCH, FEATURES, HIDDEN = 7, 3, 5, 4


def layer_weights(module: nn.GRU | nn.LSTM) -> tuple[torch.Tensor, ...]:
    return (module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0)


def inputs(*, requires_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A sequence, a state and a cell in float64 (for gradcheck)."""
    torch.manual_seed(0)
    options = {"dtype": torch.float64, "requires_grad": requires_grad}
    return (
        torch.randn(STEPS, BATCH, FEATURES, **options),
        torch.randn(BATCH, HIDDEN, **options),
        torch.randn(BATCH, HIDDEN, **options),
    )


def resets(probability: float = 0.3) -> torch.Tensor:
    """A ``keep`` mask: 0 where a sequence resets (at least one reset, at least one not)."""
    keep = torch.rand(STEPS, BATCH, 1, generator=torch.Generator().manual_seed(1)) > probability
    keep[2, 0], keep[3, 1] = False, True
    return keep.double()


class TestGRU:
    def test_equals_torch_without_resets(self) -> None:
        torch.manual_seed(0)
        core = nn.GRU(FEATURES, HIDDEN).double()
        x, h, _ = inputs()
        expected, expected_final = core(x, h.unsqueeze(0))
        keep = torch.ones(STEPS, BATCH, 1, dtype=torch.float64)
        outputs, final = gru_layer(x, h, keep, layer_weights(core))
        torch.testing.assert_close(outputs, expected)
        torch.testing.assert_close(final, expected_final[0])

    def test_gradients_are_exact_with_resets(self) -> None:
        torch.manual_seed(0)
        core = nn.GRU(FEATURES, HIDDEN).double()
        x, h, _ = inputs()
        keep = resets()
        assert torch.autograd.gradcheck(
            lambda x, h, *w: gru_layer(x, h, keep, w), (x, h, *layer_weights(core))
        )

    def test_a_reset_forgets_what_came_before(self) -> None:
        """After a reset, a sequence continues as a fresh one started there from zeros."""
        torch.manual_seed(0)
        core = nn.GRU(FEATURES, HIDDEN).double()
        x, h, _ = inputs(requires_grad=False)
        keep = torch.ones(STEPS, BATCH, 1, dtype=torch.float64)
        keep[3] = 0
        outputs, _ = gru_layer(x, h, keep, layer_weights(core))
        fresh, _ = core(x[3:], torch.zeros(1, BATCH, HIDDEN, dtype=torch.float64))
        torch.testing.assert_close(outputs[3:], fresh)


class TestLSTM:
    def test_equals_torch_without_resets(self) -> None:
        torch.manual_seed(0)
        core = nn.LSTM(FEATURES, HIDDEN).double()
        x, h, c = inputs()
        expected, (expected_h, expected_c) = core(x, (h.unsqueeze(0), c.unsqueeze(0)))
        keep = torch.ones(STEPS, BATCH, 1, dtype=torch.float64)
        outputs, final, final_cell = lstm_layer(x, h, c, keep, layer_weights(core))
        torch.testing.assert_close(outputs, expected)
        torch.testing.assert_close(final, expected_h[0])
        torch.testing.assert_close(final_cell, expected_c[0])

    def test_gradients_are_exact_with_resets(self) -> None:
        torch.manual_seed(0)
        core = nn.LSTM(FEATURES, HIDDEN).double()
        x, h, c = inputs()
        keep = resets()
        assert torch.autograd.gradcheck(
            lambda x, h, c, *w: lstm_layer(x, h, c, keep, w), (x, h, c, *layer_weights(core))
        )


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_the_model_scans_as_it_steps_through_stretches(rnn_type: str, num_layers: int) -> None:
    """On the CPU a replay goes through the scan; its outputs, memory and gradients equal
    those of the library's layers called stretch by stretch (the path of GPUs and acting)."""
    task = CartPoleTask(4)
    torch.manual_seed(0)
    model = RecurrentActorCritic(
        task.observation_shape, task.action_space, rnn_type=rnn_type, num_layers=num_layers
    )
    steps, batch = 12, 4
    observations = torch.randn(steps * batch, *task.observation_shape)
    starts = torch.rand(steps, batch, generator=torch.Generator().manual_seed(2)) < 0.2
    memory = torch.randn_like(model.initial_memory(batch))
    results = []
    tower = model.tower
    for path in (tower._scan, tower._stretches):
        model.zero_grad()
        features = tower.encoder(observations).view(steps, batch, -1)
        outputs, final = path(features, memory, starts)
        (outputs.square().sum() + final.sum()).backward()
        gradients = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((outputs.detach(), final.detach(), gradients))
    (scanned, scanned_final, scanned_grads), (stretched, stretched_final, stretched_grads) = results
    torch.testing.assert_close(scanned, stretched, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scanned_final, stretched_final, atol=1e-5, rtol=1e-5)
    for ours, theirs in zip(scanned_grads, stretched_grads, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
