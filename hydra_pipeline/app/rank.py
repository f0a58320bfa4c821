"""``train_rank``: training in one process, the run's only one or one rank of a distributed
run, from a checked and resolved config to the run's objective.

The process decides whether a checkpoint is continued (and checks it fits), saves the resolved
config (rank 0), seeds its generators and sets determinism, picks its device, builds the
pipeline, the task and the model (each constructor validates its own arguments) and, when the
run evaluates, the evaluation's own copy of the task, then lets the engine run the stages,
with the stop signals turned into a stop at the next safe point. Both the one-process run
(:mod:`hydra_pipeline.app.train`) and the processes a distributed run starts
(:mod:`hydra_pipeline.app.distributed`) end here.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from hydra_pipeline.app.device import device_for
from hydra_pipeline.app.evaluate import objective_value, training_evaluation
from hydra_pipeline.app.resume import (
    AUTO,
    check_same_structure,
    override_key,
    run_structure,
    stored_overrides,
)
from hydra_pipeline.app.run_folder import refuse_existing_results
from hydra_pipeline.app.run_info import RunInfo
from hydra_pipeline.app.signals import (
    STOP_SIGNALS,
    hand_on,
    polled_stop_requests,
    restore_handlers,
    training_begins,
)
from hydra_pipeline.app.sweep_report import draw_run_curves
from hydra_pipeline.config import instantiate_node
from hydra_pipeline.config.normalization import build_normalization
from hydra_pipeline.config.saved_run import RESOLVED_CONFIG
from hydra_pipeline.errors import (
    CheckpointError,
    ConfigError,
    InvalidArgumentError,
    TrainingInterrupted,
)
from hydra_pipeline.pipeline import set_deterministic_cudnn, set_seed

if TYPE_CHECKING:
    from hydra_pipeline.engine import OnPolicyRunner
    from hydra_pipeline.engine.callbacks import Callback
    from hydra_pipeline.engine.distributed import Ranks
    from hydra_pipeline.tasks import Task

__all__ = [
    "checkpoint_to_continue",
    "garbage_collector_paused",
    "save_resolved_config",
    "train_rank",
    "train_seed_batch",
]

log = logging.getLogger("hydra_pipeline")


def train_rank(
    cfg: DictConfig,
    info: RunInfo,
    output_dir: Path,
    ranks: Ranks | None,
    run: contextlib.ExitStack,
    relayed_requests: Path | None = None,
) -> float:
    """Train in this process on a checked and resolved ``cfg`` (as one rank of a distributed
    run, when ``ranks`` says so); return the run's objective. What must be closed when the
    run ends joins ``run``; ``relayed_requests`` is where the process that started the run
    relays the stop signals it receives (see :mod:`hydra_pipeline.app.signals`)."""
    with garbage_collector_paused():
        if ranks is not None:
            import torch

            from hydra_pipeline.engine import distributed

            device = torch.device(device_for(cfg.device, ranks))
            distributed.init_process_group(ranks, device, timeout_s=cfg.distributed.timeout_s)
            run.callback(distributed.shutdown)
        runner, tasks = _start(cfg, info, output_dir, ranks)
        for task in tasks:
            run.callback(task.close)
    announce = ranks is None or ranks.is_main  # every rank hears Ctrl-C; one says so
    with _stop_requested_by_signals([runner], relayed_requests, announce=announce):
        summary = runner.run()
    if ranks is None or ranks.is_main:
        draw_run_curves(output_dir)
    # Only a sweep's optimizer reads the objective: a single run has nothing to warn about.
    in_sweep = "sweep_dir" in info.job
    return objective_value(summary.to_dict(), cfg.objective, warn=in_sweep)


def train_seed_batch(
    configs: list[DictConfig], info: RunInfo, output_dirs: list[Path], run: contextlib.ExitStack
) -> list[float]:
    """Train the runs of ``configs`` (the seeds of one config, checked and resolved), each in
    its folder of ``output_dirs``, in this process as one batch (see
    :class:`~hydra_pipeline.engine.members.MemberBatch`); their objectives. Each run is built
    as it is alone and starts from the random state its run alone starts from."""
    from hydra_pipeline.engine.checkpoint import capture_rng_state
    from hydra_pipeline.engine.members import MemberBatch

    runners, states = [], []
    with garbage_collector_paused():
        for cfg, output_dir in zip(configs, output_dirs, strict=True):
            runner, tasks = _start(cfg, info, output_dir, None)
            for task in tasks:
                run.callback(task.close)
            runners.append(runner)
            states.append(capture_rng_state())
        try:
            batch = MemberBatch(runners, states)
        except InvalidArgumentError as error:
            raise ConfigError(error.message_at("")) from None
    with _stop_requested_by_signals(runners):
        summaries = batch.run()
    for output_dir in output_dirs:
        draw_run_curves(output_dir)
    in_sweep = "sweep_dir" in info.job  # as for one run: only a sweep reads the objective
    return [
        objective_value(summary.to_dict(), cfg.objective, warn=in_sweep)
        for summary, cfg in zip(summaries, configs, strict=True)
    ]


def _start(
    cfg: DictConfig, info: RunInfo, output_dir: Path, ranks: Ranks | None
) -> tuple[OnPolicyRunner, list[Task]]:
    """Everything between a checked config and a runner ready to train (and the tasks to
    close after the run: training's and the evaluation's). Rank 0 alone (of a distributed
    run) checks and writes the run folder."""
    overrides = info.overrides
    checkpoint = checkpoint_to_continue(cfg, output_dir, overrides)
    main = ranks is None or ranks.is_main
    if checkpoint is None and main:
        refuse_existing_results(output_dir)
    device = device_for(cfg.device, ranks)
    if main:
        save_resolved_config(cfg, output_dir, info)
    if cfg.deterministic_cudnn:
        # cuBLAS needs this before CUDA starts to run deterministically.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

    import torch

    from hydra_pipeline.engine import OnPolicyRunner
    from hydra_pipeline.engine.checkpoint import find_checkpoint
    from hydra_pipeline.models.protocol import model_arguments

    torch.set_num_threads(cfg.num_threads)
    # Each rank's generators get a seed of their own (the runner starts every rank from rank
    # 0's weights).
    set_seed(cfg.seed, rank=0 if ranks is None else ranks.rank)
    if cfg.deterministic_cudnn:
        set_deterministic_cudnn()
        # Warn, rather than fail, on an operation with no deterministic GPU kernel (a user
        # model may use one): the run goes on and the log says what broke determinism.
        torch.use_deterministic_algorithms(True, warn_only=True)
    pipeline = instantiate_node(cfg, "pipeline")
    callbacks = _callbacks(cfg)
    task = instantiate_node(cfg, "task")
    model = instantiate_node(cfg, "model", **model_arguments(task))
    tasks = [task]
    try:
        normalization = build_normalization(cfg)
        evaluation = training_evaluation(cfg, model, device, output_dir, normalization)
        tasks += [evaluation["evaluator"].task] if evaluation else []
        runner = OnPolicyRunner(
            pipeline,
            task,
            model,
            output_dir=output_dir,
            seed=cfg.seed,
            device=device,
            tensorboard=cfg.tensorboard,
            progress_bar=cfg.progress_bar,
            checkpoint_metadata={"overrides": overrides, "structure": run_structure(cfg)},
            hparams=_swept_values(overrides, cfg.seed),
            callbacks=callbacks,
            run_config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
            job=info.job,
            return_window=cfg.return_window,
            normalization=normalization,
            **evaluation,
        )
    except ConfigError:
        _close(tasks)
        raise
    except InvalidArgumentError as error:
        _close(tasks)
        where = "" if error.argument == "return_window" else "pipeline"
        raise ConfigError(error.message_at(where)) from None
    try:
        if checkpoint is not None:
            runner.resume(checkpoint)
        elif cfg.restart_from_weights is not None:
            weights = find_checkpoint(Path(cfg.restart_from_weights))
            steps = runner.load_weights(weights)
            log.info(
                "Starting from the model weights of %s (trained for %d steps); the optimizer, "
                "the schedules and the stages start afresh.",
                weights,
                steps,
            )
    except CheckpointError as error:
        _close(tasks)
        key = "resume" if checkpoint is not None else "restart_from_weights"
        raise CheckpointError(f"{key}={OmegaConf.select(cfg, key)}: {error}") from None
    return runner, tasks


def _close(tasks: list[Task]) -> None:
    for task in tasks:
        task.close()


def checkpoint_to_continue(cfg: DictConfig, output_dir: Path, overrides: list[str]) -> Path | None:
    """The checkpoint this run continues, checked against the run's structure, or ``None``.

    ``resume=<path>`` names it; ``resume=auto`` takes the run folder's latest, if it has one,
    and only if it was made with this run's own overrides (a job restarted in its folder).
    """
    if cfg.resume is None:
        return None
    from hydra_pipeline.engine.checkpoint import find_checkpoint, latest_checkpoint, load_checkpoint

    if cfg.resume == AUTO:
        path = latest_checkpoint(output_dir)
        if path is None:
            return None
        metadata = load_checkpoint(path).get("metadata", {})
        stored = stored_overrides(path, metadata)
        if sorted(stored) != sorted(overrides):
            raise CheckpointError(
                f"resume=auto: run folder '{output_dir}' holds a run started with other "
                f"overrides ({' '.join(stored) or 'none'}) than this one "
                f"({' '.join(overrides) or 'none'}); resume=auto only continues the same run. "
                f"Resume that run with resume={output_dir}, or run this one in another folder."
            )
    else:
        path = find_checkpoint(Path(cfg.resume))
        metadata = load_checkpoint(path).get("metadata", {})
    check_same_structure(path, metadata.get("structure"), run_structure(cfg))
    return path


def save_resolved_config(cfg: DictConfig, output_dir: Path, info: RunInfo) -> None:
    """Save the resolved config and the group choices next to Hydra's own files.

    Hydra saves the config unresolved (``${...}`` kept); the resolved copy records the values
    the run actually used.
    """
    if not info.output_subdir:
        return
    folder = output_dir / info.output_subdir
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / RESOLVED_CONFIG, resolve=True)
    OmegaConf.save(OmegaConf.create(info.choices), folder / "choices.yaml")


def _callbacks(cfg: DictConfig) -> list[Callback]:
    """The run's callbacks, built from ``cfg.callbacks`` in their order."""
    from hydra_pipeline.engine.callbacks import Callback

    callbacks = []
    for name in cfg.callbacks:
        callback = instantiate_node(cfg, f"callbacks.{name}")
        if not isinstance(callback, Callback):
            raise ConfigError(
                f"'callbacks.{name}' builds a {type(callback).__qualname__}, which is not a run "
                "callback: subclass hydra_pipeline.engine.callbacks.Callback and override the "
                "hooks you need."
            )
        callbacks.append(callback)
    return callbacks


def _swept_values(overrides: list[str], seed: int) -> dict[str, Any]:
    """Hyperparameters for TensorBoard's hparams view: the run's overrides and its seed."""
    values: dict[str, Any] = {"seed": seed}
    for override in overrides:
        values[override_key(override)] = override.partition("=")[2]
    return values


@contextlib.contextmanager
def garbage_collector_paused() -> Iterator[None]:
    """Keep the garbage collector off while the block builds long-lived objects (torch,
    the model, the environments), then exclude them from future collections."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def _stop_requested_by_signals(
    runners: list[OnPolicyRunner], relayed_requests: Path | None = None, *, announce: bool = True
) -> Iterator[None]:
    """While the block runs, the stop signals (Ctrl-C, SIGTERM, SIGUSR1, SIGUSR2: see
    :data:`~hydra_pipeline.app.signals.STOP_SIGNALS`), and in a process of a run started with
    ``distributed.nproc_per_node`` those relayed to ``relayed_requests``, ask ``runners`` to
    stop at their next safe point, with a checkpoint; a second Ctrl-C stops at once. Once that
    checkpoint is written, the signal is handed on to whoever listened to it before (Submitit
    requeues a preempted job from its handler). With ``announce``, the stop is logged (the
    ranks of a distributed run but rank 0 stop without a word)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set in the main thread
        return

    def ask_to_stop(name: str) -> None:
        if runners[0].stop_reason is not None:
            return
        for runner in runners:
            runner.request_stop(name)
        if not announce:
            return
        log.warning(
            "%s received: stopping after the current update, with a checkpoint "
            "(Ctrl-C again stops at once, without one).",
            name,
        )

    def handle(number: int, frame: FrameType | None) -> None:
        if runners[0].stop_reason is not None and number == signal.SIGINT:
            raise KeyboardInterrupt
        ask_to_stop(signal.Signals(number).name)

    training_begins()
    previous = {number: signal.signal(number, handle) for number in STOP_SIGNALS}
    try:
        with contextlib.ExitStack() as requests:
            if relayed_requests is not None:
                requests.enter_context(polled_stop_requests(relayed_requests, ask_to_stop))
            yield
    except TrainingInterrupted as stopped:
        hand_on(stopped.signal_name, previous)
        raise
    finally:
        restore_handlers(previous)
