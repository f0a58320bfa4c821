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

Acting takes one step at a time, where a hand-written backward pass gains nothing:
:func:`gru_step` and :func:`lstm_step` step a group the same way in plain tensor operations.

Shapes: ``inputs`` ``(group, steps, batch, features)``, ``keep`` ``(steps, batch, 1)`` (0 where
an episode starts at that step: every member's state is zeroed before the step; 1 elsewhere),
states ``(group, batch, hidden)``, weights ``(group, ...)`` (each member's layer's).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["gru_layer", "gru_step", "lstm_layer", "lstm_step"]


class _GRULayer(torch.autograd.Function):
    """A group of GRU layers over a sequence with resets (PyTorch's formulation: gates ``r, z,
    n``, ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``).

    What the products over all steps read (the states, the gates' gradients) is kept
    group-major, ``(group, steps, batch, ...)`` like the inputs, so each member's steps are
    one matrix with no copy; what only the steps read (the gates) is kept step-major, each
    step's slice in one piece.
    """

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
        # states[:, t]: the state before step t (before its reset); states[:, t + 1]: the
        # step's output. The outputs are a view of it.
        states = inputs.new_empty(group, steps + 1, batch, hidden)
        states[:, 0] = state
        hidden_gates = inputs.new_empty(steps, group, batch, 3 * hidden)  # W_h h + b_h
        reset_update = inputs.new_empty(steps, group, batch, 2 * hidden)  # r, z
        candidates = inputs.new_empty(steps, group, batch, hidden)  # n
        # Every step's views, made before the loop (indexing each one in it costs more).
        each_step = zip(
            keep,
            _resetting_steps(keep),
            states[:, :-1].unbind(1),
            states[:, 1:].unbind(1),
            projected[..., : 2 * hidden].unbind(1),
            projected[..., 2 * hidden :].unbind(1),
            hidden_gates.unbind(0),
            hidden_gates[..., : 2 * hidden].unbind(0),
            hidden_gates[..., 2 * hidden :].unbind(0),
            reset_update.unbind(0),
            reset_update[..., :hidden].unbind(0),
            reset_update[..., hidden:].unbind(0),
            candidates.unbind(0),
            strict=True,
        )
        for kept, resets, before, after, x_rz, x_n, h, h_rz, h_n, rz, r, z, candidate in each_step:
            state = before * kept if resets else before
            torch.baddbmm(recurrent_bias, state, recurrent, out=h)
            torch.add(x_rz, h_rz, out=rz).sigmoid_()
            torch.addcmul(x_n, r, h_n, out=candidate).tanh_()
            torch.lerp(candidate, state, z, out=after)
        ctx.save_for_backward(
            inputs, keep, weight_ih, weight_hh, states, reset_update, candidates, hidden_gates
        )
        return states[:, 1:], states[:, -1].clone()

    @staticmethod
    def backward(
        ctx: Any, grad_outputs: Tensor | None, grad_state: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        inputs, keep, weight_ih, weight_hh, states, reset_update, candidates, gates_h = (
            ctx.saved_tensors
        )
        steps, group, batch, hidden = candidates.shape
        previous = states[:, :-1] * keep  # each step's state after its reset, group-major
        reset, update = reset_update[..., :hidden], reset_update[..., hidden:]
        # The derivatives of each gate's pre-activation with respect to the step's output
        # state, for all steps at once (step-major): the reverse loop only scales them.
        # (In place where it can: each fresh megabyte costs page faults.)
        one = candidates.new_ones(())
        to_candidate = torch.addcmul(one, candidates, candidates, value=-1)  # 1 - n^2
        to_candidate.addcmul_(to_candidate, update, value=-1)  # times 1 - z
        factors = inputs.new_empty(steps, group, batch, 3, hidden)
        reset_factor, update_factor, candidate_factor = factors.unbind(3)
        torch.mul(to_candidate, reset, out=candidate_factor)
        torch.mul(candidate_factor, gates_h[..., 2 * hidden :], out=reset_factor)
        reset_factor.addcmul_(reset_factor, reset, value=-1)  # times 1 - r
        torch.sub(previous.transpose(0, 1), candidates, out=update_factor).mul_(update)
        update_factor.addcmul_(update_factor, update, value=-1)  # times 1 - z
        # Each step's output-state gradient, and the hidden gates' pre-activation gradients
        # (group-major).
        grad_steps = inputs.new_empty(group, steps, batch, hidden)
        grad_gates = inputs.new_empty(group, steps, batch, 3, hidden)
        grad = grad_state if grad_state is not None else inputs.new_zeros(group, batch, hidden)
        each_step = zip(
            _step_grads(grad_outputs, states).unbind(1),
            grad_steps.unbind(1),
            grad_gates.view(group, steps, batch, 3 * hidden).unbind(1),
            factors.unbind(0),
            update.unbind(0),
            keep,
            _resetting_steps(keep),
            strict=True,
        )
        for out_grad, step_grad, gates, factor, step_update, kept, resets in reversed(
            list(each_step)
        ):
            grad = torch.add(grad, out_grad, out=step_grad)
            torch.mul(grad.unsqueeze(2), factor, out=gates.view(group, batch, 3, hidden))
            grad = torch.baddbmm(grad * step_update, gates, weight_hh)
            if resets:
                grad.mul_(kept)
        flat_gates = grad_gates.view(group, steps * batch, 3 * hidden)
        grad_weight_hh = flat_gates.transpose(1, 2) @ previous.view(group, -1, hidden)
        grad_bias_hh = flat_gates.sum(1)
        # The input gates' gradients are the hidden gates' but for n's, which r does not scale.
        torch.mul(grad_steps, to_candidate.transpose(0, 1), out=grad_gates[..., 2, :])
        grad_inputs, grad_weight_ih = _input_gradients(inputs, flat_gates, weight_ih)
        return (
            grad_inputs,
            grad,
            None,
            grad_weight_ih,
            grad_weight_hh,
            flat_gates.sum(1),
            grad_bias_hh,
        )


class _LSTMLayer(torch.autograd.Function):
    """A group of LSTM layers over a sequence with resets (PyTorch's formulation: gates ``i, f,
    g, o``, ``c' = f * c + i * g``, ``h' = o * tanh(c')``), laid out as :class:`_GRULayer`."""

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
        # As the GRU's states: [:, t] before step t (before its reset), [:, t + 1] after it.
        states = inputs.new_empty(group, steps + 1, batch, hidden)
        states[:, 0] = state
        cells = inputs.new_empty(steps + 1, group, batch, hidden)
        cells[0] = cell
        activations = inputs.new_empty(steps, group, batch, 4 * hidden)  # i, f, g, o
        for step, (kept, resets) in enumerate(zip(keep, _resetting_steps(keep), strict=True)):
            state, cell = states[:, step], cells[step]
            if resets:
                state, cell = state * kept, cell * kept
            gates = torch.baddbmm(projected[:, step], state, recurrent, out=activations[step])
            gates[..., : 2 * hidden].sigmoid_()
            gates[..., 2 * hidden : 3 * hidden].tanh_()
            gates[..., 3 * hidden :].sigmoid_()
            cell = torch.addcmul(
                cell * gates[..., hidden : 2 * hidden],
                gates[..., :hidden],
                gates[..., 2 * hidden : 3 * hidden],
                out=cells[step + 1],
            )
            torch.mul(gates[..., 3 * hidden :], cell.tanh(), out=states[:, step + 1])
        ctx.save_for_backward(inputs, keep, weight_ih, weight_hh, states, activations, cells)
        return states[:, 1:], states[:, -1].clone(), cells[-1].clone()

    @staticmethod
    def backward(
        ctx: Any,
        grad_outputs: Tensor | None,
        grad_state: Tensor | None,
        grad_cell: Tensor | None,
    ) -> tuple[Tensor | None, ...]:
        inputs, keep, weight_ih, weight_hh, states, activations, cells = ctx.saved_tensors
        previous = states[:, :-1] * keep  # each step's state after its reset, group-major
        previous_cells = cells[:-1] * keep.unsqueeze(1)  # and cell, step-major
        steps, group, batch, hidden = previous_cells.shape
        in_gate, forget, candidate, out_gate = activations.view(
            steps, group, batch, 4, hidden
        ).unbind(3)
        tanh_cells = cells[1:].tanh()
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
        grad_gates = inputs.new_empty(group, steps, batch, 4, hidden)  # group-major
        zeros = inputs.new_zeros(group, batch, hidden)
        grad = grad_state if grad_state is not None else zeros
        grad_c = grad_cell if grad_cell is not None else zeros
        step_grads = _step_grads(grad_outputs, states)
        resets = _resetting_steps(keep)
        for step in reversed(range(steps)):
            gates = grad_gates[:, step]
            grad = grad + step_grads[:, step]
            grad_c = torch.addcmul(grad_c, grad, to_cell[step])
            torch.mul(grad_c.unsqueeze(2), cell_factors[step], out=gates[..., :3, :])
            torch.mul(grad, to_out_gate[step], out=gates[..., 3, :])
            grad = torch.bmm(gates.view(group, batch, 4 * hidden), weight_hh)
            grad_c = grad_c * forget[step]
            if resets[step]:
                grad.mul_(keep[step])
                grad_c.mul_(keep[step])
        flat = grad_gates.view(group, steps * batch, 4 * hidden)
        bias = flat.sum(1)
        grad_inputs, grad_weight_ih = _input_gradients(inputs, flat, weight_ih)
        return (
            grad_inputs,
            grad,
            grad_c,
            None,
            grad_weight_ih,
            flat.transpose(1, 2) @ previous.view(group, -1, hidden),
            bias,
            bias.clone(),
        )


def _projected(inputs: Tensor, weight_ih: Tensor, bias: Tensor) -> Tensor:
    """Every step's input projection ``W_i x + b``, group-major like the inputs: ``(group,
    steps, batch, gates)``, as one batched product."""
    group, steps, batch, features = inputs.shape
    flat = inputs.reshape(group, steps * batch, features)
    projected = torch.baddbmm(bias.unsqueeze(1), flat, weight_ih.transpose(1, 2))
    return projected.view(group, steps, batch, -1)


def _step_grads(grad_outputs: Tensor | None, states: Tensor) -> Tensor:
    """The gradient of the outputs (zeros when they have none): ``(group, steps, batch,
    hidden)``, like the outputs, a view of ``states`` without its first step."""
    if grad_outputs is None:
        return states.new_zeros(1).expand_as(states[:, 1:])
    return grad_outputs


def _resetting_steps(keep: Tensor) -> list[bool]:
    """For each step, whether some sequence resets its state there."""
    resets: list[bool] = keep.flatten(1).logical_not().any(1).tolist()
    return resets


def _input_gradients(inputs: Tensor, flat: Tensor, weight_ih: Tensor) -> tuple[Tensor, Tensor]:
    """The gradients of the inputs and of the input weights, from the gradient ``flat``
    ``(group, steps * batch, gates)`` of the input projections."""
    flat_inputs = inputs.reshape(inputs.shape[0], -1, inputs.shape[3])
    return (flat @ weight_ih).view_as(inputs), flat.transpose(1, 2) @ flat_inputs


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


def gru_step(inputs: Tensor, state: Tensor, weights: tuple[Tensor, ...]) -> Tensor:
    """One step of a group of GRU layers (acting): the new state ``(group, batch, hidden)``
    from ``inputs`` ``(group, batch, features)`` and ``state``, in plain tensor operations
    that autograd records (``weights`` as for :func:`gru_layer`)."""
    weight_ih, weight_hh, bias_ih, bias_hh = weights
    hidden = state.shape[2]
    x = torch.baddbmm(bias_ih.unsqueeze(1), inputs, weight_ih.transpose(1, 2))
    h = torch.baddbmm(bias_hh.unsqueeze(1), state, weight_hh.transpose(1, 2))
    reset_update = torch.sigmoid(x[..., : 2 * hidden] + h[..., : 2 * hidden])
    candidate = torch.tanh(
        torch.addcmul(x[..., 2 * hidden :], reset_update[..., :hidden], h[..., 2 * hidden :])
    )
    return torch.lerp(candidate, state, reset_update[..., hidden:])


def lstm_step(
    inputs: Tensor, state: Tensor, cell: Tensor, weights: tuple[Tensor, ...]
) -> tuple[Tensor, Tensor]:
    """One step of a group of LSTM layers (acting): the new state and cell, as
    :func:`gru_step` does it."""
    weight_ih, weight_hh, bias_ih, bias_hh = weights
    hidden = state.shape[2]
    projected = torch.baddbmm((bias_ih + bias_hh).unsqueeze(1), inputs, weight_ih.transpose(1, 2))
    gates = torch.baddbmm(projected, state, weight_hh.transpose(1, 2))
    in_forget = torch.sigmoid(gates[..., : 2 * hidden])
    cell = torch.addcmul(
        in_forget[..., hidden:] * cell,
        in_forget[..., :hidden],
        torch.tanh(gates[..., 2 * hidden : 3 * hidden]),
    )
    return torch.sigmoid(gates[..., 3 * hidden :]) * torch.tanh(cell), cell
