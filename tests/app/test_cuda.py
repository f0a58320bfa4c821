"""The GPU path: seeding of every CUDA generator, deterministic cuDNN, ``device=cuda`` runs that
repeat bit for bit, and (with two GPUs) one run in two processes over NCCL.

Skipped where torch sees no GPU (the CI machine); run them on a GPU machine with
``pytest tests/app/test_cuda.py -p no:xdist``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from hydra_pipeline.pipeline import set_deterministic_cudnn, set_seed
from tests.app.conftest import SMALL, Cli

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

RESULTS = ("total_steps", "stages", "final_metrics", "final_counts")
CUDA_RUN = [*SMALL, "device=cuda", "deterministic_cudnn=true", "seed=3", "progress_bar=false"]


def results(run: Path) -> dict[str, Any]:
    summary = json.loads((run / "summary.json").read_text())
    return {key: summary[key] for key in RESULTS}


def test_seeding_covers_every_gpu_and_each_rank_gets_its_own_stream() -> None:
    draws = []
    for rank in (0, 0, 1):
        set_seed(5, rank=rank)
        gpus = range(torch.cuda.device_count())
        draws.append(torch.stack([torch.rand(4, device=f"cuda:{gpu}").cpu() for gpu in gpus]))
    assert torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[0], draws[2])


def test_deterministic_cudnn_is_in_force() -> None:
    set_deterministic_cudnn()
    assert torch.backends.cudnn.deterministic
    assert not torch.backends.cudnn.benchmark


def test_a_cuda_run_repeats_bit_for_bit(cli: Cli, tmp_path: Path) -> None:
    for name in ("first", "second"):
        run = cli(*CUDA_RUN, f"hydra.run.dir={name}")
        assert run.returncode == 0, run.stderr
    assert results(tmp_path / "first") == results(tmp_path / "second")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_one_run_on_two_gpus_over_nccl(cli: Cli, tmp_path: Path) -> None:
    """Each process trains on its own GPU; the run checks at its end that every rank holds
    the same weights, and two runs of the same seed agree."""
    for name in ("first", "second"):
        run = cli(*CUDA_RUN, "distributed.nproc_per_node=2", f"hydra.run.dir={name}")
        assert run.returncode == 0, run.stderr
        assert (
            "Starting 2 processes (torch.distributed, nccl)"
            in (tmp_path / name / "app.log").read_text()
        )
    assert results(tmp_path / "first") == results(tmp_path / "second")
