"""``OnPolicyRunner``: steps a ``TrainingPipeline`` through its stages, and really trains.

Read :meth:`OnPolicyRunner.run` top to bottom: for each stage, until it is complete, the
collector gathers a rollout with its returns (:mod:`~hydra_pipeline.engine.collector`), the
learner runs the updates of each of the stage's components and steps the learning-rate
schedule (:mod:`~hydra_pipeline.engine.learner`), then, when due, an evaluation, a metric
point (where the stage's early-stopping criterion decides, see
:mod:`~hydra_pipeline.engine.statistics`), the periodic environment reset and a checkpoint;
after the last stage, a final evaluation of the trained policy. Every stage runs with its own
training settings (rollout length, minibatches, repeats, discounting, clipping, intervals),
resolved against the pipeline's. :meth:`OnPolicyRunner.rollouts` hands out the rollouts, so
that :class:`~hydra_pipeline.engine.members.MemberBatch` can drive several runners in step.

Step clocks follow AllenAct: losses and teacher forcing run on the stage's step count; the LR
scheduler, logging and checkpoints on the total step count. A stage's steps grow by
``num_envs`` per environment step and its completion is checked between rollouts, so a stage
runs to a whole number of rollouts: ``ceil(max_stage_steps / (num_steps * num_envs))`` of them.
A pipeline without a rollout storage collects nothing: each round of updates is one step.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hydra_pipeline.arguments import require_at_least
from hydra_pipeline.engine import distributed
from hydra_pipeline.engine.callbacks import Callback, CallbackList
from hydra_pipeline.engine.checkpoint import BEST_CHECKPOINT, CHECKPOINT_DIRECTORY, load_weights
from hydra_pipeline.engine.collector import RolloutCollector
from hydra_pipeline.engine.evaluation import BestEvaluation, EvaluationSchedule, Evaluator
from hydra_pipeline.engine.fit import check_fit
from hydra_pipeline.engine.learner import Learner
from hydra_pipeline.engine.normalization import Normalization
from hydra_pipeline.engine.reporting import ConsoleReporter, MetricsFile, TensorBoardWriter
from hydra_pipeline.engine.run_state import RunState
from hydra_pipeline.engine.statistics import TrainingStatistics
from hydra_pipeline.engine.summary import SUMMARY_FILE, RunSummary, summarize_run
from hydra_pipeline.errors import TrainingInterrupted
from hydra_pipeline.files import remove_stale_temporaries
from hydra_pipeline.models.protocol import has_memory
from hydra_pipeline.pipeline import PipelineStage, TrainingPipeline
from hydra_pipeline.tasks.protocol import Task

__all__ = ["OnPolicyRunner"]


class OnPolicyRunner:
    """Trains ``model`` on ``task`` through the stages of ``pipeline``.

    Args:
        pipeline: The stages and their settings.
        task: The environments (see :class:`~hydra_pipeline.tasks.Task`).
        model: An actor-critic module built for ``task`` (see
            :mod:`hydra_pipeline.models.protocol`).
        output_dir: The run's folder: checkpoints, TensorBoard events, ``metrics.csv`` and
            ``summary.json``.
        seed: Seeds the task's environments (the global generators are seeded by the caller,
            before the model is built); in a distributed run, rank ``r``'s environments are
            seeded from ``seed`` and ``r`` (see
            :func:`~hydra_pipeline.pipeline.seeding.seed_for_rank`).
        device: Where the model and rollouts live.
        tensorboard: Whether to write TensorBoard event files.
        progress_bar: A progress bar for the run (``None``: when stderr is a terminal).
        checkpoint_metadata: Plain values stored in every checkpoint (the app stores the
            run's overrides there, to resume with them).
        hparams: Hyperparameters recorded with the final metrics for TensorBoard's hparams
            view (the app passes the run's overrides, so a sweep's jobs compare there).
        callbacks: Called at each point of the run (see
            :mod:`hydra_pipeline.engine.callbacks`), after the built-in ones (the console
            and TensorBoard, unless ``pipeline.should_log`` is off, and the metrics file).
        run_config: The run's resolved config as plain values, handed to the callbacks.
        job: Where the run stands in a sweep (see ``Callback.on_run_start``), for the
            callbacks.
        return_window: The training return (``reward``: logged, watched by early-stopping
            criteria, and ``summary.json``'s) is the mean over this many of the last episodes
            that ended in the current stage (>= 1).
        evaluator: Evaluates the policy during training on a task of its own (see
            :mod:`hydra_pipeline.engine.evaluation`); ``None``: no evaluation.
        evaluation_interval: Evaluate at the first rollout end at or after each multiple of
            this many total steps (>= 1; with ``evaluator``). The run also evaluates once more
            after its last stage, and reports each evaluation's metrics as ``eval/<metric>``,
            which early-stopping criteria may watch.
        best: Which evaluation's checkpoint ``checkpoints/best.pt`` keeps (by default the
            highest ``reward``).
        normalization: Normalises the observations the model sees and scales the rewards it
            learns from, with statistics updated by the training rollouts only (give the same
            object to ``evaluator``, which uses them as they are); ``None``: none.

    Attributes:
        collector: Collects the rollouts
            (:class:`~hydra_pipeline.engine.collector.RolloutCollector`).
        learner: Learns from them (:class:`~hydra_pipeline.engine.learner.Learner`).
        statistics: What training measured
            (:class:`~hydra_pipeline.engine.statistics.TrainingStatistics`).
        evaluation: The run's evaluations
            (:class:`~hydra_pipeline.engine.evaluation.EvaluationSchedule`; ``None`` without
            ``evaluator``).
        state: What its checkpoints hold, and resuming from one
            (:class:`~hydra_pipeline.engine.run_state.RunState`).

    Raises:
        InvalidArgumentError: The pipeline does not fit the task, the model or the engine
            (see :func:`~hydra_pipeline.engine.fit.check_fit`), an evaluation interval is
            below 1, or an optimizer or scheduler cannot be built.
    """

    def __init__(
        self,
        pipeline: TrainingPipeline,
        task: Task,
        model: nn.Module,
        *,
        output_dir: Path,
        seed: int = 0,
        device: str | torch.device = "cpu",
        tensorboard: bool = True,
        progress_bar: bool | None = None,
        checkpoint_metadata: Mapping[str, Any] | None = None,
        hparams: Mapping[str, Any] | None = None,
        callbacks: Sequence[Callback] = (),
        run_config: Mapping[str, Any] | None = None,
        job: Mapping[str, Any] | None = None,
        return_window: int = 100,
        evaluator: Evaluator | None = None,
        evaluation_interval: int | None = None,
        best: BestEvaluation | None = None,
        normalization: Normalization | None = None,
    ) -> None:
        check_fit(pipeline, task, evaluating=evaluator is not None, memory=has_memory(model))
        self.evaluation = (
            None if evaluator is None else EvaluationSchedule(evaluator, evaluation_interval, best)
        )
        self.pipeline = pipeline
        self.task = task
        self.device = torch.device(device)
        self.model = model.to(self.device)
        # Under torch.distributed (a process group initialised by the caller), every rank
        # trains the same weights on its own environments: rank 0's weights to start with.
        self.ranks = distributed.ranks()
        distributed.broadcast_module(self.model)
        self.output_dir = output_dir
        self.seed = seed
        self.tensorboard = tensorboard
        self.progress_bar = progress_bar
        self.hparams = dict(hparams or {})
        self.callbacks = list(callbacks)
        self.run_config = dict(run_config or {})
        self.job = dict(job or {})
        self.events = CallbackList([])  # the built-in and given callbacks, during run()
        window = require_at_least("return_window", return_window, 1)
        self.statistics = statistics = TrainingStatistics(window)
        self.learner = Learner(pipeline, self.model, statistics, self.device)
        self.collector = RolloutCollector(
            pipeline, task, self.model, statistics, self.device, normalization, seed
        )
        self.normalization = normalization
        parts = (self.model, self.learner, self.collector, statistics, self.evaluation)
        self.state = RunState(pipeline, *parts, output_dir, checkpoint_metadata or {})
        self.resumed_from: int | None = None
        self.stop_reason: str | None = None
        self._started = (time.perf_counter(), time.process_time(), pipeline.total_steps)

    # ----------------------------------------------------------------------------------------
    # The training loop

    def run(self) -> RunSummary:
        """Train through every incomplete stage, then write and return the run's summary.

        Raises:
            TrainingInterrupted: :meth:`request_stop` was called; training stopped after the
                current rollout's update, with a checkpoint to resume from.
        """
        collector, learner = self.collector, self.learner
        try:
            self.open()
            for stage in self.rollouts():
                storage = collector.collect(stage)
                for component in stage.stage_components:
                    learner.update(stage, component, storage)
                learner.step_lr_scheduler(self.pipeline.total_steps)
            return self.finish()
        finally:
            self.events.close()

    def open(self) -> None:
        """Start the run: its folder, its clock and its reporters (rank 0's alone)."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.output_dir / CHECKPOINT_DIRECTORY)
        self._started = (time.perf_counter(), time.process_time(), self.pipeline.total_steps)
        self.statistics.start_clock(self.pipeline.total_steps)
        self.events = CallbackList(self._reporters() if self.ranks.is_main else [])
        self.events.on_run_start(
            run_dir=self.output_dir,
            config=self.run_config,
            job=self.job,
            total_steps=self.pipeline.total_steps,
            resumed=self.resumed_from is not None,
        )

    def rollouts(self) -> Iterator[PipelineStage]:
        """Each rollout's stage, to collect, learn from and step the LR schedule (see
        :meth:`run`); the next is handed out after the rest of the rollout's work: when due, an
        evaluation, a metric point, the periodic reset, a checkpoint and a requested stop."""
        pipeline, events = self.pipeline, self.events
        for stage in pipeline:
            index = pipeline.current_stage_index
            assert index is not None  # the pipeline's cursor is on the stage it yields
            if stage.steps_taken_in_stage == 0:  # not when resuming part-way
                self.statistics.start_stage()
            events.on_stage_start(
                stage_index=index,
                stage_count=len(pipeline.pipeline_stages),
                loss_names=list(stage.loss_names),
                max_stage_steps=stage.resolve_max_stage_steps(),
                stage_steps=stage.steps_taken_in_stage,
                total_steps=pipeline.total_steps,
                planned_total_steps=pipeline.planned_total_steps(),
            )
            while not stage.is_complete:
                yield stage
                pipeline.record_rollout_end()
                events.on_rollout_end(
                    total_steps=pipeline.total_steps,
                    stage_index=index,
                    stage_steps=stage.steps_taken_in_stage,
                )
                if self.evaluation is not None and self.evaluation.due(pipeline.total_steps):
                    self._evaluate(index, stage)
                self._log_and_decide(index, stage)
                # Before the checkpoint, so a run resumed from it continues from the reset
                # environments, as the uninterrupted run does.
                period = stage.training_settings.advance_scene_rollout_period
                if period is not None and pipeline.rollout_count % period == 0:
                    self.collector.reset_environments()
                if pipeline.should_save(
                    steps_since_last_save=pipeline.total_steps - self.state.steps_at_last_save,
                    stage_completed=stage.is_complete,
                    stage=stage,
                ):
                    self.save_checkpoint(index)
                self._stop_if_asked(index)
            events.on_stage_end(
                stage_index=index,
                total_steps=pipeline.total_steps,
                stage_steps=stage.steps_taken_in_stage,
                early_stopped=stage.early_stopping_criterion_met,
                early_stop=self.statistics.stops.get(index),
            )

    def finish(self) -> RunSummary:
        """After the last stage: a final evaluation when due; the summary, written, returned."""
        pipeline = self.pipeline
        if self.evaluation is not None and self.evaluation.due(pipeline.total_steps, final=True):
            last = len(pipeline.pipeline_stages) - 1
            self._evaluate(last, pipeline.pipeline_stages[last])
        distributed.check_same_weights(self.model)
        summary = self._summary(*self._started)
        if self.ranks.is_main:
            summary.write(self.output_dir / SUMMARY_FILE)
        self.events.on_run_end(
            total_steps=summary.total_steps, summary=summary.to_dict(), run_dir=self.output_dir
        )
        return summary

    def _reporters(self) -> list[Callback]:
        """The console and TensorBoard (when the pipeline logs), the metrics file, then the
        given callbacks."""
        builtins: list[Callback] = []
        if self.pipeline.should_log:
            builtins.append(ConsoleReporter(self.progress_bar))
            if self.tensorboard:
                builtins.append(TensorBoardWriter(self.hparams))
        return [*builtins, MetricsFile(), *self.callbacks]

    def _evaluate(self, index: int, stage: PipelineStage) -> None:
        """Evaluate the current policy: report its metrics (and videos), keep them for the
        stage's early-stopping criterion at the next metric point, and keep ``best.pt``."""
        assert self.evaluation is not None  # see run()
        total_steps = self.pipeline.total_steps
        metrics, counts, videos = self.evaluation.evaluate(total_steps, is_main=self.ranks.is_main)
        self.events.on_log(
            mode="eval",
            total_steps=total_steps,
            stage_index=index,
            stage_steps=stage.steps_taken_in_stage,
            metrics=metrics,
            counts=counts,
        )
        for path in videos:
            self.events.on_video(mode="eval", total_steps=total_steps, path=path)
        self.statistics.record_evaluation(metrics, counts)
        if self.evaluation.best.improved_by(metrics, total_steps):
            path = self.output_dir / CHECKPOINT_DIRECTORY / BEST_CHECKPOINT
            self.state.write(path)
            self.events.on_checkpoint(total_steps=total_steps, stage_index=index, path=path)

    def _log_and_decide(self, index: int, stage: PipelineStage) -> None:
        """At a metric point: log the training metrics, let the stage's early-stopping
        criterion decide on them whether the stage ends, and remember what it decided on."""
        total_steps = self.pipeline.total_steps
        if not self.pipeline.should_accumulate_metrics(
            steps_since_last_log=total_steps - self.statistics.steps_at_last_log,
            stage_completed=stage.is_complete,
            stage=stage,
        ):
            return
        point = self.statistics.close_interval(total_steps)
        self.events.on_log(
            mode="train",
            total_steps=total_steps,
            stage_index=index,
            stage_steps=stage.steps_taken_in_stage,
            metrics=point.metrics,
            counts=point.counts,
            steps_per_second=point.steps_per_second,
            recent_return=self.statistics.latest_metrics.get("reward"),
        )
        self.pipeline.before_rollout(train_metrics=point.criterion_metrics)
        if stage.early_stopping_criterion_met:
            self.statistics.record_stop(index, total_steps, stage.early_stopping_criterion, point)

    def request_stop(self, reason: str) -> None:
        """Ask the run to stop at the next safe point: once the current rollout's update (and
        its metrics and scheduled checkpoint) is done, a checkpoint is written, whatever
        ``save_interval`` says, and :meth:`run` raises ``TrainingInterrupted``. Resuming from
        that checkpoint ends as the uninterrupted run would. Safe to call from a signal
        handler."""
        self.stop_reason = reason

    def _stop_if_asked(self, index: int) -> None:
        """Stop with a checkpoint at the first rollout where any rank was asked to; a request
        made while the ranks agree (the relay's poll thread) is left for the next agreement."""
        if (agreed := distributed.merge_objects(self.stop_reason, _first_reason)) is not None:
            self.stop_reason = agreed
            saved = self.state.saved_now(index)
            checkpoint = saved or self.save_checkpoint(index, on_schedule=False)
            raise TrainingInterrupted(agreed, self.pipeline.total_steps, checkpoint)

    # ----------------------------------------------------------------------------------------
    # Summary and checkpoints

    def _summary(self, start_time: float, start_cpu: float, start_steps: int) -> RunSummary:
        wall_seconds = time.perf_counter() - start_time
        speed = {
            "steps_per_second": (self.pipeline.total_steps - start_steps) / max(wall_seconds, 1e-9),
            "wall_seconds": wall_seconds,
            "cpu_seconds": time.process_time() - start_cpu,
        }
        if self.collector.first_step_time is not None:
            speed["first_step_time"] = self.collector.first_step_time
        if self.learner.first_update_time is not None:
            speed["first_update_time"] = self.learner.first_update_time
        return summarize_run(
            seed=self.seed,
            pipeline=self.pipeline,
            statistics=self.statistics,
            evaluation=self.evaluation,
            speed=speed,
        )

    def save_checkpoint(self, stage_index: int, *, on_schedule: bool = True) -> Path:
        """Write a checkpoint of the current state into the run's ``checkpoints/`` folder
        (see :meth:`~hydra_pipeline.engine.run_state.RunState.save`)."""
        path = self.state.save(stage_index, on_schedule=on_schedule)
        total_steps = self.pipeline.total_steps
        self.events.on_checkpoint(total_steps=total_steps, stage_index=stage_index, path=path)
        return path

    def resume(self, path: Path) -> None:
        """Continue exactly from the checkpoint at ``path``: weights, optimizer, learning rate,
        pipeline progress and criteria, environments and every random generator.

        Raises:
            CheckpointError: The checkpoint cannot be read or does not fit this run.
        """
        self.resumed_from = self.state.resume(path)

    def load_weights(self, path: Path) -> int:
        """Start the pipeline over from the model weights of the checkpoint at ``path`` only
        (AllenAct's ``--restart_pipeline``): fresh optimizer, scheduler and pipeline progress.

        Returns:
            The total steps the checkpoint's run had trained for.

        Raises:
            CheckpointError: The checkpoint cannot be read or its weights do not fit the model.
        """
        return int(load_weights(self.model, path)["total_steps"])


def _first_reason(reasons: Iterable[str | None]) -> str | None:
    """The stop reason of the lowest rank asked to stop, if any was."""
    return next((reason for reason in reasons if reason is not None), None)
