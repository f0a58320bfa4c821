"""OmegaConf resolvers the presets use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra_pipeline.config.compat import register_resolver
from hydra_pipeline.errors import ConfigError

__all__ = ["OUTPUT_FOLDER_KEYS", "check_side_effects", "register_resolvers"]

OUTPUT_FOLDER_KEYS = ("hydra.run.dir", "hydra.sweep.dir")
"""The keys where ``new_folder`` may be used: it creates the folder when it is resolved."""


def total_max_stage_steps(stages: Any) -> int:
    """The sum of the stages' ``max_stage_steps``: the length of a whole-run LR schedule.

    Used as ``${total_max_stage_steps:${pipeline.pipeline_stages}}``.
    """
    return sum(max(int(stage.max_stage_steps), 0) for stage in stages)


def new_folder(path: str) -> str:
    """``path`` if no such folder exists yet, else ``path_2``, ``path_3``, ...: the first that
    does not, created at once so that no other process takes it.

    Used as ``hydra.run.dir: ${new_folder:outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}}``, so two
    runs started in the same second get a folder each instead of sharing one. Registered with
    caching: a config (and every job of a sweep, into which Hydra copies the cache) resolves
    it once. It creates a folder, so it may be used only for Hydra's output folders
    (:data:`OUTPUT_FOLDER_KEYS`; see :func:`check_side_effects`).
    """
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    candidate, attempt = base, 1
    while True:
        try:
            candidate.mkdir()
            return str(candidate)
        except FileExistsError:
            attempt += 1
            candidate = base.with_name(f"{base.name}_{attempt}")


def check_side_effects(key: str, value: Any) -> None:
    """Refuse ``new_folder`` in ``value`` (a config value as written, before resolution) at
    any key but :data:`OUTPUT_FOLDER_KEYS`: resolving it would create a folder, anywhere,
    before the config is checked. (A resolver cannot see its key and cache its result too.)

    Raises:
        ConfigError: It is used at another key.
    """
    if isinstance(value, str) and "new_folder:" in value and key not in OUTPUT_FOLDER_KEYS:
        raise ConfigError(
            f"'{key}' uses new_folder ({value!r}), which creates the folder it names: it may "
            f"be used only for Hydra's output folders ({', '.join(OUTPUT_FOLDER_KEYS)})."
        )


def register_resolvers() -> None:
    """Register the resolvers (once per process)."""
    register_resolver("total_max_stage_steps", total_max_stage_steps)
    register_resolver("new_folder", new_folder, use_cache=True)
