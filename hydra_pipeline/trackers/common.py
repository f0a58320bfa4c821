"""What the trackers share: importing an optional extra, flattening a config into
parameters, and remembering a tracker's run id in the run folder so a resumed run continues
the same tracked run."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["flat_parameters", "import_extra", "known_run_id", "remember_run_id", "run_title"]


def import_extra(module: str, extra: str) -> ModuleType:
    """Import ``module`` from an optional extra, or say which extra to install.

    Raises:
        ImportError: The module is not installed; the message names the extra.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"This run's {module} tracker needs the {module} package: "
            f'pip install "hydra-pipeline[{extra}]" (or drop the tracker from callbacks).'
        ) from error


def flat_parameters(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``config`` as one level of dotted keys and string values (lists shown as written)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flat_parameters(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def known_run_id(run_dir: Path, tracker: str) -> str | None:
    """The id of the tracker's run this run folder already has (it is being resumed)."""
    path = run_dir / f".{tracker}_run_id"
    return path.read_text().strip() if path.is_file() else None


def remember_run_id(run_dir: Path, tracker: str, run_id: str) -> None:
    """Remember the tracker's run id in ``<run>/.<tracker>_run_id`` for a resumed run."""
    (run_dir / f".{tracker}_run_id").write_text(run_id)


def run_title(run_dir: Path, job: Mapping[str, Any]) -> tuple[str | None, str]:
    """A tracked run's group and name: in a sweep, the sweep's folder and ``job <number>``;
    otherwise no group and the run folder's name."""
    if "sweep_dir" in job:
        sweep = Path(str(job["sweep_dir"]))
        return f"{sweep.parent.name}/{sweep.name}", f"job {job['number']}"
    return None, run_dir.name
