"""Files several processes share, and folders handed over from elsewhere.

A file is written atomically by writing a temporary file next to it, named after the writing
process, and renaming it into place. A process killed in between leaves the temporary file
behind; :func:`remove_stale_temporaries` deletes those whose process has ended.

A run or sweep folder from elsewhere (a colleague's results, a downloaded benchmark run) is
data: what the tools write, delete or rebuild in it must stay inside it. :func:`refuse_links`
refuses one holding symbolic links, and :func:`inside` a path read from one of its files that
leads out of it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hydra_pipeline.errors import RunFolderError

__all__ = [
    "inside",
    "process_is_running",
    "refuse_links",
    "remove_stale_temporaries",
    "temporary_path",
]

_TEMPORARY = re.compile(r"^\..+\.(\d+)\.tmp$")


def temporary_path(path: Path) -> Path:
    """Where this process writes ``path`` before renaming it into place."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files in ``folder`` left by processes that have ended (and by
    this one, which has nothing half-written while it cleans up)."""
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        match = _TEMPORARY.match(child.name)
        if match and (
            int(match.group(1)) == os.getpid() or not process_is_running(int(match.group(1)))
        ):
            child.unlink(missing_ok=True)


def process_is_running(pid: int) -> bool:
    """Whether a process with this id runs on this machine. A zombie (a process that ended
    but whose parent has not collected its exit status yet: the ranks of a killed ``torchrun``
    in a container whose first process is slow to collect orphans) does not."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """Whether the process has ended and waits to be collected (read from Linux's ``/proc``;
    where there is none, ``False``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # "pid (command) state ...": the command may hold spaces and parentheses.
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def refuse_links(folder: Path, writer: str) -> None:
    """Refuse a folder that holds a symbolic link anywhere inside it (the folder itself may
    be one): ``writer`` writes into the folder, and through a link it would write, append or
    delete elsewhere.

    Raises:
        RunFolderError: The first link found, named with its target.
    """
    for root, folders, files in os.walk(folder):  # links to folders are listed, not followed
        for name in sorted(folders + files):
            path = Path(root) / name
            if path.is_symlink():
                raise RunFolderError(
                    f"'{path}' is a symbolic link (to '{os.readlink(path)}'): {writer} writes "
                    f"into '{folder}', and through a link it would write outside it. Replace "
                    "the link by what it points to (for instance, copy the folder with "
                    "cp -rL), or remove it."
                )


def inside(folder: Path, relative: str, source: Path) -> Path:
    """``folder / relative``, where ``relative`` was read from the file ``source`` in it, if
    it stays inside ``folder``.

    Raises:
        RunFolderError: ``relative`` is absolute or leads out of ``folder``.
    """
    path = folder / relative
    if Path(relative).is_absolute() or not path.resolve().is_relative_to(folder.resolve()):
        raise RunFolderError(
            f"'{source}' names '{relative}', which leads out of '{folder}': the tools write "
            "only inside the folder they are given."
        )
    return path
