"""The exceptions hydra_pipeline raises for user mistakes.

Each one subclasses a builtin, so callers can catch either the precise type or the builtin.
None of them is meant to reach a user as a traceback: the command-line application prints
their message alone and exits with a non-zero status.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CheckpointError", "ConfigError", "InvalidArgumentError"]


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
