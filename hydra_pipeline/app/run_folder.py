"""A run folder belongs to one process at a time, and a new run never overwrites another's.

:func:`claimed_run_folder` holds an exclusive lock on the folder for the run's life (an OS file
lock, which the kernel releases when the process ends, however it ends, so a killed run cannot
leave it stuck), refuses to start a new run over another run's results, and checks that every
folder the run writes to is writable before anything trains.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from hydra_pipeline.errors import RunFolderError

__all__ = ["LOCK_FILE", "RESULT_FILES", "claimed_run_folder", "refuse_existing_results"]

LOCK_FILE = ".hydra_pipeline.lock"
"""The lock file in a run folder; it names the process holding the folder."""

RESULT_FILES = ("summary.json", "checkpoints")
"""What a run leaves behind that a new run in the same folder would overwrite."""


@contextlib.contextmanager
def claimed_run_folder(folder: Path, *, writes_to: tuple[str, ...] = ("",)) -> Iterator[None]:
    """Hold ``folder`` for this process while the block runs.

    Args:
        folder: The run's output folder.
        writes_to: Sub-folders the run writes to (``""``: the folder itself); each must be a
            writable folder.

    Raises:
        RunFolderError: Another process holds the folder, or a folder cannot be written; the
            message names the folder and the fix.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / LOCK_FILE, "a+")  # noqa: SIM115 -- held until the block ends
    except OSError as error:
        raise _unwritable(folder, error) from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderError(
                f"Run folder '{folder}' is in use by another process ({_owner(lock)}). Wait for "
                "it to end, or run in another folder (hydra.run.dir=<folder>)."
            ) from None
        try:
            lock.truncate(0)
            lock.write(
                json.dumps(
                    {"pid": os.getpid(), "host": socket.gethostname(), "since": time.ctime()}
                )
            )
            lock.flush()
            for name in writes_to:
                _check_writable(folder / name)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _owner(lock: object) -> str:
    try:
        with open(getattr(lock, "name", ""), encoding="utf-8") as file:
            owner = json.load(file)
        return f"pid {owner['pid']} on {owner['host']}, since {owner['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its pid is unknown"


def refuse_existing_results(folder: Path) -> None:
    """Refuse to start a new run in a folder holding another run's results.

    Raises:
        RunFolderError: The folder holds a summary or checkpoints.
    """
    found = [name for name in RESULT_FILES if _holds_results(folder / name)]
    if found:
        raise RunFolderError(
            f"Run folder '{folder}' already holds a run's results ({', '.join(found)}); a new "
            f"run there would overwrite them. Continue that run with resume={folder} (or "
            "resume=auto), or start the new run in another folder (hydra.run.dir=<folder>; "
            "by default each run gets a new one)."
        )


def _holds_results(path: Path) -> bool:
    if path.is_dir():
        return any(child.suffix == ".pt" for child in path.iterdir())
    return path.exists()


def _check_writable(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(
            f"'{folder}' is a file, where the run keeps a folder of its results. Move it away, "
            "or choose another output folder (hydra.run.dir=<folder>)."
        )
    probe = folder / f".write_probe.{os.getpid()}"
    existed = folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
        if not existed:
            folder.rmdir()  # leave no trace: the run creates it when it first writes there
    except OSError as error:
        raise _unwritable(folder, error) from None


def _unwritable(folder: Path, error: OSError) -> RunFolderError:
    reason = error.strerror or str(error)
    return RunFolderError(
        f"Cannot write to '{folder}': {reason}. The run needs it for its results; choose a "
        "writable output folder (hydra.run.dir=<folder>, or hydra.sweep.dir=<folder> for "
        "sweeps), or make this one writable."
    )
