"""MiniGridTask: MiniGrid and BabyAI behind the task protocol, with the BabyAI bot as expert."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from hydra_pipeline import (
    Builder,
    InvalidArgumentError,
    LinearDecay,
    PipelineStage,
    TrainingPipeline,
    set_seed,
)
from hydra_pipeline.engine import Imitation, OnPolicyRunner
from hydra_pipeline.models import RecurrentActorCritic, model_arguments
from hydra_pipeline.tasks import DiscreteActions, TensorSpace
from hydra_pipeline.tasks.minigrid import MISSION_VOCABULARY, MiniGridTask, mission_tokens

pytest.importorskip("minigrid")

SMALL_LEVEL = "BabyAI-GoToObj-v0"  # one 6x6 room, one object


class TestObservations:
    def test_babyai_observations_are_image_direction_and_mission(self) -> None:
        """A BabyAI level gives the 7x7x3 uint8 view, the direction and the mission as
        tokens, as declared in its observation space."""
        task = MiniGridTask(SMALL_LEVEL, num_envs=2, mission_length=6)
        assert task.observation_space == {
            "image": TensorSpace((7, 7, 3), "uint8", high=10),
            "direction": TensorSpace((), "int64", high=3),
            "mission": TensorSpace((6,), "int64", high=len(MISSION_VOCABULARY) - 1),
        }
        assert task.action_space == DiscreteActions(7) and task.has_expert
        observations = task.reset(seed=0)
        assert isinstance(observations, dict)
        assert observations["image"].dtype == torch.uint8
        assert observations["image"].shape == (2, 7, 7, 3)
        assert observations["direction"].shape == (2,)
        mission = task._envs.envs[0].unwrapped.mission  # type: ignore[attr-defined]
        assert observations["mission"][0].tolist() == mission_tokens(mission, 6)
        task.close()

    def test_minigrid_observations_have_no_mission_and_no_expert(self) -> None:
        """A MiniGrid environment gives image and direction (the view size as configured);
        it has no expert, and asking for one says why."""
        task = MiniGridTask(
            "MiniGrid-Empty-Random-5x5-v0", num_envs=2, env_kwargs={"agent_view_size": 5}
        )
        assert isinstance(task.observation_space, dict)
        assert set(task.observation_space) == {"image", "direction"}
        assert task.observation_space["image"].shape == (5, 5, 3)
        assert not task.has_expert
        with pytest.raises(NotImplementedError, match="needs a BabyAI level"):
            task.expert_actions()
        task.close()

    def test_mission_tokens_use_the_fixed_vocabulary(self) -> None:
        """Token numbers are fixed (checkpoints stay valid); words outside BabyAI's grammar
        are <unknown>; missions are padded or cut to the length."""
        assert MISSION_VOCABULARY["<pad>"] == 0 and MISSION_VOCABULARY["<unknown>"] == 1
        assert mission_tokens("go to the red ball", 7) == [11, 29, 27, 25, 5, 0, 0]
        assert mission_tokens("Get to the green goal square", 3) == [1, 29, 27]

    @pytest.mark.parametrize(
        "level", ["BabyAI-GoToLocal-v0", "BabyAI-PutNextLocal-v0", "BabyAI-Synth-v0"]
    )
    def test_babyai_missions_are_within_the_vocabulary(self, level: str) -> None:
        """Missions of several BabyAI levels (sequences, locations, put-next) use only the
        vocabulary's words."""
        task = MiniGridTask(level, num_envs=4, mission_length=32)
        for seed in range(3):
            tokens = task.reset(seed=seed)
            assert isinstance(tokens, dict)
            assert not (tokens["mission"] == MISSION_VOCABULARY["<unknown>"]).any()
        task.close()

    def test_other_environments_are_refused(self) -> None:
        """An id that is not a MiniGrid environment is refused, naming the key."""
        with pytest.raises(InvalidArgumentError, match="'env_id' names no MiniGrid environment"):
            MiniGridTask("CartPole-v1", num_envs=1)

    def test_missing_minigrid_names_the_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without the minigrid package, building the task says which extra to install."""
        monkeypatch.setitem(sys.modules, "minigrid", None)
        with pytest.raises(ImportError, match=r"hydra-pipeline\[minigrid\]"):
            MiniGridTask(SMALL_LEVEL)


class TestBot:
    def test_bot_recovers_from_actions_it_did_not_suggest(self) -> None:
        """The bot follows the actions really taken: after random moves it still leads every
        environment to success."""
        task = MiniGridTask(SMALL_LEVEL, num_envs=3)
        task.reset(seed=4)
        generator = torch.Generator().manual_seed(0)
        for _ in range(4):
            task.expert_actions()
            task.step(torch.randint(0, 3, (3,), generator=generator))
        succeeded = torch.zeros(3, dtype=torch.bool)
        for _ in range(40):
            result = task.step(task.expert_actions())
            ended = result.terminated | result.truncated
            assert bool((result.episode_metrics["success"][ended] == 1).all())
            succeeded |= ended
        assert succeeded.all()
        task.close()

    def test_bot_plans_again_after_the_agent_opens_a_box(self) -> None:
        """A box the agent opens vanishes, which makes the BabyAI bot give up
        (``DisappearedBoxError``); the task rebuilds the bot, which still reaches the goal."""
        task = MiniGridTask("BabyAI-GoToLocal-v0", num_envs=1)
        task.reset(seed=0)
        env = task._envs.envs[0].unwrapped  # type: ignore[attr-defined]
        box_position = _face_a_box_the_mission_does_not_name(env)
        task.expert_actions()  # the bot sees the box in front of the agent
        task.step(torch.tensor([env.actions.toggle]))
        assert env.grid.get(*box_position) is None
        for _ in range(env.max_steps):
            result = task.step(task.expert_actions())
            if bool(result.terminated | result.truncated):
                break
        assert result.episode_metrics["success"].tolist() == [1.0]
        task.close()

    def test_bot_is_the_teacher_of_a_recurrent_policy(self, tmp_path: Path) -> None:
        """Imitation with teacher forcing at 1: every action taken is the bot's, every
        episode succeeds, and the recurrent policy learns the bot's actions (cross-entropy
        below a uniform policy's, after 16 updates)."""
        set_seed(0)
        task = MiniGridTask(SMALL_LEVEL, num_envs=4, mission_length=5)
        model = RecurrentActorCritic(
            **model_arguments(task), hidden_size=16, encoder_hidden_sizes=(), cnn_channels=(4,)
        )
        pipeline = TrainingPipeline(
            named_losses={"imitation": Imitation()},
            pipeline_stages=[
                PipelineStage(["imitation"], 256, teacher_forcing=LinearDecay(1, 1.0, 1.0))
            ],
            optimizer_builder=Builder(torch.optim.Adam, {"lr": 3e-3}),
            num_mini_batch=2,
            update_repeats=2,
            max_grad_norm=0.5,
            num_steps=16,
            gamma=0.99,
            use_gae=True,
            gae_lambda=0.95,
            metric_accumulate_interval=64,
        )
        runner = OnPolicyRunner(
            pipeline,
            task,
            model,
            output_dir=tmp_path,
            seed=3,
            tensorboard=False,
            progress_bar=False,
        )
        runner.run()
        task.close()
        storage = runner.collector.storage
        assert storage is not None
        assert torch.equal(storage.actions, storage.expert_actions)
        assert runner.statistics.latest_metrics["success"] == 1.0
        assert runner.statistics.latest_metrics["teacher_forcing_sampled"] == 1.0
        assert (
            runner.statistics.latest_metrics["imitation/cross_entropy"] < 1.7
        )  # uniform: ln 7 = 1.95


def _face_a_box_the_mission_does_not_name(env: Any) -> tuple[int, int]:
    """Turns a BabyAI environment's agent to face a box that is not the mission's target, from
    an empty cell next to it, and returns the box's position."""
    from minigrid.core.constants import DIR_TO_VEC

    targets = {id(target) for target in env.instrs.desc.obj_set}
    for x in range(env.width):
        for y in range(env.height):
            box = env.grid.get(x, y)
            if box is None or box.type != "box" or id(box) in targets:
                continue
            for direction, (dx, dy) in enumerate(DIR_TO_VEC):
                if env.grid.get(x - dx, y - dy) is None:
                    env.agent_pos, env.agent_dir = (x - dx, y - dy), direction
                    return x, y
    raise AssertionError("no box to open in this episode")
