"""Image and Dict observations through the whole loop: rollouts, storage, updates, truncation
bootstraps, checkpoints and exact resume, demonstrations and the Policy, on a tiny synthetic
task whose reward depends on what an image shows."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from hydra_pipeline import (
    Builder,
    InvalidArgumentError,
    LinearDecay,
    OffPolicyPipelineComponent,
    PipelineStage,
    TrainingPipeline,
    set_seed,
)
from hydra_pipeline.engine import PPO, Imitation, OnPolicyRunner
from hydra_pipeline.engine.checkpoint import CHECKPOINT_DIRECTORY
from hydra_pipeline.engine.normalization import Normalization
from hydra_pipeline.models import MLPActorCritic, RecurrentActorCritic, model_arguments
from hydra_pipeline.policy import Policy
from hydra_pipeline.tasks import DiscreteActions, ExpertDemonstrations, StepResult, TensorSpace
from hydra_pipeline.tasks.observations import Observations

EPISODE_STEPS = 4
SIZE = 6


class CueTask:
    """Each step an image shows a bright block on its left or right half (the cue); acting
    on the cue's side (0 left, 1 right) earns 1. Episodes are cut after four steps (a time
    limit: truncated, so the engine bootstraps them from their final observations).

    Args:
        num_envs: Environments.
        structured: A ``Dict`` observation (an ``(H, W, 1)`` image and the step number as
            ``clock``) instead of a ``(1, H, W)`` image alone.
    """

    action_space = DiscreteActions(2)
    has_expert = True

    def __init__(self, num_envs: int = 4, structured: bool = False) -> None:
        self.num_envs = num_envs
        self.structured = structured
        image = (SIZE, SIZE, 1) if structured else (1, SIZE, SIZE)
        self.observation_shape: tuple[int, ...] = () if structured else image
        self.observation_space: Any = TensorSpace(image, "uint8")
        if structured:
            self.observation_space = {
                "image": self.observation_space,
                "clock": TensorSpace((), "int64", high=EPISODE_STEPS - 1),
            }
        self.generator = torch.Generator()
        self.cues = torch.zeros(num_envs, dtype=torch.int64)
        self.clocks = torch.zeros(num_envs, dtype=torch.int64)

    def _observe(self, cues: Tensor, clocks: Tensor) -> Observations:
        images = torch.zeros((len(cues), SIZE, SIZE), dtype=torch.uint8)
        for index, cue in enumerate(cues.tolist()):
            columns = slice(0, SIZE // 2) if cue == 0 else slice(SIZE // 2, SIZE)
            images[index, :, columns] = 255
        if not self.structured:
            return images.unsqueeze(1)
        return {"image": images.unsqueeze(-1), "clock": clocks.clone()}

    def _draw(self) -> Tensor:
        return torch.randint(0, 2, (self.num_envs,), generator=self.generator)

    def reset(self, *, seed: int | None = None) -> Observations:
        if seed is not None:
            self.generator.manual_seed(seed)
        self.cues, self.clocks = self._draw(), torch.zeros(self.num_envs, dtype=torch.int64)
        return self._observe(self.cues, self.clocks)

    def step(self, actions: Tensor) -> StepResult:
        rewards = (actions == self.cues).to(torch.float32)
        clocks = self.clocks + 1
        truncated = clocks == EPISODE_STEPS
        cues = self._draw()
        final = self._observe(cues, clocks.clamp(max=EPISODE_STEPS - 1))
        self.cues, self.clocks = cues, torch.where(truncated, 0, clocks)
        return StepResult(
            self._observe(self.cues, self.clocks),
            rewards,
            torch.zeros(self.num_envs, dtype=torch.bool),
            truncated,
            final,
        )

    def expert_actions(self) -> Tensor:
        return self.cues.clone()

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "cues": self.cues.clone(),
            "clocks": self.clocks.clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.cues, self.clocks = state["cues"].clone(), state["clocks"].clone()

    def close(self) -> None:
        pass


def make_runner(
    tmp_path: Path,
    stages: list[PipelineStage],
    *,
    structured: bool,
    save_interval: int | None = None,
    losses: Mapping[str, Any] | None = None,
    recurrent: bool = False,
) -> OnPolicyRunner:
    set_seed(0)
    task = CueTask(structured=structured)
    model: torch.nn.Module = MLPActorCritic(
        **model_arguments(task), hidden_sizes=(16,), cnn_channels=(4,)
    )
    if recurrent:
        model = RecurrentActorCritic(
            **model_arguments(task), hidden_size=8, encoder_hidden_sizes=(8,), cnn_channels=(4,)
        )
    pipeline = TrainingPipeline(
        named_losses=dict(losses or {"ppo": PPO(), "imitation": Imitation()}),
        pipeline_stages=stages,
        optimizer_builder=Builder(torch.optim.Adam, {"lr": 3e-3}),
        num_mini_batch=2,
        update_repeats=2,
        max_grad_norm=0.5,
        num_steps=8,
        gamma=0.9,
        use_gae=True,
        gae_lambda=0.95,
        save_interval=save_interval,
        metric_accumulate_interval=1,
    )
    return OnPolicyRunner(
        pipeline, task, model, output_dir=tmp_path, seed=1, tensorboard=False, progress_bar=False
    )


def cue_probability(runner: OnPolicyRunner) -> float:
    """The mean probability the policy gives the cue's action on fresh steps (about 0.5
    untrained: the actor head starts nearly uniform)."""
    assert isinstance(runner.task, CueTask)
    task = CueTask(num_envs=64, structured=runner.task.structured)
    observations = task.reset(seed=123)
    with torch.no_grad():
        distribution = runner.model(observations).distribution
    return float(distribution.log_prob(task.cues).exp().mean())


class TestImages:
    def test_model_arguments_carry_the_observation_space(self) -> None:
        """A task with image observations gives models its observation_space; a task of
        float32 vectors does not (models written for vectors keep working)."""
        task = CueTask()
        assert model_arguments(task)["observation_space"] == TensorSpace((1, 6, 6), "uint8")
        task.observation_space = None
        task.observation_shape = (3,)
        assert "observation_space" not in model_arguments(task)

    def test_images_are_stored_compactly_and_learned_from(self, tmp_path: Path) -> None:
        """Imitation of the cue through the convolutional encoder: the rollout keeps the
        images as uint8 (not float32 copies), and the policy ends up reading the cue."""
        runner = make_runner(tmp_path, [PipelineStage(["imitation"], 320)], structured=False)
        assert cue_probability(runner) < 0.6
        runner.run()
        storage = runner.collector.storage
        assert storage is not None and isinstance(storage.observations, Tensor)
        assert storage.observations.dtype == torch.uint8
        assert storage.observations.shape == (8, 4, 1, SIZE, SIZE)
        assert cue_probability(runner) > 0.9


class TestDictObservations:
    def test_ppo_learns_from_dict_observations(self, tmp_path: Path) -> None:
        """PPO on Dict observations: the rollout stores a dict of tensors in their own
        element types, truncated episodes are valued from their Dict final observations, and
        the policy learns to follow the cue."""
        runner = make_runner(tmp_path, [PipelineStage(["ppo"], 1600)], structured=True)
        assert cue_probability(runner) < 0.6
        runner.run()
        storage = runner.collector.storage
        assert storage is not None and isinstance(storage.observations, dict)
        assert storage.observations["image"].dtype == torch.uint8
        assert storage.observations["clock"].dtype == torch.int64
        truncated = storage.truncated
        assert truncated.any() and (storage.final_values[truncated] != 0).all()
        assert (storage.final_values[~truncated] == 0).all()
        assert runner.statistics.latest_metrics["reward"] > 3.0
        assert cue_probability(runner) > 0.9

    @pytest.mark.parametrize("recurrent", [False, True], ids=["mlp", "gru"])
    def test_exact_resume_with_dict_observations(self, tmp_path: Path, recurrent: bool) -> None:
        """Checkpoints hold Dict observations (loaded weights-only), and a run resumed from
        one ends with the same weights as the uninterrupted run, with a memoryless model and
        with a recurrent one (same encoder, then a GRU)."""

        def stages() -> list[PipelineStage]:
            return [PipelineStage(["ppo"], 96, teacher_forcing=LinearDecay(steps=96))]

        uninterrupted = make_runner(tmp_path / "a", stages(), structured=True, recurrent=recurrent)
        uninterrupted.run()
        saving = make_runner(
            tmp_path / "b", stages(), structured=True, save_interval=32, recurrent=recurrent
        )
        saving.run()
        first = sorted((tmp_path / "b" / CHECKPOINT_DIRECTORY).iterdir())[0]
        resumed = make_runner(tmp_path / "c", stages(), structured=True, recurrent=recurrent)
        resumed.resume(first)
        assert isinstance(resumed.collector.stepper.observations, dict)
        resumed.run()
        for name, tensor in uninterrupted.model.state_dict().items():
            assert torch.equal(tensor, resumed.model.state_dict()[name]), name

    def test_demonstrations_of_dict_observations(self, tmp_path: Path) -> None:
        """Expert demonstrations record Dict observations and serve them in minibatches to an
        off-policy imitation component."""
        demonstrations = ExpertDemonstrations(
            CueTask(structured=True), num_steps=8, batch_size=8, seed=2
        )
        batch = next(demonstrations())
        assert set(batch["observations"]) == {"image", "clock"}
        assert batch["observations"]["image"].shape == (8, SIZE, SIZE, 1)
        stage = PipelineStage(
            ["ppo"],
            64,
            offpolicy_component=OffPolicyPipelineComponent(demonstrations, ["bc"], updates=2),
        )
        runner = make_runner(
            tmp_path,
            [stage],
            structured=True,
            losses={"ppo": PPO(), "bc": Imitation()},
        )
        runner.run()
        assert "offpolicy/bc/cross_entropy" in runner.statistics.latest_metrics or any(
            name.endswith("bc/cross_entropy") for name in runner.statistics.latest_metrics
        )


class TestNormalization:
    def test_observation_normalisation_of_images_is_refused(self, tmp_path: Path) -> None:
        """Normalising uint8 images (or Dict observations) is refused when the run is built,
        naming the key and the fix; reward scaling alone is allowed."""
        task = CueTask(structured=True)
        model = MLPActorCritic(**model_arguments(task), hidden_sizes=(8,), cnn_channels=(2,))
        pipeline = make_runner(tmp_path, [PipelineStage(["ppo"], 32)], structured=True).pipeline
        with pytest.raises(InvalidArgumentError, match=r"'normalization.observations' applies"):
            OnPolicyRunner(
                pipeline, task, model, output_dir=tmp_path, normalization=Normalization(True)
            )
        runner = OnPolicyRunner(
            pipeline, task, model, output_dir=tmp_path, normalization=Normalization(rewards=True)
        )
        assert runner.collector.stepper.normalization is not None


class TestPolicy:
    def test_policy_acts_on_dict_observations(self) -> None:
        """A Policy takes a mapping of NumPy arrays for a Dict space, converts them to the
        space's element types, and refuses a mapping with other keys."""
        task = CueTask(structured=True)
        model = MLPActorCritic(**model_arguments(task), hidden_sizes=(8,), cnn_channels=(2,))
        policy = Policy(model, (), task.action_space, observation_space=task.observation_space)
        observations = task.reset(seed=0)
        assert isinstance(observations, dict)
        actions = policy.act({key: value.numpy() for key, value in observations.items()})
        assert isinstance(actions, np.ndarray) and actions.shape == (4,)
        with pytest.raises(InvalidArgumentError, match=r"keys \['clock', 'image'\]"):
            policy.act({"image": observations["image"].numpy()})
