"""Checkpoint files: atomic writes, safe loads, and every random generator's state.

A checkpoint is a dict of tensors and plain Python values written with ``torch.save`` to a
temporary file and renamed into place, so a crash never leaves a half-written checkpoint. It is
read with ``torch.load(..., weights_only=True)``, so loading a checkpoint from elsewhere cannot
run code.
"""

from __future__ import annotations

import os
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hydra_pipeline.engine.normalization import Normalization
from hydra_pipeline.errors import CheckpointError
from hydra_pipeline.files import temporary_path

__all__ = [
    "BEST_CHECKPOINT",
    "BEST_OR_LAST",
    "CHECKPOINT_DIRECTORY",
    "capture_rng_state",
    "checkpoint_name",
    "checkpoints_named",
    "find_checkpoint",
    "latest_checkpoint",
    "load_checkpoint",
    "load_weights",
    "picked_by_default",
    "require_resumable",
    "restore_normalization",
    "restore_rng_state",
    "run_checkpoints",
    "save_checkpoint",
]

CHECKPOINT_DIRECTORY = "checkpoints"
"""Where a run keeps its checkpoints, relative to the run's output folder."""

BEST_CHECKPOINT = "best.pt"
"""The checkpoint of a run's best evaluation, in its checkpoint folder (not a resume point of
its own: resuming takes the latest scheduled checkpoint)."""

_FORMAT = "hydra_pipeline/4"
"""Format 4 keeps the evaluation metrics waiting for the next metric point apart from the
training metrics (``engine.evaluations``); format 3 stored each process's own state
(environments, episodes, the model's memory, random generators) per rank, under ``ranks``;
format 2 added the acting state (a model's memory) and format 1 had none, both with one
process's state at the top level. The weights of every format load; only format 4 resumes."""
_READABLE_FORMATS = ("hydra_pipeline/1", "hydra_pipeline/2", "hydra_pipeline/3", _FORMAT)
_NAME = re.compile(r"^stage_(\d+)__steps_(\d+)\.pt$")

_FIELDS: tuple[tuple[str, tuple[type, ...], bool], ...] = (
    ("model", (dict,), True),
    ("total_steps", (int,), True),
    ("pipeline", (dict,), True),
    ("pipeline.current_stage_index", (int, type(None)), True),
    ("pipeline.stages", (list,), True),
    ("metadata", (dict,), False),
    ("normalization", (dict, type(None)), False),
)
"""What every readable checkpoint holds and what the tools read from it: (field, its types,
whether it is required)."""
_RESUMED_FIELDS: tuple[tuple[str, tuple[type, ...], bool], ...] = (
    ("world_size", (int,), True),
    ("ranks", (list,), True),
    ("optimizer", (dict,), True),
    ("engine", (dict,), True),
    ("metadata", (dict,), True),
)
"""What resuming reads besides (checkpoints of the current format)."""


def checkpoint_name(stage_index: int, total_steps: int) -> str:
    """File name of the checkpoint written after ``stage_index``'s rollout at ``total_steps``."""
    return f"stage_{stage_index:02d}__steps_{total_steps:012d}.pt"


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` to ``path`` atomically: a temporary file, flushed, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        with open(temporary, "wb") as file:
            torch.save({"format": _FORMAT, **payload}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: The file is missing, unreadable, corrupt or truncated, not a
            hydra_pipeline checkpoint, or lacks a field the tools read (or holds it with
            another type). The message names the file, the field and what to do.
    """
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file '{path}' does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"Checkpoint file '{path}' is corrupt or truncated, or holds objects other than "
            "tensors and plain Python values (so hydra_pipeline did not write it, and loading "
            "it could run code). Resume from another checkpoint of the run (pass its file to "
            "resume=), or start a new run."
        ) from None
    except Exception as error:
        # On corrupt bytes the (weights-only) unpickler fails with nearly any exception type:
        # KeyError, IndexError and struct.error as well as RuntimeError.
        reason = (str(error).strip().splitlines() or [""])[0]
        raise CheckpointError(
            f"Checkpoint file '{path}' is corrupt or truncated and cannot be loaded "
            f"({type(error).__name__}: {reason}). Resume from another checkpoint of the run "
            "(pass its file to resume=), or start a new run."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") not in _READABLE_FORMATS:
        raise CheckpointError(
            f"'{path}' is not a hydra_pipeline checkpoint (expected format {_FORMAT!r})."
        )
    _check_fields(payload, path, _FIELDS)
    return payload


def _check_fields(
    payload: dict[str, Any], path: Path, fields: tuple[tuple[str, tuple[type, ...], bool], ...]
) -> None:
    """Refuse a checkpoint missing one of ``fields`` or holding it with another type.

    Raises:
        CheckpointError: The first such field, named with the file.
    """
    for field, types, required in fields:
        value: Any = payload
        for part in field.split("."):
            value = value.get(part, _ABSENT) if isinstance(value, dict) else _ABSENT
        if value is _ABSENT:
            if required:
                raise CheckpointError(
                    f"Checkpoint '{path}' has no '{field}' entry: hydra_pipeline did not write "
                    "it (or it was changed since). Use another checkpoint of the run."
                )
            continue
        if not isinstance(value, types) or isinstance(value, bool):
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise CheckpointError(
                f"Checkpoint '{path}' has '{field}': {_short(value)}, which is not {expected}: "
                "hydra_pipeline did not write it (or it was changed since). Use another "
                "checkpoint of the run."
            )


_ABSENT = object()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def require_resumable(payload: dict[str, Any], path: Path, *, world_size: int) -> None:
    """Refuse to resume from a checkpoint of an earlier format (its weights still load), one
    lacking what resuming reads, or with another number of processes than wrote it (each
    process's environments and random generators are in it).

    Raises:
        CheckpointError: ``payload`` (read from ``path``) is of an earlier format, lacks what
            resuming reads, or was written by a run of another ``world_size``.
    """
    if payload["format"] != _FORMAT:
        raise CheckpointError(
            f"Checkpoint '{path}' was written by an earlier version of hydra_pipeline (format "
            f"{payload['format']!r}; this version resumes {_FORMAT!r}), whose training state "
            f"it cannot continue exactly. Start a new run from its weights with "
            f"restart_from_weights={path}, or resume it with the version that wrote it."
        )
    _check_fields(payload, path, _RESUMED_FIELDS)
    saved = int(payload["world_size"])
    if saved != world_size:
        raise CheckpointError(
            f"Checkpoint '{path}' was written by a run of {saved} process(es), and this run has "
            f"{world_size}: each process's environments and random generators are in the "
            f"checkpoint, so the run resumes exactly only with as many processes. Resume with "
            f"distributed.nproc_per_node={saved} (or torchrun --nproc-per-node={saved}), or "
            f"start a new run from its weights with restart_from_weights={path}."
        )


def load_weights(model: torch.nn.Module, path: Path) -> dict[str, Any]:
    """Load the model weights of the checkpoint at ``path`` into ``model``, and return the
    checkpoint.

    Raises:
        CheckpointError: The checkpoint cannot be read (see :func:`load_checkpoint`) or its
            weights do not fit ``model``.
    """
    payload = load_checkpoint(path)
    try:
        model.load_state_dict(payload["model"])
    except (ValueError, RuntimeError, KeyError, TypeError) as error:
        lines = [line.strip() for line in str(error).strip().splitlines()]
        shown = " ".join(lines[:4]) + (" ..." if len(lines) > 4 else "")
        raise CheckpointError(
            f"The model weights of checkpoint '{path}' do not fit the model built here "
            f"({shown}). The checkpoint's run built its model from another model config, or "
            "for a task with other observation or action spaces."
        ) from None
    return payload


def restore_normalization(
    normalization: Normalization | None, payload: dict[str, Any], path: Path
) -> None:
    """Load the observation and reward statistics of the checkpoint ``payload`` (read from
    ``path``) into ``normalization``; nothing to do when it normalises nothing.

    Raises:
        CheckpointError: The checkpoint's run did not normalise.
    """
    if normalization is None or not normalization.active:
        return
    state = payload.get("normalization")
    if state is None:
        raise CheckpointError(
            f"Checkpoint '{path}' holds no normalisation statistics: its run did not normalise "
            "observations or rewards, but this config does (normalization.observations, "
            "normalization.rewards). Use the run's own normalization settings."
        )
    normalization.load_state_dict(state)


def find_checkpoint(location: Path) -> Path:
    """The checkpoint file to load from ``location``: the file itself, or the latest checkpoint
    (most total steps) of a run folder.

    Raises:
        CheckpointError: ``location`` does not exist, or the folder holds no checkpoint.
    """
    if location.is_file():
        return location
    if not location.is_dir():
        raise CheckpointError(
            f"'{location}' is neither a checkpoint file nor a run folder. Pass a run's output "
            f"folder (the one holding '{CHECKPOINT_DIRECTORY}/') or a checkpoint file."
        )
    latest = latest_checkpoint(location)
    if latest is None:
        raise CheckpointError(
            f"Run folder '{location}' holds no checkpoint in '{CHECKPOINT_DIRECTORY}/': the run "
            "stopped before its first save (see pipeline.save_interval)."
        )
    return latest


def run_checkpoints(run_dir: Path) -> list[Path]:
    """A run folder's scheduled checkpoints (not ``best.pt``), fewest total steps first."""
    folder = run_dir / CHECKPOINT_DIRECTORY
    candidates = [
        (int(match.group(2)), path)
        for path in (folder.iterdir() if folder.is_dir() else ())
        if (match := _NAME.match(path.name))
    ]
    return [path for _, path in sorted(candidates)]


BEST_OR_LAST = "auto"
"""The checkpoint name that picks ``best.pt`` when the run kept one (it evaluated while it
trained), else the latest: what the evaluate command and ``Policy.from_run`` load by
default."""


def checkpoints_named(run_dir: Path, checkpoint: str) -> list[Path]:
    """The checkpoint files of a run that ``checkpoint`` names: ``"auto"`` (``best.pt`` if the
    run kept one, else the latest), ``"last"`` (the latest), ``"best"`` (``best.pt``),
    ``"all"`` (every scheduled one, fewest steps first), or a file (a path, or a file name in
    the run's checkpoint folder).

    Raises:
        CheckpointError: There is no such checkpoint; the message says why and what to use.
    """
    folder = run_dir / CHECKPOINT_DIRECTORY
    if checkpoint == BEST_OR_LAST:
        best = folder / BEST_CHECKPOINT
        return [best] if best.is_file() else checkpoints_named(run_dir, "last")
    if checkpoint == "best":
        best = folder / BEST_CHECKPOINT
        if not best.is_file():
            raise CheckpointError(
                f"checkpoint=best: run folder '{run_dir}' has no {CHECKPOINT_DIRECTORY}/"
                f"{BEST_CHECKPOINT}: the run did not evaluate while it trained (see "
                "evaluation.interval). Use checkpoint=last, or checkpoint=all."
            )
        return [best]
    if checkpoint in ("last", "all"):
        found = run_checkpoints(run_dir)
        if not found:
            raise CheckpointError(
                f"checkpoint={checkpoint}: run folder '{run_dir}' holds no checkpoint in "
                f"'{CHECKPOINT_DIRECTORY}/': the run stopped before its first save (see "
                "pipeline.save_interval)."
            )
        return found if checkpoint == "all" else found[-1:]
    path = Path(checkpoint)
    if not path.is_file() and (folder / checkpoint).is_file():
        path = folder / checkpoint
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint={checkpoint}: no such checkpoint file (nor '{folder / checkpoint}'). "
            f"Give {BEST_OR_LAST}, last, best, all, or a checkpoint file."
        )
    return [path]


def picked_by_default(path: Path) -> str:
    """What :data:`~hydra_pipeline.engine.checkpoint.BEST_OR_LAST` picked at ``path``, and
    why, for the user to read."""
    if path.name == BEST_CHECKPOINT:
        return f"'{path}', the best evaluation while the run trained"
    return (
        f"'{path}', the latest checkpoint (the run kept no {BEST_CHECKPOINT}: it did not evaluate "
        "while it trained)"
    )


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the most total steps in a run folder, or ``None`` if it has none."""
    checkpoints = run_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


def capture_rng_state() -> dict[str, Any]:
    """The state of Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    numpy_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {
                "key": numpy_state["key"].numpy().astype(np.uint32),
                "pos": numpy_state["pos"],
            },
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
