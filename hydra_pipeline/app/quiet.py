"""Keep other libraries' chatter out of the console and the log files: what a user reads
there is the run's own progress, the sweep's table and the errors.

* Alembic announces each of its plugins at INFO when Optuna imports it, and Matplotlib says
  when it builds its font cache: both are set to log warnings only.
* Optuna writes its messages through a handler of its own, coloured with ANSI codes whether or
  not the output is a terminal; during an Optuna sweep they go through Hydra's handlers
  instead, plain, like every other line.
"""

from __future__ import annotations

import logging

__all__ = ["CHATTY_LOGGERS", "plain_optuna_logs", "quiet_chatty_loggers"]

CHATTY_LOGGERS = ("alembic", "matplotlib")
"""Loggers whose INFO messages say nothing a user of this package needs."""


def quiet_chatty_loggers() -> None:
    """Let the :data:`~hydra_pipeline.app.quiet.CHATTY_LOGGERS` log warnings and errors only
    (Hydra's logging setup keeps the level of a logger it does not configure)."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def plain_optuna_logs() -> None:
    """Send Optuna's messages through the root logger's handlers (Hydra's) instead of its own
    coloured one."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
