"""The exceptions hydra_pipeline raises for user mistakes.

Each one subclasses a builtin, so callers can catch either the precise type or the builtin.
None of them is meant to reach a user as a traceback: the command-line application prints
their message alone and exits with a non-zero status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "CheckpointError",
    "ConfigError",
    "InvalidArgumentError",
    "RunFolderError",
    "TrainingInterrupted",
]


class InvalidArgumentError(ValueError):
    """An argument of a pipeline object is out of range or inconsistent.

    Attributes:
        argument: Where the bad value sits, as a dotted path relative to the object that
            rejected it (``"num_mini_batch"``, ``"pipeline_stages.1.loss_weights"``), so that a
            config layer can prefix it with the key of the object in the config.
        problem: What is wrong, phrased to follow the argument's name ("must be >= 1").
        value: The offending value.
        hint: How to fix it, or an empty string.
    """

    def __init__(self, argument: str, problem: str, value: Any, hint: str = "") -> None:
        self.argument = argument
        self.problem = problem
        self.value = value
        self.hint = hint
        super().__init__(self._render(argument))

    def _render(self, argument: str) -> str:
        message = f"'{argument}' {self.problem} (got {self.value!r})."
        return f"{message} {self.hint}" if self.hint else message

    def message_at(self, prefix: str) -> str:
        """The message with ``argument`` placed under ``prefix`` (a config key)."""
        return self._render(f"{prefix}.{self.argument}" if prefix else self.argument)


class ConfigError(ValueError):
    """A configuration mistake, reported with the full config key and how to fix it."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not match the run that loads it."""


class RunFolderError(RuntimeError):
    """A run folder is in use by another process, holds another run's results, or cannot be
    written."""


class TrainingInterrupted(Exception):  # noqa: N818 -- a request honoured, not an error
    """Training stopped at a safe point because the process was asked to (Ctrl-C, SIGTERM).

    Attributes:
        signal_name: The signal that asked, e.g. ``"SIGTERM"``.
        total_steps: Agent steps taken when training stopped.
        checkpoint: The checkpoint written at that point, from which the run resumes exactly.
    """

    def __init__(self, signal_name: str, total_steps: int, checkpoint: Path) -> None:
        self.signal_name = signal_name
        self.total_steps = total_steps
        self.checkpoint = checkpoint
        super().__init__(
            f"Interrupted by {signal_name} at step {total_steps}; checkpoint: {checkpoint}"
        )

    def __reduce__(self) -> tuple[type[TrainingInterrupted], tuple[str, int, Path]]:
        # Pickled whole (a job run in a process of its own sends it back to its parent).
        return type(self), (self.signal_name, self.total_steps, self.checkpoint)
