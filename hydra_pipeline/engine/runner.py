"""``OnPolicyRunner``: steps a ``TrainingPipeline`` through its stages, and really trains.

Read :meth:`OnPolicyRunner.run` top to bottom: for each stage, until it is complete, one
rollout, the updates of each of the stage's components (the rollout's own, then those learning
from other storages), the LR scheduler, an evaluation if due, metrics (and the stage's
early-stopping criterion), the periodic environment reset, and a checkpoint if due; after the
last stage, a final evaluation of the trained policy. Every stage runs with its own training
settings (rollout length, minibatches, repeats, discounting, clipping, intervals), resolved
against the pipeline's.

Step clocks follow AllenAct: losses and teacher forcing run on the stage's step count; the LR
scheduler, logging and checkpoints on the total step count. A stage's steps grow by
``num_envs`` per environment step and its completion is checked between rollouts, so a stage
runs to a whole number of rollouts: ``ceil(max_stage_steps / (num_steps * num_envs))`` of them.
A pipeline without a rollout storage collects nothing: each round of updates is one step.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hydra_pipeline.arguments import require_at_least
from hydra_pipeline.engine import distributed
from hydra_pipeline.engine.acting import Actor, TaskStepper, model_output
from hydra_pipeline.engine.advantages import compute_returns
from hydra_pipeline.engine.callbacks import Callback, CallbackList
from hydra_pipeline.engine.checkpoint import (
    BEST_CHECKPOINT,
    CHECKPOINT_DIRECTORY,
    capture_rng_state,
    checkpoint_name,
    load_checkpoint,
    load_weights,
    require_resumable,
    restore_normalization,
    restore_rng_state,
    save_checkpoint,
)
from hydra_pipeline.engine.episodes import FinishedEpisodes, RecentEpisodes
from hydra_pipeline.engine.evaluation import EVALUATION_METRICS, BestEvaluation, Evaluator
from hydra_pipeline.engine.losses import Loss
from hydra_pipeline.engine.normalization import Normalization
from hydra_pipeline.engine.offpolicy import OffPolicyStream
from hydra_pipeline.engine.reporting import (
    ConsoleReporter,
    MetricsFile,
    TensorBoardWriter,
    metric_tag,
)
from hydra_pipeline.engine.rollout import Minibatch, RolloutStorage
from hydra_pipeline.engine.summary import SUMMARY_FILE, RunSummary, StageSummary
from hydra_pipeline.errors import CheckpointError, InvalidArgumentError, TrainingInterrupted
from hydra_pipeline.files import remove_stale_temporaries
from hydra_pipeline.models.protocol import has_memory
from hydra_pipeline.pipeline import (
    PipelineStage,
    ScalarMeanTracker,
    StageComponent,
    TrainingPipeline,
    TrainingSettings,
)
from hydra_pipeline.pipeline.seeding import seed_for_rank
from hydra_pipeline.pipeline.settings import MINIBATCH_SPLITS, setting_source
from hydra_pipeline.tasks.observations import (
    assign_observations,
    map_observations,
    num_observations,
    observation_space_of,
)
from hydra_pipeline.tasks.protocol import Task

__all__ = ["OnPolicyRunner"]

_EPISODE_METRICS = ("reward", "episode_length")


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
        progress_bar: A progress bar per stage (``None``: when stderr is a terminal).
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
        return_window: The final training return (``summary.json``'s ``reward``) is the mean
            over this many of the last finished episodes (>= 1).
        evaluator: Evaluates the policy during training on a task of its own (see
            :mod:`hydra_pipeline.engine.evaluation`); ``None``: no evaluation.
        evaluation_interval: Total steps between evaluations (>= 1; with ``evaluator``). The
            run also evaluates once more after its last stage, and reports each evaluation's
            metrics as ``eval/<metric>``, which early-stopping criteria may watch.
        best: Which evaluation's checkpoint ``checkpoints/best.pt`` keeps (by default the
            highest ``reward``).
        normalization: Normalises the observations the model sees and scales the rewards it
            learns from, with statistics updated by the training rollouts only (give the same
            object to ``evaluator``, which uses them as they are); ``None``: none.

    Raises:
        InvalidArgumentError: The pipeline does not fit the task or the engine: more
            minibatches than environments, a stage needing expert actions from a task without
            an expert, a stage component on a storage that is not a data source, an
            early-stopping criterion watching a metric its stage never logs, an evaluation
            interval below 1, or an optimizer or scheduler that cannot be built.
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
        _check_fit(pipeline, task, evaluating=evaluator is not None, memory=has_memory(model))
        if evaluator is not None:
            require_at_least("evaluation_interval", evaluation_interval, 1)
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
        self.checkpoint_metadata = dict(checkpoint_metadata or {})
        self.hparams = dict(hparams or {})
        self.callbacks = list(callbacks)
        self.run_config = dict(run_config or {})
        self.job = dict(job or {})
        self.events = CallbackList([])  # the built-in and given callbacks, during run()
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer: torch.optim.Optimizer = _build(
            "optimizer_builder", pipeline.optimizer_builder, params=self.parameters
        )
        scheduler_builder = pipeline.lr_scheduler_builder
        self.lr_scheduler: Any = (
            None
            if scheduler_builder is None
            else _build("lr_scheduler_builder", scheduler_builder, optimizer=self.optimizer)
        )

        self.actor = Actor(self.model, task.action_space, self.device)
        self.normalization = normalization
        self.stepper = TaskStepper(task, self.actor, normalization, learning=True)
        # Allocated for each stage's rollout length (None in a purely off-policy pipeline).
        self.storage: RolloutStorage | None = None

        # Training state (all of it goes into checkpoints, the stepper's episodes included).
        self.stepper.reset(seed=seed_for_rank(seed, self.ranks.rank))
        self.steps_at_last_log = 0
        self.steps_at_last_save = 0
        self.interval_metrics = ScalarMeanTracker()
        self.latest_metrics: dict[str, float] = {}
        self.latest_counts: dict[str, int] = {}
        self.recent_episodes = RecentEpisodes(require_at_least("return_window", return_window, 1))
        self.data_streams: dict[str, OffPolicyStream] = {}
        self.resumed_from: int | None = None
        self.stop_reason: str | None = None
        # Wall-clock times (time.time()) of the first environment step and the first gradient
        # update of this process, for startup benchmarks.
        self.first_step_time: float | None = None
        self.first_update_time: float | None = None
        # Evaluation (its bookkeeping goes into checkpoints too).
        self.evaluator = evaluator
        self.evaluation_interval = evaluation_interval or 0
        self.steps_at_last_evaluation = 0
        self.latest_evaluation: dict[str, float] = {}
        self.best = best or BestEvaluation()

    # ----------------------------------------------------------------------------------------
    # The training loop

    def run(self) -> RunSummary:
        """Train through every incomplete stage, then write and return the run's summary.

        Raises:
            TrainingInterrupted: :meth:`request_stop` was called; training stopped after the
                current rollout's update, with a checkpoint to resume from.
        """
        self.output_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.output_dir / CHECKPOINT_DIRECTORY)
        start_time = time.perf_counter()
        start_steps = self.pipeline.total_steps
        self.timer = (time.perf_counter(), start_steps)
        # Rank 0 alone reports: console, progress bar, TensorBoard, metrics file, callbacks.
        reporting = self._builtin_callbacks() + self.callbacks if self.ranks.is_main else []
        self.events = events = CallbackList(reporting)
        try:
            events.on_run_start(
                run_dir=self.output_dir,
                config=self.run_config,
                job=self.job,
                total_steps=start_steps,
                resumed=self.resumed_from is not None,
            )
            for stage in self.pipeline:
                index = self.pipeline.current_stage_index
                assert index is not None  # the pipeline's cursor is on the stage it yields
                settings = stage.training_settings
                record_expert = bool(_expert_needs(self.pipeline, stage))
                events.on_stage_start(
                    stage_index=index,
                    stage_count=len(self.pipeline.pipeline_stages),
                    loss_names=list(stage.loss_names),
                    max_stage_steps=stage.resolve_max_stage_steps(),
                    stage_steps=stage.steps_taken_in_stage,
                )
                while not stage.is_complete:
                    storage = self._rollout_storage(settings)
                    if storage is None:  # nothing to collect: a round of updates is a step
                        stage.steps_taken_in_stage += 1
                    else:
                        self._collect_rollout(stage, storage, record_expert)
                        self._compute_returns(storage, settings)
                    for component in stage.stage_components:
                        self._update(stage, component, storage, record_expert)
                    self._step_lr_scheduler()
                    self.pipeline.rollout_count += 1
                    stage.rollout_count += 1
                    events.on_rollout_end(
                        total_steps=self.pipeline.total_steps,
                        stage_index=index,
                        stage_steps=stage.steps_taken_in_stage,
                    )
                    self._after_rollout(index, stage)
                    # A signal may reach some ranks only, or at different rollouts: all stop
                    # at the first rollout where any rank was asked to.
                    self.stop_reason = distributed.merge_objects(self.stop_reason, _first_reason)
                    if self.stop_reason is not None:
                        raise TrainingInterrupted(
                            self.stop_reason, self.pipeline.total_steps, self._checkpoint_now(index)
                        )
                events.on_stage_end(
                    stage_index=index,
                    total_steps=self.pipeline.total_steps,
                    stage_steps=stage.steps_taken_in_stage,
                    early_stopped=stage.early_stopping_criterion_met,
                )
            last = len(self.pipeline.pipeline_stages) - 1
            if self._evaluation_due(final=True):
                self._evaluate(last, self.pipeline.pipeline_stages[last])
            distributed.check_same_weights(self.model)
            summary = self._summary(start_steps, time.perf_counter() - start_time)
            if self.ranks.is_main:
                summary.write(self.output_dir / SUMMARY_FILE)
            events.on_run_end(
                total_steps=summary.total_steps, summary=summary.to_dict(), run_dir=self.output_dir
            )
        finally:
            events.close()
        return summary

    def _builtin_callbacks(self) -> list[Callback]:
        """The console and TensorBoard (when the pipeline logs), and the metrics file."""
        builtins: list[Callback] = []
        if self.pipeline.should_log:
            builtins.append(ConsoleReporter(self.progress_bar))
            if self.tensorboard:
                builtins.append(TensorBoardWriter(self.hparams))
        builtins.append(MetricsFile())
        return builtins

    def _rollout_storage(self, settings: TrainingSettings) -> RolloutStorage | None:
        """The rollout storage, sized to the stage's ``num_steps`` (reallocated when a stage's
        rollouts are longer or shorter than the previous stage's); ``None`` when the pipeline
        has no rollout storage."""
        if self.pipeline.rollout_storage_uuid is None:
            return None
        num_steps = settings.num_steps
        assert num_steps is not None  # required of every stage that runs
        if self.storage is None or self.storage.num_steps != num_steps:
            self.storage = RolloutStorage(
                num_steps,
                self.task.num_envs,
                observation_space_of(self.task),
                self.actor.action_shape,
                self.actor.action_dtype,
                self.device,
            )
        return self.storage

    def _collect_rollout(
        self, stage: PipelineStage, storage: RolloutStorage, record_expert: bool
    ) -> None:
        """Act ``num_steps`` times in every environment, filling the rollout storage."""
        num_envs = self.task.num_envs
        # Steps count every rank's environments: max_stage_steps, intervals and schedules
        # mean agent steps of the whole run, however many processes share them.
        steps_per_step = num_envs * self.ranks.world_size
        rollout_uuid = self.pipeline.rollout_storage_uuid
        assert rollout_uuid is not None  # there is a rollout storage
        teacher_forcing = stage.teacher_forcing
        forced_probability = 0.0
        forced_count = torch.zeros((), dtype=torch.int64, device=self.device)
        if self.first_step_time is None:
            self.first_step_time = time.time()
        memory, _ = self.actor.memory_for(num_envs)
        storage.memory = None if memory is None else memory.clone()
        with torch.no_grad():
            for step in range(storage.num_steps):
                probability = 0.0
                if teacher_forcing is not None:
                    probability = teacher_forcing(stage.steps_taken_in_stage)
                    forced_probability += probability
                move = self.stepper.step(
                    expert=record_expert, forcing=probability, final_values=True
                )
                if move.expert_actions is not None:
                    storage.expert_actions[step] = move.expert_actions
                if move.episode_starts is not None:
                    storage.episode_starts[step] = move.episode_starts
                if move.forced is not None:
                    forced_count += move.forced.sum()
                result = move.result
                assign_observations(storage.observations, step, move.observations)
                storage.actions[step] = move.actions
                storage.log_probs[step] = move.output.distribution.log_prob(move.actions)
                storage.values[step] = move.output.values
                storage.rewards[step] = result.rewards
                storage.terminated[step] = result.terminated
                storage.truncated[step] = result.truncated
                assert move.final_values is not None  # asked for
                storage.final_values[step] = move.final_values
                stage.steps_taken_in_stage += steps_per_step
                stage.storage_uuid_to_steps_taken_in_stage[rollout_uuid] += steps_per_step
        self._record_episodes(self.stepper.finished_episodes())
        if teacher_forcing is not None:
            self.interval_metrics.add_scalars(
                {
                    "teacher_forcing": forced_probability / storage.num_steps,
                    "teacher_forcing_sampled": forced_count.item() / (num_envs * storage.num_steps),
                }
            )

    def _record_episodes(self, episodes: FinishedEpisodes) -> None:
        """Add the returns, lengths and task metrics of the episodes that ended in this
        rollout to the metrics, weighted by their number."""
        self.recent_episodes.add(episodes.returns, episodes.lengths)
        if episodes.returns.numel():
            self.interval_metrics.add_scalars(
                {
                    "reward": float(episodes.returns.mean()),
                    "episode_length": float(episodes.lengths.mean()),
                },
                n=episodes.returns.numel(),
            )
        for name, values in episodes.metrics.items():
            reported = values[~values.isnan()]
            if reported.numel():
                self.interval_metrics.add_scalars(
                    {name: float(reported.double().mean())}, n=reported.numel()
                )

    def _compute_returns(self, storage: RolloutStorage, settings: TrainingSettings) -> None:
        """Returns and advantages of the rollout, with the stage's discounting."""
        gamma, use_gae, gae_lambda = settings.gamma, settings.use_gae, settings.gae_lambda
        assert gamma is not None and use_gae is not None and gae_lambda is not None
        with torch.no_grad():
            self._bootstrap_truncated_episodes(storage, gamma)
            next_values = self.actor.values(self.stepper.observations)
            returns = compute_returns(
                storage.rewards,
                storage.values,
                storage.terminated | storage.truncated,
                next_values,
                gamma=gamma,
                use_gae=use_gae,
                gae_lambda=gae_lambda,
            )
            storage.compute_advantages(returns)

    def _bootstrap_truncated_episodes(self, storage: RolloutStorage, gamma: float) -> None:
        """Credit each episode cut short (not terminated) with the discounted value of its
        last observation (valued during the rollout, with the episode's memory), so a time
        limit is not mistaken for the end of the MDP."""
        cut_short = storage.truncated & ~storage.terminated
        storage.rewards[cut_short] += gamma * storage.final_values[cut_short]

    def _update(
        self,
        stage: PipelineStage,
        component: StageComponent,
        storage: RolloutStorage | None,
        record_expert: bool,
    ) -> None:
        """One component's ``update_repeats`` epochs of gradient steps, each on
        ``num_mini_batch`` minibatches: of the rollout (split as ``minibatch_split`` says), or
        drawn from the component's data source. A loss given fewer repeats than the others (a
        per-loss list) sits out the later epochs. A loss may end the update early (PPO's
        ``target_kl``): the minibatch it stops on is not stepped, and no later one is."""
        settings = component.training_settings
        repeats, num_mini_batch = settings.update_repeats, settings.num_mini_batch
        max_grad_norm = settings.max_grad_norm
        losses = {name: self.pipeline.get_loss(name) for name in component.loss_names}
        counts = repeats if isinstance(repeats, list) else [repeats] * len(losses)
        epochs = max((count or 0 for count in counts), default=0)
        if epochs == 0 or not losses:
            return
        assert num_mini_batch is not None and max_grad_norm is not None  # checked by the pipeline
        weights = stage.component_loss_weights(component)
        on_rollout = component.storage_uuid == self.pipeline.rollout_storage_uuid
        prefix = "" if on_rollout else f"{component.uuid}/"
        split = _minibatch_split(settings)
        for epoch in range(epochs):
            active = {
                name: loss
                for (name, loss), count in zip(losses.items(), counts, strict=True)
                if count is not None and count > epoch
            }
            if on_rollout:
                assert storage is not None
                batches: Iterator[Minibatch] = storage.minibatches(
                    num_mini_batch, record_expert, split
                )
            else:
                batches = self._draw(stage, component.storage_uuid, num_mini_batch)
            stepped_every_batch = all(
                self._gradient_step(stage, batch, active, weights, prefix, max_grad_norm)
                for batch in batches
            )
            if not stepped_every_batch:  # a loss ended the update
                break
        if on_rollout:
            assert storage is not None
            self.interval_metrics.add_scalars({"lr": self.optimizer.param_groups[0]["lr"]})
            explained = storage.explained_variance()
            if not math.isnan(explained):  # NaN: the returns do not vary, nothing to explain
                self.interval_metrics.add_scalars({"explained_variance": explained})

    def _draw(self, stage: PipelineStage, storage_uuid: str, count: int) -> Iterator[Minibatch]:
        """``count`` minibatches from the data source ``storage_uuid``, counted as samples
        drawn from it in ``stage``."""
        stream = self.data_streams.get(storage_uuid)
        if stream is None:
            source = self.pipeline.get_storage(storage_uuid)
            stream = self.data_streams[storage_uuid] = OffPolicyStream(source, self.device)
        for _ in range(count):
            batch = stream.next_batch()
            drawn = num_observations(batch.observations) * self.ranks.world_size  # every rank
            stage.storage_uuid_to_steps_taken_in_stage[storage_uuid] += drawn
            yield batch

    def _gradient_step(
        self,
        stage: PipelineStage,
        batch: Minibatch,
        losses: Mapping[str, Loss],
        weights: Mapping[str, float],
        metric_prefix: str,
        max_grad_norm: float,
    ) -> bool:
        """One optimizer step on the weighted sum of ``losses`` over ``batch`` (for a model
        with memory, its sequences replayed from their first memory: backpropagation through
        the rollout); ``False``, with no step taken, when a loss's ``stops_update`` ends the
        update on this batch."""
        output, _ = model_output(self.model, batch.observations, batch.memory, batch.episode_starts)
        total: Tensor | float = 0.0
        batch_size = num_observations(batch.observations)
        deciding: dict[str, tuple[Callable[[Mapping[str, float]], bool], dict[str, float]]] = {}
        for name, loss in losses.items():
            value, info = loss(step_count=stage.steps_taken_in_stage, batch=batch, output=output)
            total = total + weights[name] * value
            self.interval_metrics.add_scalars(
                {f"{metric_prefix}{name}/{term}": number for term, number in info.items()},
                n=batch_size,
            )
            stops_update = getattr(loss, "stops_update", None)
            if stops_update is not None:
                deciding[name] = (stops_update, info)
        assert isinstance(total, Tensor)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()  # type: ignore[no-untyped-call]
        # The gradients and the terms a loss decides on are averaged over the ranks in one
        # exchange, so all ranks stop at the same minibatch, on the terms of all of it.
        averaged = distributed.average_gradients(
            self.parameters,
            {
                f"{name}/{term}": v
                for name, (_, info) in deciding.items()
                for term, v in info.items()
            },
        )
        stop = False
        for name, (stops_update, info) in deciding.items():
            terms = {term: averaged[f"{name}/{term}"] for term in info}
            stop = bool(stops_update(terms)) or stop
        if stop:
            return False
        nn.utils.clip_grad_norm_(self.parameters, max_grad_norm, foreach=True)
        self.optimizer.step()
        if self.first_update_time is None:
            self.first_update_time = time.time()
        return True

    def _step_lr_scheduler(self) -> None:
        """Step the LR scheduler to the total step count (its epochs are agent steps)."""
        if self.lr_scheduler is None:
            return
        with warnings.catch_warnings():
            # torch deprecates step(epoch) in favour of chained steps; schedules indexed by
            # total steps need the epoch form (closed-form schedules use it as is). On resume
            # the schedule is set before any optimizer step, which torch also warns about.
            warnings.filterwarnings("ignore", message=".*epoch parameter.*", category=UserWarning)
            warnings.filterwarnings(
                "ignore", message=".*before `optimizer.step", category=UserWarning
            )
            self.lr_scheduler.step(self.pipeline.total_steps)

    def _after_rollout(self, index: int, stage: PipelineStage) -> None:
        """Evaluation, metrics and early stopping, the periodic environment reset, and
        checkpoint."""
        pipeline = self.pipeline
        total_steps = pipeline.total_steps
        if self._evaluation_due():
            self._evaluate(index, stage)
        if pipeline.should_accumulate_metrics(
            steps_since_last_log=total_steps - self.steps_at_last_log,
            stage_completed=stage.is_complete,
            stage=stage,
        ):
            # Every rank's metrics, merged, so every rank's criterion decides the same.
            self._merge_ranks_metrics()
            # Evaluation metrics wait in the interval's metrics for the criterion, not the log.
            metrics = _training_only(self.interval_metrics.means())
            counts = _training_only(self.interval_metrics.counts())
            # Episode metrics come from the last episodes, whenever they ended; the others are
            # per interval.
            episodes, episode_count = self._recent_episode_means()
            self.latest_metrics = {**metrics, **episodes}
            self.latest_counts = {**counts, **dict.fromkeys(episodes, episode_count)}
            now = time.perf_counter()
            last_time, last_steps = self.timer
            self.events.on_log(
                mode="train",
                total_steps=total_steps,
                stage_index=index,
                stage_steps=stage.steps_taken_in_stage,
                metrics=metrics,
                counts=counts,
                steps_per_second=(total_steps - last_steps) / max(now - last_time, 1e-9),
            )
            self.timer = (now, total_steps)
            pipeline.before_rollout(train_metrics=self.interval_metrics)
            self.interval_metrics.reset()
            self.steps_at_last_log = total_steps
        # The reset comes before the checkpoint, so that a run resumed from it continues from
        # the reset environments, as the uninterrupted run does.
        period = stage.training_settings.advance_scene_rollout_period
        if period is not None and pipeline.rollout_count % period == 0:
            self.stepper.reset()
        if pipeline.should_save(
            steps_since_last_save=total_steps - self.steps_at_last_save,
            stage_completed=stage.is_complete,
            stage=stage,
        ):
            self.save_checkpoint(index)

    def _merge_ranks_metrics(self) -> None:
        """Make this interval's metrics every rank's (weighted by their counts), on every rank:
        the statistics early-stopping criteria and logs decide on. Nothing in one process."""
        merged = distributed.merge_objects(self.interval_metrics.state_dict(), _merged_trackers)
        self.interval_metrics.load_state_dict(merged)

    def _recent_episode_means(self) -> tuple[dict[str, float], int]:
        """The mean return and length of the last ``return_window`` finished episodes (of
        each rank, in a distributed run), and how many episodes that is."""
        kept = distributed.merge_objects(self.recent_episodes.state_dict(), _joined_episodes)
        union = RecentEpisodes(max(1, kept["returns"].numel()))
        union.load_state_dict(kept)
        return union.means(), union.count

    def _evaluation_due(self, *, final: bool = False) -> bool:
        """Whether to evaluate now: ``evaluation_interval`` steps after the previous
        evaluation, or at the end of training (unless just evaluated)."""
        if self.evaluator is None:
            return False
        since = self.pipeline.total_steps - self.steps_at_last_evaluation
        return since > 0 if final else since >= self.evaluation_interval

    def _evaluate(self, index: int, stage: PipelineStage) -> None:
        """Evaluate the current policy: report its metrics (and videos), hand them to the
        stage's early-stopping criterion at the next metric point, and keep ``best.pt``."""
        assert self.evaluator is not None  # see _evaluation_due
        total_steps = self.pipeline.total_steps
        self.steps_at_last_evaluation = total_steps
        # Rank 0 evaluates (with its own evaluation task) and tells the others the result,
        # which feeds their criteria and best-checkpoint bookkeeping alike.
        videos: list[Path] = []
        outcome: tuple[dict[str, float], dict[str, int]] | None = None
        if self.ranks.is_main:
            result = self.evaluator.evaluate(video_name=f"steps_{total_steps:012d}")
            outcome, videos = (result.summary(), result.counts()), result.videos
        metrics, counts = distributed.broadcast_object(outcome)  # type: ignore[misc]
        self.latest_evaluation = metrics
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
        if self.ranks.is_main:  # once: the ranks' interval metrics are merged at the log
            self.interval_metrics.add_scalars(
                {metric_tag(name, "eval"): value for name, value in metrics.items()},
                n={metric_tag(name, "eval"): count for name, count in counts.items()},
            )
        if self.best.improved_by(metrics, total_steps):
            path = self.output_dir / CHECKPOINT_DIRECTORY / BEST_CHECKPOINT
            self._write_checkpoint(path)
            self.events.on_checkpoint(total_steps=total_steps, stage_index=index, path=path)

    def request_stop(self, reason: str) -> None:
        """Ask the run to stop at the next safe point: once the current rollout's update (and
        its metrics and scheduled checkpoint) is done, a checkpoint is written, whatever
        ``save_interval`` says, and :meth:`run` raises ``TrainingInterrupted``. Resuming from
        that checkpoint ends as the uninterrupted run would. Safe to call from a signal
        handler."""
        self.stop_reason = reason

    # ----------------------------------------------------------------------------------------
    # Summary and checkpoints

    def _summary(self, start_steps: int, wall_seconds: float) -> RunSummary:
        speed = {
            "steps_per_second": (self.pipeline.total_steps - start_steps) / max(wall_seconds, 1e-9),
            "wall_seconds": wall_seconds,
        }
        if self.first_step_time is not None:
            speed["first_step_time"] = self.first_step_time
        if self.first_update_time is not None:
            speed["first_update_time"] = self.first_update_time
        return RunSummary(
            seed=self.seed,
            total_steps=self.pipeline.total_steps,
            stages=[
                StageSummary(
                    index=index,
                    loss_names=list(stage.loss_names),
                    steps=stage.steps_taken_in_stage,
                    early_stopped=stage.early_stopping_criterion_met,
                )
                for index, stage in enumerate(self.pipeline.pipeline_stages)
            ],
            final_metrics=dict(self.latest_metrics),
            final_counts=dict(self.latest_counts),
            return_window=self.recent_episodes.window,
            speed=speed,
            eval_metrics=dict(self.latest_evaluation),
            best=self.best.to_dict(),
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly, as tensors and plain values.

        What every rank shares (model, optimizer, schedule, pipeline progress, the merged
        metrics, evaluation bookkeeping) is stored once; what each rank has of its own (its
        environments and episodes, its metrics since the last log, its data streams, its
        random generators) is stored per rank, under ``ranks`` (rank ``r`` at index ``r``).
        In a distributed run, every rank must call this (it gathers the ranks' states).
        """
        return {
            "total_steps": self.pipeline.total_steps,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": None if self.lr_scheduler is None else self.lr_scheduler.state_dict(),
            "pipeline": self.pipeline.state_dict(),
            "engine": {
                "steps_at_last_log": self.steps_at_last_log,
                "steps_at_last_save": self.steps_at_last_save,
                "latest_metrics": dict(self.latest_metrics),
                "latest_counts": dict(self.latest_counts),
                "evaluation": {
                    "steps_at_last_evaluation": self.steps_at_last_evaluation,
                    "latest": dict(self.latest_evaluation),
                    "best": self.best.state_dict(),
                },
            },
            # The statistics a trained policy normalises with (the evaluate command and
            # Policy read them here; every rank holds the same, see _rank_state_dict).
            "normalization": None
            if self.normalization is None
            else self.normalization.state_dict(),
            "world_size": self.ranks.world_size,
            "ranks": distributed.gather_objects(self._rank_state_dict()),
            "metadata": self.checkpoint_metadata,
        }

    def _rank_state_dict(self) -> dict[str, Any]:
        """This rank's own part of the training state (see :meth:`state_dict`)."""
        return {
            "task": self.task.state_dict(),
            "observations": map_observations(Tensor.cpu, self.stepper.task_observations),
            "episode_returns": self.stepper.episode_returns,
            "episode_lengths": self.stepper.episode_lengths,
            "acting": self.actor.state_dict(),  # the model's memory of its episodes
            "interval_metrics": self.interval_metrics.state_dict(),
            "recent_episodes": self.recent_episodes.state_dict(),
            "data_streams": {
                name: stream.state_dict() for name, stream in self.data_streams.items()
            },
            # Each rank's statistics are the same (their updates are merged over the ranks),
            # but the discounted returns of its episodes in progress are its own: resume
            # restores each rank's from here.
            "normalization": None
            if self.normalization is None
            else self.normalization.state_dict(),
            "rng": capture_rng_state(),
        }

    def _write_checkpoint(self, path: Path) -> None:
        """Write the current state to ``path`` (rank 0 writes, every rank contributes)."""
        state = self.state_dict()
        if self.ranks.is_main:
            save_checkpoint(state, path)

    def save_checkpoint(self, stage_index: int, *, on_schedule: bool = True) -> Path:
        """Write a checkpoint of the current state into the run's ``checkpoints/`` folder.

        Args:
            stage_index: The stage whose rollout was last completed.
            on_schedule: Whether this is a save ``save_interval`` asked for; an extra save
                (on interruption) leaves the schedule of the next ones as it was.
        """
        total_steps = self.pipeline.total_steps
        if on_schedule:
            self.steps_at_last_save = total_steps
        path = self.output_dir / CHECKPOINT_DIRECTORY / checkpoint_name(stage_index, total_steps)
        self._write_checkpoint(path)
        self.events.on_checkpoint(total_steps=total_steps, stage_index=stage_index, path=path)
        return path

    def _checkpoint_now(self, stage_index: int) -> Path:
        """A checkpoint of the current state: the one just saved on schedule, or a new one."""
        total_steps = self.pipeline.total_steps
        path = self.output_dir / CHECKPOINT_DIRECTORY / checkpoint_name(stage_index, total_steps)
        # Rank 0 (which writes them) says whether the file is there, so all ranks agree.
        saved = distributed.broadcast_object(path.is_file())
        if self.steps_at_last_save == total_steps and saved:
            return path
        return self.save_checkpoint(stage_index, on_schedule=False)

    def resume(self, path: Path) -> None:
        """Continue exactly from the checkpoint at ``path``: weights, optimizer, learning rate,
        pipeline progress and criteria, environments and every random generator.

        Raises:
            CheckpointError: The checkpoint cannot be read or does not fit this run.
        """
        state = load_checkpoint(path)
        require_resumable(state, path)
        saved_world = int(state["world_size"])
        if saved_world != self.ranks.world_size:
            raise CheckpointError(
                f"Checkpoint '{path}' was written by a run of {saved_world} process(es), and this "
                f"run has {self.ranks.world_size}: each process's environments and random "
                f"generators are in the checkpoint, so the run resumes exactly only with as many "
                f"processes. Resume with distributed.nproc_per_node={saved_world} (or torchrun "
                f"--nproc-per-node={saved_world}), or start a new run from its weights with "
                f"restart_from_weights={path}."
            )
        own = state["ranks"][self.ranks.rank]
        with _checkpoint_mismatch(path):
            self.pipeline.load_state_dict(state["pipeline"])
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            # The schedule is a function of the total step count: set it for the checkpoint's
            # count from this run's config (which may, say, lengthen a stage), rather than
            # restoring the saved scheduler, whose LinearDecay would keep the old length.
            self._step_lr_scheduler()
            restore_normalization(self.normalization, own, path)
            restarted = self.task.load_state_dict(own["task"])
            if restarted is None:
                self.stepper.load_state(
                    own["observations"],
                    own["episode_returns"],
                    own["episode_lengths"],
                    seen=True,
                )
                self.actor.load_state_dict(own["acting"])
            else:  # the task could only restart its environments: fresh episodes
                self.stepper.load_state(restarted)
            engine = state["engine"]
            self.steps_at_last_log = int(engine["steps_at_last_log"])
            self.steps_at_last_save = int(engine["steps_at_last_save"])
            self.interval_metrics.load_state_dict(own["interval_metrics"])
            self.latest_metrics = dict(engine["latest_metrics"])
            self.latest_counts = {key: int(n) for key, n in engine["latest_counts"].items()}
            self.recent_episodes.load_state_dict(own["recent_episodes"])
            for name, stream_state in own["data_streams"].items():
                stream = OffPolicyStream(self.pipeline.get_storage(name), self.device)
                stream.load_state_dict(stream_state)
                self.data_streams[name] = stream
            evaluation = engine["evaluation"]
            self.steps_at_last_evaluation = int(evaluation["steps_at_last_evaluation"])
            self.latest_evaluation = dict(evaluation["latest"])
            self.best.load_state_dict(evaluation["best"])
        restore_rng_state(own["rng"])
        self.resumed_from = int(state["total_steps"])

    def load_weights(self, path: Path) -> None:
        """Start the pipeline over from the model weights of the checkpoint at ``path`` only
        (AllenAct's ``--restart_pipeline``): fresh optimizer, scheduler and pipeline progress.

        Raises:
            CheckpointError: The checkpoint cannot be read or its weights do not fit the model.
        """
        load_weights(self.model, path)


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


def _first_reason(reasons: Iterable[str | None]) -> str | None:
    """The stop reason of the lowest rank asked to stop, if any was."""
    return next((reason for reason in reasons if reason is not None), None)


def _merged_trackers(states: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One ``ScalarMeanTracker`` state holding the samples of all ``states``."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for state in states:
        for key, value in state["sums"].items():
            sums[key] = sums.get(key, 0.0) + value
            counts[key] = counts.get(key, 0) + state["counts"][key]
    return {"sums": sums, "counts": counts}


def _joined_episodes(states: Iterable[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """The episodes of all ``RecentEpisodes`` states, rank after rank."""
    kept = list(states)
    return {key: torch.cat([state[key] for state in kept]) for key in ("returns", "lengths")}


def _training_only(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without the evaluation metrics kept for early-stopping criteria."""
    prefix = metric_tag("", "eval")
    return {name: value for name, value in values.items() if not name.startswith(prefix)}


def _build(argument: str, builder: Callable[..., Any], **kwargs: Any) -> Any:
    """``builder(**kwargs)``, with whatever the built class rejects named by ``argument``."""
    try:
        return builder(**kwargs)
    except Exception as error:  # torch's classes reject arguments with several types
        built = getattr(builder, "class_type", builder)
        raise InvalidArgumentError(
            argument,
            f"cannot be built: {type(error).__name__}: {error}",
            getattr(built, "__qualname__", built),
        ) from None


def _logged_metrics(
    pipeline: TrainingPipeline, stage: PipelineStage, evaluating: bool
) -> tuple[set[str], set[str]]:
    """The metrics the engine logs for ``stage``, and the prefixes under which a loss that
    does not declare its ``terms`` may log any. Losses learning from the rollout log as
    ``<loss>/<term>``, those of a component on a data source as ``<component>/<loss>/<term>``
    (see ``_update``); evaluations as ``eval/<metric>``."""
    names = {*_EPISODE_METRICS, "lr", "explained_variance"}
    if evaluating:
        names |= {metric_tag(name, "eval") for name in EVALUATION_METRICS}
    if stage.teacher_forcing is not None:
        names |= {"teacher_forcing", "teacher_forcing_sampled"}
    prefixes: set[str] = set()
    for component in stage.stage_components:
        on_rollout = component.storage_uuid == pipeline.rollout_storage_uuid
        prefix = "" if on_rollout else f"{component.uuid}/"
        for name in component.loss_names:
            terms = getattr(pipeline.get_loss(name), "terms", None)
            if terms is None:
                prefixes.add(f"{prefix}{name}/")
            else:
                names |= {f"{prefix}{name}/{term}" for term in terms}
    return names, prefixes


def _check_watched_metrics(pipeline: TrainingPipeline, evaluating: bool) -> None:
    """Refuse an early-stopping criterion watching a metric its stage never logs (a typo
    would otherwise silently run the whole stage)."""
    for index, stage in enumerate(pipeline.pipeline_stages):
        metric = getattr(stage.early_stopping_criterion, "metric", None)
        if not isinstance(metric, str):
            continue
        names, prefixes = _logged_metrics(pipeline, stage, evaluating)
        if metric in names or metric.startswith(tuple(prefixes)):
            continue
        close = difflib.get_close_matches(metric, sorted(names), n=1)
        evaluation = metric.startswith(metric_tag("", "eval")) and not evaluating
        raise InvalidArgumentError(
            f"pipeline_stages.{index}.early_stopping_criterion.metric",
            "is not a metric this stage logs, so the criterion would never see it",
            metric,
            f"The stage logs: {', '.join(sorted(names))}."
            + (f" Did you mean '{close[0]}'?" if close and not evaluation else "")
            + (
                " Evaluation metrics are logged when the run evaluates: set evaluation.interval."
                if evaluation
                else ""
            ),
        )


def _check_fit(pipeline: TrainingPipeline, task: Task, evaluating: bool, memory: bool) -> None:
    """The checks that need both the pipeline and the task (and the pipeline's storages), the
    model, or know what the engine logs."""
    _check_watched_metrics(pipeline, evaluating)
    for index, stage in enumerate(pipeline.pipeline_stages):
        for number, component in enumerate(stage.stage_components):
            settings = component.training_settings
            if component.storage_uuid != pipeline.rollout_storage_uuid:
                if memory and component.loss_names:
                    raise InvalidArgumentError(
                        f"pipeline_stages.{index}.stage_components.{number}",
                        f"learns from the data source {component.storage_uuid!r}, whose "
                        "minibatches are single transitions, but the model has memory and "
                        "learns from whole sequences only",
                        component.uuid,
                        "Use a model without memory (e.g. model=mlp) for off-policy learning "
                        "from demonstrations, or learn by imitation from the rollout (the "
                        "imitation loss with teacher forcing) instead.",
                    )
                source = pipeline.get_storage(component.storage_uuid)
                if not callable(source):
                    raise InvalidArgumentError(
                        f"named_storages.{component.storage_uuid}",
                        f"must be the rollout storage ({pipeline.rollout_storage_uuid!r}) or a "
                        "data source (a callable returning an iterator of minibatches), as "
                        f"pipeline_stages.{index}.stage_components.{number} learns from it",
                        source,
                    )
                continue
            num_mini_batch = settings.num_mini_batch
            updates = component.loss_names and settings.update_repeats
            if not updates or num_mini_batch is None:
                continue
            if memory and _minibatch_split(settings) != "environments":
                raise InvalidArgumentError(
                    setting_source(f"pipeline_stages.{index}", number, settings, "minibatch_split"),
                    "must be 'environments' for a model with memory, which learns from whole "
                    "sequences of each environment",
                    _minibatch_split(settings),
                    "Set minibatch_split=environments, or use a model without memory.",
                )
            if _minibatch_split(settings) == "environments":
                limit, why, hint = (
                    task.num_envs,
                    f"the task's num_envs ({task.num_envs}), because minibatches split the "
                    "environments",
                    "Lower it, or set minibatch_split=transitions to split single transitions.",
                )
            else:
                assert settings.num_steps is not None  # required of every stage with a rollout
                limit = settings.num_steps * task.num_envs
                why, hint = (
                    f"the transitions in a rollout (num_steps * num_envs = {limit})",
                    "Lower it, or collect longer rollouts.",
                )
            if num_mini_batch > limit:
                raise InvalidArgumentError(
                    setting_source(f"pipeline_stages.{index}", number, settings, "num_mini_batch"),
                    f"must be <= {why}",
                    num_mini_batch,
                    hint,
                )
        needing = _expert_needs(pipeline, stage)
        if needing and not task.has_expert:
            raise InvalidArgumentError(
                f"pipeline_stages.{index}",
                f"uses {needing}, which need expert actions, but the task has no expert",
                stage.loss_names,
                "Use a task with an expert (e.g. task=cartpole, or set task.expert) or remove "
                "them from the stage.",
            )


def _minibatch_split(settings: TrainingSettings) -> str:
    """How ``settings`` split a rollout into minibatches (``"environments"`` unless set)."""
    return settings.minibatch_split or MINIBATCH_SPLITS[0]


def _expert_needs(pipeline: TrainingPipeline, stage: PipelineStage) -> list[str]:
    """What in ``stage`` needs the task's expert actions during rollouts: its teacher forcing
    and the losses that learn from the rollout (data sources bring their own)."""
    rollout_uuid = pipeline.rollout_storage_uuid
    if rollout_uuid is None:
        return []
    needing = ["teacher_forcing"] if stage.teacher_forcing is not None else []
    for component in stage.stage_components:
        if component.storage_uuid == rollout_uuid:
            needing += [
                name
                for name in component.loss_names
                if getattr(pipeline.get_loss(name), "needs_expert_actions", False)
            ]
    return needing
