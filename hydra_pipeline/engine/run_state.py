"""``RunState``: what a checkpoint holds of a training run, and continuing from one.

Each part of a run owns its state: the pipeline its progress and criteria, the learner its
optimizer and data streams, the collector its environments, episodes and the model's memory,
the statistics the metrics waiting for the next metric point, the evaluation schedule its
bookkeeping. :class:`RunState` puts them into one payload (what every process shares once,
each process's own under ``ranks``), writes it, and restores every part from it, so a resumed
run continues exactly as the uninterrupted one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from hydra_pipeline.engine import distributed
from hydra_pipeline.engine.checkpoint import (
    CHECKPOINT_DIRECTORY,
    capture_rng_state,
    checkpoint_name,
    load_checkpoint,
    require_resumable,
    restore_rng_state,
    save_checkpoint,
)
from hydra_pipeline.engine.collector import RolloutCollector
from hydra_pipeline.engine.evaluation import EvaluationSchedule
from hydra_pipeline.engine.learner import Learner
from hydra_pipeline.engine.statistics import TrainingStatistics
from hydra_pipeline.errors import CheckpointError
from hydra_pipeline.pipeline import TrainingPipeline

__all__ = ["RunState"]


class RunState:
    """The state of a training run, written to and restored from its checkpoints.

    Args:
        pipeline: The run's pipeline.
        model: The trained model.
        learner: Its optimizer, schedule and data streams.
        collector: Its environments and episodes.
        statistics: Its metrics.
        evaluation: Its evaluations (``None`` when the run does not evaluate).
        output_dir: The run's folder (checkpoints go to its ``checkpoints/``).
        metadata: Plain values stored in every checkpoint (the app's overrides, to resume
            with them).

    Attributes:
        steps_at_last_save: The total step count of the latest scheduled checkpoint.
    """

    def __init__(
        self,
        pipeline: TrainingPipeline,
        model: nn.Module,
        learner: Learner,
        collector: RolloutCollector,
        statistics: TrainingStatistics,
        evaluation: EvaluationSchedule | None,
        output_dir: Path,
        metadata: Mapping[str, Any],
    ) -> None:
        self.pipeline = pipeline
        self.model = model
        self.learner = learner
        self.collector = collector
        self.statistics = statistics
        self.evaluation = evaluation
        self.output_dir = output_dir
        self.metadata = dict(metadata)
        self.ranks = distributed.ranks()
        self.steps_at_last_save = 0

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly, as tensors and plain values.

        What every rank shares (model, optimizer, schedule, pipeline progress, the metrics of
        the latest metric point, evaluation bookkeeping) is stored once; what each rank has of
        its own (its environments and episodes, its metrics since the last metric point, its
        data streams, its random generators) is stored per rank, under ``ranks`` (rank ``r``
        at index ``r``). In a distributed run, every rank must call this (it gathers the
        ranks' states).
        """
        own = {
            **self.collector.state_dict(),
            **self.statistics.rank_state_dict(),
            **self.learner.rank_state_dict(),
            "rng": capture_rng_state(),
        }
        evaluation = self.evaluation
        return {
            "total_steps": self.pipeline.total_steps,
            "model": self.model.state_dict(),
            **self.learner.state_dict(),
            "pipeline": self.pipeline.state_dict(),
            "engine": {
                **self.statistics.state_dict(),
                "steps_at_last_save": self.steps_at_last_save,
                "evaluation": None if evaluation is None else evaluation.state_dict(),
            },
            # The statistics a trained policy normalises with (the evaluate command and
            # Policy read them here; every rank holds the same).
            "normalization": own["normalization"],
            "world_size": self.ranks.world_size,
            "ranks": distributed.gather_objects(own),
            "metadata": self.metadata,
        }

    def write(self, path: Path) -> None:
        """Write the current state to ``path`` (rank 0 writes, every rank contributes)."""
        state = self.state_dict()
        if self.ranks.is_main:
            save_checkpoint(state, path)

    def save(self, stage_index: int, *, on_schedule: bool = True) -> Path:
        """Write a checkpoint of the current state into the run's ``checkpoints/`` folder,
        named after ``stage_index`` (the stage whose rollout was last completed) and the total
        step count; ``on_schedule``: a save ``save_interval`` asked for (an extra one, on
        interruption, leaves the schedule of the next ones as it was)."""
        total_steps = self.pipeline.total_steps
        if on_schedule:
            self.steps_at_last_save = total_steps
        path = self._path(stage_index)
        self.write(path)
        return path

    def saved_now(self, stage_index: int) -> Path | None:
        """The scheduled checkpoint of the current state, if one was just written."""
        path = self._path(stage_index)
        # Rank 0 (which writes them) says whether the file is there, so all ranks agree.
        saved = distributed.broadcast_object(path.is_file())
        return path if saved and self.steps_at_last_save == self.pipeline.total_steps else None

    def _path(self, stage_index: int) -> Path:
        name = checkpoint_name(stage_index, self.pipeline.total_steps)
        return self.output_dir / CHECKPOINT_DIRECTORY / name

    def resume(self, path: Path) -> int:
        """Restore every part of the run from the checkpoint at ``path``; its total step count.

        Raises:
            CheckpointError: The checkpoint cannot be read or does not fit this run.
        """
        state = load_checkpoint(path)
        require_resumable(state, path, world_size=self.ranks.world_size)
        own, engine = state["ranks"][self.ranks.rank], state["engine"]
        with _checkpoint_mismatch(path):
            self.pipeline.load_state_dict(state["pipeline"])
            self.model.load_state_dict(state["model"])
            self.learner.load_state_dict(state, own, self.pipeline.total_steps)
            self.collector.load_state_dict(own, path)
            self.statistics.load_state_dict(engine, own)
            self.steps_at_last_save = int(engine["steps_at_last_save"])
            if self.evaluation is not None and engine["evaluation"] is not None:
                self.evaluation.load_state_dict(engine["evaluation"])
        restore_rng_state(own["rng"])
        return int(state["total_steps"])


@contextlib.contextmanager
def _checkpoint_mismatch(path: Path) -> Iterator[None]:
    """Turn errors raised while restoring a checkpoint into a ``CheckpointError``."""
    try:
        yield
    except (ValueError, RuntimeError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"Checkpoint '{path}' does not fit this run: {error}. Resume with the config the "
            "checkpoint was made with."
        ) from error
