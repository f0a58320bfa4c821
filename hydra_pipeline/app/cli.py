"""``pipeline_app``: ``@hydra.main`` plus what the hydra-pipeline command line adds.

* ``resume=<run folder or checkpoint>`` continues that run in its own folder with the
  overrides it was started with (new overrides on the command line apply on top);
* a config mistake ends the program with exit status 1 and one clear message naming the key
  (a traceback only with ``HYDRA_FULL_ERROR=1``), including the two cases where Hydra's own
  message misleads: an unknown group option (we list the options and suggest the closest) and
  a list index out of range (Hydra says "dict is not a subclass of ...").

User projects get the same behaviour by decorating their task function with
:func:`pipeline_app` instead of ``hydra.main``.
"""

from __future__ import annotations

import difflib
import functools
import gc
import inspect
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig
from omegaconf.errors import OmegaConfBaseException

from hydra_pipeline.config.checks import ALLOWED_TARGET_PREFIXES
from hydra_pipeline.config.compat import main_arguments, version_base
from hydra_pipeline.errors import CheckpointError, ConfigError

__all__ = ["RESUME_RULE", "override_key", "pipeline_app"]

RESUME_RULE = (
    "A resumed run keeps its pipeline: overrides may change values such as max_stage_steps, "
    "not the stages, their loss names, the optimizer or the model."
)

TaskFunction = Callable[[DictConfig], Any]


def pipeline_app(
    config_path: str, config_name: str
) -> Callable[[TaskFunction], Callable[[], None]]:
    """Decorate a task function into a command-line entry point, like ``hydra.main``.

    Args:
        config_path: The primary config's folder, relative to the decorated function's file,
            absolute, or ``pkg://<package>``.
        config_name: The primary config's name.
    """

    def decorate(task_function: TaskFunction) -> Callable[[], None]:
        @functools.wraps(task_function)
        def reporting_task_function(cfg: DictConfig) -> Any:
            global _task_started
            _task_started = True
            try:
                return task_function(cfg)
            except (ConfigError, CheckpointError) as error:
                # In a single run, end here with the message alone (Hydra would first print
                # "Error executing job..."); in a sweep, let Hydra record the job as failed.
                if HydraConfig.get().mode is RunMode.MULTIRUN or _SHOW_TRACEBACK in os.environ:
                    raise
                print(f"Error: {error}", file=sys.stderr)
                sys.exit(1)

        arguments = main_arguments(ALLOWED_TARGET_PREFIXES)
        hydra_main = hydra.main(config_path=config_path, config_name=config_name, **arguments)(
            reporting_task_function
        )
        if not config_path.startswith("pkg://") and not os.path.isabs(config_path):
            config_path_for_checks = str(Path(inspect.getfile(task_function)).parent / config_path)
        else:
            config_path_for_checks = config_path

        @functools.wraps(task_function)
        def entry_point() -> None:
            # Startup allocates hundreds of thousands of long-lived objects (torch, Hydra): the
            # garbage collector would scan them again and again, for about 0.5 s here, and once
            # more at exit. It stays off until train() freezes them and turns it back on.
            gc.disable()
            _run(hydra_main, config_path_for_checks, config_name)

        return entry_point

    return decorate


# Read in job processes too (joblib, Submitit), so it travels in the environment.
_SHOW_TRACEBACK = "_HYDRA_PIPELINE_SHOW_TRACEBACK"

# Whether a task function has started in this process: errors before that come from the
# command line or the config.
_task_started = False


def _run(hydra_main: Callable[[], Any], config_path: str, config_name: str) -> None:
    user_setting = os.environ.get("HYDRA_FULL_ERROR")
    show_traceback = user_setting == "1"
    if show_traceback:
        os.environ[_SHOW_TRACEBACK] = "1"
    resuming = False
    try:
        arguments = _resume_arguments(sys.argv[1:])
        resuming = arguments != sys.argv[1:]
        sys.argv[1:] = arguments
        # Hydra then re-raises errors instead of printing them, and they are reported below,
        # in one place, with the config keys they concern.
        os.environ["HYDRA_FULL_ERROR"] = "1"
        try:
            hydra_main()
        finally:
            if user_setting is None:
                del os.environ["HYDRA_FULL_ERROR"]
            else:
                os.environ["HYDRA_FULL_ERROR"] = user_setting
    except Exception as error:
        # Before any task starts, every error comes from the command line or the config;
        # once training runs, only the package's and Hydra's own errors are config mistakes,
        # and anything else is a bug that keeps its traceback.
        expected = (ConfigError, CheckpointError, HydraException, OmegaConfBaseException)
        if show_traceback or (_task_started and not isinstance(error, expected)):
            raise
        message = _explain(error, _overrides(sys.argv[1:]), config_path, config_name)
        if resuming and not isinstance(error, (ConfigError, CheckpointError)):
            message = (
                f"{message}\nThe run was resumed with its own overrides followed by this command's "
                f"({' '.join(sys.argv[1:])}). {RESUME_RULE}"
            )
        print(f"Error: {message}", file=sys.stderr)
        sys.exit(1)


# --------------------------------------------------------------------------------------------
# resume=


def _overrides(arguments: Sequence[str]) -> list[str]:
    from hydra._internal.utils import get_args_parser

    return list(get_args_parser().parse_args(list(arguments)).overrides)


def override_key(override: str) -> str:
    """The key an override sets (``+a.b=1`` -> ``a.b``)."""
    return override.split("=", 1)[0].lstrip("+~")


def _resume_arguments(arguments: list[str]) -> list[str]:
    """The arguments that continue the run named by ``resume=``, or ``arguments`` unchanged.

    The run's own overrides (stored in its checkpoint) come first, then the command line's,
    which win key by key; Hydra's run folder is the run's folder, and Hydra's files for this
    session go to ``.hydra/resume_<time>`` so the run's original ``.hydra`` stays intact.
    """
    overrides = _overrides(arguments)
    resume = [o for o in overrides if override_key(o) == "resume"]
    if not resume:
        return arguments
    value = resume[-1].split("=", 1)[1].strip("'\"")
    if value in ("", "null"):
        return arguments
    if "-m" in arguments or "--multirun" in arguments:
        raise ConfigError(
            "resume= continues one run; it cannot be swept. Resume each job of a sweep by its "
            "folder: resume=<sweep folder>/<job number>."
        )
    from hydra_pipeline.engine.checkpoint import (
        CHECKPOINT_DIRECTORY,
        find_checkpoint,
        load_checkpoint,
    )

    checkpoint = find_checkpoint(Path(value)).resolve()
    stored = [str(o) for o in load_checkpoint(checkpoint)["metadata"].get("overrides", [])]
    given = [o for o in overrides if override_key(o) != "resume"]
    given_keys = {override_key(o) for o in given}
    merged = [o for o in stored if override_key(o) not in given_keys] + given
    folder = checkpoint.parent
    run_dir = folder.parent if folder.name == CHECKPOINT_DIRECTORY else folder
    extra = [f"resume={checkpoint}"]
    if "hydra.run.dir" not in given_keys:
        extra.append(f"hydra.run.dir={run_dir}")
    extra.append(f"hydra.output_subdir=.hydra/resume_{time.strftime('%Y%m%d_%H%M%S')}")
    flags = [a for a in arguments if a not in overrides]
    return flags + merged + extra


# --------------------------------------------------------------------------------------------
# Messages


def _explain(error: BaseException, overrides: list[str], config_path: str, config_name: str) -> str:
    if isinstance(error, MissingConfigException) and error.options is not None:
        return _unknown_option(error)
    if "NoneType" in str(error) and isinstance(error, (AssertionError, AttributeError)):
        return (
            f"An override sets a key inside a config node that is null ({error}). OmegaConf "
            "cannot do that: set the whole node instead, e.g. for the teacher forcing of a "
            "stage that has none, replace the stage: "
            "'pipeline.pipeline_stages.0={loss_names:[ppo_loss],max_stage_steps:500000,"
            "teacher_forcing:{_target_:hydra_pipeline.LinearDecay,steps:5000}}'."
        )
    if isinstance(error, ConfigCompositionException):
        out_of_range = _index_out_of_range(error, overrides, config_path, config_name)
        if out_of_range:
            return out_of_range
    message = str(error).strip() or type(error).__name__
    cause = error.__cause__
    if isinstance(error, HydraException) and isinstance(cause, OmegaConfBaseException):
        message += "\n" + str(cause).strip()
    return message


def _unknown_option(error: MissingConfigException) -> str:
    group, _, option = (error.missing_cfg_file or "").rpartition("/")
    options = sorted(o for o in error.options or [] if not o.startswith("base_"))
    message = (
        f"'{option}' is not an option of config group '{group}'. Options: {', '.join(options)}."
    )
    close = difflib.get_close_matches(option, options, n=1)
    if close:
        message += f" Did you mean '{group}={close[0]}'?"
    return message


_MERGING = re.compile(r"Error merging override (\S+)")


def _index_out_of_range(
    error: ConfigCompositionException, overrides: list[str], config_path: str, config_name: str
) -> str | None:
    """Say which list index of an override is out of range, and how long the list is."""
    match = _MERGING.search(str(error))
    if not match or "is not a subclass of" not in str(error.__cause__):
        return None
    failing = match.group(1)
    key = override_key(failing)
    if not any(part.isdigit() for part in key.split(".")):
        return None
    others = [o for o in overrides if o != failing and "," not in o]
    try:
        cfg = _compose(config_path, config_name, others)
    except (HydraException, OmegaConfBaseException):
        return None
    node: Any = cfg
    path: list[str] = []
    for part in key.split("."):
        if isinstance(node, ListConfig) and part.isdigit():
            if int(part) >= len(node):
                where = ".".join(path)
                return (
                    f"'{where}.{part}' is out of range in override '{failing}': '{where}' has "
                    f"{len(node)} entries (indices 0 to {len(node) - 1}). To change an entry, "
                    f"use an index in that range; to add one, set the whole list, e.g. "
                    f"'{where}=[...]', or use a preset with more entries."
                )
            node = node[int(part)]
        elif isinstance(node, DictConfig) and part in node:
            node = node._get_node(part)
        else:
            return None
        path.append(part)
    return None


def _compose(config_path: str, config_name: str, overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    if config_path.startswith("pkg://"):
        context: Any = hydra.initialize_config_module(
            config_module=config_path.removeprefix("pkg://"), **version_base()
        )
    else:
        context = hydra.initialize_config_dir(config_dir=config_path, **version_base())
    with context:
        return hydra.compose(config_name, overrides=overrides)
