"""``WandbTracker``: a run in Weights & Biases."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra_pipeline.engine.callbacks import Callback
from hydra_pipeline.engine.reporting import metric_tag
from hydra_pipeline.errors import ConfigError
from hydra_pipeline.trackers.common import (
    import_extra,
    known_run_id,
    remember_run_id,
    run_title,
)

__all__ = ["WandbTracker"]


class WandbTracker(Callback):
    """Logs a run to Weights & Biases: the resolved config as the run's config, every metric
    point against the total step count (tags as in TensorBoard: ``train/reward``,
    ``loss/ppo_loss/value``, ``eval/reward``), a sweep's jobs grouped by their sweep, the
    final metrics in the run's summary, and checkpoints as artifacts when asked. A resumed
    run continues the same W&B run.

    Args:
        project: The W&B project.
        entity: The W&B team or user (``None``: your default).
        mode: ``online``, ``offline`` (written under ``<run>/wandb``, to sync later) or
            ``disabled``.
        group: The run's group (``None``: in a sweep, the sweep's folder).
        name: The run's name (``None``: ``job <number>`` in a sweep, else the run folder's
            name).
        tags: Tags of the run (``None``: none).
        log_checkpoints: Upload every checkpoint as a ``model`` artifact.

    Raises:
        ImportError: The ``wandb`` extra is not installed.
        ConfigError: (when the run starts) ``mode`` is ``online`` and W&B has no API key.
    """

    def __init__(
        self,
        project: str = "hydra_pipeline",
        entity: str | None = None,
        mode: str = "online",
        group: str | None = None,
        name: str | None = None,
        tags: Sequence[str] | None = None,
        log_checkpoints: bool = False,
    ) -> None:
        self.settings = {
            "project": project,
            "entity": entity,
            "mode": mode,
            "tags": list(tags or []),
        }
        self.group, self.name = group, name
        self.log_checkpoints = log_checkpoints
        self.run: Any = None
        self._wandb = import_extra("wandb", "wandb")  # a missing extra is found at startup

    def on_run_start(
        self, *, run_dir: Path, config: Mapping[str, Any], job: Mapping[str, Any], **_: Any
    ) -> None:
        group, name = run_title(run_dir, job)
        run_id = known_run_id(run_dir, "wandb") or uuid.uuid4().hex[:16]
        remember_run_id(run_dir, "wandb", run_id)
        try:
            self.run = self._wandb.init(
                **self.settings,
                group=self.group or group,
                name=self.name or name,
                config=dict(config),
                dir=str(run_dir),
                id=run_id,
                resume="allow",
            )
        except self._wandb.errors.UsageError as error:
            if "api key" not in str(error).lower():
                raise
            raise ConfigError(
                f"callbacks.wandb: W&B has no API key ({error}). Log in with 'wandb login' (or "
                "set WANDB_API_KEY), or log without an account: callbacks.wandb.mode=offline "
                f"keeps the W&B run under {run_dir / 'wandb'}, to upload later with "
                "'wandb sync'."
            ) from None

    def on_log(
        self, *, mode: str, total_steps: int, metrics: Mapping[str, float], **_: Any
    ) -> None:
        values = {metric_tag(name, mode): value for name, value in metrics.items()}
        self.run.log(values, step=total_steps)

    def on_checkpoint(self, *, total_steps: int, path: Path, **_: Any) -> None:
        if self.log_checkpoints:
            artifact = self._wandb.Artifact(f"{self.run.id}-checkpoints", type="model")
            artifact.add_file(str(path))
            self.run.log_artifact(artifact, aliases=["latest", f"step-{total_steps}"])

    def on_run_end(self, *, summary: Mapping[str, Any], **_: Any) -> None:
        final = summary.get("final_metrics", {})
        self.run.summary.update({f"final/{name}": value for name, value in final.items()})
        self.run.finish(exit_code=0)
        self.run = None

    def close(self) -> None:
        if self.run is not None:  # the run failed or was interrupted
            self.run.finish(exit_code=1)
            self.run = None
