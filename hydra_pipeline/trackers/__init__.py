"""Run callbacks that send a run to the experiment trackers labs use.

Each is an optional extra (``pip install "hydra-pipeline[wandb]"``, ``[mlflow]``), imported
only when a run starts with it; the command line enables them as options of the ``callbacks``
config group: ``callbacks=[wandb]``, ``callbacks=[wandb,mlflow]``.
"""

from hydra_pipeline.trackers.mlflow_tracker import MLflowTracker
from hydra_pipeline.trackers.wandb_tracker import WandbTracker

__all__ = ["MLflowTracker", "WandbTracker"]
