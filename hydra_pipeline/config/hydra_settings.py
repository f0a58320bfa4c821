"""What a config file may set under ``hydra.*``: Hydra's own settings run code too.

Hydra configures Python's logging from ``hydra.job_logging`` and ``hydra.hydra_logging``
(``logging.config`` imports and calls every ``()`` and ``class`` there, and resolves
``ext://`` references), builds ``hydra.launcher`` and ``hydra.sweeper`` recursively (any
``_target_`` inside is called), runs a launcher's setup commands, sets the job's environment
from ``hydra.job.env_set``, re-applies ``hydra.overrides`` to each job of a sweep as if they
had been typed, and imports the modules that ``pkg://`` and ``structured://`` search-path
entries name. So for a config file from elsewhere (a ``--config-dir`` folder, a preset, a
search-path folder; the application's own configs and the command line are trusted):

* it may set Hydra's output folders (``hydra.run``, ``hydra.sweep``, ``hydra.output_subdir``),
  the job's name (a plain file name) and ``hydra.job.chdir``, verbosity, the mode, help texts,
  the search path (each entry that imports code held to the allow-list), callbacks (held to
  the allow-list by :func:`~hydra_pipeline.config.checks.check_hydra_callbacks`), and
  choose a launcher, a sweeper and logging from what is installed;
* in a launcher or sweeper it may set plain values: every ``_target_`` but the plugin's own is
  held to the allow-list like any ``_target_``, a function it names (Optuna's
  ``custom_search_space``) too, and the fields that run commands on the machines a launcher
  starts (Submitit's ``setup``, Ray's ``runtime_env`` and cluster commands, ...) are refused;
* in a logging config every class, factory and ``ext://`` object is held to the allow-list
  (the standard library's stream and file handlers, formatters and filters are allowed), and
  a log file must lie in the run's output folder;
* in those nodes Hydra builds, a ``${...}`` may refer only to Hydra's own settings, the time
  and environment variables, so that nothing checked turns into something else;
* every other ``hydra.*`` value (``hydra.job.env_set``, ``hydra.overrides``, ...) is refused:
  only the command line may set it.

:func:`check_loaded_config` applies these rules to a config file from elsewhere before Hydra
merges it, and :func:`check_added_search_path` to the search path a primary config adds; the
application has Hydra call both (see ``compat.check_before_hydra_merges``).
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from hydra_pipeline.config.checks import config_nodes
from hydra_pipeline.config.compat import LoadedConfig
from hydra_pipeline.config.resolvers import check_side_effects
from hydra_pipeline.config.trust import AllowList, session_allow_list
from hydra_pipeline.errors import ConfigError

__all__ = [
    "FILE_SETTINGS",
    "check_added_search_path",
    "check_file_settings",
    "check_loaded_config",
    "sets_hydra",
]

FILE_SETTINGS = (
    "run",
    "sweep",
    "output_subdir",
    "job.name",
    "job.chdir",
    "verbose",
    "mode",
    "help",
    "hydra_help",
    "searchpath",
    "callbacks",
    "launcher",
    "sweeper",
    "job_logging",
    "hydra_logging",
)
"""The settings under ``hydra.`` a config file may set (each with the rules above)."""

_BUILT = ("launcher", "sweeper", "job_logging", "hydra_logging")
"""Settings Hydra builds objects from or configures logging with."""

_PLUGIN_TARGETS = ("launcher._target_", "sweeper._target_")
_PLUGIN_FUNCTIONS = ("sweeper.custom_search_space",)
"""Plugin fields naming a function the plugin imports and calls."""

_PLUGIN_COMMANDS = (
    "launcher.setup*",  # Submitit: shell lines run before the job
    "launcher.srun_args*",  # Submitit: srun's options (its environment among them)
    "launcher.additional_parameters*",  # Submitit: sbatch's options
    "launcher.ray.*runtime_env*",  # Ray: packages installed, hooks run in its workers
    "launcher.ray.cluster.*commands*",  # Ray on AWS: commands run on the cluster's machines
    "launcher.ray.cluster.docker.run_options*",
    "launcher.ray.cluster.file_mounts*",
    "launcher.env_setup*",
    "launcher.sync_up*",
    "launcher.sync_down*",
)
"""Plugin fields whose plain values become commands, code or files on the machines a
launcher starts."""

_LOGGING_CALLABLES = ("()", "class", "listener")
"""Keys of a logging config whose value ``logging.config`` imports and calls."""

_OUTPUT_DIR = re.compile(r"^\$\{hydra[.:]runtime\.output_dir\}/")
_IN_OUTPUT_DIR = re.compile(r"^(?:[\w.\-]|\$\{hydra[.:]job\.(?:name|num)\})+$")
_JOB_NAME = re.compile(r"^[\w.\-]+$")
_INTERPOLATION = re.compile(r"\$\{\s*([^\s:}${]*)\s*(:?)")
_INTERPOLATION_RESOLVERS = ("now", "oc.env", "hydra")
_RULE = (
    "A config file may set, under hydra.*, only the output folders, the job's name and chdir, "
    "verbosity, the mode, help texts, the search path and callbacks, and choose a launcher, a "
    "sweeper and logging from what is installed, with plain values (see the README's trust "
    "section). If you mean it, set it on the command line."
)


def check_loaded_config(loaded: LoadedConfig) -> None:
    """In the application's session, hold a config file from elsewhere that Hydra is about to
    merge to the rules above (see :func:`check_file_settings`)."""
    allow_list = session_allow_list()
    if allow_list is None or _trusted_source(loaded.source, allow_list):
        return
    file = f"{loaded.source.removeprefix('file://').rstrip('/')}/{loaded.path}.yaml"
    check_file_settings(file, loaded.package, loaded.config, allow_list)


def check_added_search_path(entries: Sequence[str]) -> None:
    """In the application's session, hold the search-path entries a primary config adds to
    the allow-list: a ``pkg://`` or ``structured://`` entry imports its module.

    Raises:
        ConfigError: An entry imports a module the run does not trust.
    """
    allow_list = session_allow_list()
    if allow_list is None:
        return
    for entry in entries:
        allow_list.search_path_entry("hydra.searchpath", entry)


def _trusted_source(source: str, allow_list: AllowList) -> bool:
    """Whether configs from the search-path source ``source`` (``pkg://...``,
    ``structured://``, ``file:///...``) are code's: packages and the config store are
    (importing a package is held to the allow-list), and so is the application's own config
    folder; other folders hold files from elsewhere."""
    if not source.startswith("file://"):
        return True
    folder = os.path.realpath(source.removeprefix("file://"))
    return allow_list.config_folder is not None and folder == allow_list.config_folder


def sets_hydra(key_or_group: str, package: str | None = None) -> bool:
    """Whether an override of ``key_or_group`` (placed at ``package``, the part after ``@``)
    sets something under ``hydra``: the key, the group or the package may name it."""
    key = key_or_group.lstrip("+~")
    place = (package or "").removeprefix("_global_").lstrip(".")
    return any(name == "hydra" or name.startswith(("hydra.", "hydra/")) for name in (key, place))


def check_file_settings(file: str, package: str, config: DictConfig, allow_list: AllowList) -> None:
    """Hold what the config file ``file`` sets under ``hydra`` to the rules above.

    Args:
        file: The file's path, for messages.
        package: Where Hydra places its content (``""``: the root).
        config: Its content as loaded (``defaults`` included).
        allow_list: What the run trusts.

    Raises:
        ConfigError: A setting the file may not make; the message names the key and the file.
    """
    contribution, base = _hydra_part(config, package)
    if contribution is None:
        return
    for key, node in config_nodes(contribution, base):
        if isinstance(node, (DictConfig, ListConfig)) and not (
            node._is_none() or node._is_missing()
        ):
            continue  # judged by what it holds
        try:
            _check_setting(key, node._value(), allow_list)
        except ConfigError as error:
            raise ConfigError(f"Config file '{file}': {error}") from None


def _hydra_part(config: DictConfig, package: str) -> tuple[DictConfig | None, str]:
    """What ``config`` placed at ``package`` holds under ``hydra``, and that node's key."""
    content = OmegaConf.masked_copy(config, [str(k) for k in config if k != "defaults"])
    if package == "":
        hydra = content._get_node("hydra") if "hydra" in content else None
        return (hydra if isinstance(hydra, DictConfig) else None), "hydra"
    if sets_hydra(package):
        return content, package
    return None, ""


def _setting(relative: str) -> str | None:
    """The entry of :data:`FILE_SETTINGS` that ``relative`` (a key under ``hydra.``) lies in."""
    for setting in FILE_SETTINGS:
        if relative == setting or relative.startswith(f"{setting}."):
            return setting
    return None


def _check_setting(key: str, value: Any, allow_list: AllowList) -> None:
    check_side_effects(key, value)
    relative = key.removeprefix("hydra").lstrip(".")
    setting = _setting(relative)
    if setting is None:
        raise ConfigError(f"'{key}' is set ({value!r}), which a config file may not. {_RULE}")
    if setting == "job.name" and not (isinstance(value, str) and _JOB_NAME.match(value)):
        raise ConfigError(
            f"'{key}' is {value!r}: the job's name is a file name in the run's folder (its "
            "log file), so a config file may give only a plain name (letters, digits, '_', "
            "'-', '.')."
        )
    if setting in _BUILT and isinstance(value, str) and "${" in value:
        _check_interpolation(key, value)
    if setting in ("launcher", "sweeper"):
        _check_plugin_value(key, relative, value, allow_list)
    elif setting in ("job_logging", "hydra_logging"):
        _check_logging_value(key, value, allow_list)


def _check_interpolation(key: str, value: str) -> None:
    """Refuse a ``${...}`` in a node Hydra builds that refers to anything but Hydra's own
    settings, the time or an environment variable (it could become a node with a
    ``_target_``, or a path, after the checks)."""
    for name, resolver in _INTERPOLATION.findall(value):
        allowed = (
            name in _INTERPOLATION_RESOLVERS
            if resolver
            else name.startswith((".", "hydra.")) or name == "hydra"
        )
        if not allowed:
            raise ConfigError(
                f"'{key}' is {value!r}: in Hydra's launcher, sweeper and logging settings a "
                "config file may refer only to Hydra's own settings (${hydra....}), the time "
                "(${now:...}) and environment variables (${oc.env:...}). Write the value itself."
            )


def _check_plugin_value(key: str, relative: str, value: Any, allow_list: AllowList) -> None:
    """A launcher's or sweeper's value from a file: plain values only."""
    if relative in _PLUGIN_TARGETS:
        allow_list.hydra_plugin(key, str(value))
    elif relative.endswith("._target_"):
        allow_list.target(key.removesuffix("._target_"), str(value))
    elif relative in _PLUGIN_FUNCTIONS and value is not None:
        allow_list.user_object(key, str(value), what="function")
    elif any(fnmatch.fnmatchcase(relative, pattern) for pattern in _PLUGIN_COMMANDS):
        field = re.sub(r"(\.\d+)+$", "", key)  # the field, not one entry of its list
        raise ConfigError(
            f"'{field}' is set ({value!r}): the launcher turns it into commands, code or files "
            "on the machines it starts, so only the command line may set it."
        )
    elif relative.startswith("sweeper.params."):
        swept = relative.removeprefix("sweeper.params.")
        group, _, package = swept.partition("@")
        if sets_hydra(group, package):
            raise ConfigError(
                f"'{key}' sweeps '{swept}', one of Hydra's own settings: each job would "
                "apply it as if it had been typed. Only the command line may sweep them."
            )


def _check_logging_value(key: str, value: Any, allow_list: AllowList) -> None:
    """A logging config's value from a file: allowed classes, and files in the run."""
    name = key.rsplit(".", 1)[-1]
    if not isinstance(value, str):
        return
    if name in _LOGGING_CALLABLES or value.startswith("ext://"):
        allow_list.logging_callable(key, value)
    elif name == "filename":
        inside = _OUTPUT_DIR.sub("", value)
        if inside == value or not _IN_OUTPUT_DIR.match(inside) or ".." in inside.split("/"):
            raise ConfigError(
                f"'{key}' is {value!r}: a log file a config file names must lie in the run's "
                "output folder, as ${hydra.runtime.output_dir}/<name>.log."
            )
