"""Importing the package stays cheap: no torch until something needs it."""

from __future__ import annotations

import subprocess
import sys

import pytest


def modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


@pytest.mark.slow  # starts an interpreter
@pytest.mark.parametrize(
    "module", ["hydra_pipeline", "hydra_pipeline.experiment_utils", "hydra_pipeline.pipeline"]
)
def test_pipeline_objects_import_without_torch(module: str) -> None:
    loaded = modules_after_import(module)
    assert "torch" not in loaded
    assert "hydra" not in loaded and "omegaconf" not in loaded


@pytest.mark.slow  # starts an interpreter
@pytest.mark.parametrize(
    "module", ["hydra_pipeline.engine", "hydra_pipeline.tasks", "hydra_pipeline.models"]
)
def test_engine_side_never_imports_hydra(module: str) -> None:
    """Data flows one way: the engine, tasks and models never reach back into the config
    layer (nor into Gymnasium, which only GymTask needs, when built)."""
    loaded = modules_after_import(module)
    assert "hydra" not in loaded and "omegaconf" not in loaded
    assert "hydra_pipeline.config" not in loaded and "hydra_pipeline.app" not in loaded
    assert "gymnasium" not in loaded


def test_experiment_utils_offers_allenact_names() -> None:
    import hydra_pipeline
    from hydra_pipeline import experiment_utils

    for name in experiment_utils.__all__:
        assert getattr(experiment_utils, name) is getattr(hydra_pipeline, name)
    assert set(experiment_utils.__all__) >= {
        "Builder",
        "ToBuildType",
        "LinearDecay",
        "EarlyStoppingCriterion",
        "NeverEarlyStoppingCriterion",
        "OffPolicyPipelineComponent",
        "PipelineStage",
        "TrainingPipeline",
        "ScalarMeanTracker",
        "recursive_update",
        "set_seed",
        "set_deterministic_cudnn",
    }
