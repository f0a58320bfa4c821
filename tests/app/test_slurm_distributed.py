"""The multi-node SLURM preset composes, and a SLURM task of a Submitit job finds its rank."""

from __future__ import annotations

import os

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from hydra_pipeline.app.distributed import launched_ranks
from hydra_pipeline.engine.distributed import Ranks


def test_the_preset_starts_one_task_per_gpu_on_several_nodes() -> None:
    """``hydra/launcher=slurm_distributed``: Submitit's SLURM launcher, several nodes, as
    many tasks per node as GPUs."""
    GlobalHydra.instance().clear()
    with initialize_config_module("hydra_pipeline.conf", version_base="1.3"):
        cfg = compose(
            "config",
            ["hydra/launcher=slurm_distributed", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert (
        launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    )
    assert launcher.nodes > 1
    assert launcher.tasks_per_node == launcher.gpus_per_node == 8
    assert launcher.partition == "gpu"
    assert OmegaConf.select(cfg, "distributed.nproc_per_node") == 1  # SLURM starts them


def test_a_slurm_task_of_a_submitit_job_is_a_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the task with SLURM's process id 5 of 16 (2 nodes), Submitit's helper sets torch's
    rendezvous variables: rank 5, local rank 5, the first node as the master."""
    exported = (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
    )
    for key in exported:  # unset during the test, and as they were after it
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    slurm = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SLURM_JOB_ID": "4242",
        "SLURM_NTASKS": "16",
        "SLURM_PROCID": "5",
        "SLURM_LOCALID": "5",
        "SLURM_NODEID": "0",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_JOB_NODELIST": "gpu[07-08]",
    }
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    assert launched_ranks() == Ranks(rank=5, world_size=16, local_rank=5)
    assert os.environ["MASTER_ADDR"] == "gpu07"
    assert os.environ["MASTER_PORT"].isdigit()
