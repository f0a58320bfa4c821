"""A job of a joblib sweep runs in a process of its own, so a killed job loses no other.

joblib runs a sweep's jobs in a pool of worker processes (loky's). When one of them dies (a job
killed with SIGKILL, or by the kernel when memory runs out), loky declares the whole pool
broken and stops every worker: the jobs running beside it and those still waiting are lost.
So a worker runs each job in a child process (:func:`run_apart`): a killed job ends only that
child, and the worker reports it (:class:`JobKilled`, with the command that reruns the job) and
goes on with the next one. The stop signals the worker receives reach the child, which stops
at a safe point with a checkpoint as any run does; a child whose worker dies is sent SIGTERM.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

from hydra_pipeline.app.signals import RELAYED_SIGNALS, restore_handlers

__all__ = ["JOBLIB_LAUNCHER", "JobKilled", "run_apart"]

JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
"""The ``_target_`` of Hydra's joblib launcher, whose jobs run apart."""


class JobKilled(RuntimeError):  # noqa: N818 -- the job's fate, as the sweep reports it
    """A job's process ended by a signal (or another way) without reporting a result."""


def run_apart(
    job: Callable[[], Any], started: Callable[[], None], killed: Callable[[str], str]
) -> Any:
    """Run ``job`` in a forked child process and return its result, or raise what it raised.

    Args:
        job: The job (it runs in the child, which inherits this process's state).
        started: Called first in the child (to record its process id).
        killed: The message for a child that ended without a result, given how it ended
            (``"SIGKILL"``, ``"exit status 3"``).

    Raises:
        JobKilled: The child ended without a result.
    """
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(job, started, sending), name="hydra-job")
    child.start()
    sending.close()
    with _relayed_to(child.pid):
        try:
            outcome = receiving.recv()
        except EOFError:  # ended without a word
            outcome = None
        finally:
            receiving.close()
            child.join()
    if outcome is None:
        code = child.exitcode or 0
        how = signal.Signals(-code).name if code < 0 else f"exit status {code}"
        raise JobKilled(killed(how))
    kind, value = outcome
    if kind == "error":
        raise value
    return value


def _child(job: Callable[[], Any], started: Callable[[], None], sending: Connection) -> None:
    """The child: run the job and send back its result or its error."""
    _end_with_parent()
    try:
        started()
        outcome: tuple[str, Any] = ("result", job())
    except BaseException as error:  # every way the job ends is the parent's to report
        outcome = ("error", _transferable(error))
    try:
        sending.send(outcome)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        sending.send(("error", RuntimeError(f"the job's result cannot be sent back: {error}")))
    sending.close()


def _transferable(error: BaseException) -> BaseException:
    """``error`` if it pickles whole, else a ``RuntimeError`` with its type and message."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        first = (str(error).strip().splitlines() or [""])[0]
        return RuntimeError(f"{type(error).__name__}: {first}")
    return error


def _end_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux), so that a job
    whose worker was killed stops at a safe point rather than running on unseen."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    set_parent_death_signal = 1  # prctl's PR_SET_PDEATHSIG
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(set_parent_death_signal, signal.SIGTERM)


@contextlib.contextmanager
def _relayed_to(pid: int | None) -> Iterator[None]:
    """While the block runs, the stop signals this process receives (from a job system, or
    the sweep ending) go on to the process ``pid`` instead."""
    if pid is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def relay(number: int, frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, number)

    previous = {number: signal.signal(number, relay) for number in RELAYED_SIGNALS}
    try:
        yield
    finally:
        restore_handlers(previous)
