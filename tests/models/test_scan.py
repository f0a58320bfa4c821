"""The scan layers (the recurrent cores' CPU path) compute what torch's GRU and LSTM compute,
with exact gradients, forget their state where a sequence resets, and step a group of layers
as each alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hydra_pipeline.models import RecurrentActorCritic
from hydra_pipeline.models.recurrent import run_towers
from hydra_pipeline.models.scan import gru_layer, gru_step, lstm_layer, lstm_step
from hydra_pipeline.tasks import CartPoleTask

STEPS, BATCH, FEATURES, HIDDEN = 7, 3, 5, 4


def layer_weights(*modules: nn.GRU | nn.LSTM) -> tuple[torch.Tensor, ...]:
    """The first layer's weights of each module, stacked as a group."""
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    return tuple(torch.stack([getattr(module, name) for module in modules]) for name in names)


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


def every_step() -> torch.Tensor:
    return torch.ones(STEPS, BATCH, 1, dtype=torch.float64)


class TestGRU:
    def test_equals_torch_without_resets(self) -> None:
        torch.manual_seed(0)
        core = nn.GRU(FEATURES, HIDDEN).double()
        x, h, _ = inputs()
        expected, expected_final = core(x, h.unsqueeze(0))
        outputs, final = gru_layer(x[None], h[None], every_step(), layer_weights(core))
        torch.testing.assert_close(outputs[0], expected)
        torch.testing.assert_close(final, expected_final)

    def test_gradients_are_exact_with_resets(self) -> None:
        torch.manual_seed(0)
        core = nn.GRU(FEATURES, HIDDEN).double()
        x, h, _ = inputs()
        keep = resets()
        assert torch.autograd.gradcheck(
            lambda x, h, *w: gru_layer(x[None], h[None], keep, w), (x, h, *layer_weights(core))
        )

    def test_a_reset_forgets_what_came_before(self) -> None:
        """After a reset, a sequence continues as a fresh one started there from zeros."""
        torch.manual_seed(0)
        core = nn.GRU(FEATURES, HIDDEN).double()
        x, h, _ = inputs(requires_grad=False)
        keep = every_step()
        keep[3] = 0
        outputs, _ = gru_layer(x[None], h[None], keep, layer_weights(core))
        fresh, _ = core(x[3:], torch.zeros(1, BATCH, HIDDEN, dtype=torch.float64))
        torch.testing.assert_close(outputs[0, 3:], fresh)

    def test_a_group_steps_each_member_as_alone(self) -> None:
        """Two layers scanned as a group give each layer's own outputs and gradients."""
        torch.manual_seed(0)
        cores = [nn.GRU(FEATURES, HIDDEN).double() for _ in range(2)]
        x, h, _ = inputs()
        keep = resets()
        assert torch.autograd.gradcheck(
            lambda x, h, *w: gru_layer(torch.stack((x, 2 * x)), torch.stack((h, -h)), keep, w),
            (x, h, *layer_weights(*cores)),
        )
        together, _ = gru_layer(
            torch.stack((x, 2 * x)), torch.stack((h, -h)), keep, layer_weights(*cores)
        )
        alone, _ = gru_layer((2 * x)[None], (-h)[None], keep, layer_weights(cores[1]))
        torch.testing.assert_close(together[1], alone[0])


class TestLSTM:
    def test_equals_torch_without_resets(self) -> None:
        torch.manual_seed(0)
        core = nn.LSTM(FEATURES, HIDDEN).double()
        x, h, c = inputs()
        expected, (expected_h, expected_c) = core(x, (h.unsqueeze(0), c.unsqueeze(0)))
        outputs, final, final_cell = lstm_layer(
            x[None], h[None], c[None], every_step(), layer_weights(core)
        )
        torch.testing.assert_close(outputs[0], expected)
        torch.testing.assert_close(final, expected_h)
        torch.testing.assert_close(final_cell, expected_c)

    def test_gradients_are_exact_with_resets_in_a_group(self) -> None:
        torch.manual_seed(0)
        cores = [nn.LSTM(FEATURES, HIDDEN).double() for _ in range(2)]
        x, h, c = inputs()
        keep = resets()

        def scanned(
            x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, *w: torch.Tensor
        ) -> tuple[torch.Tensor, ...]:
            return lstm_layer(
                torch.stack((x, -x)), torch.stack((h, c)), torch.stack((c, h)), keep, w
            )

        assert torch.autograd.gradcheck(scanned, (x, h, c, *layer_weights(*cores)))


class TestOneStep:
    """The one-step cells that acting runs (a group of layers) equal the library's layers
    over one step, gradients included."""

    def test_gru_step_equals_torch(self) -> None:
        torch.manual_seed(0)
        cores = [nn.GRU(FEATURES, HIDDEN).double() for _ in range(2)]
        x, h, _ = inputs()
        xs, hs = torch.stack((x[0], -x[0])), torch.stack((h, 2 * h))
        stepped = gru_step(xs, hs, layer_weights(*cores))
        for member, core in enumerate(cores):
            expected, _ = core(xs[member : member + 1], hs[member : member + 1])
            torch.testing.assert_close(stepped[member], expected[0])
        assert torch.autograd.gradcheck(
            lambda x, h, *w: gru_step(torch.stack((x, -x)), torch.stack((h, 2 * h)), w),
            (x[0], h, *layer_weights(*cores)),
        )

    def test_lstm_step_equals_torch(self) -> None:
        torch.manual_seed(0)
        cores = [nn.LSTM(FEATURES, HIDDEN).double() for _ in range(2)]
        x, h, c = inputs()
        xs, hs, cs = torch.stack((x[0], -x[0])), torch.stack((h, c)), torch.stack((c, h))
        state, cell = lstm_step(xs, hs, cs, layer_weights(*cores))
        for member, core in enumerate(cores):
            memory = (hs[member : member + 1], cs[member : member + 1])
            _, (expected, expected_cell) = core(xs[member : member + 1], memory)
            torch.testing.assert_close(state[member], expected[0])
            torch.testing.assert_close(cell[member], expected_cell[0])
        assert torch.autograd.gradcheck(
            lambda x, h, c, *w: lstm_step(
                torch.stack((x, -x)), torch.stack((h, c)), torch.stack((c, h)), w
            ),
            (x[0], h, c, *layer_weights(*cores)),
        )


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("separate_critic", [False, True])
@pytest.mark.parametrize("steps", [12, 1])
def test_the_model_scans_as_it_steps_through_stretches(
    rnn_type: str, num_layers: int, separate_critic: bool, steps: int
) -> None:
    """On the CPU the towers' cores run together, through the scan for a replay and through
    the one-step cells when acting; outputs, memory and gradients equal those of the
    library's layers called stretch by stretch, tower by tower (the path of GPUs)."""
    task = CartPoleTask(4)
    torch.manual_seed(0)
    model = RecurrentActorCritic(
        task.observation_shape,
        task.action_space,
        rnn_type=rnn_type,
        num_layers=num_layers,
        separate_critic=separate_critic,
    )
    towers = [model.tower] if model.critic_tower is None else [model.tower, model.critic_tower]
    batch = 4
    observations = torch.randn(steps * batch, *task.observation_shape)
    # Starts at most steps: the LSTM's scan too (few stretches would take its library path).
    starts = torch.rand(steps, batch, generator=torch.Generator().manual_seed(2)) < 0.5
    memory = torch.randn_like(model.initial_memory(batch))
    rows = model.tower.memory_rows

    def stretched() -> tuple[list[torch.Tensor], torch.Tensor]:
        results = [
            tower.stretches(
                tower.encoder(observations).view(steps, batch, -1),
                memory[:, index * rows : (index + 1) * rows],
                starts,
            )
            for index, tower in enumerate(towers)
        ]
        outputs = [output.flatten(0, 1) for output, _ in results]
        return outputs, torch.cat([final for _, final in results], dim=1)

    results = []
    for path in (lambda: run_towers(towers, observations, memory, starts), stretched):
        model.zero_grad()
        outputs, final = path()
        (sum(output.square().sum() for output in outputs) + final.sum()).backward()
        gradients = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append(([output.detach() for output in outputs], final.detach(), gradients))
    (scanned, scanned_final, scanned_grads), (library, library_final, library_grads) = results
    for ours, theirs in zip(scanned, library, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scanned_final, library_final, atol=1e-5, rtol=1e-5)
    for ours, theirs in zip(scanned_grads, library_grads, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
