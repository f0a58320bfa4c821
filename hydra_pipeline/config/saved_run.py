"""A run's saved config: what the evaluate command and ``Policy.from_run`` rebuild a run's task
and model from.

The training app saves the run's config, every ``${...}`` resolved, as
``<run>/.hydra/resolved_config.yaml``. It is a file, so it is not trusted: what is rebuilt from
it (the task and the model, with the allow-list the run was started with) goes through the
same startup checks and trust gate as a config composed from the command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hydra_pipeline.config.checks import check_config, dotted_key
from hydra_pipeline.config.compat import load_yaml
from hydra_pipeline.config.root import Config
from hydra_pipeline.config.trust import AllowList
from hydra_pipeline.errors import ConfigError

__all__ = ["RESOLVED_CONFIG", "SAVED_CONFIG_FOLDER", "saved_run_config"]

SAVED_CONFIG_FOLDER = ".hydra"
"""Where a run keeps Hydra's files and its resolved config (Hydra's ``output_subdir``)."""

RESOLVED_CONFIG = "resolved_config.yaml"
"""The file name of a run's resolved config."""


_REBUILT = ("task", "model", "allowed_targets")
"""The keys of a run's config that are rebuilt from it (and checked)."""

_READ = ("seed", "evaluation", "normalization")
"""The other keys of a run's config that are read from it (and type-checked)."""


def saved_run_config(
    run: Path,
    task_overrides: Mapping[str, Any] | None = None,
    *,
    allow_list: AllowList | None = None,
    key: str = "run",
) -> DictConfig:
    """The task and model configs ``run`` trained with (its task updated by
    ``task_overrides``), with its seeds and ``evaluation`` node, checked.

    Args:
        run: The run's output folder.
        task_overrides: Task keys to change (``{"num_envs": 1}``), or a whole task node with
            its own ``_target_``.
        allow_list: What the config may build beyond the package (by default the active one:
            the application's, inside a job).
        key: How the caller names ``run`` in messages (a config key or an argument).

    Raises:
        ConfigError: ``run`` is not a run folder, it holds no saved config, the file cannot be
            read, or the config does not pass the startup checks.
    """
    if not run.is_dir():
        raise ConfigError(
            f"'{key}' is '{run}', which is not a folder. Give the output folder of a training "
            "run (it holds checkpoints/ and .hydra/)."
        )
    path = run / SAVED_CONFIG_FOLDER / RESOLVED_CONFIG
    inner_runs = [] if path.is_file() else _runs_inside(run)
    if inner_runs:
        names = [folder.name for folder in inner_runs]
        raise ConfigError(
            f"'{key}': '{run}' holds runs rather than being one (a job with seeds=[...] "
            f"trains each seed in a folder of its own; a sweep, each job): {', '.join(names)}. "
            f"Give one of them, e.g. {key}={inner_runs[0]}."
        )
    if not path.is_file():
        raise ConfigError(
            f"'{key}': run folder '{run}' holds no saved config ({SAVED_CONFIG_FOLDER}/"
            f"{RESOLVED_CONFIG}), so its task and model cannot be rebuilt. Give the folder of "
            "a run of the hydra-pipeline app (runs with hydra.output_subdir=null save no "
            "config)."
        )
    try:
        cfg = load_yaml(path)  # bounded: a file from elsewhere may be an alias bomb
    except Exception as error:  # unreadable, not YAML, or too large (a yaml.YAMLError)
        reason = (str(error).strip().splitlines() or [""])[0]
        raise ConfigError(f"'{key}': cannot read the saved config '{path}': {reason}") from None
    if not isinstance(cfg, DictConfig) or not isinstance(cfg.get("task"), DictConfig):
        found = cfg.get("task") if isinstance(cfg, DictConfig) else cfg
        raise ConfigError(
            f"'{key}': '{path}' is not a run's config: its 'task' is {found!r}, not a config node."
        )
    _check_types(cfg, path, key)
    if task_overrides:
        cfg.task = OmegaConf.merge(cfg.task, OmegaConf.create(dict(task_overrides)))
    check_config(OmegaConf.masked_copy(cfg, [name for name in _REBUILT if name in cfg]), allow_list)
    return cfg


def _runs_inside(folder: Path) -> list[Path]:
    """The run folders directly inside ``folder`` (those holding a saved config), by name."""
    inside = [
        child
        for child in folder.iterdir()
        if not child.is_symlink() and (child / SAVED_CONFIG_FOLDER / RESOLVED_CONFIG).is_file()
    ]
    return sorted(inside, key=lambda child: (len(child.name), child.name))


def _check_types(cfg: DictConfig, path: Path, key: str) -> None:
    """Type-check the values read from the saved config against the run's schema.

    Raises:
        ConfigError: A value has the wrong type; the message names the file and the key.
    """
    schema = OmegaConf.structured(Config)
    for name in (name for name in (*_REBUILT, *_READ) if name in cfg):
        try:
            OmegaConf.merge(schema, OmegaConf.masked_copy(cfg, [name]))
        except OmegaConfBaseException as error:
            where = dotted_key(str(error.full_key or name))
            problem = (error.msg or str(error)).strip().splitlines()[0]
            raise ConfigError(
                f"'{key}': the saved config '{path}' has '{where}' of the wrong type ({problem})."
            ) from None
