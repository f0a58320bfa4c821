"""Handing a signal on: a run that stops on a signal, with a checkpoint, then lets whoever
listened to that signal before it hear it too (Submitit requeues a preempted job from its
handler). Used by the one-process run and by the process that starts a distributed one."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from typing import Any

__all__ = ["hand_on", "restore_handlers"]


def hand_on(signal_name: str, previous: Mapping[signal.Signals, Any]) -> None:
    """Put back the signal handlers ``previous`` and call the one for ``signal_name``: once
    the run has stopped with a checkpoint, whoever listened to the signal before hears it
    (Submitit requeues a preempted job from its handler)."""
    restore_handlers(previous)
    number = signal.Signals[signal_name]
    handler = previous.get(number)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(number.value, None)


def restore_handlers(handlers: Mapping[signal.Signals, Any]) -> None:
    """Set the signal handlers ``handlers`` again."""
    for number, handler in handlers.items():
        if handler is not None:  # None: set outside Python, which cannot be put back
            signal.signal(number, handler)
