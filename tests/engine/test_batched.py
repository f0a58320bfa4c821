"""Members (seeds) learning as one batched computation: the stacked update equals the
members' own updates, and a member's result does not depend on who it is batched with."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from hydra_pipeline import Builder, InvalidArgumentError, PipelineStage
from hydra_pipeline.engine import PPO, Imitation, OnPolicyRunner, stacked
from hydra_pipeline.engine.batched import (
    MemberUpdate,
    RandomStreams,
    clip_by_member,
    update_members,
)
from hydra_pipeline.engine.stacked import StackedModels
from hydra_pipeline.models import RecurrentActorCritic
from hydra_pipeline.tasks import CartPoleTask
from tests.engine.test_runner import make_pipeline, make_runner

SEEDS = (3, 7, 11)
ROLLOUT_ROWS = 32  # 8 steps of 4 environments
NUM_MINI_BATCH = 2


def member_runner(
    tmp_path: Path,
    seed: int,
    target_kl: float | None = None,
    lr: float = 1e-3,
    **ppo: float,
) -> OnPolicyRunner:
    """A small runner for ``seed`` with one PPO-and-imitation stage (Adam at ``lr``, PPO with
    the options ``ppo``), with one rollout collected (made-up data for the update: the
    collection uses the global generator)."""
    pipeline = make_pipeline(
        [PipelineStage(["ppo", "imitation"], 10_000)],
        named_losses={"ppo": PPO(target_kl=target_kl, **ppo), "imitation": Imitation()},
        num_steps=ROLLOUT_ROWS // 4,
        num_mini_batch=NUM_MINI_BATCH,
        update_repeats=2,
        optimizer_builder=Builder(torch.optim.Adam, {"lr": lr}),
    )
    runner = make_runner(tmp_path / f"seed_{seed}", pipeline, num_envs=4, seed=seed)
    runner.collector.collect(runner.pipeline.pipeline_stages[0])
    return runner


def members(runners: list[OnPolicyRunner], seeds: tuple[int, ...]) -> list[MemberUpdate]:
    """Each runner's update of its latest rollout, its minibatches drawn with torch's global
    generator seeded with its seed."""
    updates = []
    for runner, seed in zip(runners, seeds, strict=True):
        assert runner.collector.storage is not None
        torch.manual_seed(seed)
        random = RandomStreams()
        stage = runner.pipeline.pipeline_stages[0]
        updates.append(MemberUpdate(runner.learner, stage, runner.collector.storage, random))
    return updates


def weights(runner: OnPolicyRunner) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in runner.model.named_parameters()}


def adam_moments(runner: OnPolicyRunner) -> list[torch.Tensor]:
    state = runner.learner.optimizer.state
    return [state[p][key] for p in runner.learner.parameters for key in ("exp_avg", "exp_avg_sq")]


FORWARDS = ["stacked", "stacked in groups", "vmap"]
"""How the stack runs the members' models: the architecture's own stacked forward
(``MLPActorCritic.forward_members``) for all members at once, or for two at a time (as when a
batch's layer outputs would pass ``STACKED_ACTIVATIONS``), or one call per member under
``torch.vmap`` (what a model without a stacked forward gets)."""


def batched_updates(
    runners: list[OnPolicyRunner],
    seeds: tuple[int, ...],
    rounds: int,
    forward: str = "stacked",
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> None:
    stack = StackedModels([runner.learner for runner in runners])
    assert stack.stacks_members
    stack.stacks_members = forward != "vmap"
    if forward == "stacked in groups":
        assert monkeypatch is not None
        widest = max(p.shape[0] for p in runners[0].model.parameters() if p.dim() > 1)
        rows = ROLLOUT_ROWS // NUM_MINI_BATCH
        monkeypatch.setattr(stacked, "STACKED_ACTIVATIONS", 2 * rows * widest)
    updates = members(runners, seeds)
    for _ in range(rounds):
        update_members(stack, updates, 0)


@pytest.mark.parametrize("forward", FORWARDS)
def test_the_stacked_update_equals_each_members_own_update(
    tmp_path: Path, forward: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two updates (two epochs of two minibatches each) of three members in one batch give
    each member the weights and Adam moments that its own Learner gives it alone, drawing the
    same minibatches (batched products round differently from a member's own: to float32
    precision)."""
    batched = [member_runner(tmp_path / "batched", seed) for seed in SEEDS]
    alone = [member_runner(tmp_path / "alone", seed) for seed in SEEDS]
    initial = [weights(runner) for runner in batched]
    batched_updates(batched, SEEDS, rounds=2, forward=forward, monkeypatch=monkeypatch)
    for runner, seed in zip(alone, SEEDS, strict=True):
        assert runner.collector.storage is not None
        torch.manual_seed(seed)  # the global generator draws as the member's own does
        stage = runner.pipeline.pipeline_stages[0]
        for _ in range(2):
            runner.learner.update(stage, stage.stage_components[0], runner.collector.storage)
    for together, own, before in zip(batched, alone, initial, strict=True):
        assert weights(together).keys() == weights(own).keys()
        for name, value in weights(together).items():
            assert not torch.equal(value, before[name]), f"{name} did not learn"
            torch.testing.assert_close(value, weights(own)[name], rtol=1e-5, atol=1e-6)
        for mine, theirs in zip(adam_moments(together), adam_moments(own), strict=True):
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-7)
        recorded, own_recorded = (
            together.statistics.interval.means(),
            own.statistics.interval.means(),
        )
        assert recorded.keys() == own_recorded.keys()
        for name, value in recorded.items():
            assert value == pytest.approx(own_recorded[name], rel=1e-4, abs=1e-6), name


@pytest.mark.parametrize("forward", FORWARDS)
def test_a_member_learns_the_same_in_any_batch_bit_for_bit(
    tmp_path: Path, forward: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The middle seed trained in a batch of three and in a batch of its own ends with the
    same weights and optimizer state, bit for bit."""
    three = [member_runner(tmp_path / "three", seed) for seed in SEEDS]
    one = [member_runner(tmp_path / "one", SEEDS[1])]
    batched_updates(three, SEEDS, rounds=3, forward=forward, monkeypatch=monkeypatch)
    batched_updates(one, SEEDS[1:2], rounds=3, forward=forward, monkeypatch=monkeypatch)
    for name, value in weights(three[1]).items():
        assert torch.equal(value, weights(one[0])[name]), name
    for mine, theirs in zip(adam_moments(three[1]), adam_moments(one[0]), strict=True):
        assert torch.equal(mine, theirs)


SETTINGS = {
    "learning rates": ({"lr": 1e-3}, {"lr": 4e-3}),
    "loss coefficients": (
        {"clip_param": 0.1, "entropy_coef": 0.01},
        {"clip_param": 0.3, "entropy_coef": 0.2, "value_loss_coef": 1.0},
    ),
}


@pytest.mark.parametrize("swept", list(SETTINGS))
def test_members_with_settings_of_their_own_learn_as_alone(tmp_path: Path, swept: str) -> None:
    """Two members whose learning rates (each then stepped by its own optimizer) or PPO
    coefficients differ, updated in one batch: each ends with the weights and optimizer
    state of its update in a batch of its own, bit for bit, and the two differ from the same
    start."""
    settings = SETTINGS[swept]
    # One seed twice: the same weights and rollout, only the settings tell them apart.
    pair = [member_runner(tmp_path / f"pair_{i}", 3, **own) for i, own in enumerate(settings)]
    batched_updates(pair, (3, 3), rounds=2)
    assert weights(pair[0]).keys() == weights(pair[1]).keys()
    assert any(
        not torch.equal(value, weights(pair[1])[name]) for name, value in weights(pair[0]).items()
    )
    for together, own_settings in zip(pair, settings, strict=True):
        (alone,) = [member_runner(tmp_path / "alone", 3, **own_settings)]
        batched_updates([alone], (3,), rounds=2)
        for name, value in weights(together).items():
            assert torch.equal(value, weights(alone)[name]), name
        for mine, theirs in zip(adam_moments(together), adam_moments(alone), strict=True):
            assert torch.equal(mine, theirs)
        lr = alone.learner.optimizer.param_groups[0]["lr"]
        assert together.learner.optimizer.param_groups[0]["lr"] == lr


def test_gradients_are_clipped_by_each_members_own_norm() -> None:
    """Each member's slices are scaled as clip_grad_norm_ scales that member's own gradients:
    a member under its limit keeps its gradient."""
    torch.manual_seed(0)
    own = [[torch.randn(3, 2) * scale, torch.randn(4) * scale] for scale in (0.01, 5.0, 1.0)]
    stacked = [torch.stack([grads[i] for grads in own]).requires_grad_() for i in range(2)]
    for parameter, index in zip(stacked, range(2), strict=True):
        parameter.grad = torch.stack([grads[index] for grads in own])
    clip_by_member(stacked, torch.tensor([0.5, 0.5, 2.0]))
    for member, (grads, limit) in enumerate(zip(own, (0.5, 0.5, 2.0), strict=True)):
        parameters = [nn.Parameter(torch.zeros_like(grad)) for grad in grads]
        for parameter, grad in zip(parameters, grads, strict=True):
            parameter.grad = grad.clone()
        nn.utils.clip_grad_norm_(parameters, limit)
        for parameter, stacked_parameter in zip(parameters, stacked, strict=True):
            assert stacked_parameter.grad is not None and parameter.grad is not None
            torch.testing.assert_close(stacked_parameter.grad[member], parameter.grad)
    assert torch.equal(stacked[0].grad[0], own[0][0])  # type: ignore[index]


def test_models_with_memory_are_refused(tmp_path: Path) -> None:
    pipeline = make_pipeline([PipelineStage(["ppo"], 64)])
    task = CartPoleTask(2)
    runner = make_runner(
        tmp_path,
        pipeline,
        task=task,
        wrap_model=lambda _: RecurrentActorCritic(task.observation_shape, task.action_space),
    )
    with pytest.raises(InvalidArgumentError, match="memoryless models only"):
        StackedModels([runner.learner])


def test_a_loss_that_stops_one_members_update_is_refused(tmp_path: Path) -> None:
    runners = [member_runner(tmp_path, seed, target_kl=1e-12) for seed in SEEDS]
    with pytest.raises(InvalidArgumentError, match="target_kl"):
        batched_updates(runners, SEEDS, rounds=2)


def test_models_with_buffers_are_refused(tmp_path: Path) -> None:
    runner = member_runner(tmp_path, 0)
    runner.model.register_buffer("counts", torch.zeros(2))
    with pytest.raises(InvalidArgumentError, match="buffers or frozen parameters"):
        StackedModels([runner.learner])
