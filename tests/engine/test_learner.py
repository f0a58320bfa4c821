"""The learner's own gradient clip against torch's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hydra_pipeline.engine.learner import clip_gradients
from hydra_pipeline.models import MLPActorCritic
from hydra_pipeline.tasks.protocol import ContinuousActions


def parameters_with_gradients(seed: int, scale: float) -> list[nn.Parameter]:
    """A gSDE model's parameters with made-up gradients (one parameter without any)."""
    torch.manual_seed(seed)
    model = MLPActorCritic(
        [3], ContinuousActions(shape=(2,), low=(-1.0, -1.0), high=(1.0, 1.0)), use_sde=True
    )
    parameters = list(model.parameters())
    for parameter in parameters[1:]:
        parameter.grad = torch.randn_like(parameter) * scale
    return parameters


@pytest.mark.parametrize(("scale", "max_norm"), [(1.0, 0.5), (1e-3, 0.5), (1.0, 1e6)])
def test_clip_gradients_is_torchs_clip_to_the_bit(scale: float, max_norm: float) -> None:
    """The same norm and the same clipped gradients as clip_grad_norm_(foreach=True), whether
    the gradients are scaled down or left as they are."""
    ours = parameters_with_gradients(0, scale)
    torchs = parameters_with_gradients(0, scale)
    norm = clip_gradients(ours, max_norm)
    expected = nn.utils.clip_grad_norm_(torchs, max_norm, foreach=True)
    assert torch.equal(norm, expected)
    assert ours[0].grad is None
    for mine, theirs in zip(ours[1:], torchs[1:], strict=True):
        assert mine.grad is not None and theirs.grad is not None
        assert torch.equal(mine.grad, theirs.grad)
    grads = [p.grad.flatten() for p in ours if p.grad is not None]
    clipped = torch.linalg.vector_norm(torch.cat(grads))
    assert float(clipped) <= max_norm * (1 + 1e-5)


def test_clip_gradients_without_gradients_is_zero() -> None:
    parameters = [nn.Parameter(torch.ones(3))]
    assert float(clip_gradients(parameters, 0.5)) == 0.0
    assert parameters[0].grad is None
