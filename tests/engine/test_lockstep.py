"""Members collecting in lockstep (their tasks stepped together, each acting with its own
random generators, on its own model's output or on its slice of one output of all members'
stacked models): a member's rollouts are those of its collector alone, bit for bit, and so
the same in any batch, on the built-in CartPole (joined into one task) and on Gymnasium tasks
(each stepped on its own; with gSDE's exploration matrices on Pendulum)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from hydra_pipeline import InvalidArgumentError, LinearDecay, PipelineStage
from hydra_pipeline.engine import Imitation, OnPolicyRunner
from hydra_pipeline.engine.batched import RandomStreams
from hydra_pipeline.engine.lockstep import Collecting, MemberTasks, collect_in_step
from hydra_pipeline.engine.rollout import RolloutStorage
from hydra_pipeline.engine.stacked import StackedModels
from hydra_pipeline.models import MLPActorCritic
from hydra_pipeline.tasks import CartPoleTask, Task
from hydra_pipeline.tasks.gym import GymTask
from tests.engine.test_runner import make_pipeline, make_runner

ROLLOUTS = 3
NUM_STEPS = 16

TASKS: dict[str, Callable[[], Task]] = {
    # A short time limit, so that episodes are cut short (bootstrapped) in the rollouts.
    "cartpole": lambda: CartPoleTask(num_envs=6, max_episode_steps=20),
    "gym": lambda: GymTask("CartPole-v1", num_envs=3),
    # Continuous actions explored with gSDE: exploration matrices drawn every 4 steps.
    "gsde": lambda: GymTask("Pendulum-v1", num_envs=2),
}


def gsde_model(task: Task) -> Callable[[nn.Module], nn.Module]:
    """Replaces a runner's model with a gSDE one for ``task``."""
    return lambda _: MLPActorCritic(
        task.observation_shape, task.action_space, (8,), use_sde=True, sde_sample_freq=4
    )


def runner_for(folder: Path, seed: int, kind: str) -> tuple[OnPolicyRunner, RandomStreams]:
    """A runner for ``seed`` on a task of ``kind``, and the random streams its run starts
    from. The built-in CartPole's stage imitates its expert under teacher forcing (expert
    actions and forcing draws in every step)."""
    if kind == "cartpole":
        stage = PipelineStage(
            ["imitation"], 10_000, teacher_forcing=LinearDecay(steps=400, startp=0.9, endp=0.1)
        )
        pipeline = make_pipeline(
            [stage], named_losses={"imitation": Imitation()}, num_steps=NUM_STEPS
        )
    else:
        pipeline = make_pipeline([PipelineStage(["ppo"], 10_000)], num_steps=NUM_STEPS)
    task = TASKS[kind]()
    wrap = gsde_model(task) if kind == "gsde" else None
    runner = make_runner(folder / f"seed_{seed}", pipeline, task=task, seed=seed, wrap_model=wrap)
    return runner, RandomStreams()


ACTING = ["own forwards", "one stacked forward"]
"""How the members' policies act: each calling its own model, or one forward of all members'
stacked models (``StackedModels.outputs``)."""


def collected(
    runners: list[tuple[OnPolicyRunner, RandomStreams]], acting: str = ACTING[0]
) -> list[list[RolloutStorage]]:
    """``ROLLOUTS`` rollouts of the runners in lockstep; each runner's storages (copies)."""
    tasks = MemberTasks([runner.task for runner, _ in runners])
    forward = None
    if acting == "one stacked forward":
        stack = StackedModels([runner.learner for runner, _ in runners])
        assert stack.stacks_members
        forward = stack.outputs
    rollouts: list[list[RolloutStorage]] = [[] for _ in runners]
    for _ in range(ROLLOUTS):
        members = [
            Collecting(runner.collector, runner.pipeline.pipeline_stages[0], random)
            for runner, random in runners
        ]
        for own, storage in zip(rollouts, collect_in_step(members, tasks, forward), strict=True):
            own.append(copy_of(storage))
    return rollouts


def copy_of(storage: RolloutStorage) -> RolloutStorage:
    copied = RolloutStorage.__new__(RolloutStorage)
    vars(copied).update(
        {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in vars(storage).items()}
    )
    return copied


def tensors(storage: RolloutStorage) -> dict[str, torch.Tensor]:
    return {k: v for k, v in vars(storage).items() if isinstance(v, torch.Tensor)}


@pytest.mark.parametrize("acting", ACTING)
@pytest.mark.parametrize("kind", list(TASKS))
def test_a_member_collects_the_same_in_any_batch(tmp_path: Path, kind: str, acting: str) -> None:
    """Seed 7 collecting with seeds 3 and 11 and with seed 11 alone: the same rollouts (every
    tensor of its storage), episodes, step counts and task state, bit for bit."""
    three = [runner_for(tmp_path / "three", seed, kind) for seed in (3, 7, 11)]
    two = [runner_for(tmp_path / "two", seed, kind) for seed in (7, 11)]
    rollouts_three, rollouts_two = collected(three, acting), collected(two, acting)
    if kind == "cartpole":
        assert isinstance(MemberTasks([r.task for r, _ in three]).joint, CartPoleTask)
    for mine, theirs in zip(rollouts_three[1], rollouts_two[0], strict=True):
        for name, tensor in tensors(mine).items():
            assert torch.equal(tensor, tensors(theirs)[name]), name
    (runner, random), (other, other_random) = three[1], two[0]
    assert (
        runner.pipeline.total_steps
        == other.pipeline.total_steps
        == ROLLOUTS * NUM_STEPS * (runner.task.num_envs)
    )
    assert runner.statistics.latest_metrics == other.statistics.latest_metrics
    assert torch.equal(random.state["torch"], other_random.state["torch"])
    if kind == "cartpole":
        assert torch.equal(runner.task.state_dict()["state"], other.task.state_dict()["state"])


@pytest.mark.parametrize("acting", ACTING)
@pytest.mark.parametrize("kind", list(TASKS))
def test_lockstep_collects_what_the_collector_collects_alone(
    tmp_path: Path, kind: str, acting: str
) -> None:
    """A member's rollouts in a batch are its collector's own rollouts: bit for bit when it
    acts with its own model; with one stacked forward, the same actions, episodes and
    observations, and the model's outputs (log-probabilities, values) to float32 rounding (a
    batched matrix product may round differently from a member's own)."""
    batched = [runner_for(tmp_path / "batched", seed, kind) for seed in (3, 7)]
    rollouts = collected(batched, acting)[1]
    alone, random = runner_for(tmp_path / "alone", 7, kind)
    for rollout in rollouts:
        with random:
            storage = alone.collector.collect(alone.pipeline.pipeline_stages[0])
        assert storage is not None
        for name, tensor in tensors(rollout).items():
            if acting == "own forwards":
                assert torch.equal(tensor, tensors(storage)[name]), name
            else:
                torch.testing.assert_close(tensor, tensors(storage)[name], rtol=1e-5, atol=1e-6)
    assert alone.statistics.latest_metrics == batched[1][0].statistics.latest_metrics


def test_joined_cartpoles_step_as_each_alone() -> None:
    """Three CartPoles of different sizes joined: each block's results, expert actions and
    state are its task's alone, bit for bit, through episode ends and restarts, and a task
    reset on its own resets its block of the joined task."""
    sizes, seeds = (5, 3, 7), (1, 2, 3)

    def tasks() -> list[CartPoleTask]:
        made = [CartPoleTask(num_envs=n, max_episode_steps=30) for n in sizes]
        for task, seed in zip(made, seeds, strict=True):
            task.reset(seed=seed)
        return made

    alone, members = tasks(), tasks()
    joint = CartPoleTask.joined(members)
    actions = torch.Generator().manual_seed(0)
    ended = 0
    for step in range(120):
        own = [torch.randint(0, 2, (n,), generator=actions) for n in sizes]
        results = [task.step(action) for task, action in zip(alone, own, strict=True)]
        joined = joint.step(torch.cat(own))
        ended += int((joined.terminated | joined.truncated).sum())
        start = 0
        for task, member, result in zip(alone, members, results, strict=True):
            rows = slice(start, start + task.num_envs)
            start = rows.stop
            for field in ("observations", "final_observations", "terminated", "truncated"):
                assert torch.equal(getattr(result, field), getattr(joined, field)[rows]), field
            assert torch.equal(task.expert_actions(), member.expert_actions())
            assert torch.equal(task.state_dict()["state"], member.state_dict()["state"])
        if step == 60:
            alone[1].reset()
            members[1].reset()
    assert ended > 0


def test_joining_refuses_what_cannot_be_one_task() -> None:
    with pytest.raises(InvalidArgumentError, match="max_episode_steps"):
        CartPoleTask.joined([CartPoleTask(2, 100), CartPoleTask(2, 200)])
    joint = CartPoleTask.joined([CartPoleTask(2), CartPoleTask(2)])
    with pytest.raises(InvalidArgumentError, match="Call reset\\(\\) of the tasks it joins"):
        joint.reset()
