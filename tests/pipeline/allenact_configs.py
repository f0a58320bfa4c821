"""Real AllenAct 0.5.x experiment configs' ``training_pipeline()``, transcribed as test data.

Each ``CONFIGS`` entry transcribes the ``training_pipeline()`` (and, where noted, the
``machine_params()`` arithmetic) of one experiment config of AllenAct's repository
(github.com/allenai/allenact at da61b72f, the merge of the 0.5.4 release; the path is in the
entry). Class attributes and constructor arguments the method reads are filled in with the
values it sees on a machine without a GPU (``torch.cuda.is_available()`` False). The code is
written against two arguments, so that the same transcription builds either library's objects:

* ``eu``: an ``experiment_utils`` module, AllenAct's (``allenact.utils.experiment_utils``) or
  ``hydra_pipeline.experiment_utils``;
* ``lib``: the losses (``PPO``, ``PPOConfig``, ``A2C``, ``A2CConfig``, ``Imitation``), optimizer
  and scheduler classes, from AllenAct and torch or from ``hydra_pipeline.engine.losses`` and
  torch.

Losses and storages that only AllenAct's plugins define (auxiliary losses, BabyAI expert
trajectories, ...) are stand-ins: the pipeline only stores them.

:func:`describe` turns a built pipeline into plain data through AllenAct 0.5.4's public API
only (stages, resolved training settings, stage components, losses, builders unpacked as
tuples, schedule values at fixed steps), and :func:`simulate_allenact_engine` replays AllenAct
0.5.4's ``OnPolicyRLEngine.run_pipeline`` bookkeeping (stage progression, log points and
checkpoint points, each rollout adding ``num_steps`` x samplers steps) on it.
``allenact_0_5_4.json`` holds what they give for AllenAct's own objects; it was recorded in a
separate environment with ``pip install allenact==0.5.4 gym==0.17.3`` by running this file::

    python tests/pipeline/allenact_configs.py > tests/pipeline/allenact_0_5_4.json
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from types import ModuleType, SimpleNamespace
from typing import Any, NamedTuple


class StandInLoss:
    """A loss only AllenAct's plugins define: the pipeline stores it and never calls it."""

    def __init__(self, name: str) -> None:
        self.name = name


class StandInStorage:
    """A storage only AllenAct's plugins define (expert trajectories, replay buffers): an
    empty data source, which is all a pipeline needs to be built."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self) -> Iterator[Any]:
        return iter(())


class Config(NamedTuple):
    """One transcribed config."""

    source: str
    """The file in AllenAct's repository (and the class or method, when not obvious)."""
    build: Callable[[ModuleType, Any], tuple[Any, dict[str, Any]]]
    """Returns the pipeline and extra objects the method builds (decays, machine params)."""
    num_samplers: int
    """Samplers (environments) per rollout in the schedule replay: the config's training
    processes, or more for the long navigation runs (so that the replay stays short)."""


# ---------------------------------------------------------------------------------------------
# Helpers that several configs share, transcribed once.


def babyai_rl_loss_default(
    lib: Any, eu: ModuleType, alg: str, steps: int | None = None, ppo_num_mini_batch: int = 2
) -> dict[str, Any]:
    """projects/babyai_baselines/experiments/base.py: BaseBabyAIExperimentConfig.rl_loss_default."""
    if alg == "ppo":
        assert steps is not None
        return {
            "loss": eu.Builder(
                lib.PPO, kwargs={"clip_decay": eu.LinearDecay(steps)}, default=lib.PPOConfig
            ),
            "num_mini_batch": ppo_num_mini_batch,
            "update_repeats": 4,
        }
    if alg == "a2c":
        return {"loss": lib.A2C(**lib.A2CConfig), "num_mini_batch": 1, "update_repeats": 1}
    assert alg == "imitation"
    return {"loss": lib.Imitation(), "num_mini_batch": ppo_num_mini_batch, "update_repeats": 4}


def babyai_go_to_local_pipeline(
    eu: ModuleType,
    lib: Any,
    named_losses: dict[str, Any],
    pipeline_stages: list[Any],
    num_mini_batch: int,
    update_repeats: int,
    total_train_steps: int,
    named_storages: dict[str, Any] | None = None,
    metric_accumulate_interval: int = 4 * 64,
) -> Any:
    """projects/babyai_baselines/experiments/go_to_local/base.py:
    BaseBabyAIGoToLocalExperimentConfig._training_pipeline (NUM_TRAIN_SAMPLERS = 4 without a
    GPU, ROLLOUT_STEPS = 128, NUM_CKPTS_TO_SAVE = 20, DEFAULT_LR = 1e-3, USE_LR_DECAY)."""
    return eu.TrainingPipeline(
        save_interval=int(total_train_steps / 20),
        metric_accumulate_interval=metric_accumulate_interval,
        optimizer_builder=eu.Builder(lib.Adam, dict(lr=1e-3)),
        num_mini_batch=num_mini_batch,
        update_repeats=update_repeats,
        max_grad_norm=0.5,
        num_steps=128,
        named_losses=named_losses,
        gamma=0.99,
        use_gae="reinforce_loss" not in named_losses,
        gae_lambda=0.99,
        advance_scene_rollout_period=None,
        should_log=True,
        pipeline_stages=pipeline_stages,
        named_storages=named_storages,
        lr_scheduler_builder=eu.Builder(
            lib.LambdaLR, {"lr_lambda": eu.LinearDecay(steps=total_train_steps)}
        ),
    )


def babyai_go_to_obj_pipeline(
    eu: ModuleType,
    lib: Any,
    named_losses: dict[str, Any],
    pipeline_stages: list[Any],
    num_mini_batch: int,
    update_repeats: int,
    **kwargs: Any,
) -> Any:
    """projects/babyai_baselines/experiments/go_to_obj/base.py:
    BaseBabyAIGoToObjExperimentConfig._training_pipeline (NUM_TRAIN_SAMPLERS = 16,
    ROLLOUT_STEPS = 32, DEFAULT_LR = 1e-3, USE_LR_DECAY = False)."""
    return eu.TrainingPipeline(
        save_interval=2**31,
        metric_accumulate_interval=16 * 128,
        optimizer_builder=eu.Builder(lib.Adam, dict(lr=1e-3)),
        num_mini_batch=num_mini_batch,
        update_repeats=update_repeats,
        max_grad_norm=0.5,
        num_steps=32,
        named_losses=named_losses,
        gamma=0.99,
        use_gae="reinforce_loss" not in named_losses,
        gae_lambda=0.99,
        advance_scene_rollout_period=None,
        should_log=True,
        pipeline_stages=pipeline_stages,
        lr_scheduler_builder=None,
        **kwargs,
    )


AUXILIARY_LOSS_WEIGHTS = {
    "InverseDynamicsLoss": 0.05 * 2.0,
    "TemporalDistanceLoss": 0.2 * 2.0,
    "CPCA1Loss": 0.05 * 2.0,
    "CPCA16Loss": 0.05 * 2.0,
}
"""projects/objectnav_baselines/mixins.py: update_with_auxiliary_losses's weights (those of
the losses used below; aux_loss_total_weight = 2.0)."""


def with_auxiliary_losses(
    named_losses: dict[str, tuple[Any, float]], auxiliary_uuids: list[str]
) -> dict[str, tuple[Any, float]]:
    """projects/objectnav_baselines/mixins.py: update_with_auxiliary_losses (no multiple
    beliefs), with stand-ins for the auxiliary losses."""
    named_losses.update(
        {uuid: (StandInLoss(uuid), AUXILIARY_LOSS_WEIGHTS[uuid]) for uuid in auxiliary_uuids}
    )
    return named_losses


# ---------------------------------------------------------------------------------------------
# The configs


def minigrid_tutorial(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    ppo_steps = 150000
    pipeline = eu.TrainingPipeline(
        named_losses=dict(ppo_loss=lib.PPO(**lib.PPOConfig)),
        pipeline_stages=[eu.PipelineStage(loss_names=["ppo_loss"], max_stage_steps=ppo_steps)],
        optimizer_builder=eu.Builder(lib.Adam, dict(lr=1e-4)),
        num_mini_batch=4,
        update_repeats=3,
        max_grad_norm=0.5,
        num_steps=16,
        gamma=0.99,
        use_gae=True,
        gae_lambda=0.95,
        advance_scene_rollout_period=None,
        save_interval=10000,
        metric_accumulate_interval=1,
        lr_scheduler_builder=eu.Builder(
            lib.LambdaLR, {"lr_lambda": eu.LinearDecay(steps=ppo_steps)}
        ),
    )
    return pipeline, {}


def gym_tutorial(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    ppo_steps = int(1.2e6)
    pipeline = eu.TrainingPipeline(
        named_losses=dict(
            ppo_loss=lib.PPO(clip_param=0.2, value_loss_coef=0.5, entropy_coef=0.0),
        ),
        pipeline_stages=[eu.PipelineStage(loss_names=["ppo_loss"], max_stage_steps=ppo_steps)],
        optimizer_builder=eu.Builder(lib.Adam, dict(lr=1e-3)),
        num_mini_batch=1,
        update_repeats=80,
        max_grad_norm=100,
        num_steps=2000,
        gamma=0.99,
        use_gae=False,
        gae_lambda=0.95,
        advance_scene_rollout_period=None,
        save_interval=200000,
        metric_accumulate_interval=50000,
        lr_scheduler_builder=eu.Builder(
            lib.LambdaLR, {"lr_lambda": eu.LinearDecay(steps=ppo_steps)}
        ),
    )
    return pipeline, {}


def gym_humanoid_ddppo(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    lr = 1e-4
    ppo_steps = int(8e7)
    pipeline = eu.TrainingPipeline(
        named_losses=dict(
            ppo_loss=lib.PPO(clip_param=0.1, value_loss_coef=0.5, entropy_coef=0.0),
        ),
        pipeline_stages=[eu.PipelineStage(loss_names=["ppo_loss"], max_stage_steps=ppo_steps)],
        optimizer_builder=eu.Builder(lib.Adam, dict(lr=lr)),
        num_mini_batch=4,
        update_repeats=10,
        max_grad_norm=0.5,
        num_steps=2048,
        gamma=0.99,
        use_gae=True,
        gae_lambda=0.95,
        advance_scene_rollout_period=None,
        save_interval=200000,
        metric_accumulate_interval=50000,
        lr_scheduler_builder=eu.Builder(
            lib.LambdaLR, {"lr_lambda": eu.LinearDecay(steps=ppo_steps, startp=1, endp=1)}
        ),
    )
    return pipeline, {}


def babyai_go_to_local_bc(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    total_train_steps = int(7.5e6)
    ppo_info = babyai_rl_loss_default(lib, eu, "ppo", steps=-1, ppo_num_mini_batch=4)
    imitation_info = babyai_rl_loss_default(lib, eu, "imitation", ppo_num_mini_batch=4)
    pipeline = babyai_go_to_local_pipeline(
        eu,
        lib,
        named_losses={"imitation_loss": imitation_info["loss"]},
        pipeline_stages=[
            eu.PipelineStage(loss_names=["imitation_loss"], max_stage_steps=total_train_steps),
        ],
        num_mini_batch=min(info["num_mini_batch"] for info in [ppo_info, imitation_info]),
        update_repeats=min(info["update_repeats"] for info in [ppo_info, imitation_info]),
        total_train_steps=total_train_steps,
    )
    # The PPO builder is made (with LinearDecay(steps=-1)) only for its settings.
    return pipeline, {"unused_ppo_builder": ppo_info["loss"]}


def babyai_go_to_local_bc_teacher_forcing(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    total_train_steps = int(7.5e6)
    ppo_info = babyai_rl_loss_default(lib, eu, "ppo", steps=-1, ppo_num_mini_batch=4)
    imitation_info = babyai_rl_loss_default(lib, eu, "imitation", ppo_num_mini_batch=4)
    pipeline = babyai_go_to_local_pipeline(
        eu,
        lib,
        named_losses={"imitation_loss": imitation_info["loss"]},
        pipeline_stages=[
            eu.PipelineStage(
                loss_names=["imitation_loss"],
                teacher_forcing=eu.LinearDecay(startp=1.0, endp=1.0, steps=total_train_steps),
                max_stage_steps=total_train_steps,
            ),
        ],
        num_mini_batch=min(info["num_mini_batch"] for info in [ppo_info, imitation_info]),
        update_repeats=min(info["update_repeats"] for info in [ppo_info, imitation_info]),
        total_train_steps=total_train_steps,
        metric_accumulate_interval=1,
    )
    return pipeline, {"unused_ppo_builder": ppo_info["loss"]}


def babyai_go_to_local_dagger(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    total_train_steps = int(7.5e6)
    loss_info = babyai_rl_loss_default(lib, eu, "imitation", ppo_num_mini_batch=4)
    pipeline = babyai_go_to_local_pipeline(
        eu,
        lib,
        named_losses={"imitation_loss": loss_info["loss"]},
        pipeline_stages=[
            eu.PipelineStage(
                loss_names=["imitation_loss"],
                teacher_forcing=eu.LinearDecay(startp=1.0, endp=0.0, steps=total_train_steps // 2),
                max_stage_steps=total_train_steps,
            )
        ],
        num_mini_batch=loss_info["num_mini_batch"],
        update_repeats=loss_info["update_repeats"],
        total_train_steps=total_train_steps,
    )
    return pipeline, {}


def babyai_go_to_obj_ppo(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    total_train_steps = int(5e4)
    ppo_info = babyai_rl_loss_default(lib, eu, "ppo", steps=total_train_steps)
    pipeline = babyai_go_to_obj_pipeline(
        eu,
        lib,
        named_losses={"ppo_loss": ppo_info["loss"]},
        pipeline_stages=[
            eu.PipelineStage(loss_names=["ppo_loss"], max_stage_steps=total_train_steps),
        ],
        num_mini_batch=ppo_info["num_mini_batch"],
        update_repeats=ppo_info["update_repeats"],
    )
    return pipeline, {}


def minigrid_offpolicy_tutorial(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    total_train_steps = int(7.5e6)
    ppo_info = babyai_rl_loss_default(lib, eu, "ppo", steps=-1, ppo_num_mini_batch=4)
    num_mini_batch = ppo_info["num_mini_batch"]
    update_repeats = ppo_info["update_repeats"]
    pipeline = babyai_go_to_local_pipeline(
        eu,
        lib,
        named_losses={
            "offpolicy_expert_ce_loss": StandInLoss("MiniGridOffPolicyExpertCELoss"),
        },
        named_storages={
            "onpolicy": eu.RolloutBlockStorage(),
            "minigrid_offpolicy_expert": StandInStorage("MiniGridExpertTrajectoryStorage"),
        },
        pipeline_stages=[
            eu.PipelineStage(
                loss_names=["offpolicy_expert_ce_loss"],
                max_stage_steps=total_train_steps,
                stage_components=[
                    eu.StageComponent(
                        uuid="offpolicy",
                        storage_uuid="minigrid_offpolicy_expert",
                        loss_names=["offpolicy_expert_ce_loss"],
                        training_settings=eu.TrainingSettings(
                            update_repeats=num_mini_batch * update_repeats,
                            num_mini_batch=1,
                        ),
                    )
                ],
            ),
        ],
        num_mini_batch=0,
        update_repeats=0,
        total_train_steps=total_train_steps,
        metric_accumulate_interval=1,
    )
    return pipeline, {"unused_ppo_builder": ppo_info["loss"]}


def objectnav_habitat_increasing_rollouts(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    batch_steps_0 = int(10e6)
    batch_steps_1 = int(10e6)
    batch_steps_2 = int(1e9) - batch_steps_0 - batch_steps_1
    named_losses = {"ppo_loss": (lib.PPO(**lib.PPOConfig, normalize_advantage=False), 1.0)}
    named_losses = with_auxiliary_losses(named_losses, [])
    pipeline = eu.TrainingPipeline(
        save_interval=5000000,
        optimizer_builder=eu.Builder(lib.Adam, dict(lr=1e-4)),
        num_mini_batch=1,
        update_repeats=4,
        max_grad_norm=0.5,
        named_losses={key: val[0] for key, val in named_losses.items()},
        gamma=0.99,
        use_gae=True,
        gae_lambda=0.95,
        advance_scene_rollout_period=None,
        pipeline_stages=[
            eu.PipelineStage(
                loss_names=list(named_losses.keys()),
                max_stage_steps=batch_steps_0,
                training_settings=eu.TrainingSettings(num_steps=32, metric_accumulate_interval=1),
            ),
            eu.PipelineStage(
                loss_names=list(named_losses.keys()),
                max_stage_steps=batch_steps_1,
                training_settings=eu.TrainingSettings(num_steps=64, metric_accumulate_interval=1),
            ),
            eu.PipelineStage(
                loss_names=list(named_losses.keys()),
                max_stage_steps=batch_steps_2,
                training_settings=eu.TrainingSettings(num_steps=128, metric_accumulate_interval=1),
            ),
        ],
        lr_scheduler_builder=None,
    )
    return pipeline, {}


def distributed_objectnav_tutorial(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    distributed_nodes = 3
    num_train_processes, train_gpu_ids = 60, (0, 1, 2, 3, 4, 5)

    def lr_scheduler(
        small_batch_steps: int, transition_steps: int, ppo_steps: int, lr_scaling: float
    ) -> Any:
        safe_small_batch_steps = int(small_batch_steps * 1.02)
        large_batch_and_lr_steps = ppo_steps - safe_small_batch_steps - transition_steps
        break1 = 1.0 - safe_small_batch_steps / ppo_steps
        break2 = lr_scaling * (1.0 - (safe_small_batch_steps + transition_steps) / ppo_steps)
        return eu.MultiLinearDecay(
            [
                eu.LinearDecay(steps=safe_small_batch_steps, startp=1.0, endp=break1),
                eu.LinearDecay(steps=transition_steps, startp=break1, endp=break2),
                eu.LinearDecay(steps=large_batch_and_lr_steps, startp=break2, endp=0),
            ]
        )

    ppo_steps = int(300e6)
    num_mini_batch = 1
    update_repeats = 4
    small_batch_steps = int(30e6)
    transition_steps = int(2 / 3 * distributed_nodes * 1e6)
    samplers_per_gpu = num_train_processes // len(train_gpu_ids)
    num_mini_batch_multiplier = [  # noqa: RUF015 - as AllenAct writes it
        i
        for i in reversed(range(1, min(samplers_per_gpu // 2, distributed_nodes) + 1))
        if samplers_per_gpu % i == 0
    ][0]
    update_repeats_multiplier = int(math.ceil(distributed_nodes / num_mini_batch_multiplier))  # noqa: RUF046
    pipeline = eu.TrainingPipeline(
        save_interval=5000000,
        metric_accumulate_interval=1,
        optimizer_builder=eu.Builder(lib.Adam, dict(lr=3e-4)),
        num_mini_batch=num_mini_batch,
        update_repeats=update_repeats,
        max_grad_norm=0.5,
        num_steps=128,
        named_losses={"ppo_loss": lib.PPO(**lib.PPOConfig, show_ratios=False)},
        gamma=0.99,
        use_gae=True,
        gae_lambda=0.95,
        advance_scene_rollout_period=None,
        pipeline_stages=[
            eu.PipelineStage(
                loss_names=["ppo_loss"],
                max_stage_steps=small_batch_steps,
                num_mini_batch=num_mini_batch * num_mini_batch_multiplier,
                update_repeats=update_repeats * update_repeats_multiplier,
            ),
            eu.PipelineStage(
                loss_names=["ppo_loss"], max_stage_steps=ppo_steps - small_batch_steps
            ),
        ],
        lr_scheduler_builder=eu.Builder(
            lib.LambdaLR,
            {
                "lr_lambda": lr_scheduler(
                    small_batch_steps=small_batch_steps,
                    transition_steps=transition_steps,
                    ppo_steps=ppo_steps,
                    lr_scaling=math.sqrt(distributed_nodes),
                )
            },
        ),
    )
    return pipeline, {}


def objectnav_robothor_vdr(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    ppo_steps = 300000000
    num_steps = 128
    named_losses = {"ppo_loss": (lib.PPO(**lib.PPOConfig), 1.0)}
    named_losses = with_auxiliary_losses(named_losses, [])
    default_ts = eu.TrainingSettings(
        num_mini_batch=1,
        update_repeats=4,
        max_grad_norm=0.5,
        num_steps=num_steps,
        gamma=0.99,
        use_gae=True,
        gae_lambda=0.95,
        advance_scene_rollout_period=None,
        save_interval=5000000,
        metric_accumulate_interval=1,
    )
    named_losses = {**named_losses, "inv_dyn_vdr": (StandInLoss("InverseDynamicsVDRLoss"), 1.0)}
    sorted_loss_names = list(sorted(named_losses.keys()))
    pipeline = eu.TrainingPipeline(
        training_settings=default_ts,
        optimizer_builder=eu.Builder(lib.Adam, dict(lr=3e-4)),
        named_losses={k: v[0] for k, v in named_losses.items()},
        named_storages={
            "onpolicy": eu.RolloutBlockStorage(init_size=num_steps),
            "discrete_vdr": StandInStorage("DiscreteVisualDynamicsReplayStorage"),
        },
        pipeline_stages=[
            eu.PipelineStage(
                loss_names=sorted_loss_names,
                max_stage_steps=ppo_steps,
                loss_weights=[named_losses[loss_name][1] for loss_name in sorted_loss_names],
                stage_components=[
                    eu.StageComponent(
                        uuid="onpolicy",
                        storage_uuid="onpolicy",
                        loss_names=[ln for ln in sorted_loss_names if ln != "inv_dyn_vdr"],
                    ),
                    eu.StageComponent(
                        uuid="vdr",
                        storage_uuid="discrete_vdr",
                        loss_names=["inv_dyn_vdr"],
                        training_settings=eu.TrainingSettings(num_mini_batch=1, update_repeats=1),
                    ),
                ],
            )
        ],
        lr_scheduler_builder=eu.Builder(
            lib.LambdaLR, {"lr_lambda": eu.LinearDecay(steps=ppo_steps)}
        ),
    )
    return pipeline, {}


def objectnav_dagger_mixin(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    training_steps = 300000000
    tf_steps = int(5e6)
    anneal_steps = int(5e6)
    il_no_tf_steps = training_steps - tf_steps - anneal_steps
    pipeline = eu.TrainingPipeline(
        save_interval=5000000,
        metric_accumulate_interval=1,
        optimizer_builder=eu.Builder(lib.Adam, dict(lr=3e-4)),
        num_mini_batch=1,
        update_repeats=4,
        max_grad_norm=0.5,
        num_steps=128,
        named_losses={"imitation_loss": lib.Imitation()},
        gamma=0.99,
        use_gae=True,
        gae_lambda=0.95,
        advance_scene_rollout_period=None,
        pipeline_stages=[
            eu.PipelineStage(
                loss_names=["imitation_loss"],
                max_stage_steps=tf_steps,
                teacher_forcing=eu.LinearDecay(startp=1.0, endp=1.0, steps=tf_steps),
            ),
            eu.PipelineStage(
                loss_names=["imitation_loss"],
                max_stage_steps=anneal_steps + il_no_tf_steps,
                teacher_forcing=eu.LinearDecay(startp=1.0, endp=0.0, steps=anneal_steps),
            ),
        ],
        lr_scheduler_builder=eu.Builder(
            lib.LambdaLR, {"lr_lambda": eu.LinearDecay(steps=training_steps)}
        ),
    )
    return pipeline, {}


def objectnav_ppo_mixin(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    """With two auxiliary losses (InverseDynamics and CPCA16), normalize_advantage False and a
    scene period of 20; the extras are objectnav_thor_base.py's machine_params process counts
    for 60 training processes on 8 GPUs, 10 test processes on 3, and 7 on the CPU."""
    ppo_steps = 300000000
    named_losses = {"ppo_loss": (lib.PPO(**lib.PPOConfig, normalize_advantage=False), 1.0)}
    named_losses = with_auxiliary_losses(named_losses, ["InverseDynamicsLoss", "CPCA16Loss"])
    pipeline = eu.TrainingPipeline(
        save_interval=5000000,
        metric_accumulate_interval=1,
        optimizer_builder=eu.Builder(lib.Adam, dict(lr=3e-4)),
        num_mini_batch=1,
        update_repeats=4,
        max_grad_norm=0.5,
        num_steps=128,
        named_losses={key: val[0] for key, val in named_losses.items()},
        gamma=0.99,
        use_gae=True,
        gae_lambda=0.95,
        advance_scene_rollout_period=20,
        pipeline_stages=[
            eu.PipelineStage(
                loss_names=list(named_losses.keys()),
                max_stage_steps=ppo_steps,
                loss_weights=[val[1] for val in named_losses.values()],
            )
        ],
        lr_scheduler_builder=eu.Builder(
            lib.LambdaLR, {"lr_lambda": eu.LinearDecay(steps=ppo_steps)}
        ),
    )
    return pipeline, {
        "train_nprocesses": eu.evenly_distribute_count_into_bins(60, max(8, 1)),
        "test_nprocesses": eu.evenly_distribute_count_into_bins(10, max(3, 1)),
        "cpu_nprocesses": eu.evenly_distribute_count_into_bins(7, max(0, 1)),
    }


def minigrid_tutorial_conds(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    ppo_steps = 150000
    sensors = [StandInLoss("EgocentricMiniGridSensor"), StandInLoss("ExpertActionSensor")]
    pipeline = eu.TrainingPipeline(
        named_losses=dict(
            imitation_loss=lib.Imitation(sensors[1]),
            ppo_loss=lib.PPO(**lib.PPOConfig, entropy_method_name="conditional_entropy"),
        ),
        pipeline_stages=[
            eu.PipelineStage(
                teacher_forcing=eu.LinearDecay(startp=1.0, endp=0.0, steps=ppo_steps // 2),
                loss_names=["imitation_loss", "ppo_loss"],
                max_stage_steps=ppo_steps,
            )
        ],
        optimizer_builder=eu.Builder(lib.Adam, dict(lr=1e-4)),
        num_mini_batch=4,
        update_repeats=3,
        max_grad_norm=0.5,
        num_steps=16,
        gamma=0.99,
        use_gae=True,
        gae_lambda=0.95,
        advance_scene_rollout_period=None,
        save_interval=10000,
        metric_accumulate_interval=1,
        lr_scheduler_builder=eu.Builder(
            lib.LambdaLR, {"lr_lambda": eu.LinearDecay(steps=ppo_steps)}
        ),
    )
    return pipeline, {}


def armpointnav_mixin_ddppo(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    """MAX_STEPS = 200 (armpointnav_base) and ADVANCE_SCENE_ROLLOUT_PERIOD None."""
    ppo_steps = 300000000
    pipeline = eu.TrainingPipeline(
        save_interval=500000,
        metric_accumulate_interval=1000,
        optimizer_builder=eu.Builder(lib.Adam, dict(lr=3e-4)),
        num_mini_batch=1,
        update_repeats=4,
        max_grad_norm=0.5,
        num_steps=200,
        named_losses={"ppo_loss": lib.PPO(**lib.PPOConfig)},
        gamma=0.99,
        use_gae=True,
        gae_lambda=0.95,
        advance_scene_rollout_period=None,
        pipeline_stages=[eu.PipelineStage(loss_names=["ppo_loss"], max_stage_steps=ppo_steps)],
        lr_scheduler_builder=eu.Builder(
            lib.LambdaLR, {"lr_lambda": eu.LinearDecay(steps=ppo_steps)}
        ),
    )
    return pipeline, {}


def object_nav_ithor_dagger_then_ppo(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    """MAX_STEPS = 500 and ADVANCE_SCENE_ROLLOUT_PERIOD None (object_nav_ithor_ppo_one_object)."""
    dagger_steos = int(1e4)
    ppo_steps = int(1e6)
    pipeline = eu.TrainingPipeline(
        save_interval=10000,
        metric_accumulate_interval=500 * 10,
        optimizer_builder=eu.Builder(lib.Adam, dict(lr=2.5e-4)),
        num_mini_batch=2,
        update_repeats=4,
        max_grad_norm=0.5,
        num_steps=128,
        named_losses={
            "ppo_loss": lib.PPO(clip_decay=eu.LinearDecay(ppo_steps), **lib.PPOConfig),
            "imitation_loss": lib.Imitation(),
        },
        gamma=0.99,
        use_gae=True,
        gae_lambda=1.0,
        advance_scene_rollout_period=None,
        pipeline_stages=[
            eu.PipelineStage(
                loss_names=["imitation_loss"],
                teacher_forcing=eu.LinearDecay(startp=1.0, endp=0.0, steps=dagger_steos),
                max_stage_steps=dagger_steos,
            ),
            eu.PipelineStage(loss_names=["ppo_loss"], max_stage_steps=ppo_steps),
        ],
        lr_scheduler_builder=eu.Builder(
            lib.LambdaLR, {"lr_lambda": eu.LinearDecay(steps=ppo_steps)}
        ),
    )
    return pipeline, {}


def pointnav_ppo_mixin(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    """With the TemporalDistance and CPCA1 auxiliary losses and normalize_advantage True."""
    ppo_steps = 75000000
    named_losses = {"ppo_loss": (lib.PPO(**lib.PPOConfig, normalize_advantage=True), 1.0)}
    named_losses = with_auxiliary_losses(named_losses, ["TemporalDistanceLoss", "CPCA1Loss"])
    pipeline = eu.TrainingPipeline(
        save_interval=5000000,
        metric_accumulate_interval=1,
        optimizer_builder=eu.Builder(lib.Adam, dict(lr=3e-4)),
        num_mini_batch=1,
        update_repeats=4,
        max_grad_norm=0.5,
        num_steps=128,
        named_losses={key: val[0] for key, val in named_losses.items()},
        gamma=0.99,
        use_gae=True,
        gae_lambda=0.95,
        advance_scene_rollout_period=None,
        pipeline_stages=[
            eu.PipelineStage(
                loss_names=list(named_losses.keys()),
                max_stage_steps=ppo_steps,
                loss_weights=[val[1] for val in named_losses.values()],
            )
        ],
        lr_scheduler_builder=eu.Builder(
            lib.LambdaLR, {"lr_lambda": eu.LinearDecay(steps=ppo_steps)}
        ),
    )
    return pipeline, {}


def to_obj_trains_test_config(eu: ModuleType, lib: Any) -> tuple[Any, dict[str, Any]]:
    """AllenAct's own integration test config, with valid/test stages and a TrainingSettings
    changed after the pipeline is built."""
    total_train_steps = int(5e4)
    ppo_info = babyai_rl_loss_default(lib, eu, "ppo", steps=total_train_steps)
    pipeline = babyai_go_to_obj_pipeline(
        eu,
        lib,
        named_losses={
            "ppo_loss": ppo_info["loss"],
            "3_loss": StandInLoss("FixedConstantLoss"),
            "avg_value_loss": StandInLoss("AverageBatchValueLoss"),
        },
        named_storages={
            "onpolicy": eu.RolloutBlockStorage(),
            "silly_storage": StandInStorage("SillyStorage"),
        },
        pipeline_stages=[
            eu.PipelineStage(
                loss_names=["ppo_loss", "3_loss"],
                max_stage_steps=total_train_steps,
                stage_components=[
                    eu.StageComponent(
                        uuid="onpolicy", storage_uuid="onpolicy", loss_names=["ppo_loss", "3_loss"]
                    )
                ],
            ),
        ],
        num_mini_batch=ppo_info["num_mini_batch"],
        update_repeats=ppo_info["update_repeats"],
        valid_pipeline_stage=eu.PipelineStage(
            loss_names=["ppo_loss", "3_loss"],
            max_stage_steps=-1,
            update_repeats=1,
            num_mini_batch=1,
        ),
        test_pipeline_stage=eu.PipelineStage(
            loss_names=["avg_value_loss"],
            stage_components=[
                eu.StageComponent(
                    uuid="debug", storage_uuid="silly_storage", loss_names=["avg_value_loss"]
                ),
            ],
            max_stage_steps=-1,
            update_repeats=1,
            num_mini_batch=1,
        ),
    )
    pipeline.training_settings.save_interval = int(math.ceil(total_train_steps / 2))  # noqa: RUF046
    return pipeline, {}


CONFIGS: dict[str, Config] = {
    "minigrid_tutorial": Config("projects/tutorials/minigrid_tutorial.py", minigrid_tutorial, 8),
    "gym_tutorial": Config("projects/tutorials/gym_tutorial.py", gym_tutorial, 8),
    "gym_humanoid_ddppo": Config(
        "projects/gym_baselines/experiments/gym_humanoid_ddppo.py", gym_humanoid_ddppo, 8
    ),
    "babyai_go_to_local_bc": Config(
        "projects/babyai_baselines/experiments/go_to_local/bc.py", babyai_go_to_local_bc, 4
    ),
    "babyai_go_to_local_bc_teacher_forcing": Config(
        "projects/babyai_baselines/experiments/go_to_local/bc_teacher_forcing.py",
        babyai_go_to_local_bc_teacher_forcing,
        4,
    ),
    "babyai_go_to_local_dagger": Config(
        "projects/babyai_baselines/experiments/go_to_local/dagger.py",
        babyai_go_to_local_dagger,
        4,
    ),
    "babyai_go_to_obj_ppo": Config(
        "projects/babyai_baselines/experiments/go_to_obj/ppo.py", babyai_go_to_obj_ppo, 16
    ),
    "minigrid_offpolicy_tutorial": Config(
        "projects/tutorials/minigrid_offpolicy_tutorial.py", minigrid_offpolicy_tutorial, 4
    ),
    "objectnav_habitat_increasing_rollouts": Config(
        "projects/objectnav_baselines/experiments/habitat/clip/"
        "objectnav_habitat_rgb_clipresnet50gru_ddppo_increasingrollouts.py",
        objectnav_habitat_increasing_rollouts,
        1000,
    ),
    "distributed_objectnav_tutorial": Config(
        "projects/tutorials/distributed_objectnav_tutorial.py",
        distributed_objectnav_tutorial,
        180,
    ),
    "objectnav_robothor_vdr": Config(
        "projects/objectnav_baselines/experiments/robothor/beta/"
        "objectnav_robothor_rgb_unfrozenresnet18gru_vdr_ddppo.py",
        objectnav_robothor_vdr,
        240,
    ),
    "objectnav_dagger_mixin": Config(
        "projects/objectnav_baselines/mixins.py: ObjectNavDAggerMixin",
        objectnav_dagger_mixin,
        240,
    ),
    "objectnav_ppo_mixin": Config(
        "projects/objectnav_baselines/mixins.py: ObjectNavPPOMixin (and "
        "experiments/objectnav_thor_base.py: machine_params)",
        objectnav_ppo_mixin,
        240,
    ),
    "minigrid_tutorial_conds": Config(
        "projects/tutorials/minigrid_tutorial_conds.py", minigrid_tutorial_conds, 128
    ),
    "armpointnav_mixin_ddppo": Config(
        "projects/manipulathor_baselines/armpointnav_baselines/experiments/"
        "armpointnav_mixin_ddppo.py",
        armpointnav_mixin_ddppo,
        200,
    ),
    "object_nav_ithor_dagger_then_ppo": Config(
        "projects/tutorials/object_nav_ithor_dagger_then_ppo_one_object.py",
        object_nav_ithor_dagger_then_ppo,
        1,
    ),
    "pointnav_ppo_mixin": Config(
        "projects/pointnav_baselines/mixins.py: PointNavPPOMixin", pointnav_ppo_mixin, 60
    ),
    "to_obj_trains_test_config": Config(
        "tests/sync_algs_cpu/test_to_to_obj_trains.py: PPOBabyAIGoToObjTestExperimentConfig",
        to_obj_trains_test_config,
        16,
    ),
}


# ---------------------------------------------------------------------------------------------
# What AllenAct's engine sees of a pipeline


def sample_points(total: float) -> list[float]:
    """Increasing steps at which schedules are read: the start, small counts, fractions of
    ``total`` (some off the integers), ``total`` and beyond."""
    fractions = (0.001, 0.1, 0.25, 1 / 3, 0.5, 0.75, 0.999, 1.0, 1.5)
    points = {-5, 0, 1, 2, 3, 7, 10, 100, 1000, 123456.5}
    points |= {round(total * q) for q in fractions} | {total * q for q in (1 / 3, 0.7)}
    return sorted(points)


def schedule_values(schedule: Any, total: float) -> list[list[float]]:
    """``[step, value]`` pairs of ``schedule`` at :func:`sample_points`, read in increasing
    order (AllenAct's MultiLinearDecay only moves forward)."""
    return [[float(point), float(schedule(point))] for point in sample_points(total)]


def describe_loss(loss: Any, total: float) -> dict[str, Any]:
    """The hyperparameters AllenAct's losses expose."""
    kind = type(loss).__name__
    if kind == "StandInLoss":
        return {"type": kind, "name": loss.name}
    described: dict[str, Any] = {"type": kind}
    for name in (
        "clip_param",
        "value_loss_coef",
        "entropy_coef",
        "use_clipped_value_loss",
        "entropy_method_name",
        "show_ratios",
    ):
        if hasattr(loss, name):
            described[name] = getattr(loss, name)
    if kind == "PPO":
        normalize = getattr(loss, "adv_key", None)
        described["normalize_advantage"] = (
            normalize == "norm_adv_targ" if normalize is not None else loss.normalize_advantage
        )
        decay = loss.clip_decay if loss.clip_decay is not None else (lambda step: 1.0)
        described["clip_decay"] = schedule_values(decay, total)
    if kind == "Imitation":
        sensor = loss.expert_sensor
        described["expert_sensor"] = None if sensor is None else sensor.name
    return described


def describe_builder(builder: Any, total: float) -> dict[str, Any] | None:
    """A builder unpacked as AllenAct's tuple: its class and its arguments (schedules read at
    :func:`sample_points`)."""
    if builder is None:
        return None
    class_type, kwargs, default = builder
    arguments: dict[str, Any] = {}
    for name, value in {**default, **kwargs}.items():
        if callable(value) and not isinstance(value, type):
            arguments[name] = schedule_values(value, total)
        else:
            arguments[name] = value
    return {"class": class_type.__name__, "arguments": arguments}


def describe_component(component: Any) -> dict[str, Any]:
    settings = component.training_settings
    return {
        "uuid": component.uuid,
        "storage_uuid": component.storage_uuid,
        "loss_names": list(component.loss_names),
        "num_mini_batch": settings.num_mini_batch,
        "update_repeats": settings.update_repeats,
        "max_grad_norm": settings.max_grad_norm,
    }


OUR_OWN_SETTINGS = ("minibatch_split", "sequence_length")
"""Training settings hydra_pipeline adds to AllenAct's (absent from the recordings)."""


def describe_stage(stage: Any, total: float) -> dict[str, Any]:
    settings = stage.training_settings
    return {
        "loss_names": list(stage.loss_names),
        "max_stage_steps": stage.max_stage_steps,
        "loss_weights": dict(stage.uuid_to_loss_weight),
        "training_settings": {
            key: getattr(settings, key)
            for key in settings.keys()  # noqa: SIM118 - AllenAct's method
            if key not in OUR_OWN_SETTINGS
        },
        "components": [describe_component(c) for c in stage.stage_components],
        "teacher_forcing": None
        if stage.teacher_forcing is None
        else schedule_values(stage.teacher_forcing, total),
    }


def describe(
    pipeline: Any, extras: dict[str, Any], num_samplers: int, eu: ModuleType
) -> dict[str, Any]:
    """Everything AllenAct 0.5.4's engine reads of ``pipeline``, as plain data, then the replay
    of its schedule (which moves the pipeline to its end)."""
    total = sum(max(stage.max_stage_steps, 0) for stage in pipeline.pipeline_stages)
    loss_names = dict.fromkeys(
        name
        for stage in pipeline.pipeline_stages
        for name in [*stage.loss_names, *(n for c in stage.stage_components for n in c.loss_names)]
    )
    described = {
        "stages": [describe_stage(stage, total) for stage in pipeline.pipeline_stages],
        "valid_stage": describe_stage(pipeline.valid_pipeline_stage, total),
        "test_stage": describe_stage(pipeline.test_pipeline_stage, total),
        "rollout_storage_uuid": pipeline.rollout_storage_uuid,
        "storages": sorted(pipeline.storage_uuid_to_total_experiences),
        "losses": {name: describe_loss(pipeline.get_loss(name), total) for name in loss_names},
        "optimizer": describe_builder(pipeline.optimizer_builder, total),
        "lr_scheduler": describe_builder(pipeline.lr_scheduler_builder, total),
        "extras": {
            name: describe_loss(value(), total) if isinstance(value, eu.Builder) else value
            for name, value in extras.items()
        },
    }
    described["schedule"] = summarized(simulate_allenact_engine(pipeline, num_samplers, eu))
    return described


def simulate_allenact_engine(pipeline: Any, num_samplers: int, eu: ModuleType) -> dict[str, Any]:
    """The step, log and checkpoint bookkeeping of AllenAct 0.5.4's ``run_pipeline``.

    Each loop: ``before_rollout`` with the (empty) train metrics; at a stage change, the
    stage-end checkpoint (unless one was just saved) and the new stage's settings; one rollout
    of ``num_steps`` x ``num_samplers`` steps (or one step without a rollout storage); a log
    when ``metric_accumulate_interval`` steps passed or the stage is complete; a checkpoint
    every ``save_interval`` steps. Whether checkpoints are saved at all is decided once, from
    the first stage's ``save_interval`` (> 0), as AllenAct does.
    """
    settings = pipeline.current_stage.training_settings
    save = settings.save_interval is not None and settings.save_interval > 0
    last_log = last_save = pipeline.total_steps
    saved_now = False
    saves: list[int] = []
    logs: list[int] = []
    while True:
        changed = pipeline.before_rollout(train_metrics=eu.ScalarMeanTracker())
        done = pipeline.current_stage is None
        if changed:
            if save and not saved_now:
                saves.append(pipeline.total_steps)
                last_save = pipeline.total_steps
            if done:
                break
            settings = pipeline.current_stage.training_settings
        saved_now = False
        stage = pipeline.current_stage
        if pipeline.rollout_storage_uuid is None:
            stage.steps_taken_in_stage += 1
        else:
            stage.steps_taken_in_stage += settings.num_steps * num_samplers
        total = pipeline.total_steps
        interval = stage.training_settings.metric_accumulate_interval
        if total - last_log >= interval or stage.is_complete:
            logs.append(total)
            last_log = total
        if save and total - last_save >= settings.save_interval:
            saves.append(total)
            last_save = total
            saved_now = True
    return {
        "stage_steps": [stage.steps_taken_in_stage for stage in pipeline.pipeline_stages],
        "total_steps": pipeline.total_steps,
        "saves": saves,
        "logs": logs,
    }


def summarized(schedule: dict[str, Any]) -> dict[str, Any]:
    """``schedule`` with its (possibly very long) lists of points summarized: their count,
    first and last ten, and a digest of all of them."""

    def points(values: list[int]) -> dict[str, Any]:
        digest = hashlib.sha256(",".join(map(str, values)).encode()).hexdigest()
        return {"count": len(values), "first": values[:10], "last": values[-10:], "sha256": digest}

    return {**schedule, "saves": points(schedule["saves"]), "logs": points(schedule["logs"])}


def record_allenact() -> dict[str, Any]:
    """Every config described with AllenAct 0.5.4's objects (needs ``allenact`` installed)."""
    import torch
    from allenact.algorithms.onpolicy_sync.losses import A2C, PPO
    from allenact.algorithms.onpolicy_sync.losses.a2cacktr import A2CConfig
    from allenact.algorithms.onpolicy_sync.losses.imitation import Imitation
    from allenact.algorithms.onpolicy_sync.losses.ppo import PPOConfig
    from allenact.utils import experiment_utils

    lib = SimpleNamespace(
        PPO=PPO,
        PPOConfig=PPOConfig,
        A2C=A2C,
        A2CConfig=A2CConfig,
        Imitation=Imitation,
        Adam=torch.optim.Adam,
        LambdaLR=torch.optim.lr_scheduler.LambdaLR,
    )
    recorded = {}
    for name, config in CONFIGS.items():
        pipeline, extras = config.build(experiment_utils, lib)
        recorded[name] = {
            "source": config.source,
            **describe(pipeline, extras, config.num_samplers, experiment_utils),
        }
    return recorded


if __name__ == "__main__":
    print(json.dumps(record_allenact(), indent=1, sort_keys=True))
