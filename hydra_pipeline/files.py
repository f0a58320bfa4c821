"""Files several processes share: temporary names for atomic writes, and their clean-up.

A file is written atomically by writing a temporary file next to it, named after the writing
process, and renaming it into place. A process killed in between leaves the temporary file
behind; :func:`remove_stale_temporaries` deletes those whose process has ended.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["process_is_running", "remove_stale_temporaries", "temporary_path"]

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
    """Whether a process with this id runs on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
