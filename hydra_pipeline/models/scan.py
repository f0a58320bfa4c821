"""GRU and LSTM layers over whole sequences with episode resets, with a hand-written backward
pass: the recurrent cores' fast path on the CPU.

A rollout's sequences reset their memory wherever an episode starts, so the library's layers
(``torch.nn.GRU``, ``torch.nn.LSTM``) must be called once per stretch of steps without a
start: on a CPU, with many environments, that is nearly one call per step, and each call
records dozens of small operations for autograd. These functions instead run the whole
sequence in one loop that applies the resets itself, record nothing for autograd while it
runs, and compute the gradients in one reverse loop whose per-step work is one (batched)
matrix product and a few element-wise operations; the products that do not depend on the
previous step (the input projections and every weight gradient) are one product over all
steps each.

Several layers of the same shape (an actor's core and a critic's, say) can be stepped together
as a *group*: each step's operations then cover every member at once, so a second core costs
arithmetic but hardly any of the per-operation overhead that dominates at these sizes.

The weights are those of ``torch.nn.GRU``/``torch.nn.LSTM`` layers (same layout and gate
order), stacked over the group, so a model keeps the library's modules for its parameters and
checkpoints. On the layers' own inputs, outputs equal the library's (up to float rounding), and
so do gradients (``torch.autograd.gradcheck`` holds in float64; see the tests).

Shapes: ``inputs`` ``(group, steps, batch, features)``, ``keep`` ``(steps, batch, 1)`` (0 where
an episode starts at that step: every member's state is zeroed before the step; 1 elsewhere),
states ``(group, batch, hidden)``, weights ``(group, ...)`` (each member's layer's).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["gru_layer", "lstm_layer"]


class _GRULayer(torch.autograd.Function):
    """A group of GRU layers over a sequence with resets (PyTorch's formulation: gates ``r, z,
    n``, ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``)."""

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
        group, steps, batch, _ = inputs.shape
        hidden = state.shape[2]
        projected = _projected(inputs, weight_ih, bias_ih)
        recurrent, recurrent_bias = weight_hh.transpose(1, 2), bias_hh.unsqueeze(1)
        outputs = inputs.new_empty(steps, group, batch, hidden)
        hidden_gates = inputs.new_empty(steps, group, batch, 3 * hidden)  # W_h h + b_h
        reset_update = inputs.new_empty(steps, group, batch, 2 * hidden)  # r, z
        candidates = inputs.new_empty(steps, group, batch, hidden)  # n
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
            torch.baddbmm(recurrent_bias, state, recurrent, out=h)
            torch.add(x[..., : 2 * hidden], h[..., : 2 * hidden], out=rz).sigmoid_()
            torch.addcmul(
                x[..., 2 * hidden :], rz[..., :hidden], h[..., 2 * hidden :], out=candidate
            )
            candidate.tanh_()
            state = torch.lerp(candidate, state, rz[..., hidden:], out=out)
        ctx.save_for_backward(
            inputs,
            first,
            keep,
            weight_ih,
            weight_hh,
            outputs,
            reset_update,
            candidates,
            hidden_gates,
        )
        return outputs.transpose(0, 1), state.clone()

    @staticmethod
    def backward(
        ctx: Any, grad_outputs: Tensor | None, grad_state: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        inputs, first, keep, weight_ih, weight_hh, outputs, reset_update, candidates, gates_h = (
            ctx.saved_tensors
        )
        steps, group, batch, hidden = outputs.shape
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
            dim=3,
        )
        step_grads = _step_major(grad_outputs, outputs)
        grad_hidden_gates = inputs.new_empty(steps, group, batch, 3, hidden)
        grad_steps = inputs.new_empty(steps, group, batch, hidden)
        grad = grad_state if grad_state is not None else inputs.new_zeros(group, batch, hidden)
        for out_grad, step_grad, gates, factor, kept_update, kept, resets in zip(
            step_grads.unbind(0)[::-1],
            grad_steps.unbind(0)[::-1],
            grad_hidden_gates.unbind(0)[::-1],
            factors.unbind(0)[::-1],
            update.unbind(0)[::-1],
            keep.unbind(0)[::-1],
            _resetting_steps(keep)[::-1],
            strict=True,
        ):
            grad = torch.add(grad, out_grad, out=step_grad)
            torch.mul(grad.unsqueeze(2), factor, out=gates)
            grad = torch.baddbmm(
                grad * kept_update, gates.view(group, batch, 3 * hidden), weight_hh
            )
            if resets:
                grad.mul_(kept)
        grad_input_gates = grad_hidden_gates.clone()
        grad_input_gates[..., 2, :] = grad_steps * to_candidate
        flat_input = _group_major(grad_input_gates, 3 * hidden)
        flat_hidden = _group_major(grad_hidden_gates, 3 * hidden)
        return _gru_gradients(inputs, flat_input, flat_hidden, previous, weight_ih, grad)


class _LSTMLayer(torch.autograd.Function):
    """A group of LSTM layers over a sequence with resets (PyTorch's formulation: gates ``i, f,
    g, o``, ``c' = f * c + i * g``, ``h' = o * tanh(c')``)."""

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
        group, steps, batch, _ = inputs.shape
        hidden = state.shape[2]
        # Both biases add to every step's pre-activations: one addition, in the projection.
        projected = _projected(inputs, weight_ih, bias_ih + bias_hh)
        recurrent = weight_hh.transpose(1, 2)
        outputs = inputs.new_empty(steps, group, batch, hidden)
        activations = inputs.new_empty(steps, group, batch, 4 * hidden)  # i, f, g, o
        cells = inputs.new_empty(steps, group, batch, hidden)
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
            torch.baddbmm(x, state, recurrent, out=gates)
            gates[..., : 2 * hidden].sigmoid_()
            gates[..., 2 * hidden : 3 * hidden].tanh_()
            gates[..., 3 * hidden :].sigmoid_()
            cell = torch.addcmul(
                cell * gates[..., hidden : 2 * hidden],
                gates[..., :hidden],
                gates[..., 2 * hidden : 3 * hidden],
                out=new_cell,
            )
            state = torch.mul(gates[..., 3 * hidden :], cell.tanh(), out=out)
        ctx.save_for_backward(
            inputs, first, first_cell, keep, weight_ih, weight_hh, outputs, activations, cells
        )
        return outputs.transpose(0, 1), state.clone(), cell.clone()

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
        steps, group, batch, hidden = outputs.shape
        previous = _previous_states(first, outputs, keep)
        previous_cells = _previous_states(first_cell, cells, keep)
        in_gate, forget, candidate, out_gate = activations.view(
            steps, group, batch, 4, hidden
        ).unbind(3)
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
            dim=3,
        )
        step_grads = _step_major(grad_outputs, outputs)
        grad_gates = inputs.new_empty(steps, group, batch, 4, hidden)
        zeros = inputs.new_zeros(group, batch, hidden)
        grad = grad_state if grad_state is not None else zeros
        grad_c = grad_cell if grad_cell is not None else zeros
        for out_grad, gates, factor, out_factor, cell_factor, kept_forget, kept, resets in zip(
            step_grads.unbind(0)[::-1],
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
            torch.mul(grad_c.unsqueeze(2), factor, out=gates[..., :3, :])
            torch.mul(grad, out_factor, out=gates[..., 3, :])
            grad = torch.bmm(gates.view(group, batch, 4 * hidden), weight_hh)
            grad_c = grad_c * kept_forget
            if resets:
                grad.mul_(kept)
                grad_c.mul_(kept)
        flat = _group_major(grad_gates, 4 * hidden)
        bias = flat.sum(1)
        grad_inputs, grad_weight_ih = _input_gradients(inputs, flat, weight_ih)
        return (
            grad_inputs,
            grad,
            grad_c,
            None,
            grad_weight_ih,
            flat.transpose(1, 2) @ _group_major(previous, hidden),
            bias,
            bias.clone(),
        )


def _projected(inputs: Tensor, weight_ih: Tensor, bias: Tensor) -> Tensor:
    """Every step's input projection ``W_i x + b``, step-major: ``(steps, group, batch,
    gates)``, as one batched product."""
    group, steps, batch, features = inputs.shape
    flat = inputs.reshape(group, steps * batch, features)
    projected = torch.baddbmm(bias.unsqueeze(1), flat, weight_ih.transpose(1, 2))
    return projected.view(group, steps, batch, -1).transpose(0, 1)


def _resetting_steps(keep: Tensor) -> list[bool]:
    """For each step, whether some sequence resets its state there."""
    resets: list[bool] = keep.flatten(1).logical_not().any(1).tolist()
    return resets


def _previous_states(first: Tensor, outputs: Tensor, keep: Tensor) -> Tensor:
    """Each step's state before it, after its reset (step-major): the first state, then each
    output."""
    return torch.cat((first.unsqueeze(0), outputs[:-1])) * keep.unsqueeze(1)


def _step_major(grad_outputs: Tensor | None, outputs: Tensor) -> Tensor:
    """The outputs' gradient, step-major like ``outputs`` (zeros when there is none)."""
    if grad_outputs is None:
        return torch.zeros_like(outputs)
    return grad_outputs.transpose(0, 1)


def _group_major(tensor: Tensor, size: int) -> Tensor:
    """A step-major ``(steps, group, batch, ...)`` tensor as ``(group, steps * batch, size)``."""
    return tensor.transpose(0, 1).reshape(tensor.shape[1], -1, size)


def _input_gradients(inputs: Tensor, flat: Tensor, weight_ih: Tensor) -> tuple[Tensor, Tensor]:
    """The gradients of the inputs and of the input weights, from the gradient ``flat``
    ``(group, steps * batch, gates)`` of the input projections."""
    flat_inputs = inputs.reshape(inputs.shape[0], -1, inputs.shape[3])
    return (flat @ weight_ih).view_as(inputs), flat.transpose(1, 2) @ flat_inputs


def _gru_gradients(
    inputs: Tensor,
    flat_input: Tensor,
    flat_hidden: Tensor,
    previous: Tensor,
    weight_ih: Tensor,
    grad_state: Tensor,
) -> tuple[Tensor | None, ...]:
    """The GRU layer's gradients, in the order of its forward's arguments."""
    hidden = previous.shape[-1]
    grad_inputs, grad_weight_ih = _input_gradients(inputs, flat_input, weight_ih)
    return (
        grad_inputs,
        grad_state,
        None,
        grad_weight_ih,
        flat_hidden.transpose(1, 2) @ _group_major(previous, hidden),
        flat_input.sum(1),
        flat_hidden.sum(1),
    )


def gru_layer(
    inputs: Tensor, state: Tensor, keep: Tensor, weights: tuple[Tensor, ...]
) -> tuple[Tensor, Tensor]:
    """A group of GRU layers over ``inputs`` from ``state``, zeroing the state where ``keep``
    is 0: the outputs ``(group, steps, batch, hidden)`` and the final states. ``weights``: the
    members' ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``, each stacked over the
    group."""
    outputs, final = _GRULayer.apply(inputs, state, keep, *weights)  # type: ignore[no-untyped-call]
    return outputs, final


def lstm_layer(
    inputs: Tensor, state: Tensor, cell: Tensor, keep: Tensor, weights: tuple[Tensor, ...]
) -> tuple[Tensor, Tensor, Tensor]:
    """A group of LSTM layers over ``inputs`` from ``state`` and ``cell``, zeroing both where
    ``keep`` is 0: the outputs and the final states and cells (``weights`` as for
    :func:`gru_layer`)."""
    outputs, final, final_cell = _LSTMLayer.apply(  # type: ignore[no-untyped-call]
        inputs, state, cell, keep, *weights
    )
    return outputs, final, final_cell
