"""``pipeline_app``: ``@hydra.main`` plus what the hydra-pipeline command line adds.

* One trust gate (:mod:`hydra_pipeline.config.trust`): what a config may build is the
  package's objects plus the import prefixes the application's code and the command line's
  ``allowed_targets=[...]`` allow; Hydra's own ``hydra.callbacks`` are checked before Hydra
  builds them.
* ``resume=<run folder or checkpoint>`` continues that run in its own folder with the
  overrides it was started with (checked as data; new overrides on the command line apply on
  top); see :mod:`hydra_pipeline.app.resume`.
* A mistake ends the program with exit status 1 and one clear message naming the key or file
  (a traceback only with ``HYDRA_FULL_ERROR=1``), including the two cases where Hydra's own
  message misleads: an unknown group option (we list the options and suggest the closest) and
  a list index out of range (Hydra says "dict is not a subclass of ...").
* An error during training ends with one paragraph: what failed, the run folder, how to resume,
  and the log file holding the traceback. Ctrl-C and SIGTERM stop at a safe point with a
  checkpoint and print the command that resumes.

User projects get the same behaviour by decorating their task function with
:func:`pipeline_app` instead of ``hydra.main``.
"""

from __future__ import annotations

import difflib
import functools
import gc
import inspect
import logging
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from hydra_pipeline.app.distributed import follow_rank_zero
from hydra_pipeline.app.isolation import JOBLIB_LAUNCHER, JobKilled, run_apart
from hydra_pipeline.app.quiet import quiet_chatty_loggers
from hydra_pipeline.app.resume import (
    RESUME_RULE,
    Invocation,
    ResumePlan,
    allowed_on_command_line,
    command_line_overrides,
    hydra_quote,
    override_key,
    rerun_command,
    resume_arguments,
    resume_command,
)
from hydra_pipeline.app.signals import StoppedOutsideTraining, stopping_outside_training
from hydra_pipeline.config.checks import check_before_resolving, check_hydra_callbacks, dotted_key
from hydra_pipeline.config.compat import (
    bound_yaml_expansion,
    check_before_hydra_callbacks,
    check_before_hydra_merges,
    main_arguments,
    version_base,
)
from hydra_pipeline.config.hydra_settings import check_added_search_path, check_loaded_config
from hydra_pipeline.config.trust import AllowList, allowing
from hydra_pipeline.errors import (
    CheckpointError,
    ConfigError,
    RunFolderError,
    TrainingInterrupted,
)

__all__ = ["TrainingError", "pipeline_app"]

TaskFunction = Callable[[DictConfig], Any]

_USER_ERRORS = (ConfigError, CheckpointError, RunFolderError)
"""Mistakes in what the user asked for: reported as one message, never as a traceback."""


class TrainingError(RuntimeError):
    """Training stopped on an error that is not a config mistake; the message says where the
    traceback and the run are, and how to resume."""


@dataclass
class _Session:
    """What one invocation trusts: the prefixes the application's code declares, plus those
    the command line gives (filled in when the program starts), and the application's own
    config folder. It travels with the task function into job processes (joblib, Submitit),
    where no command line is to be read."""

    code_prefixes: tuple[str, ...]
    config_folder: str | None = None
    trains: bool = True
    command_line_prefixes: list[str] = field(default_factory=list)
    given_arguments: list[str] = field(default_factory=list)
    resume: ResumePlan | None = None
    invocation: Invocation | None = None
    main_pid: int = 0

    def explained(self, message: str) -> str:
        """``message``, plus how a resumed run's config came about."""
        if self.resume is None or self.resume.checkpoint is None:
            return message
        return (
            f"{message}\nThis run resumes from '{self.resume.checkpoint}': the overrides it "
            f"stores ({' '.join(self.resume.stored_overrides) or 'none'}) were re-applied, then "
            f"this command's ({' '.join(self.given_arguments)})."
            + ("" if RESUME_RULE in message else f" {RESUME_RULE}")
        )

    @property
    def allow_list(self) -> AllowList:
        return AllowList.of(
            self.code_prefixes, self.command_line_prefixes, config_folder=self.config_folder
        )


def pipeline_app(
    config_path: str, config_name: str, *, allowed_targets: Sequence[str] = (), trains: bool = True
) -> Callable[[TaskFunction], Callable[[], None]]:
    """Decorate a task function into a command-line entry point, like ``hydra.main``.

    Args:
        config_path: The primary config's folder, relative to the decorated function's file,
            absolute, or ``pkg://<package>``.
        config_name: The primary config's name.
        allowed_targets: Import prefixes of the project's own code that its configs may build
            (``["my_project"]``). Code is trusted; config files are not, so this is where a
            project allows its own ``_target_``s.
        trains: Whether the task function trains a run that can be resumed; ``False`` for
            tools such as the evaluate command: no ``resume=`` handling, and a failure is
            reported without resume advice.
    """

    def decorate(task_function: TaskFunction) -> Callable[[], None]:
        if not config_path.startswith("pkg://") and not os.path.isabs(config_path):
            config_path_for_checks = str(Path(inspect.getfile(task_function)).parent / config_path)
        else:
            config_path_for_checks = config_path
        own_folder = None
        if not config_path_for_checks.startswith("pkg://"):
            own_folder = os.path.realpath(config_path_for_checks)
        session = _Session(tuple(allowed_targets), own_folder, trains)

        @functools.wraps(task_function)
        def job(cfg: DictConfig) -> Any:
            # Runs in the job's process (this closure carries the session there).
            global _task_started
            _task_started = True
            gc.freeze()  # Hydra's startup objects live as long as the process
            gc.enable()
            with allowing(session.allow_list):
                try:
                    check_before_resolving(cfg)
                    if _beside_other_jobs(session):
                        return _run_apart(task_function, cfg, session)
                    return task_function(cfg)
                except TrainingInterrupted as interruption:
                    _end_interrupted(interruption, session)
                except (ConfigError, CheckpointError) as error:
                    _end_with(error, f"Error: {session.explained(str(error))}")
                except (RunFolderError, JobKilled) as error:
                    _end_with(error, f"Error: {error}")
                except Exception as error:
                    failure = _training_failure(error, session)
                    _end_with(failure, f"Error: {failure}", cause=error)

        @functools.wraps(task_function)
        def entry_point() -> None:
            # Startup allocates hundreds of thousands of long-lived objects (torch, Hydra): the
            # garbage collector would scan them again and again, for about 0.5 s here. It is
            # off until a task function starts (see job above).
            gc.disable()
            try:
                with stopping_outside_training():
                    _run(session, job, config_path, config_path_for_checks, config_name)
            except StoppedOutsideTraining as stopped:  # no one else listened to the signal
                print(f"Error: {stopped}", file=sys.stderr)
                sys.exit(128 + signal.Signals[stopped.signal_name].value)
            finally:
                gc.enable()

        return entry_point

    return decorate


# Read in job processes too (joblib, Submitit), so it travels in the environment.
_SHOW_TRACEBACK = "_HYDRA_PIPELINE_SHOW_TRACEBACK"

# Whether a task function has started in this process: errors before that come from the
# command line or the config.
_task_started = False


def _in_sweep_or_showing_tracebacks() -> bool:
    return HydraConfig.get().mode is RunMode.MULTIRUN or _SHOW_TRACEBACK in os.environ


def _end_with(error: Exception, message: str, cause: BaseException | None = None) -> NoReturn:
    """End a job: in a single run, with ``message`` alone and exit status 1 (Hydra would
    first print "Error executing job..."); in a sweep, or when tracebacks are asked for,
    by raising ``error`` so Hydra records the job as failed."""
    if _in_sweep_or_showing_tracebacks():
        raise error from cause
    print(message, file=sys.stderr)
    sys.exit(1)


def _beside_other_jobs(session: _Session) -> bool:
    """Whether this job runs in a worker process of joblib's pool, beside other jobs."""
    hydra_config = HydraConfig.get()
    return (
        hydra_config.mode is RunMode.MULTIRUN
        and hydra_config.launcher.get("_target_") == JOBLIB_LAUNCHER
        and os.getpid() != session.main_pid
    )


def _run_apart(task_function: TaskFunction, cfg: DictConfig, session: _Session) -> Any:
    """Run the job in a process of its own (see :mod:`hydra_pipeline.app.isolation`)."""
    from hydra_pipeline.app.callbacks import record_job_status
    from hydra_pipeline.engine.checkpoint import latest_checkpoint

    hydra_config = HydraConfig.get()
    job_dir = Path(hydra_config.runtime.output_dir)
    overrides: list[str] = OmegaConf.to_container(hydra_config.overrides.task)  # type: ignore[assignment]

    def killed(how: str) -> str:
        allowed = session.command_line_prefixes
        if latest_checkpoint(job_dir) is not None:
            again = f"resume it with: {resume_command(job_dir, allowed, session.invocation)}"
        else:
            where = f"hydra.run.dir={hydra_quote(str(job_dir))}"
            again = (
                f"rerun it with: {rerun_command([*overrides, where], allowed, session.invocation)}"
            )
        return (
            f"the job's process ended by {how} without a result (killed: out of memory?); "
            f"the other jobs went on. Its folder is {job_dir}; {again}"
        )

    return run_apart(lambda: task_function(cfg), lambda: record_job_status("running"), killed)


def _end_interrupted(interruption: TrainingInterrupted, session: _Session) -> NoReturn:
    """Say where the run stopped and how to resume it, then end with 128 + the signal's
    number (130 for Ctrl-C, 143 for SIGTERM), the whole sweep included."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    command = resume_command(run_dir, session.command_line_prefixes, session.invocation)
    message = (
        f"Interrupted by {interruption.signal_name} at step {interruption.total_steps}; "
        f"checkpoint saved. Resume with: {command}"
    )
    print(message, file=sys.stderr)
    if HydraConfig.get().mode is RunMode.MULTIRUN:
        from hydra_pipeline.app.callbacks import record_job_status

        record_job_status("interrupted", message)
    sys.exit(128 + signal.Signals[interruption.signal_name].value)


def _training_failure(error: Exception, session: _Session) -> TrainingError:
    """One paragraph about an error during training (or another job); its traceback goes to
    the log file."""
    from hydra_pipeline.engine.checkpoint import latest_checkpoint

    first = (str(error).strip().splitlines() or [""])[0]
    if not session.trains:  # no run folder of its own
        return TrainingError(
            f"the job failed with {type(error).__name__}: {first} (HYDRA_FULL_ERROR=1 prints "
            "the traceback)."
        )
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    log_file = _log_traceback(error, run_dir)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        resume = "No checkpoint was written, so the run starts over if run again."
    else:
        command = resume_command(run_dir, session.command_line_prefixes, session.invocation)
        resume = f"Its last checkpoint is {checkpoint.name}; resume with: {command}"
    return TrainingError(
        f"training failed{_rank_of_run()} with {type(error).__name__}: {first}\n"
        f"The run's folder is {run_dir}. {resume}\n"
        f"The traceback is in {log_file} (HYDRA_FULL_ERROR=1 prints it)."
    )


def _rank_of_run() -> str:
    """`` on rank R of N`` in a process torchrun started as one of a run's N, else ``""``."""
    world_size = os.environ.get("WORLD_SIZE", "1")
    if "RANK" not in os.environ or world_size == "1":
        return ""
    return f" on rank {os.environ['RANK']} of {world_size}"


def _log_traceback(error: Exception, run_dir: Path) -> Path:
    """Write ``error``'s traceback to the run's log file (Hydra's job log, or ``error.log``
    in the run folder when logging to a file is off) and return the file's path."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    if files:
        record = logging.LogRecord(
            "hydra_pipeline", logging.ERROR, __file__, 0, "Training failed", None,
            (type(error), error, error.__traceback__),
        )  # fmt: skip
        for handler in files:
            handler.handle(record)
        return Path(files[0].baseFilename)
    path = run_dir / "error.log"
    path.write_text("".join(traceback.format_exception(error)))
    return path


def _run(
    session: _Session,
    job: TaskFunction,
    config_path: str,
    config_path_for_checks: str,
    config_name: str,
) -> None:
    global _task_started
    _task_started = False
    user_setting = os.environ.get("HYDRA_FULL_ERROR")
    show_traceback = user_setting == "1"
    if show_traceback:
        os.environ[_SHOW_TRACEBACK] = "1"
    try:
        session.command_line_prefixes = allowed_on_command_line(
            command_line_overrides(sys.argv[1:])
        )
        session.given_arguments = sys.argv[1:]
        session.resume = (
            resume_arguments(sys.argv[1:]) if session.trains else ResumePlan(sys.argv[1:])
        )
        sys.argv[1:] = session.resume.arguments
        if session.trains:  # under torchrun, ranks > 0 train in rank 0's run folder
            sys.argv[1:] = follow_rank_zero(sys.argv[1:])
        session.invocation = Invocation.current()
        session.main_pid = os.getpid()
        quiet_chatty_loggers()
        check_before_hydra_callbacks(check_hydra_callbacks)
        check_before_hydra_merges(check_loaded_config, check_added_search_path)
        bound_yaml_expansion()
        hydra_main = hydra.main(
            config_path=config_path,
            config_name=config_name,
            **main_arguments(session.allow_list.execution_whitelist()),
        )(job)
        # Hydra then re-raises errors instead of printing them, and they are reported below,
        # in one place, with the config keys they concern.
        os.environ["HYDRA_FULL_ERROR"] = "1"
        try:
            with allowing(session.allow_list):
                hydra_main()
        finally:
            if user_setting is None:
                del os.environ["HYDRA_FULL_ERROR"]
            else:
                os.environ["HYDRA_FULL_ERROR"] = user_setting
    except KeyboardInterrupt:
        if show_traceback:
            raise
        print("Interrupted.", file=sys.stderr)
        sys.exit(128 + signal.SIGINT.value)
    except Exception as error:
        if show_traceback:
            raise
        message = _message(error, config_path_for_checks, config_name)
        print(f"Error: {session.explained(message)}", file=sys.stderr)
        sys.exit(1)


def _message(error: Exception, config_path: str, config_name: str) -> str:
    """The one message an error ends the program with."""
    if isinstance(error, (*_USER_ERRORS, TrainingError)):
        return str(error)
    expected = (HydraException, OmegaConfBaseException, OSError)
    if _task_started and not isinstance(error, expected):
        # Raised by Hydra's machinery around the jobs (a launcher losing a worker, say).
        return (
            f"the run stopped with {type(error).__name__}: "
            f"{(str(error).strip().splitlines() or [''])[0]} (HYDRA_FULL_ERROR=1 shows the "
            "traceback)."
        )
    return _explain(error, command_line_overrides(sys.argv[1:]), config_path, config_name)


# --------------------------------------------------------------------------------------------
# Messages


def _explain(error: BaseException, overrides: list[str], config_path: str, config_name: str) -> str:
    if isinstance(error, MissingConfigException):
        extra = _PLUGIN_EXTRAS.get(error.missing_cfg_file or "")
        if extra is not None:
            return _missing_plugin(error, extra)
        unknown = _unknown_option(error, overrides, config_path)
        if unknown is not None:
            return unknown
    if isinstance(error, OSError) and error.filename is not None:
        return (
            f"cannot write '{error.filename}': {error.strerror}. Choose a writable output "
            "folder (hydra.run.dir=<folder>, or hydra.sweep.dir=<folder> for sweeps)."
        )
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
        unknown_key = _unknown_key(error)
        if unknown_key:
            return unknown_key
    message = str(error).strip() or type(error).__name__
    cause = error.__cause__
    if isinstance(error, HydraException) and isinstance(cause, OmegaConfBaseException):
        message += "\n" + str(cause).strip()
    return message


# The extra installing each Hydra plugin whose configs the presets and the README use.
_PLUGIN_EXTRAS = {
    "hydra/launcher/joblib": "launchers",
    "hydra/launcher/submitit_local": "launchers",
    "hydra/launcher/submitit_slurm": "launchers",
    "hydra/launcher/ray": "ray",
    "hydra/launcher/ray_aws": "ray",
    "hydra/sweeper/optuna": "optuna",
}


def _missing_plugin(error: MissingConfigException, extra: str) -> str:
    group, _, option = (error.missing_cfg_file or "").rpartition("/")
    return (
        f"'{group}={option}' comes from a Hydra plugin that is not installed "
        f'(pip install "hydra-pipeline[{extra}]"). {str(error).splitlines()[0]}'
    )


def _unknown_option(
    error: MissingConfigException, overrides: list[str], config_path: str
) -> str | None:
    """Name the unknown option of a group and suggest the closest, as the command line would
    write it (``callbacks=[wandb]`` for a list of options); ``None`` when the group's options
    are unknown."""
    group, _, option = (error.missing_cfg_file or "").rpartition("/")
    if not group:
        return None
    listed = error.options  # Hydra lists them for a single choice, not for a list of them
    if listed is None:
        with _initialized(config_path):
            listed = GlobalHydra.instance().config_loader().get_group_options(group)
    if not listed:
        return None
    options = sorted(o for o in listed if not o.startswith("base_"))
    message = (
        f"'{option}' is not an option of config group '{group}'. Options: {', '.join(options)}."
    )
    close = difflib.get_close_matches(option, options, n=1)
    if close:
        message += f" Did you mean '{_corrected(group, option, close[0], overrides)}'?"
    return message


def _corrected(group: str, wrong: str, right: str, overrides: list[str]) -> str:
    """The command line's choice of ``group`` with ``wrong`` replaced by ``right``."""
    parser = OverridesParser.create()
    for override in overrides:
        try:
            parsed = parser.parse_override(override)
        except HydraException:
            continue
        value = parsed.value()
        if parsed.key_or_group == group and isinstance(value, list):
            chosen = [right if item == wrong else str(item) for item in value]
            return f"{group}=[{','.join(chosen)}]"
    return f"{group}={right}"


def _unknown_key(error: ConfigCompositionException) -> str | None:
    """Name a key the override sets that its node does not have, with the closest key it
    does have, instead of Hydra's advice to add it with ``+`` (which most often is a typo's
    fix only once the checks refuse the added key)."""
    cause = error.__cause__
    if not isinstance(cause, (ConfigKeyError, ConfigAttributeError)) or not str(error).startswith(
        "Could not override"
    ):
        return None
    node = cause.parent_node
    if not isinstance(node, DictConfig) or cause.full_key is None:
        return None
    key = dotted_key(str(cause.full_key))
    parent, _, name = key.rpartition(".")
    keys = [str(k) for k in node if not str(k).startswith("_") and str(k) != "hydra"]
    where = f"a key of '{parent}'" if parent else "a top-level key"
    close = [f"{parent}.{key}" if parent else key for key in difflib.get_close_matches(name, keys)]
    hint = f" Did you mean '{close[0]}'?" if close else ""
    message = f"'{key}' is not {where}.{hint} Its keys: {', '.join(keys)}."
    if "_target_" in node and OmegaConf.get_type(node) is dict:  # no schema lists them all
        message += f" (A parameter of its _target_ that it does not list: +{key}=<value>.)"
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
    with _initialized(config_path):
        return hydra.compose(config_name, overrides=overrides)


def _initialized(config_path: str) -> Any:
    """A context in which Hydra is initialized with the application's config path."""
    GlobalHydra.instance().clear()
    if config_path.startswith("pkg://"):
        return hydra.initialize_config_module(
            config_module=config_path.removeprefix("pkg://"), **version_base()
        )
    return hydra.initialize_config_dir(config_dir=config_path, **version_base())
