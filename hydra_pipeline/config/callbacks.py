"""Schemas of the built-in run callbacks (group ``callbacks``, each placed at
``callbacks.<name>``): ``callbacks=[wandb]``, ``callbacks=[wandb,mlflow]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

__all__ = ["MLflowTrackerConf", "WandbTrackerConf"]


@dataclass
class WandbTrackerConf:
    """``hydra_pipeline.trackers.WandbTracker``: the run in Weights & Biases.

    Attributes:
        project: The W&B project.
        entity: The W&B team or user (null: your default).
        mode: online, offline (kept under the run folder, to sync later) or disabled.
        group: The run's group (null: the sweep's folder, in a sweep).
        name: The run's name (null: job <number> in a sweep, else the run folder's name).
        tags: Tags of the run (null: none).
        log_checkpoints: Upload every checkpoint as a model artifact.
    """

    _target_: str = "hydra_pipeline.trackers.WandbTracker"
    project: str = "hydra_pipeline"
    entity: Optional[str] = None
    mode: str = "online"
    group: Optional[str] = None
    name: Optional[str] = None
    tags: Optional[List[str]] = None
    log_checkpoints: bool = False


@dataclass
class MLflowTrackerConf:
    """``hydra_pipeline.trackers.MLflowTracker``: the run in MLflow.

    Attributes:
        tracking_uri: Where MLflow stores runs, e.g. sqlite:///mlflow.db or a server's URL
            (null: MLflow's default, or MLFLOW_TRACKING_URI).
        experiment_name: The MLflow experiment (created if needed).
        run_name: The run's name (null: job <number> in a sweep, else the run folder's name).
        log_checkpoints: Store every checkpoint as an artifact.
    """

    _target_: str = "hydra_pipeline.trackers.MLflowTracker"
    tracking_uri: Optional[str] = None
    experiment_name: str = "hydra_pipeline"
    run_name: Optional[str] = None
    log_checkpoints: bool = False
