"""``MLflowTracker``: a run in MLflow."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra_pipeline.engine.callbacks import Callback
from hydra_pipeline.engine.reporting import metric_tag
from hydra_pipeline.engine.summary import SUMMARY_FILE
from hydra_pipeline.trackers.common import (
    flat_parameters,
    import_extra,
    known_run_id,
    remember_run_id,
    run_title,
)

__all__ = ["MLflowTracker"]

log = logging.getLogger("hydra_pipeline")

_BATCH = 100  # MLflow accepts at most 100 parameters per call


class MLflowTracker(Callback):
    """Logs a run to MLflow: the resolved config as the run's parameters (dotted keys), every
    metric point against the total step count (keys as TensorBoard's tags), a sweep's folder
    and job number as tags, ``summary.json`` and, when asked, checkpoints as artifacts. A
    resumed run continues the same MLflow run.

    Args:
        tracking_uri: Where MLflow stores runs, e.g. ``sqlite:///mlflow.db`` or a server's
            URL (``None``: MLflow's default, or ``MLFLOW_TRACKING_URI``).
        experiment_name: The MLflow experiment (created if needed).
        run_name: The run's name (``None``: ``job <number>`` in a sweep, else the run
            folder's name).
        log_checkpoints: Store every checkpoint as an artifact under ``checkpoints/``.

    Raises:
        ImportError: The ``mlflow`` extra is not installed.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str = "hydra_pipeline",
        run_name: str | None = None,
        log_checkpoints: bool = False,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.log_checkpoints = log_checkpoints
        # Imported now, so that a missing extra is found at startup.
        self._tracking = import_extra("mlflow.tracking", "mlflow")
        self._entities = import_extra("mlflow.entities", "mlflow")
        self.client: Any = None
        self.run_id: str | None = None

    def on_run_start(
        self,
        *,
        run_dir: Path,
        config: Mapping[str, Any],
        job: Mapping[str, Any],
        **_: Any,
    ) -> None:
        self.client = self._tracking.MlflowClient(tracking_uri=self.tracking_uri)
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(self.experiment_name)
        )
        group, name = run_title(run_dir, job)
        tags = {"run_dir": str(run_dir), **({"sweep": group} if group else {})}
        if "number" in job:
            tags["job"] = str(job["number"])
        self.run_id = known_run_id(run_dir, "mlflow")
        if self.run_id is not None:  # a resumed run: the same MLflow run, running again
            self.client.update_run(self.run_id, status="RUNNING")
            self._say_where("Continuing")
            return
        run = self.client.create_run(experiment_id, run_name=self.run_name or name, tags=tags)
        self.run_id = run.info.run_id
        remember_run_id(run_dir, "mlflow", self.run_id)
        self._say_where("Logging")
        parameters = [
            self._entities.Param(key, value[:6000])  # MLflow's limit on a value's length
            for key, value in flat_parameters(config).items()
        ]
        for start in range(0, len(parameters), _BATCH):
            self.client.log_batch(self.run_id, params=parameters[start : start + _BATCH])

    def _say_where(self, doing: str) -> None:
        """Log where the run is stored: the default store is a file in the working folder,
        easy to lose track of."""
        uri = self.client.tracking_uri
        log.info(
            "MLflow: %s run %s in experiment '%s' at %s (to browse it: pip install mlflow, "
            "then mlflow ui --backend-store-uri %s).",
            doing.lower(),
            self.run_id,
            self.experiment_name,
            uri,
            uri,
        )

    def on_log(
        self, *, mode: str, total_steps: int, metrics: Mapping[str, float], **_: Any
    ) -> None:
        now = int(time.time() * 1000)
        values = [
            self._entities.Metric(metric_tag(name, mode), float(value), now, total_steps)
            for name, value in metrics.items()
        ]
        self.client.log_batch(self.run_id, metrics=values)

    def on_checkpoint(self, *, path: Path, **_: Any) -> None:
        if self.log_checkpoints:
            self.client.log_artifact(self.run_id, str(path), "checkpoints")

    def on_run_end(self, *, run_dir: Path, **_: Any) -> None:
        self.client.log_artifact(self.run_id, str(run_dir / SUMMARY_FILE))
        self.client.set_terminated(self.run_id, "FINISHED")
        self._say_where("Finished")
        self.run_id = None

    def close(self) -> None:
        if self.run_id is not None:  # the run failed or was interrupted
            self.client.set_terminated(self.run_id, "FAILED")
            self.run_id = None
