"""One run, several processes: how they start, find their run folder, and end.

Three ways to start the processes of a run, all ending in :func:`~hydra_pipeline.app.rank.
train_rank` in each of them, with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` in its environment (torch.distributed's ``env://`` rendezvous):

* ``python -m hydra_pipeline distributed.nproc_per_node=N``: the Hydra job checks the config,
  claims the run folder and starts ``N`` processes on its machine through torch.distributed's
  elastic launch API (:func:`start_processes`), handing them the resolved config; any Hydra
  launcher (basic, joblib, Submitit) runs such jobs unchanged.
* ``torchrun --nproc-per-node=N -m hydra_pipeline ...``: every process is a Hydra app that
  composes the same config; rank 0 picks the run folder and the others take it from the
  rendezvous store (:func:`follow_rank_zero`), so all write to one folder.
* SLURM through the ``slurm_distributed`` launcher preset: Submitit runs the Hydra job once
  per SLURM task, with one run folder, and its helper turns SLURM's variables into torch's
  (:func:`launched_ranks`).

A process that fails ends the run: the elastic agent (or torchrun) stops the others, and the
run ends with one message naming the failed rank and its error.
A stop signal reaching the process that started the run is relayed to its processes
(:mod:`hydra_pipeline.app.signals`), which stop together with a checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from omegaconf import DictConfig

from hydra_pipeline.app.device import device_for
from hydra_pipeline.app.rank import train_rank
from hydra_pipeline.app.run_info import RunInfo
from hydra_pipeline.app.signals import (
    RELAYED_SIGNALS,
    hand_on,
    relayed_stop_requests,
    restore_handlers,
)
from hydra_pipeline.config.trust import AllowList, active_allow_list, allowing
from hydra_pipeline.errors import (
    CheckpointError,
    ConfigError,
    RunFolderError,
    TrainingInterrupted,
)

if TYPE_CHECKING:
    from hydra_pipeline.engine.distributed import Ranks

__all__ = [
    "RankError",
    "follow_rank_zero",
    "launched_ranks",
    "share_run_folder",
    "start_processes",
]

log = logging.getLogger("hydra_pipeline")

_RUN_DIR_KEY = "hydra_pipeline/run_dir"
"""The rendezvous store's key under which rank 0 publishes the run folder (torchrun)."""

_USER_ERRORS: dict[str, type[Exception]] = {
    error.__name__: error for error in (ConfigError, CheckpointError, RunFolderError)
}


class RankError(RuntimeError):
    """A process of a distributed run failed (the message names its rank and error), and the
    others were stopped."""


def _environment_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) if "RANK" in os.environ else 1
    except ValueError:
        return 1


def launched_ranks() -> Ranks | None:
    """This process's place, when a launcher started it as one of a run's processes
    (torchrun, or a SLURM job with several tasks through Submitit); ``None`` for a process
    of its own (which may start the run's processes itself: ``distributed.nproc_per_node``).
    """
    _export_slurm_ranks()
    if _environment_world_size() <= 1:
        return None
    from hydra_pipeline.engine import distributed

    return distributed.environment_ranks()


def share_run_folder(cfg: DictConfig, run_dir: Path) -> None:
    """Under torchrun, rank 0 publishes its Hydra job's run folder for the other ranks (see
    :func:`follow_rank_zero`); nothing in any other process."""
    ranks = launched_ranks()
    if ranks is None or not ranks.is_main or _under_submitit():
        return
    from hydra_pipeline.engine import distributed

    store = distributed.rendezvous_store(ranks, float(cfg.distributed.timeout_s))
    store.set(_RUN_DIR_KEY, str(run_dir))


def follow_rank_zero(arguments: list[str]) -> list[str]:
    """The command-line arguments of this process, when torchrun started it as rank > 0 of a
    run: rank 0's, plus rank 0's run folder (``hydra.run.dir``) once rank 0 has picked it,
    and no Hydra config folder of its own (rank 0 writes it). ``arguments`` as they are in
    any other process.

    Raises:
        ConfigError: A sweep (``-m``) under torchrun: torchrun starts the processes of one
            run, so sweeps of distributed runs use ``distributed.nproc_per_node``.
    """
    if _environment_world_size() <= 1:
        return arguments
    if "-m" in arguments or "--multirun" in arguments:
        _refuse(
            ConfigError(
                "A sweep (-m) cannot run under torchrun, which starts the processes of one "
                "run. Sweep distributed runs with distributed.nproc_per_node=N instead: "
                "python -m hydra_pipeline -m distributed.nproc_per_node=N <sweep>. (torchrun's "
                "report of the processes that ended follows.)"
            )
        )
    from hydra_pipeline.engine import distributed

    ranks = distributed.environment_ranks()
    assert ranks is not None
    if ranks.is_main:
        return arguments
    store = distributed.rendezvous_store(ranks)
    run_dir = store.get(_RUN_DIR_KEY).decode()  # waits for rank 0's Hydra job to start
    kept = [a for a in arguments if not a.startswith(("hydra.run.dir=", "hydra.output_subdir="))]
    quoted = run_dir.replace("\\", "\\\\").replace("'", "\\'")
    return [*kept, f"hydra.run.dir='{quoted}'", "hydra.output_subdir=null"]


_QUIET_RANK_SECONDS = 5.0
"""How long the other ranks wait, when every rank refuses the command line, before ending
without a word: rank 0 says why and ends first, and torchrun then stops them."""


def _refuse(refusal: ConfigError) -> NoReturn:
    """End every rank torchrun started on a command line they all refuse: rank 0 with
    ``refusal`` (torchrun's own report of the failed processes follows it), the others without
    a word, each would print the same message."""
    if int(os.environ.get("RANK", "0")) == 0:
        raise refusal
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # torchrun's stop ends it quietly
    time.sleep(_QUIET_RANK_SECONDS)
    raise SystemExit(1)


def _under_submitit() -> bool:
    return "SUBMITIT_EXECUTOR" in os.environ


def _export_slurm_ranks() -> None:
    """In a SLURM job of several tasks started by Submitit, set torch's rendezvous variables
    from SLURM's (Submitit's helper: the first node's host and a port from the job id)."""
    if not _under_submitit() or "RANK" in os.environ:
        return
    try:
        from submitit import JobEnvironment
        from submitit.helpers import TorchDistributedEnvironment
    except ImportError:
        return
    try:
        if JobEnvironment().num_tasks > 1:
            TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    except RuntimeError:  # not in a job after all
        return


# --------------------------------------------------------------------------------------------
# distributed.nproc_per_node: the Hydra job starts the run's processes


@dataclass(frozen=True)
class _RankJob:
    """What each process of a run started by :func:`start_processes` receives."""

    cfg: DictConfig
    info: RunInfo
    output_dir: Path
    allow_list: AllowList
    log_files: tuple[str, ...]
    log_level: int
    reports: Path


def start_processes(cfg: DictConfig, info: RunInfo, output_dir: Path) -> float:
    """Train the checked and resolved ``cfg`` in ``distributed.nproc_per_node`` processes on
    this machine, started through torch.distributed's elastic launch (a rendezvous on a free
    local port, no restarts); return rank 0's objective.

    Raises:
        RankError: A process failed; the message names its rank and its error (whose
            traceback is in the run's log file).
        ConfigError, CheckpointError, RunFolderError: A process found a mistake of the
            user's (the same in every process), as the one-process run would.
        TrainingInterrupted: A signal stopped the run at a safe point, with a checkpoint.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    nproc = int(cfg.distributed.nproc_per_node)
    reports = Path(tempfile.mkdtemp(prefix="hydra_pipeline_ranks_"))
    root = logging.getLogger()
    job = _RankJob(
        cfg=cfg,
        info=info,
        output_dir=output_dir,
        allow_list=active_allow_list(),
        log_files=tuple(
            h.baseFilename for h in root.handlers if isinstance(h, logging.FileHandler)
        ),
        log_level=logging.getLogger("hydra_pipeline").getEffectiveLevel(),
        reports=reports,
    )
    launch = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=uuid.uuid4().hex,
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # a free port
        max_restarts=0,
        monitor_interval=0.1,
        start_method=_start_method(cfg),
        # SIGHUP and SIGQUIT end the processes. The stop signals are relayed by this process
        # (see hydra_pipeline.app.signals), and Ctrl-C reaches the processes from the terminal
        # itself: the agent must not send a second one.
        signals_to_handle=",".join(signal.Signals(number).name for number in _AGENT_SIGNALS),
        shutdown_timeout=int(cfg.distributed.timeout_s),
    )
    if launch.start_method == "fork":
        _preload()
    log.info("Starting %d processes (torch.distributed, %s)", nproc, _backend(cfg))
    # The agent replaces the handlers of the signals it handles and leaves its own behind.
    previous = {number: signal.getsignal(number) for number in RELAYED_SIGNALS + _AGENT_SIGNALS}
    request = _stop_request_file(reports)
    try:
        with _agent_quiet(), relayed_stop_requests(request):
            results = elastic_launch(launch, _rank_main)(job)
        unheard = request.read_text() if request.exists() else None
    except (ChildFailedError, SignalException, KeyboardInterrupt) as error:
        failure = _failure(reports, nproc)
        if failure is None and isinstance(error, KeyboardInterrupt):
            raise  # a second Ctrl-C: stopped at once, as one process would
        if isinstance(failure, TrainingInterrupted):
            hand_on(failure.signal_name, previous)
        raise failure or _silent_end(nproc) from None
    finally:
        _remove(reports)
        restore_handlers(previous)
    if unheard is not None:
        # Relayed after the processes' last look (they finished training): heard now, as a
        # one-process run hears a signal after training.
        signal.raise_signal(signal.Signals[unheard])
    return float(results[0])


_AGENT_SIGNALS = (signal.SIGHUP, signal.SIGQUIT)
"""The signals the elastic agent handles: it ends the run's processes."""


def _stop_request_file(reports: Path) -> Path:
    """Where this process relays a stop signal to the run's processes."""
    return reports / "stop_request"


@contextlib.contextmanager
def _agent_quiet() -> Iterator[None]:
    """Keep the elastic agent's own log (a traceback per failed process, a line per process
    it stops) off the console: the run ends with one message naming the failed rank, whose
    traceback is in the run's log file."""
    loggers = [
        logging.getLogger(name)
        for name in list(logging.Logger.manager.loggerDict)
        if name.startswith("torch.distributed.elastic")
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _start_method(cfg: DictConfig) -> str:
    """On the CPU the processes are forks of this one, which has imported torch and the
    package already (spawned ones would import them again, seconds each); CUDA cannot be
    forked once initialised, so GPU runs spawn fresh interpreters."""
    return "fork" if device_for(cfg.device) == "cpu" else "spawn"


def _preload() -> None:
    """Import, once, what every forked process would otherwise import for itself: the engine,
    and ``torch._dynamo``, which torch's optimizers import when first built (seconds)."""
    import torch._dynamo  # noqa: F401

    import hydra_pipeline.engine  # noqa: F401


def _backend(cfg: DictConfig) -> str:
    """The backend the run's processes will use, for the start line."""
    import torch

    from hydra_pipeline.engine.distributed import backend_for

    return backend_for(torch.device(device_for(cfg.device)))


def _rank_main(job: _RankJob) -> float:
    """A process of the run: train as its rank; report how it ended if it failed."""
    from hydra_pipeline.engine.distributed import environment_ranks

    ranks = environment_ranks()
    assert ranks is not None  # the elastic agent sets RANK and WORLD_SIZE
    _configure_logging(job, ranks.rank)
    # A forked process inherits the handlers of the process that started it (the agent's,
    # which raise; the relay; a job system's, such as Submitit's, which only that process
    # calls, once every process has stopped): its own are Python's, which the run replaces
    # while it trains (see train_rank).
    for number in RELAYED_SIGNALS + _AGENT_SIGNALS:
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with allowing(job.allow_list), contextlib.ExitStack() as run:
        try:
            return train_rank(
                job.cfg, job.info, job.output_dir, ranks, run, _stop_request_file(job.reports)
            )
        except TrainingInterrupted as stopped:
            _report(job.reports, ranks.rank, stopped, interrupted=True)
            code = 128 + _signal_number(stopped.signal_name)
        except BaseException as error:
            # Reported before the process group closes (leaving the block closes it), which
            # makes the other ranks fail too: the first report is the cause.
            _report(job.reports, ranks.rank, error, interrupted=False)
            if not isinstance(error, tuple(_USER_ERRORS.values())):
                _log_to_files(error, ranks.rank)
            code = 1
    sys.exit(code)


def _log_to_files(error: BaseException, rank: int) -> None:
    """Write ``error``'s traceback to the run's log file only (the console gets the one
    message of the process that started the run)."""
    record = logging.LogRecord(
        "hydra_pipeline", logging.ERROR, __file__, 0, "Rank %d failed", (rank,),
        (type(error), error, error.__traceback__),
    )  # fmt: skip
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _signal_number(name: str) -> int:
    return int(signal.Signals[name].value)


def _configure_logging(job: _RankJob, rank: int) -> None:
    """Log as the Hydra job does (a forked process keeps its handlers): rank 0 to the console
    and the job's log file, the other ranks only their warnings and errors."""
    root = logging.getLogger()
    if not root.handlers:  # a spawned process
        formatter = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
        handlers: list[logging.Handler] = [logging.FileHandler(path) for path in job.log_files]
        handlers.append(logging.StreamHandler(sys.stdout))
        for handler in handlers:
            handler.setFormatter(formatter)
            root.addHandler(handler)
    root.setLevel(job.log_level if rank == 0 else logging.WARNING)
    logging.getLogger("hydra_pipeline").setLevel(job.log_level if rank == 0 else logging.WARNING)


def _report(reports: Path, rank: int, error: BaseException, *, interrupted: bool) -> None:
    """Write how this rank ended for the process that started the run."""
    record: dict[str, Any] = {
        "rank": rank,
        "time": time.time(),
        "type": type(error).__name__,
        "message": (str(error).strip().splitlines() or [""])[0],
        "full_message": str(error),
        "interrupted": interrupted,
        "traceback": "".join(traceback.format_exception(error)),
    }
    if isinstance(error, TrainingInterrupted):
        record.update(
            signal_name=error.signal_name,
            total_steps=error.total_steps,
            checkpoint=str(error.checkpoint),
        )
    (reports / f"rank_{rank}.json").write_text(json.dumps(record))


def _failure(reports: Path, nproc: int) -> Exception | None:
    """The error that ends a run whose processes did not all complete: an interruption if
    rank 0 stopped at a safe point, else the first failure (others fail after it: their
    peer is gone); ``None`` when no process reported (stopped from outside).

    Rank 0 may end before it reports an interruption: once another rank has exited, the
    elastic agent stops the rest with SIGTERM, which can reach rank 0 after it wrote the
    checkpoint but before its report. The checkpoint another rank reports, when it is there,
    then says the run stopped at a safe point."""
    records = []
    for path in sorted(reports.glob("rank_*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    main = next((r for r in records if r["rank"] == 0), None)
    if main is None:
        saved = (r for r in records if r["interrupted"] and Path(r["checkpoint"]).is_file())
        main = next(saved, None)
    if main is not None and main["interrupted"]:
        return TrainingInterrupted(
            main["signal_name"], int(main["total_steps"]), Path(main["checkpoint"])
        )
    failures = sorted((r for r in records if not r["interrupted"]), key=lambda r: r["time"])
    if not failures:
        return None
    first = failures[0]
    user_error = _USER_ERRORS.get(first["type"])
    if user_error is not None:
        return user_error(first["full_message"])
    return RankError(
        f"rank {first['rank']} of {nproc} failed with {first['type']}: {first['message']} "
        "(the other ranks were stopped)"
    )


def _silent_end(nproc: int) -> RankError:
    return RankError(
        f"a process of the run ended without a word (killed, or out of memory); all {nproc} "
        "were stopped"
    )


def _remove(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink(missing_ok=True)
    folder.rmdir()
