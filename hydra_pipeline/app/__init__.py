"""The ``hydra-pipeline`` application: ``python -m hydra_pipeline [overrides]``, and the
evaluate command: ``python -m hydra_pipeline.evaluate run=<run folder> [overrides]``.

:func:`main` and :func:`evaluate_main` are the console scripts;
:func:`~hydra_pipeline.app.train.train` and :func:`~hydra_pipeline.app.evaluate.evaluate` the
task functions any Hydra app can call; :func:`pipeline_app` the decorator user projects use in
place of ``hydra.main``. Importing this package does not import torch, so ``--help``, ``--cfg``
and ``--info`` stay fast.
"""

from omegaconf import DictConfig

from hydra_pipeline.app.cli import pipeline_app
from hydra_pipeline.app.evaluate import evaluate
from hydra_pipeline.app.help import register_help_resolver
from hydra_pipeline.app.train import train

__all__ = ["evaluate", "evaluate_main", "main", "pipeline_app", "train"]

register_help_resolver()


@pipeline_app(config_path="pkg://hydra_pipeline.conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Train as the composed config says; return the final mean episode return."""
    return train(cfg)


@pipeline_app(config_path="pkg://hydra_pipeline.conf", config_name="evaluate", trains=False)
def evaluate_main(cfg: DictConfig) -> float:
    """Evaluate a run's checkpoints as the composed config says; return the last one's mean
    episode return."""
    return evaluate(cfg)
