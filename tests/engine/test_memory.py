"""Models with memory in the engine: acting resets memory where episodes start, updates replay
the rollout's sequences, bootstraps use the episode's memory, checkpoints resume exactly, and
memory pays off on a partially observed CartPole."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from hydra_pipeline import (
    Builder,
    InvalidArgumentError,
    LinearDecay,
    OffPolicyPipelineComponent,
    PipelineStage,
    Policy,
    TrainingPipeline,
    set_seed,
)
from hydra_pipeline.engine import PPO, Imitation, Minibatch, OnPolicyRunner
from hydra_pipeline.engine.acting import Actor, TaskStepper, model_output
from hydra_pipeline.engine.checkpoint import CHECKPOINT_DIRECTORY, load_checkpoint
from hydra_pipeline.engine.evaluation import Evaluator
from hydra_pipeline.models import (
    ActorCriticOutput,
    Categorical,
    MLPActorCritic,
    RecurrentActorCritic,
    reset_memory,
)
from hydra_pipeline.tasks import CartPoleTask, DiscreteActions, ExpertDemonstrations, StepResult


class CountingModel(nn.Module):
    """Remembers how many steps its episode has taken; its value is that count (before the
    step), so the values show the memory. Acts uniformly at random."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def initial_memory(self, batch_size: int) -> Tensor:
        return torch.zeros(batch_size, 1)

    def forward(
        self, observations: Tensor, memory: Tensor, episode_starts: Tensor
    ) -> tuple[ActorCriticOutput, Tensor]:
        values = []
        for starts in episode_starts:
            memory = reset_memory(memory, starts)
            values.append(memory[:, 0] * self.scale)
            memory = memory + 1
        logits = torch.zeros(observations.shape[0], 2)
        return ActorCriticOutput(Categorical(logits), torch.cat(values)), memory


class ClockTask:
    """Two environments whose episodes last 2 and 3 steps: environment 0's terminate,
    environment 1's are truncated (cut short by a time limit)."""

    num_envs = 2
    observation_shape = (1,)
    action_space = DiscreteActions(2)
    has_expert = False

    def __init__(self) -> None:
        self.steps = torch.zeros(2, dtype=torch.int64)

    def reset(self, *, seed: int | None = None) -> Tensor:
        self.steps.zero_()
        return torch.zeros(2, 1)

    def step(self, actions: Tensor) -> StepResult:
        self.steps += 1
        terminated = torch.tensor([bool(self.steps[0] == 2), False])
        truncated = torch.tensor([False, bool(self.steps[1] == 3)])
        final = self.steps.float().unsqueeze(1)
        self.steps[terminated | truncated] = 0
        return StepResult(
            self.steps.float().unsqueeze(1), torch.ones(2), terminated, truncated, final
        )

    def expert_actions(self) -> Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.steps.copy_(state["steps"])

    def close(self) -> None:
        pass


def pipeline(stages: list[PipelineStage], **settings: Any) -> TrainingPipeline:
    arguments: dict[str, Any] = {
        "named_losses": {"ppo": PPO()},
        "pipeline_stages": stages,
        "optimizer_builder": Builder(torch.optim.Adam, {"lr": 1e-3}),
        "num_mini_batch": 2,
        "update_repeats": 2,
        "max_grad_norm": 0.5,
        "num_steps": 8,
        "gamma": 0.99,
        "use_gae": True,
        "gae_lambda": 0.95,
        "metric_accumulate_interval": 32,
    }
    return TrainingPipeline(**{**arguments, **settings})


def recurrent(task: CartPoleTask, seed: int = 0, rnn_type: str = "gru") -> RecurrentActorCritic:
    """A small recurrent policy for ``task``, its weights drawn from ``seed``."""
    set_seed(seed)
    return RecurrentActorCritic(
        task.observation_shape,
        task.action_space,
        rnn_type=rnn_type,
        hidden_size=8,
        encoder_hidden_sizes=(8,),
    )


def runner(
    output_dir: Path, training: TrainingPipeline, task: Any, model: nn.Module, seed: int = 0
) -> OnPolicyRunner:
    return OnPolicyRunner(
        training,
        task,
        model,
        output_dir=output_dir,
        seed=seed,
        tensorboard=False,
        progress_bar=False,
    )


class TestActing:
    def test_memory_is_reset_where_episodes_start(self) -> None:
        """On hand-made episodes of 2 and 3 steps, the actor tells the model where each
        starts: the remembered step counts restart there, and each transition records the
        starts it acted on."""
        task = ClockTask()
        stepper = TaskStepper(task, Actor(CountingModel(), task.action_space, torch.device("cpu")))
        stepper.reset()
        moves = [stepper.step(final_values=True) for _ in range(6)]
        values = torch.stack([move.output.values for move in moves])
        assert values.T.tolist() == [[0, 1, 0, 1, 0, 1], [0, 1, 2, 0, 1, 2]]
        starts = torch.stack(
            [move.episode_starts for move in moves if move.episode_starts is not None]
        )
        assert starts.T.tolist() == [
            [True, False, True, False, True, False],
            [True, False, False, True, False, False],
        ]
        # The truncated episodes are valued with their own memory (3 steps taken), not the
        # fresh memory of the episode that follows; terminated ones are not valued.
        final = torch.stack([move.final_values for move in moves if move.final_values is not None])
        assert final.T.tolist() == [[0.0] * 6, [0, 0, 3, 0, 0, 3]]
        # The value to bootstrap from after the last step uses a fresh memory where an
        # episode starts next.
        assert stepper.actor.values(stepper.observations).tolist() == [0.0, 0.0]

    def test_a_reset_forgets_everything(self) -> None:
        """reset() starts every episode over, for any batch size; a policy remembers only the
        batch it acts on until then."""
        actor = Actor(CountingModel(), DiscreteActions(2), torch.device("cpu"))
        for _ in range(3):
            _, output = actor.act(torch.zeros(2, 1))
        assert output.values.tolist() == [2.0, 2.0]
        with pytest.raises(InvalidArgumentError, match=r"must be a batch of 2.*Call reset"):
            actor.act(torch.zeros(3, 1))
        actor.reset(torch.tensor([True, False]))
        assert actor.act(torch.zeros(2, 1))[1].values.tolist() == [0.0, 3.0]
        actor.reset()
        assert actor.act(torch.zeros(3, 1))[1].values.tolist() == [0.0, 0.0, 0.0]

    def test_policy_and_evaluation_act_with_memory(self, tmp_path: Path) -> None:
        """Policy carries memory between calls and forgets it on reset; an evaluation of a
        recurrent model plays its episodes."""
        task = CartPoleTask(2, max_episode_steps=5, hide_velocities=True)
        model = recurrent(task)
        policy = Policy(model, task.observation_shape, task.action_space)
        observations = torch.randn(3, 2)
        policy.act(observations)
        assert policy.actor.memory is not None and bool(policy.actor.memory.any())
        with pytest.raises(InvalidArgumentError, match="observations"):
            policy.act(torch.randn(2, 2))
        policy.reset()
        assert policy.act(torch.randn(2, 2)).shape == (2,)
        result = Evaluator(task, model, episodes=3).evaluate()
        assert result.lengths == [5, 5, 5]


class ReplaySpy(PPO):
    """PPO that records the first minibatch of each update (before its first gradient step)
    and the model's output on it, by the stage's step count."""

    def __init__(self) -> None:
        super().__init__()
        self.first: dict[int, tuple[Minibatch, ActorCriticOutput]] = {}

    def __call__(
        self, *, step_count: int, batch: Minibatch, output: ActorCriticOutput
    ) -> tuple[Tensor, dict[str, float]]:
        self.first.setdefault(step_count, (batch, output))
        return super().__call__(step_count=step_count, batch=batch, output=output)


class TestUpdates:
    def test_the_replay_equals_the_rollout(self, tmp_path: Path) -> None:
        """The first minibatch of each update (whole sequences of half the environments,
        across episode starts) gives, before the update's first gradient step, the log-probs
        and values the rollout computed one step at a time; the second rollout's sequences
        start from the memory the first one left."""
        spy = ReplaySpy()
        task = CartPoleTask(4, max_episode_steps=3)
        training = pipeline([PipelineStage(["ppo"], 64)], named_losses={"ppo": spy})
        runner(tmp_path, training, task, recurrent(task)).run()
        assert sorted(spy.first) == [32, 64]
        for batch, output in spy.first.values():
            assert batch.memory is not None and batch.episode_starts is not None
            assert batch.episode_starts.shape == (8, 2) and bool(batch.episode_starts[3:].any())
            assert batch.actions is not None and batch.old_log_probs is not None
            log_probs = output.distribution.log_prob(batch.actions)
            torch.testing.assert_close(log_probs, batch.old_log_probs)
            torch.testing.assert_close(output.values, batch.old_values)
        memory = spy.first[64][0].memory
        assert memory is not None and bool(memory.any())

    def test_sequences_replay_from_the_memory_they_started_with(self, tmp_path: Path) -> None:
        """With ``sequence_length``, each environment's rollout is cut into sequences that the
        update replays from the memory the rollout had at their first step: the first
        minibatch's log-probs and values equal the rollout's, the sequences mix environments
        and parts of the rollout, and the memory of later parts is not the fresh one."""
        spy = ReplaySpy()
        task = CartPoleTask(4, max_episode_steps=3)
        training = pipeline(
            [PipelineStage(["ppo"], 64)],
            named_losses={"ppo": spy},
            sequence_length=2,
            num_mini_batch=4,
        )
        runner(tmp_path, training, task, recurrent(task)).run()
        for batch, output in spy.first.values():
            assert batch.memory is not None and batch.episode_starts is not None
            # 4 environments x 4 sequences of 2 steps, in 4 minibatches: 4 sequences each.
            assert batch.episode_starts.shape == (2, 4) and batch.memory.shape[0] == 4
            assert batch.actions is not None and batch.old_log_probs is not None
            log_probs = output.distribution.log_prob(batch.actions)
            torch.testing.assert_close(log_probs, batch.old_log_probs)
            torch.testing.assert_close(output.values, batch.old_values)
        assert any(bool(batch.memory.any()) for batch, _ in spy.first.values())

    def test_a_sequence_length_must_divide_the_rollout(self, tmp_path: Path) -> None:
        task = CartPoleTask(2)
        training = pipeline([PipelineStage(["ppo"], 32)], sequence_length=3)
        with pytest.raises(
            InvalidArgumentError,
            match=r"'sequence_length' must divide the rollout's num_steps \(8\) when shorter",
        ):
            runner(tmp_path, training, task, recurrent(task))

    def test_minibatches_split_the_sequences(self, tmp_path: Path) -> None:
        """A model with memory may have as many minibatches as sequences, and no more."""
        task = CartPoleTask(2)
        allowed = pipeline([PipelineStage(["ppo"], 16)], sequence_length=4, num_mini_batch=4)
        runner(tmp_path / "a", allowed, task, recurrent(task)).run()
        refused = pipeline([PipelineStage(["ppo"], 16)], sequence_length=4, num_mini_batch=5)
        with pytest.raises(
            InvalidArgumentError, match=r"'num_mini_batch' must be <= the sequences in a rollout"
        ):
            runner(tmp_path / "b", refused, task, recurrent(task))

    def test_gradients_flow_through_the_sequence(self) -> None:
        """The replay backpropagates through time: the loss at the last step of a sequence
        reaches the first step's observation."""
        task = CartPoleTask(1, hide_velocities=True)
        model = recurrent(task)
        observations = torch.randn(5, 2, requires_grad=True)
        starts = torch.zeros(5, 1, dtype=torch.bool)
        output, _ = model_output(model, observations, model.initial_memory(1), starts)
        output.values[-1].backward()
        assert observations.grad is not None and float(observations.grad[0].abs().sum()) > 0

    def test_transition_minibatches_are_refused(self, tmp_path: Path) -> None:
        task = CartPoleTask(2)
        training = pipeline([PipelineStage(["ppo"], 32)], minibatch_split="transitions")
        with pytest.raises(InvalidArgumentError, match="'minibatch_split' must be 'environments'"):
            runner(tmp_path, training, task, recurrent(task))

    def test_demonstrations_are_refused(self, tmp_path: Path) -> None:
        """A data source's minibatches are single transitions: a model with memory cannot
        learn from them, and the run says so before it starts."""
        task = CartPoleTask(2)
        stage = PipelineStage(
            ["ppo"],
            32,
            offpolicy_component=OffPolicyPipelineComponent(
                ExpertDemonstrations(CartPoleTask(2), num_steps=4, batch_size=4), ["bc"], updates=1
            ),
        )
        training = pipeline([stage], named_losses={"ppo": PPO(), "bc": Imitation()})
        with pytest.raises(InvalidArgumentError, match=r"the model has memory.*model=mlp"):
            runner(tmp_path, training, task, recurrent(task))


def weights(model: nn.Module) -> dict[str, Tensor]:
    return {name: value.clone() for name, value in model.state_dict().items()}


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_resume_with_memory_is_exact(tmp_path: Path, rnn_type: str) -> None:
    """A run of a recurrent model resumed from a checkpoint taken mid-episode (memory and
    episode starts saved; an LSTM's cell state beside its hidden state) ends with the
    uninterrupted run's weights and metrics, bit for bit. Teacher forcing and imitation run on
    the memory model too."""

    def make(output_dir: Path, save_interval: int | None) -> OnPolicyRunner:
        task = CartPoleTask(2, max_episode_steps=7, hide_velocities=True)
        stages = [
            PipelineStage(["imitation"], 32, teacher_forcing=LinearDecay(steps=32)),
            PipelineStage(["ppo"], 32),
        ]
        training = pipeline(
            stages,
            named_losses={"ppo": PPO(), "imitation": Imitation()},
            save_interval=save_interval,
        )
        model = recurrent(task, seed=3, rnn_type=rnn_type)
        return runner(output_dir, training, task, model, seed=3)

    uninterrupted = make(tmp_path / "a", None)
    expected = uninterrupted.run()
    saving = make(tmp_path / "b", 16)
    saving.run()
    checkpoints = sorted((tmp_path / "b" / CHECKPOINT_DIRECTORY).iterdir())
    memory = load_checkpoint(checkpoints[1])["ranks"][0]["acting"]["memory"]
    assert memory is not None and bool(memory.any())
    resumed = make(tmp_path / "c", 16)
    resumed.resume(checkpoints[1])
    summary = resumed.run()
    for name, value in weights(uninterrupted.model).items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert summary.final_metrics == expected.final_metrics


@pytest.mark.slow  # a learning run: two models trained for 16,384 steps each
def test_memory_balances_a_partially_observed_cartpole(tmp_path: Path) -> None:
    """Seeing only the cart's position and the pole's angle, a GRU policy learns to balance
    (by imitation of the expert, handing control over by teacher forcing), and an MLP of the
    same widths, trained the same way from the same seed, cannot: it would need the
    velocities, which only memory of earlier observations can estimate."""
    returns = {}
    for name in ("gru", "mlp"):
        set_seed(0)
        task = CartPoleTask(32, max_episode_steps=200, hide_velocities=True)
        model: nn.Module
        if name == "gru":
            model = RecurrentActorCritic(
                task.observation_shape,
                task.action_space,
                hidden_size=32,
                encoder_hidden_sizes=(32,),
            )
        else:
            model = MLPActorCritic(task.observation_shape, task.action_space, hidden_sizes=(32, 32))
        steps = 16384
        training = pipeline(
            [PipelineStage(["imitation"], steps, teacher_forcing=LinearDecay(steps=steps))],
            named_losses={"imitation": Imitation()},
            optimizer_builder=Builder(torch.optim.Adam, {"lr": 1e-2}),
            num_mini_batch=1,
            update_repeats=4,
            num_steps=16,
            metric_accumulate_interval=steps,
        )
        runner(tmp_path / name, training, task, model).run()
        evaluation = CartPoleTask(4, max_episode_steps=200, hide_velocities=True)
        result = Evaluator(evaluation, model, episodes=8, seed=123).evaluate()
        returns[name] = result.summary()["reward"]
    assert returns["gru"] >= 195, returns
    assert returns["mlp"] < 100, returns
