"""Continuing a run: ``resume=`` on the command line, and what a checkpoint may ask of it.

A checkpoint stores the overrides its run was started with and the run's structure (its model,
task, optimizer and loss classes). Both are data from a file, not instructions: the stored
overrides are parsed and checked like the command line's, those that would change Hydra's
settings, the allow-list or how the run starts are refused, and the rest are re-applied so the
run is rebuilt as it was. The structure is compared with the resumed config before anything
is loaded, so a run cannot silently continue with another optimizer or model.
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from hydra_pipeline.config.hydra_settings import sets_hydra
from hydra_pipeline.config.saved_run import SAVED_CONFIG_FOLDER
from hydra_pipeline.errors import CheckpointError, ConfigError
from hydra_pipeline.files import refuse_links

__all__ = [
    "AUTO",
    "RESUME_RULE",
    "RUN_KEYS",
    "TRUST_KEYS",
    "Invocation",
    "ResumePlan",
    "allowed_on_command_line",
    "check_same_structure",
    "command_line_overrides",
    "hydra_quote",
    "override_key",
    "rerun_command",
    "resume_arguments",
    "resume_command",
    "run_structure",
    "stored_overrides",
]

RESUME_RULE = (
    "A resumed run keeps its pipeline: overrides may change values such as max_stage_steps, "
    "not the stages, their loss names, the optimizer, the model or the task."
)

RUN_KEYS = ("resume", "restart_from_weights")
"""Keys that say how a run starts, not what it trains: not stored, not carried over."""

TRUST_KEYS = ("allowed_targets",)
"""Keys that extend what the run trusts: only the command line may set them."""

AUTO = "auto"
"""``resume=auto``: continue from the run folder's latest checkpoint if it has one (a job
restarted in its own folder, e.g. requeued after preemption), else start fresh."""

_STRUCTURAL_KEYS = ("model", "task", "pipeline.optimizer_builder")
"""Config nodes a resumed run must keep whole (plus each loss's ``_target_``)."""

_IMPLEMENTATION_KEYS = ("pipeline.optimizer_builder.foreach", "pipeline.optimizer_builder.fused")
"""Optimizer switches that choose how torch computes the same update, not what it is: a
resumed run may differ in them (the checkpoint's optimizer state restores its own)."""


def override_key(override: str) -> str:
    """The key an override sets (``+a.b=1`` -> ``a.b``)."""
    return override.split("=", 1)[0].lstrip("+~")


def command_line_overrides(arguments: Sequence[str]) -> list[str]:
    """The overrides among command-line ``arguments`` (flags such as ``-m`` left out)."""
    from hydra._internal.utils import get_args_parser

    return list(get_args_parser().parse_args(list(arguments)).overrides)


def allowed_on_command_line(overrides: Sequence[str]) -> list[str]:
    """The import prefixes the command line's ``allowed_targets=...`` gives (none if absent).

    Raises:
        ConfigError: ``allowed_targets`` is swept or is not a name or a list of names.
    """
    given = [o for o in overrides if override_key(o) in TRUST_KEYS]
    if not given:
        return []
    try:
        parsed = OverridesParser.create().parse_override(given[-1])
    except HydraException as error:
        raise ConfigError(f"Cannot parse '{given[-1]}': {error}") from None
    value = parsed.value()
    if parsed.is_sweep_override() or not isinstance(value, (str, list)):
        raise ConfigError(
            f"'allowed_targets' must be a module name or a list of them, e.g. "
            f"allowed_targets='[my_project]' (got '{given[-1]}'); it cannot be swept."
        )
    return [value] if isinstance(value, str) else [str(item) for item in value]


def hydra_quote(value: str) -> str:
    """``value`` as a quoted Hydra override value that reads back exactly (a path with
    ``=``, ``,``, spaces, quotes, backslashes or ``${`` in it)."""
    escaped = re.sub(r"(\\+)(?='|$)", lambda match: match.group(1) * 2, value)
    return "'" + escaped.replace("'", "\\'").replace("${", "\\${") + "'"


def _raw_resume_value(arguments: Sequence[str]) -> str | None:
    """The last ``resume=<path>`` argument's path, taken literally (not parsed as an override
    value, so a folder name with ``=``, ``,`` or spaces works as the shell passed it)."""
    values = [a.split("=", 1)[1] for a in arguments if re.match(r"^\+?resume=", a)]
    if not values:
        return None
    value = values[-1]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]  # quoted for Hydra rather than for the shell
    return value


class ResumePlan(NamedTuple):
    """How this invocation starts: its arguments for Hydra, and what ``resume=`` continues."""

    arguments: list[str]
    checkpoint: Path | None = None
    stored_overrides: tuple[str, ...] = ()


def resume_arguments(arguments: list[str]) -> ResumePlan:
    """The arguments that continue the run named by ``resume=`` (with its checkpoint and the
    overrides it stores), or ``arguments`` unchanged.

    The run's own overrides (stored in its checkpoint, checked by :func:`stored_overrides`)
    come first, then the command line's, which win key by key; Hydra's run folder is the run's
    folder, and Hydra's files for this session go to ``.hydra/resume_<time>`` so the run's
    original ``.hydra`` stays intact. ``resume=auto`` is left for the task to handle.

    Raises:
        ConfigError: ``resume=`` is combined with a sweep or with ``restart_from_weights=``.
        CheckpointError: The checkpoint cannot be read, or its stored overrides do not pass.
        RunFolderError: The run folder holds a symbolic link (the run writes into it).
    """
    value = _raw_resume_value(arguments)
    if value is None or value in ("", "null", AUTO):
        return ResumePlan(arguments)
    overrides = command_line_overrides([a for a in arguments if override_key(a) != "resume"])
    if "-m" in arguments or "--multirun" in arguments:
        raise ConfigError(
            "resume= continues one run; it cannot be swept. Resume each job of a sweep by its "
            "folder (resume=<sweep folder>/<job number>), or sweep with resume=auto so each "
            "job continues from its own folder's latest checkpoint."
        )
    if any(override_key(o) == "restart_from_weights" for o in overrides):
        raise ConfigError(
            "resume= and restart_from_weights= are two ways to start: resume= continues a run "
            "exactly, restart_from_weights= starts a new run from its weights. Give only one."
        )
    from hydra_pipeline.engine.checkpoint import (
        CHECKPOINT_DIRECTORY,
        find_checkpoint,
        latest_checkpoint,
        load_checkpoint,
    )

    if Path(value).is_dir() and latest_checkpoint(Path(value)) is None:
        raise _nothing_to_resume(Path(value))
    checkpoint = find_checkpoint(Path(value)).resolve()
    stored = stored_overrides(checkpoint, load_checkpoint(checkpoint).get("metadata", {}))
    given_keys = {override_key(o) for o in overrides}
    merged = [o for o in stored if override_key(o) not in given_keys] + overrides
    folder = checkpoint.parent
    run_dir = folder.parent if folder.name == CHECKPOINT_DIRECTORY else folder
    refuse_links(run_dir, "the resumed run")
    extra = [f"resume={hydra_quote(str(checkpoint))}"]
    if "hydra.run.dir" not in given_keys:
        extra.append(f"hydra.run.dir={hydra_quote(str(run_dir))}")
    extra.append(f"hydra.output_subdir=.hydra/resume_{time.strftime('%Y%m%d_%H%M%S')}")
    flags = [a for a in arguments if a not in overrides and not re.match(r"^\+?resume=", a)]
    return ResumePlan(flags + merged + extra, checkpoint, tuple(stored))


def _nothing_to_resume(run_dir: Path) -> CheckpointError:
    """The error for a run folder holding no checkpoint: its run ended before its first one
    (stopped while starting, or failed or killed early), so it can only start again."""
    saved = run_dir / SAVED_CONFIG_FOLDER / "overrides.yaml"  # Hydra's record of them
    again = " Start it again with the command that started it."
    try:
        overrides = OmegaConf.to_container(OmegaConf.load(saved))
    except Exception:  # no such file, or not what Hydra writes: no command to offer
        overrides = None
    if isinstance(overrides, list) and all(isinstance(o, str) for o in overrides):
        again = f" Start it again: {rerun_command(overrides)}"
    return CheckpointError(
        f"Run folder '{run_dir}' holds no checkpoint: its run ended before writing one "
        "(stopped while starting, or failed or killed before its first save), so there is "
        f"nothing to resume.{again}"
    )


def stored_overrides(checkpoint: Path, metadata: Mapping[str, Any]) -> list[str]:
    """The overrides a checkpoint stores, after the checks the command line gets and the
    rule that a checkpoint cannot change Hydra's settings, the allow-list or how a run starts.

    Raises:
        CheckpointError: An override is malformed, swept, or sets such a key; the message
            names the checkpoint.
    """
    stored = metadata.get("overrides", [])
    if not isinstance(stored, list) or not all(isinstance(o, str) for o in stored):
        raise CheckpointError(
            f"Checkpoint '{checkpoint}' stores overrides that are not a list of strings "
            f"({stored!r}); hydra_pipeline did not write it."
        )
    for override in stored:
        try:
            parsed = OverridesParser.create().parse_override(override)
        except HydraException as error:
            reason = str(error).strip().splitlines()[0]
            raise CheckpointError(
                f"Checkpoint '{checkpoint}' stores an override that does not parse: "
                f"'{override}' ({reason})."
            ) from None
        key = parsed.key_or_group
        problem = ""
        if parsed.is_sweep_override():
            problem = "is a sweep; a checkpoint belongs to one run"
        elif sets_hydra(key, parsed.package):  # the key, the group or the package after @
            problem = "sets Hydra's own settings"
        elif key in TRUST_KEYS:
            problem = "extends the allow-list (only the command line may)"
        elif key in RUN_KEYS:
            problem = "says how a run starts, which the resume command decides"
        if problem:
            raise CheckpointError(
                f"Checkpoint '{checkpoint}' stores the override '{override}', which {problem}: "
                "a checkpoint's overrides are data, re-applied only to rebuild the run's own "
                "config. Resume from a checkpoint hydra_pipeline wrote for this run."
            )
    return list(stored)


# --------------------------------------------------------------------------------------------
# The run's structure


def run_structure(cfg: DictConfig) -> dict[str, Any]:
    """What a resumed run must keep: the model, task and optimizer configs whole, and each
    loss's ``_target_``, as plain values keyed by their config keys."""
    structure: dict[str, Any] = {}
    for key in _STRUCTURAL_KEYS:
        node = OmegaConf.select(cfg, key)
        structure[key] = OmegaConf.to_container(node, resolve=True) if node is not None else None
    for name, loss in (OmegaConf.select(cfg, "pipeline.named_losses") or {}).items():
        structure[f"pipeline.named_losses.{name}._target_"] = OmegaConf.select(loss, "_target_")
    return structure


def _flatten(value: Any, key: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for name, item in value.items():
            flat.update(_flatten(item, f"{key}.{name}"))
        return flat or {key: {}}
    return {key: value}


def check_same_structure(checkpoint: Path, stored: Any, current: Mapping[str, Any]) -> None:
    """Refuse to continue a run whose model, task, optimizer or losses differ from the
    checkpoint's run.

    Raises:
        CheckpointError: The checkpoint records no structure, or a structural value differs;
            the message names the first keys that differ, with both values.
    """
    if not isinstance(stored, Mapping):
        raise CheckpointError(
            f"Checkpoint '{checkpoint}' does not record its run's structure (it was written by "
            "an earlier version of hydra_pipeline), so a resume cannot be checked. Start a new "
            "run from its weights with restart_from_weights= instead."
        )
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for key in sorted(set(stored) | set(current)):
        before.update(_flatten(stored.get(key), key))
        after.update(_flatten(current.get(key), key))
    differing = [
        key
        for key in set(before) | set(after)
        if before.get(key) != after.get(key) and key not in _IMPLEMENTATION_KEYS
    ]
    # What is built (a _target_ or a class_type) explains the rest: name it first.
    differing.sort(key=lambda key: (not key.endswith(("._target_", ".class_type")), key))
    differences = [
        f"'{key}' is {after.get(key)!r} here but {before.get(key)!r} in the checkpoint's run"
        for key in differing
    ]
    if differences:
        shown = "; ".join(differences[:3]) + ("; ..." if len(differences) > 3 else "")
        raise CheckpointError(
            f"Checkpoint '{checkpoint}' does not fit this run: {shown}. {RESUME_RULE}"
        )


# --------------------------------------------------------------------------------------------
# Telling the user how to resume


class Invocation(NamedTuple):
    """How this program was started, for the commands that continue or rerun it (a job in
    another process, joblib's, has other arguments of its own).

    Attributes:
        interpreter: The interpreter's arguments (``sys.orig_argv``).
        program: The program's (``sys.argv``).
    """

    interpreter: tuple[str, ...]
    program: tuple[str, ...]

    @classmethod
    def current(cls) -> Invocation:
        """This process's."""
        return cls(tuple(getattr(sys, "orig_argv", sys.argv)), tuple(sys.argv))


def resume_command(
    run_dir: Path, allowed: Sequence[str] = (), invocation: Invocation | None = None
) -> str:
    """The shell command that continues the run in ``run_dir``, as this program was started
    (``python -m hydra_pipeline``, ``hydra-pipeline`` or ``python train.py``; by default by
    this process), with the command line's ``--config-dir``/``--config-name`` and
    ``allowed_targets`` repeated (they are not stored in checkpoints)."""
    return _command(invocation or Invocation.current(), allowed, [f"resume={run_dir}"])


def rerun_command(
    overrides: Sequence[str], allowed: Sequence[str] = (), invocation: Invocation | None = None
) -> str:
    """The shell command that runs a job again from its start with its ``overrides`` (those
    saying how a run starts or what it trusts left out: ``allowed`` gives the latter), as this
    program was started (see :func:`resume_command`)."""
    kept = [o for o in overrides if override_key(o) not in (*RUN_KEYS, *TRUST_KEYS)]
    return _command(invocation or Invocation.current(), allowed, kept)


def _command(invocation: Invocation, allowed: Sequence[str], arguments: Sequence[str]) -> str:
    original = list(invocation.interpreter)
    if "-m" in original[:-1] and original.index("-m") <= 2:
        program = ["python", "-m", original[original.index("-m") + 1]]
    elif original and Path(original[0]).name.startswith("python") and len(original) > 1:
        program = ["python", original[1]]
    else:
        program = [Path(invocation.program[0]).name]
    given = invocation.program[1:]
    kept: list[str] = []
    for index, argument in enumerate(given):
        if argument in ("--config-dir", "-cd", "--config-name", "-cn", "--config-path", "-cp"):
            kept += given[index : index + 2]
        elif re.match(r"^(--config-(dir|name|path)|-c[dnp])=", argument):
            kept.append(argument)
    if allowed:
        kept.append(f"allowed_targets=[{','.join(allowed)}]")
    return shlex.join(program + kept + list(arguments))
