"""The ``hydra-pipeline`` application: ``python -m hydra_pipeline [overrides]``.

:func:`main` is the console script; :func:`train` the task function any Hydra app can call;
:func:`pipeline_app` the decorator user projects use in place of ``hydra.main``. Importing this
package does not import torch, so ``--help``, ``--cfg`` and ``--info`` stay fast.
"""

from omegaconf import DictConfig

from hydra_pipeline.app.cli import pipeline_app
from hydra_pipeline.app.help import register_help_resolver
from hydra_pipeline.app.train import train

__all__ = ["main", "pipeline_app", "train"]

register_help_resolver()


@pipeline_app(config_path="pkg://hydra_pipeline.conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Train as the composed config says; return the final mean episode return."""
    return train(cfg)
