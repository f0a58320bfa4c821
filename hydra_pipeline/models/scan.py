"""GRU and LSTM layers over whole sequences with episode resets, with a hand-written backward
pass: the recurrent cores' fast path on the CPU.

A rollout's sequences reset their memory wherever an episode starts, so the library's layers
(``torch.nn.GRU``, ``torch.nn.LSTM``) must be called once per stretch of steps without a
start: on a CPU, with many environments, that is nearly one call per step, and each call
records dozens of small operations for autograd. These functions instead run the whole
sequence in one loop that applies the resets itself, record nothing for autograd while it
runs, and compute the gradients in one reverse loop whose per-step work is one matrix product
and a few element-wise operations; the products that do not depend on the previous step (the
input projections and every weight gradient) are one matrix product over all steps each.

The weights are those of a ``torch.nn.GRU``/``torch.nn.LSTM`` layer (same layout and gate
order), so a model keeps the library's module for its parameters and checkpoints. On the
layers' own inputs, outputs equal the library's (up to float rounding), and so do gradients
(``torch.autograd.gradcheck`` holds in float64; see the tests).

Shapes: ``inputs`` ``(steps, batch, features)``, ``keep`` ``(steps, batch, 1)`` (0 where an
episode starts at that step: the state is zeroed before the step; 1 elsewhere), states
``(batch, hidden)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["gru_layer", "lstm_layer"]


class _GRULayer(torch.autograd.Function):
    """One GRU layer over a sequence with resets (PyTorch's formulation: gates ``r, z, n``,
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``)."""

    @staticmethod
    def forward(
        ctx: Any,
        inputs: Tensor,
        state: Tensor,
        keep: Tensor,
        weight_ih: Tensor,
        weight_hh: Tensor,
        bias_ih: Tensor,
        bias_hh: Tensor,
    ) -> tuple[Tensor, Tensor]:
        steps, batch, _ = inputs.shape
        hidden = state.shape[1]
        projected = torch.addmm(bias_ih, inputs.reshape(steps * batch, -1), weight_ih.t())
        projected = projected.view(steps, batch, 3 * hidden)
        recurrent = weight_hh.t()
        outputs = inputs.new_empty(steps, batch, hidden)
        hidden_gates = inputs.new_empty(steps, batch, 3 * hidden)  # W_h h + b_h
        reset_update = inputs.new_empty(steps, batch, 2 * hidden)  # r, z
        candidates = inputs.new_empty(steps, batch, hidden)  # n
        first = state
        for x, h, rz, candidate, out, kept, resets in zip(
            projected.unbind(0),
            hidden_gates.unbind(0),
            reset_update.unbind(0),
            candidates.unbind(0),
            outputs.unbind(0),
            keep.unbind(0),
            _resetting_steps(keep),
            strict=True,
        ):
            if resets:
                state = state * kept
            torch.addmm(bias_hh, state, recurrent, out=h)
            torch.add(x[:, : 2 * hidden], h[:, : 2 * hidden], out=rz).sigmoid_()
            torch.addcmul(x[:, 2 * hidden :], rz[:, :hidden], h[:, 2 * hidden :], out=candidate)
            candidate.tanh_()
            state = torch.lerp(candidate, state, rz[:, hidden:], out=out)
        ctx.save_for_backward(
            inputs, first, keep, weight_ih, weight_hh, outputs, reset_update, candidates,
            hidden_gates,
        )  # fmt: skip
        return outputs, state.clone()

    @staticmethod
    def backward(
        ctx: Any, grad_outputs: Tensor | None, grad_state: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        inputs, first, keep, weight_ih, weight_hh, outputs, reset_update, candidates, gates_h = (
            ctx.saved_tensors
        )
        steps, batch, hidden = outputs.shape
        previous = _previous_states(first, outputs, keep)
        reset, update = reset_update[..., :hidden], reset_update[..., hidden:]
        # The derivatives of each gate's pre-activation with respect to the step's output
        # state, computed for all steps at once: the reverse loop only scales them.
        to_candidate = (1 - update) * (1 - candidates * candidates)
        factors = torch.stack(
            (
                to_candidate * gates_h[..., 2 * hidden :] * reset * (1 - reset),
                (previous - candidates) * update * (1 - update),
                to_candidate * reset,
            ),
            dim=2,
        )
        if grad_outputs is None:
            grad_outputs = inputs.new_zeros(steps, batch, hidden)
        grad_hidden_gates = inputs.new_empty(steps, batch, 3, hidden)
        grad_steps = inputs.new_empty(steps, batch, hidden)
        grad = grad_state if grad_state is not None else inputs.new_zeros(batch, hidden)
        for out_grad, step_grad, gates, factor, kept_update, kept, resets in zip(
            grad_outputs.unbind(0)[::-1],
            grad_steps.unbind(0)[::-1],
            grad_hidden_gates.unbind(0)[::-1],
            factors.unbind(0)[::-1],
            update.unbind(0)[::-1],
            keep.unbind(0)[::-1],
            _resetting_steps(keep)[::-1],
            strict=True,
        ):
            grad = torch.add(grad, out_grad, out=step_grad)
            torch.mul(grad.unsqueeze(1), factor, out=gates)
            grad = torch.addmm(grad * kept_update, gates.view(batch, 3 * hidden), weight_hh)
            if resets:
                grad.mul_(kept)
        grad_input_gates = grad_hidden_gates.clone()
        grad_input_gates[:, :, 2] = grad_steps * to_candidate
        flat_input = grad_input_gates.view(steps * batch, 3 * hidden)
        flat_hidden = grad_hidden_gates.view(steps * batch, 3 * hidden)
        return (
            (flat_input @ weight_ih).view_as(inputs),
            grad,
            None,
            flat_input.t() @ inputs.reshape(steps * batch, -1),
            flat_hidden.t() @ previous.view(steps * batch, hidden),
            flat_input.sum(0),
            flat_hidden.sum(0),
        )


def _resetting_steps(keep: Tensor) -> list[bool]:
    """For each step, whether some sequence resets its state there."""
    resets: list[bool] = keep.flatten(1).logical_not().any(1).tolist()
    return resets


def _previous_states(first: Tensor, outputs: Tensor, keep: Tensor) -> Tensor:
    """Each step's state before it, after its reset: the first state, then each output."""
    return torch.cat((first.unsqueeze(0), outputs[:-1])) * keep


class _LSTMLayer(torch.autograd.Function):
    """One LSTM layer over a sequence with resets (PyTorch's formulation: gates ``i, f, g,
    o``, ``c' = f * c + i * g``, ``h' = o * tanh(c')``)."""

    @staticmethod
    def forward(
        ctx: Any,
        inputs: Tensor,
        state: Tensor,
        cell: Tensor,
        keep: Tensor,
        weight_ih: Tensor,
        weight_hh: Tensor,
        bias_ih: Tensor,
        bias_hh: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        steps, batch, _ = inputs.shape
        hidden = state.shape[1]
        bias = bias_ih + bias_hh  # both add to every step's pre-activations
        projected = torch.addmm(bias, inputs.reshape(steps * batch, -1), weight_ih.t())
        projected = projected.view(steps, batch, 4 * hidden)
        recurrent = weight_hh.t()
        outputs = inputs.new_empty(steps, batch, hidden)
        activations = inputs.new_empty(steps, batch, 4 * hidden)  # i, f, g, o
        cells = inputs.new_empty(steps, batch, hidden)
        first, first_cell = state, cell
        for x, gates, out, new_cell, kept, resets in zip(
            projected.unbind(0),
            activations.unbind(0),
            outputs.unbind(0),
            cells.unbind(0),
            keep.unbind(0),
            _resetting_steps(keep),
            strict=True,
        ):
            if resets:
                state, cell = state * kept, cell * kept
            torch.addmm(x, state, recurrent, out=gates)
            gates[:, : 2 * hidden].sigmoid_()
            gates[:, 2 * hidden : 3 * hidden].tanh_()
            gates[:, 3 * hidden :].sigmoid_()
            cell = torch.addcmul(
                cell * gates[:, hidden : 2 * hidden],
                gates[:, :hidden],
                gates[:, 2 * hidden : 3 * hidden],
                out=new_cell,
            )
            state = torch.mul(gates[:, 3 * hidden :], cell.tanh(), out=out)
        ctx.save_for_backward(
            inputs, first, first_cell, keep, weight_ih, weight_hh, outputs, activations, cells
        )
        return outputs, state.clone(), cell.clone()

    @staticmethod
    def backward(
        ctx: Any,
        grad_outputs: Tensor | None,
        grad_state: Tensor | None,
        grad_cell: Tensor | None,
    ) -> tuple[Tensor | None, ...]:
        inputs, first, first_cell, keep, weight_ih, weight_hh, outputs, activations, cells = (
            ctx.saved_tensors
        )
        steps, batch, hidden = outputs.shape
        previous = _previous_states(first, outputs, keep)
        previous_cells = _previous_states(first_cell, cells, keep)
        in_gate, forget, candidate, out_gate = activations.view(steps, batch, 4, hidden).unbind(2)
        tanh_cells = cells.tanh()
        # Per unit of the step's output-state gradient: the output gate's pre-activation and
        # the cell; per unit of the cell's gradient: the other three gates' pre-activations.
        to_out_gate = tanh_cells * out_gate * (1 - out_gate)
        to_cell = out_gate * (1 - tanh_cells * tanh_cells)
        cell_factors = torch.stack(
            (
                candidate * in_gate * (1 - in_gate),
                previous_cells * forget * (1 - forget),
                in_gate * (1 - candidate * candidate),
            ),
            dim=2,
        )
        if grad_outputs is None:
            grad_outputs = inputs.new_zeros(steps, batch, hidden)
        grad_gates = inputs.new_empty(steps, batch, 4, hidden)
        grad = grad_state if grad_state is not None else inputs.new_zeros(batch, hidden)
        grad_c = grad_cell if grad_cell is not None else inputs.new_zeros(batch, hidden)
        for out_grad, gates, factor, out_factor, cell_factor, kept_forget, kept, resets in zip(
            grad_outputs.unbind(0)[::-1],
            grad_gates.unbind(0)[::-1],
            cell_factors.unbind(0)[::-1],
            to_out_gate.unbind(0)[::-1],
            to_cell.unbind(0)[::-1],
            forget.unbind(0)[::-1],
            keep.unbind(0)[::-1],
            _resetting_steps(keep)[::-1],
            strict=True,
        ):
            grad = grad + out_grad
            grad_c = torch.addcmul(grad_c, grad, cell_factor)
            torch.mul(grad_c.unsqueeze(1), factor, out=gates[:, :3])
            torch.mul(grad, out_factor, out=gates[:, 3])
            grad = gates.view(batch, 4 * hidden) @ weight_hh
            grad_c = grad_c * kept_forget
            if resets:
                grad.mul_(kept)
                grad_c.mul_(kept)
        flat = grad_gates.view(steps * batch, 4 * hidden)
        bias = flat.sum(0)
        return (
            (flat @ weight_ih).view_as(inputs),
            grad,
            grad_c,
            None,
            flat.t() @ inputs.reshape(steps * batch, -1),
            flat.t() @ previous.view(steps * batch, hidden),
            bias,
            bias.clone(),
        )


def gru_layer(
    inputs: Tensor, state: Tensor, keep: Tensor, weights: tuple[Tensor, ...]
) -> tuple[Tensor, Tensor]:
    """One GRU layer over ``inputs`` from ``state``, zeroing the state where ``keep`` is 0;
    the outputs ``(steps, batch, hidden)`` and the final state. ``weights``: the layer's
    ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``."""
    outputs, final = _GRULayer.apply(inputs, state, keep, *weights)  # type: ignore[no-untyped-call]
    return outputs, final


def lstm_layer(
    inputs: Tensor, state: Tensor, cell: Tensor, keep: Tensor, weights: tuple[Tensor, ...]
) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTM layer over ``inputs`` from ``state`` and ``cell``, zeroing both where ``keep``
    is 0; the outputs and the final state and cell (``weights`` as for :func:`gru_layer`)."""
    outputs, final, final_cell = _LSTMLayer.apply(  # type: ignore[no-untyped-call]
        inputs, state, cell, keep, *weights
    )
    return outputs, final, final_cell
