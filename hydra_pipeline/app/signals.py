"""Signals that stop a run at its next safe point, with a checkpoint, and handing them on.

A one-process run catches them itself (``train._stop_requested_by_signals``). The process that
starts a distributed run (``distributed.nproc_per_node``) relays them to the run's processes
through a file rather than by re-sending them: its handler only writes the signal's name
(:func:`relayed_stop_requests`), each process polls for that file from a thread
(:func:`polled_stop_requests`) and asks its runner to stop, and the ranks agree on the rollout
to stop at. Nothing then interrupts the elastic agent's loop with an exception, and a signal
that arrives while the processes are still starting is not lost.

Once the run has stopped with its checkpoint, :func:`hand_on` lets whoever listened to the
signal before hear it (Submitit requeues a preempted job from its handler).

Outside training (while the program starts, before any checkpoint, or after training ended)
there is no safe point to wait for: :func:`stopping_outside_training` turns those signals into
:class:`StoppedOutsideTraining`, so the program ends with a message saying what happened and
what to do, rather than silently.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = [
    "RELAYED_SIGNALS",
    "STOP_SIGNALS",
    "StoppedOutsideTraining",
    "hand_on",
    "polled_stop_requests",
    "relayed_stop_requests",
    "restore_handlers",
    "stopping_outside_training",
    "training_begins",
]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
"""The signals that stop a run at its next safe point, with a checkpoint: Ctrl-C, SIGTERM (what
SLURM sends on preemption and at a time limit), SIGUSR1 and SIGUSR2 (what SLURM's ``--signal``
and Submitit send before)."""

RELAYED_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
"""The stop signals the process that starts a distributed run relays to its processes (Ctrl-C
reaches them from the terminal itself)."""

POLL_SECONDS = 0.2
"""How often a process of a distributed run looks for a relayed stop request: far less than
a rollout, which is when a request takes effect."""


class StoppedOutsideTraining(BaseException):
    """A stop signal arrived while the program was not training, so no checkpoint was made
    for it. A ``BaseException``, like ``KeyboardInterrupt``: nothing may swallow it.

    Attributes:
        signal_name: ``SIGTERM``, ``SIGUSR1`` or ``SIGUSR2``.
        after_training: Whether training had begun (and ended) in this program.
    """

    def __init__(self, signal_name: str, after_training: bool) -> None:
        self.signal_name = signal_name
        self.after_training = after_training
        if after_training:
            what = (
                f"Stopped by {signal_name} after training, while the run was finishing: its "
                "checkpoints are in its folder."
            )
        else:
            what = (
                f"Stopped by {signal_name} before training began: nothing was trained and no "
                "checkpoint was written, so there is nothing to resume. Run the same command "
                "again to start over."
            )
        super().__init__(what)


_training_began = threading.Event()
"""Whether this program has begun training (see :func:`training_begins`)."""


def training_begins() -> None:
    """Note that training begins: a stop signal outside training from now on comes after it
    (see :func:`stopping_outside_training`)."""
    _training_began.set()


@contextlib.contextmanager
def stopping_outside_training() -> Iterator[None]:
    """While the block runs (the whole program: training sets handlers of its own), the stop
    signals other than Ctrl-C that would end the process silently (no handler listens to them)
    raise :class:`StoppedOutsideTraining`. A signal someone listens to (a job system's handler)
    is left to them, and off the main thread, where Python sets no handlers, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _training_began.clear()

    def stop(number: int, frame: FrameType | None) -> None:
        raise StoppedOutsideTraining(signal.Signals(number).name, _training_began.is_set())

    stop.outside_training = True  # type: ignore[attr-defined]  # never handed on to
    silent = [n for n in RELAYED_SIGNALS if signal.getsignal(n) is signal.SIG_DFL]
    previous = {number: signal.signal(number, stop) for number in silent}
    try:
        yield
    finally:
        restore_handlers(previous)


def hand_on(signal_name: str, previous: Mapping[signal.Signals, Any]) -> None:
    """Put back the signal handlers ``previous`` and call the one for ``signal_name``: once
    the run has stopped with a checkpoint, whoever listened to the signal before hears it."""
    restore_handlers(previous)
    number = signal.Signals[signal_name]
    handler = previous.get(number)
    if (
        callable(handler)
        and handler is not signal.default_int_handler
        and not getattr(handler, "outside_training", False)  # this program's own, not a listener
    ):
        handler(number.value, None)


def restore_handlers(handlers: Mapping[signal.Signals, Any]) -> None:
    """Set the signal handlers ``handlers`` again."""
    for number, handler in handlers.items():
        if handler is not None:  # None: set outside Python, which cannot be put back
            signal.signal(number, handler)


@contextlib.contextmanager
def relayed_stop_requests(path: Path) -> Iterator[None]:
    """While the block runs, :data:`RELAYED_SIGNALS` write their name to ``path`` (the first
    one only), for :func:`polled_stop_requests` in the run's processes; the handlers before
    are set again after. Off the main thread (a launcher that runs jobs in threads), where
    Python sets no handlers, nothing is relayed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    training_begins()

    def relay(number: int, frame: FrameType | None) -> None:
        if path.exists():
            return
        written = path.with_suffix(".tmp")
        written.write_text(signal.Signals(number).name)
        os.replace(written, path)  # whole: a reader never sees a partial name

    previous = {number: signal.signal(number, relay) for number in RELAYED_SIGNALS}
    try:
        yield
    finally:
        restore_handlers(previous)


@contextlib.contextmanager
def polled_stop_requests(path: Path, request_stop: Callable[[str], None]) -> Iterator[None]:
    """While the block runs, a thread calls ``request_stop`` with the signal's name once
    :func:`relayed_stop_requests` has written it to ``path`` (at once if it already has)."""
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            if path.exists():
                request_stop(path.read_text())
                return
            done.wait(POLL_SECONDS)

    watcher = threading.Thread(target=poll, name="stop-requests", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
