"""``train(cfg)``: the composition root. Config in, trained model and run outputs out.

Order of work: check the config exactly as it will be built (nothing built yet), claim the run
folder, decide whether a checkpoint is continued (and check it fits), save the resolved config,
seed every generator and set determinism, pick the device, build the pipeline, the task and the
model (each constructor validates its own arguments) and, when the run evaluates, the
evaluation's own copy of the task, then let the engine run the stages, with Ctrl-C and SIGTERM
turned into a stop at the next safe point.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import logging
import math
import os
import re
import signal
import statistics
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hydra_pipeline.app.distributed import launched_ranks, share_run_folder, start_processes
from hydra_pipeline.app.evaluate import check_evaluation, objective_value, training_evaluation
from hydra_pipeline.app.resume import (
    AUTO,
    RUN_KEYS,
    TRUST_KEYS,
    check_same_structure,
    override_key,
    run_structure,
    stored_overrides,
)
from hydra_pipeline.app.run_folder import claimed_run_folder, refuse_existing_results
from hydra_pipeline.app.signals import (
    STOP_SIGNALS,
    hand_on,
    polled_stop_requests,
    restore_handlers,
    training_begins,
)
from hydra_pipeline.app.sweep_report import SEEDS_FILE
from hydra_pipeline.config import check_config, instantiate_node
from hydra_pipeline.config.checks import config_nodes, dotted_key
from hydra_pipeline.config.normalization import build_normalization
from hydra_pipeline.config.saved_run import RESOLVED_CONFIG
from hydra_pipeline.errors import (
    CheckpointError,
    ConfigError,
    InvalidArgumentError,
    TrainingInterrupted,
)
from hydra_pipeline.files import refuse_links
from hydra_pipeline.pipeline import set_deterministic_cudnn, set_seed
from hydra_pipeline.pipeline.validation import require_seed

if TYPE_CHECKING:
    from hydra_pipeline.engine import OnPolicyRunner
    from hydra_pipeline.engine.callbacks import Callback
    from hydra_pipeline.engine.distributed import Ranks
    from hydra_pipeline.tasks import Task

__all__ = ["RunInfo", "device_for", "train", "train_rank"]

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
log = logging.getLogger("hydra_pipeline")


def train(cfg: DictConfig) -> float:
    """Train as ``cfg`` says, in Hydra's output folder, and return the run's ``objective``
    for optimizing sweepers such as Optuna: by default the last evaluation's mean return when
    the run evaluates, else the final mean training return (-inf without a value, so such a
    run ranks last). With ``seeds=[...]``, train once per seed, each in a folder
    ``seed_<n>`` of the output folder, and return the mean of their objectives.

    Raises:
        ConfigError: A config mistake, named by its key, before anything is built.
        CheckpointError: ``resume`` or ``restart_from_weights`` points at an unusable
            checkpoint, or one of another run.
        RunFolderError: The run folder is in use, holds another run, or cannot be written.
        TrainingInterrupted: Ctrl-C or SIGTERM stopped training at a safe point.
    """
    hydra_config = HydraConfig.get()
    output_dir = Path(hydra_config.runtime.output_dir)
    info = RunInfo.of(hydra_config)
    share_run_folder(cfg, output_dir)  # with the ranks torchrun started, if any
    if not cfg.seeds:
        return _train_run(cfg, info, output_dir)
    objectives, runs = [], []
    for seed in _checked_seeds(cfg, info.overrides):
        one = copy.deepcopy(cfg)
        one.seed, one.seeds = seed, []
        runs.append(f"seed_{seed}")
        objectives.append(_train_run(one, info, output_dir / runs[-1]))
        # Rewritten after each seed, so a report made while the job runs holds what is done.
        (output_dir / SEEDS_FILE).write_text(
            json.dumps({"seeds": list(cfg.seeds), "runs": runs, "objectives": objectives}) + "\n"
        )
    finite = [value for value in objectives if math.isfinite(value)]
    return statistics.fmean(finite) if len(finite) == len(objectives) else -math.inf


def _checked_seeds(cfg: DictConfig, overrides: list[str]) -> list[int]:
    """``cfg.seeds`` if each is a valid seed, none repeats, and the command line does not set
    ``seed`` too (it would be ignored)."""
    try:
        seeds = [require_seed(f"seeds.{i}", seed) for i, seed in enumerate(cfg.seeds)]
    except InvalidArgumentError as error:
        raise ConfigError(error.message_at("")) from None
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"'seeds' lists a seed more than once (got {seeds}).")
    if any(override_key(override) == "seed" for override in overrides):
        raise ConfigError(
            f"'seed' is set ({cfg.seed}) together with 'seeds' ({seeds}), which trains one run "
            f"per seed it lists and ignores seed. Give one of them: "
            f"seeds=[{','.join(map(str, seeds))}] or seed={cfg.seed}."
        )
    return seeds


@dataclass(frozen=True)
class RunInfo:
    """What a run takes from Hydra's job, as plain values (the processes of a distributed
    run, started without Hydra, receive it too).

    Attributes:
        overrides: The job's overrides, without those that say how it starts (``resume``...)
            or what it trusts.
        output_subdir: Hydra's folder for the job's configs in the run folder (``.hydra``;
            ``None``: none).
        choices: The config groups' chosen options (Hydra's own excepted).
        job: Where the run stands in a sweep, for the callbacks.
    """

    overrides: list[str]
    output_subdir: str | None
    choices: dict[str, str]
    job: dict[str, Any]

    @classmethod
    def of(cls, hydra_config: Any) -> RunInfo:
        """The run information of Hydra's running job, whose config is ``hydra_config``."""
        # As typed: iterating the ListConfig itself would resolve ${...} inside overrides.
        typed: list[str] = OmegaConf.to_container(hydra_config.overrides.task)  # type: ignore[assignment]
        overrides = [o for o in typed if override_key(o) not in (*RUN_KEYS, *TRUST_KEYS)]
        return cls(
            overrides=overrides,
            output_subdir=hydra_config.output_subdir,
            choices={
                group: option
                for group, option in hydra_config.runtime.choices.items()
                if not group.startswith("hydra/")
            },
            job=_job(hydra_config, overrides),
        )


def _train_run(cfg: DictConfig, info: RunInfo, output_dir: Path) -> float:
    """One training run in ``output_dir``; its objective. With
    ``distributed.nproc_per_node`` > 1, the run's processes are started here; under torchrun
    (or another launcher that sets ``RANK`` and ``WORLD_SIZE``), this process is one of them."""
    ranks = launched_ranks()
    with contextlib.ExitStack() as run:
        with _garbage_collector_paused():  # startup allocates many long-lived objects
            cfg = _checked_and_resolved(cfg)
            if ranks is None or ranks.is_main:  # a run folder has one owner
                if cfg.resume is not None:  # a folder that may come from elsewhere
                    refuse_links(output_dir, "the resumed run")
                folders = _folders_written(cfg)
                run.enter_context(claimed_run_folder(output_dir, writes_to=folders))
        if ranks is None and cfg.distributed.nproc_per_node > 1:
            # This process starts the run's processes and waits for them.
            checkpoint = _checkpoint_to_continue(cfg, output_dir, info.overrides)
            if checkpoint is None:
                refuse_existing_results(output_dir)
            _save_resolved_config(cfg, output_dir, info)
            return start_processes(cfg, info, output_dir)
        return train_rank(cfg, info, output_dir, ranks, run)


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
    with _garbage_collector_paused():
        if ranks is not None:
            import torch

            from hydra_pipeline.engine import distributed

            device = torch.device(device_for(cfg.device, ranks))
            distributed.init_process_group(ranks, device, timeout_s=cfg.distributed.timeout_s)
            run.callback(distributed.shutdown)
        runner, tasks = _start(cfg, info, output_dir, ranks)
        for task in tasks:
            run.callback(task.close)
    with _stop_requested_by_signals(runner, relayed_requests):
        summary = runner.run()
    return objective_value(summary.to_dict(), cfg.objective)


def _start(
    cfg: DictConfig, info: RunInfo, output_dir: Path, ranks: Ranks | None
) -> tuple[OnPolicyRunner, list[Task]]:
    """Everything between a checked config and a runner ready to train (and the tasks to
    close after the run: training's and the evaluation's). Rank 0 alone (of a distributed
    run) checks and writes the run folder."""
    overrides = info.overrides
    checkpoint = _checkpoint_to_continue(cfg, output_dir, overrides)
    main = ranks is None or ranks.is_main
    if checkpoint is None and main:
        refuse_existing_results(output_dir)
    device = device_for(cfg.device, ranks)
    if main:
        _save_resolved_config(cfg, output_dir, info)
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
            runner.load_weights(find_checkpoint(Path(cfg.restart_from_weights)))
    except CheckpointError as error:
        _close(tasks)
        key = "resume" if checkpoint is not None else "restart_from_weights"
        raise CheckpointError(f"{key}={OmegaConf.select(cfg, key)}: {error}") from None
    return runner, tasks


def _close(tasks: list[Task]) -> None:
    for task in tasks:
        task.close()


def _checked_and_resolved(cfg: DictConfig) -> DictConfig:
    """``cfg`` with every ``${...}`` resolved, after the startup checks (nodes are built one
    by one, so interpolations across them must be resolved first; checking the resolved form
    means what is built is exactly what was checked)."""
    cfg = copy.deepcopy(cfg)
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as error:
        text = str(error)
        key = _unresolvable_key(cfg)
        missing = re.search(r"Missing mandatory value: (\S+)", text)
        if missing:
            unset = dotted_key(missing.group(1))
            referrer = f" and '{key}' refers to it" if key else ""
            raise ConfigError(
                f"'{unset}' has no value (it is mandatory, '???'){referrer}. Set it, e.g. "
                f"{unset}=<value>."
            ) from None
        raise ConfigError(f"'{key}' cannot be resolved: {text.strip().splitlines()[0]}") from None
    check_config(cfg)
    _check_run_settings(cfg)
    check_evaluation(cfg)
    return cfg


def _check_run_settings(cfg: DictConfig) -> None:
    """The top-level settings' own rules."""
    if cfg.resume is not None and cfg.restart_from_weights is not None:
        raise ConfigError(
            "resume= and restart_from_weights= are two ways to start: resume= continues a run "
            "exactly, restart_from_weights= starts a new run from its weights. Give only one."
        )
    for key in ("distributed.nproc_per_node", "distributed.timeout_s"):
        if OmegaConf.select(cfg, key) < 1:
            raise ConfigError(f"'{key}' must be >= 1 (got {OmegaConf.select(cfg, key)}).")
    _check_processes(cfg)
    if cfg.num_threads < 1:
        raise ConfigError(f"'num_threads' must be >= 1 (got {cfg.num_threads}).")
    try:
        require_seed("seed", cfg.seed)
    except InvalidArgumentError as error:
        raise ConfigError(error.message_at("")) from None


def _check_processes(cfg: DictConfig) -> None:
    """Refuse more processes on the CPU than the cores this process may use, unless asked for
    with ``distributed.oversubscribe``: a typo (1000 for 10) would fork them all."""
    nproc = int(cfg.distributed.nproc_per_node)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if nproc <= cores or cfg.distributed.oversubscribe or launched_ranks() is not None:
        return
    if cfg.device != "cpu":
        import torch

        if cfg.device != "auto" or torch.cuda.is_available():
            return  # one process per GPU, checked when each takes its own
    raise ConfigError(
        f"'distributed.nproc_per_node' is {nproc}, more processes than the {cores} CPU cores "
        "this run may use: they would take turns on the cores. Use at most "
        f"distributed.nproc_per_node={cores}, or add distributed.oversubscribe=true if you mean "
        "it."
    )


def _unresolvable_key(cfg: DictConfig) -> str:
    """The first key whose ``${...}`` cannot be resolved (``OmegaConf.resolve`` does not say)."""
    for key, node in config_nodes(cfg):
        try:
            node._dereference_node()
        except OmegaConfBaseException:
            return key
    return ""


def _folders_written(cfg: DictConfig) -> tuple[str, ...]:
    """The run folder's sub-folders this run will write to (checked writable at startup)."""
    from hydra_pipeline.engine.checkpoint import CHECKPOINT_DIRECTORY
    from hydra_pipeline.engine.reporting import TENSORBOARD_DIRECTORY
    from hydra_pipeline.engine.video import VIDEO_DIRECTORY

    evaluating = cfg.evaluation.interval is not None
    folders = [""]
    if cfg.pipeline.save_interval is not None or evaluating:  # best.pt
        folders.append(CHECKPOINT_DIRECTORY)
    if evaluating and cfg.evaluation.video:
        folders.append(VIDEO_DIRECTORY)
    if cfg.tensorboard and cfg.pipeline.should_log:
        folders.append(TENSORBOARD_DIRECTORY)
    return tuple(folders)


def _checkpoint_to_continue(cfg: DictConfig, output_dir: Path, overrides: list[str]) -> Path | None:
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


def device_for(name: str, ranks: Ranks | None = None) -> str:
    """The torch device for the config's ``device`` value; in a distributed run, a GPU is
    the rank's own: ``cuda:<local rank>`` (set as the current device)."""
    if not _DEVICE.match(name):
        raise ConfigError(
            f"'device' must be auto, cpu, cuda or cuda:N (got {name!r}). For example device=cpu."
        )
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and ranks is not None:
        name = f"cuda:{ranks.local_rank}"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"'device' is {name!r} but torch sees no GPU. Use device=cpu.")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"'device' is {name!r} but torch sees {torch.cuda.device_count()} GPU(s)."
                + (" Start at most one process per GPU." if ranks is not None else "")
            )
        if ranks is not None:
            torch.cuda.set_device(index)
    return name


def _save_resolved_config(cfg: DictConfig, output_dir: Path, info: RunInfo) -> None:
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


def _job(hydra_config: Any, overrides: list[str]) -> dict[str, Any]:
    """Where the run stands in a sweep, for the callbacks (trackers group a sweep's jobs)."""
    job: dict[str, Any] = {"name": hydra_config.job.name, "overrides": overrides}
    if hydra_config.mode == RunMode.MULTIRUN:
        job["sweep_dir"] = str(Path(hydra_config.runtime.cwd) / hydra_config.sweep.dir)
        job["number"] = hydra_config.job.num
    return job


def _swept_values(overrides: list[str], seed: int) -> dict[str, Any]:
    """Hyperparameters for TensorBoard's hparams view: the run's overrides and its seed."""
    values: dict[str, Any] = {"seed": seed}
    for override in overrides:
        values[override_key(override)] = override.partition("=")[2]
    return values


@contextlib.contextmanager
def _garbage_collector_paused() -> Iterator[None]:
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
    runner: OnPolicyRunner, relayed_requests: Path | None = None
) -> Iterator[None]:
    """While the block runs, the stop signals (Ctrl-C, SIGTERM, SIGUSR1, SIGUSR2: see
    :data:`~hydra_pipeline.app.signals.STOP_SIGNALS`), and in a process of a run started with
    ``distributed.nproc_per_node`` those relayed to ``relayed_requests``, ask ``runner`` to
    stop at its next safe point, with a checkpoint; a second Ctrl-C stops at once. Once that
    checkpoint is written, the signal is handed on to whoever listened to it before (Submitit
    requeues a preempted job from its handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set in the main thread
        return

    def ask_to_stop(name: str) -> None:
        if runner.stop_reason is not None:
            return
        runner.request_stop(name)
        log.warning(
            "%s received: stopping after the current update, with a checkpoint "
            "(Ctrl-C again stops at once, without one).",
            name,
        )

    def handle(number: int, frame: FrameType | None) -> None:
        if runner.stop_reason is not None and number == signal.SIGINT:
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
