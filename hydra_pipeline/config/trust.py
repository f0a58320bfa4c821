"""The trust gate: the one place that decides what a configuration may import and call.

``_target_`` runs code, and so do a few other values (an optimizer's ``class_type``, a Hydra
callback, a Gymnasium id of the form ``module:Env``, the classes and factories of Hydra's
logging configs, a search-path entry naming a module). The trust model:

* **Trusted**: the installed code, and the command line's own ``allowed_targets=[...]``. From
  the installed code come hydra_pipeline's buildable objects (every schema of
  :data:`~hydra_pipeline.config.store.SCHEMAS`), torch's optimizers and learning-rate
  schedulers, Hydra's plugins and callbacks, the standard library's logging handlers,
  formatters and filters, the import prefixes an application declares in Python
  (``pipeline_app(..., allowed_targets=["my_project"])``), and the application's own config
  folder.
* **Not trusted**: everything a config file or a checkpoint says: presets and experiment files
  from elsewhere, ``--config-dir`` folders, the overrides a checkpoint stores. A config file
  may *use* what is trusted, but its own ``allowed_targets`` cannot extend the list.

A name under ``hydra_pipeline.`` must be one of the package's buildable objects (not just any
callable whose name starts with the prefix: some would look up or call anything). A name under
an allowed prefix is the user's code, vouched for as a whole. Anything else is refused before it
is imported.

:class:`AllowList` holds what is trusted for one run; :func:`allowing` makes it the active one
for a block (the application sets it around each job), and :func:`active_allow_list` reads it.
"""

from __future__ import annotations

import contextlib
import functools
import types
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from hydra.utils import get_object

from hydra_pipeline.config.store import SCHEMAS, target_of
from hydra_pipeline.errors import ConfigError

__all__ = [
    "PACKAGE_PREFIX",
    "AllowList",
    "active_allow_list",
    "allowing",
    "buildable_objects",
    "session_allow_list",
]

PACKAGE_PREFIX = "hydra_pipeline."
"""Names under this prefix must be buildable objects of the package."""

_TORCH_OPTIM = "torch.optim."
_HYDRA_CALLBACKS = "hydra.experimental.callbacks."
_HYDRA_PLUGINS = ("hydra_plugins.", "hydra._internal.core_plugins.")
"""Where Hydra's launchers and sweepers live (Hydra builds no plugin from anywhere else)."""
_INSTALLED_CONFIG_MODULES = ("hydra.", "hydra_plugins.", PACKAGE_PREFIX)
"""Packages of configs a search path may name without an allow-list: Hydra's, its plugins' and
hydra_pipeline's (Hydra imports its plugins' modules anyway)."""
_STANDARD_STREAMS = ("sys.stdout", "sys.stderr")
"""What a logging config may name with ``ext://`` besides allowed code."""
_IMPORTING_SCHEMES = ("pkg", "structured")
"""Search-path schemes whose entry names a module Hydra imports."""


@functools.cache
def buildable_objects() -> frozenset[Any]:
    """The package's objects a config may build: the ``_target_`` of every stored schema, and
    ``builder_of`` (the target of optimizer and scheduler configs)."""
    targets = {target_of(schema.node) for schema in SCHEMAS}
    return frozenset(get_object(target) for target in targets if target is not None)


@dataclass(frozen=True)
class AllowList:
    """What one run trusts beyond the installed package.

    Attributes:
        prefixes: Import prefixes of the user's own code (``"my_project."``): any object
            defined under them may be built from a config.
        config_folder: The application's own config folder (an absolute path), when it is a
            folder rather than a package: its files are the application's, not data from
            elsewhere.
    """

    prefixes: tuple[str, ...] = ()
    config_folder: str | None = None

    @classmethod
    def of(cls, *sources: Sequence[str], config_folder: str | None = None) -> AllowList:
        """The allow-list of the prefixes in ``sources`` (a bare module name allows its
        contents: ``my_project`` means ``my_project.``)."""
        prefixes = {
            prefix if prefix.endswith(".") else f"{prefix}."
            for source in sources
            for prefix in source
            if prefix
        }
        return cls(tuple(sorted(prefixes)), config_folder)

    def allows_prefix(self, path: str) -> bool:
        """Whether the dotted ``path`` lies under one of the user's prefixes."""
        return any(path.startswith(prefix) or f"{path}." == prefix for prefix in self.prefixes)

    def execution_whitelist(self) -> list[str]:
        """The same trust as Hydra 1.4's execution allow-list patterns (Hydra checks them in
        addition to this gate, which is stricter)."""
        trusted = (PACKAGE_PREFIX, _TORCH_OPTIM, _HYDRA_CALLBACKS, *self.prefixes)
        return [f"{prefix}*" for prefix in trusted]

    def check_listed(self, key: str, listed: Sequence[str]) -> None:
        """Refuse an ``allowed_targets`` value that lists more than this run trusts (it came
        from a config file or a checkpoint, not from the command line or the code)."""
        extra = sorted(p for p in listed if not self.allows_prefix(p.rstrip(".")))
        if extra:
            raise ConfigError(
                f"'{key}' lists {extra}, which neither the command line nor the application's "
                "code allows: a config file or a checkpoint cannot extend the allow-list. If "
                f"you trust that code, pass allowed_targets='[{','.join(extra)}]' on the command "
                "line."
            )

    # ----------------------------------------------------------------------------------------
    # What a config may name

    def target(self, key: str, path: str) -> Any:
        """The object a ``_target_`` at ``key`` names, if the config may build it.

        Raises:
            ConfigError: ``path`` is not a buildable object of the package, nor under an
                allowed prefix (checked before anything is imported).
        """
        if path.startswith(PACKAGE_PREFIX):
            found = _locate(key, path)
            if _is_buildable(found):
                return found
            raise ConfigError(
                f"'{key}' names '{path}', which is not an object a config may build: only "
                "hydra_pipeline's pipeline objects, losses, tasks, models, data sources, "
                "optimizer and scheduler configs are (each has a schema in "
                "hydra_pipeline.config)."
            )
        return self._user_object(key, path)

    def builder_class(self, key: str, path: str) -> Any:
        """The class an optimizer or scheduler config (``builder_of``) will call.

        Raises:
            ConfigError: ``path`` is neither a torch optimizer or LR scheduler class nor under
                an allowed prefix.
        """
        if path.startswith(_TORCH_OPTIM):
            found = _locate(key, path)
            if _is_torch_optimizer_or_scheduler(found):
                return found
            raise ConfigError(
                f"'{key}' names '{path}' as its class_type, which is not a torch optimizer or "
                "learning-rate scheduler class (a torch.optim.Optimizer or "
                "torch.optim.lr_scheduler.LRScheduler subclass)."
            )
        return self._user_object(key, path, what="class_type")

    def hydra_callback(self, key: str, path: str) -> Any:
        """The class a ``hydra.callbacks`` entry names, if it is an installed Hydra callback:
        hydra_pipeline's, Hydra's own, or one under an allowed prefix.

        Raises:
            ConfigError: It is not a subclass of Hydra's ``Callback`` from those places.
        """
        from hydra.experimental.callback import Callback

        found: Any = None
        if path.startswith((PACKAGE_PREFIX, _HYDRA_CALLBACKS)):
            found = _locate(key, path)
            home = str(getattr(found, "__module__", None) or "")
            if not home.startswith((PACKAGE_PREFIX, _HYDRA_CALLBACKS.rstrip("."))):
                found = None
        elif self.allows_prefix(path):
            found = self._user_object(key, path)
        if isinstance(found, type) and issubclass(found, Callback):
            return found
        raise ConfigError(
            f"'{key}' names '{path}', which is not a Hydra callback (a subclass of "
            "hydra.experimental.callback.Callback from hydra_pipeline, Hydra, or a module "
            "the command line allows with allowed_targets=[...]). Hydra instantiates its "
            "callbacks, so nothing else may be named there."
        )

    def module(self, key: str, module: str) -> None:
        """Refuse a value that would import ``module`` unless the user allowed it.

        Raises:
            ConfigError: ``module`` is not under an allowed prefix.
        """
        if not self.allows_prefix(module):
            raise ConfigError(
                f"'{key}' makes Gymnasium import module '{module}', which is outside the "
                f"allowed import prefixes {list(self.prefixes)}: importing a module runs its "
                f"code. If you trust it, add allowed_targets='[{module}]' to the command line."
            )

    def search_path_entry(self, key: str, entry: str) -> None:
        """Refuse a search-path entry that imports a module (``pkg://`` and ``structured://``
        entries do) other than Hydra's, its plugins', hydra_pipeline's or allowed code.

        Raises:
            ConfigError: The entry names any other module.
        """
        scheme, separator, location = entry.partition("://")
        if not separator or scheme not in _IMPORTING_SCHEMES:
            return  # a folder of files: data
        module = location.replace("/", ".").strip(".")
        if f"{module}.".startswith(_INSTALLED_CONFIG_MODULES) or self.allows_prefix(module):
            return
        raise ConfigError(
            f"'{key}' lists '{entry}', which makes Hydra import module '{module}' (outside the "
            f"allowed import prefixes {list(self.prefixes)}): importing a module runs its code. "
            f"If you trust it, add allowed_targets='[{module}]' to the command line."
        )

    def hydra_plugin(self, key: str, path: str) -> None:
        """Refuse a launcher or sweeper ``_target_`` outside Hydra's plugin packages (checked
        by name: Hydra itself builds only the plugin classes it found there).

        Raises:
            ConfigError: ``path`` is not in ``hydra_plugins`` or Hydra's core plugins.
        """
        if not path.startswith(_HYDRA_PLUGINS):
            raise ConfigError(
                f"'{key}' names '{path}', which is not a Hydra plugin (launchers and sweepers "
                f"live in {' or '.join(p.rstrip('.') for p in _HYDRA_PLUGINS)}). Choose an "
                "installed one, e.g. hydra/launcher=joblib."
            )

    def logging_callable(self, key: str, reference: str) -> None:
        """Refuse a class, factory or ``ext://`` object a logging config names unless it is
        one of the standard library's handlers that write to a stream or file, formatters or
        filters, a standard stream, or allowed code (``logging.config`` imports and calls
        whatever these name).

        Raises:
            ConfigError: ``reference`` names anything else.
        """
        path = reference.removeprefix("ext://")
        if reference.startswith("ext://") and path in _STANDARD_STREAMS:
            return
        if path.startswith("logging.") and _is_standard_logging_class(_locate(key, path)):
            return
        if self.allows_prefix(path):
            self._user_object(key, path, what="logging class or factory")
            return
        streams = " and ".join(f"ext://{stream}" for stream in _STANDARD_STREAMS)
        module = path.rsplit(".", 1)[0]
        raise ConfigError(
            f"'{key}' names '{reference}', which logging.config would import and call. A "
            "logging config may name the standard library's handlers, formatters and filters, "
            f"{streams}, or code the command line allows: if you trust it, add "
            f"allowed_targets='[{module}]' to the command line."
        )

    def user_object(self, key: str, path: str, what: str = "_target_") -> Any:
        """The object at ``path``, if ``path`` and the module defining it are under the
        user's prefixes (see :meth:`target` for hydra_pipeline's own objects).

        Raises:
            ConfigError: It is outside them (checked before anything is imported).
        """
        return self._user_object(key, path, what)

    def _user_object(self, key: str, path: str, what: str = "_target_") -> Any:
        """The object at ``path`` if both ``path`` and the module defining the object lie
        under the user's prefixes.

        ``path`` is checked before anything is imported. The defining module is checked too
        because a path is resolved by attribute access: ``my_project.tasks.os.system`` lies
        under ``my_project.`` and is ``os.system``.
        """
        home: Any = None
        if self.allows_prefix(path):
            found = _locate(key, path)
            attribute = "__name__" if isinstance(found, types.ModuleType) else "__module__"
            home = getattr(found, attribute, None)
            if isinstance(home, str) and self.allows_prefix(home):
                return found
        module = home if isinstance(home, str) else path.rsplit(".", 1)[0]
        where = f" (defined in {home!r})" if isinstance(home, str) else ""
        raise ConfigError(
            f"'{key}' names '{path}'{where} as its {what}, which is outside the allowed import "
            f"prefixes {list(self.prefixes)}. It would run code, so only hydra_pipeline's own "
            "objects, torch's optimizers and schedulers, and your modules allowed on the "
            f"command line are built. If you trust it, add allowed_targets='[{module}]' to the "
            "command line (a config file cannot extend the allow-list)."
        )


def _locate(key: str, path: str) -> Any:
    try:
        return get_object(path)
    except Exception as error:  # Hydra reports import failures as several exception types
        raise ConfigError(f"'{key}' names '{path}', which cannot be imported: {error}") from None


def _is_buildable(found: Any) -> bool:
    try:
        return found in buildable_objects()
    except TypeError:  # unhashable objects are never buildable
        return False


def _is_standard_logging_class(found: Any) -> bool:
    """Whether ``found`` is a handler writing to a stream or a file, a formatter or a filter
    of the standard library's logging package (not a network handler, nor a queue handler,
    which builds further objects)."""
    import logging

    bases = (logging.StreamHandler, logging.NullHandler, logging.Formatter, logging.Filter)
    home = str(getattr(found, "__module__", ""))
    return isinstance(found, type) and issubclass(found, bases) and home.split(".")[0] == "logging"


def _is_torch_optimizer_or_scheduler(found: Any) -> bool:
    import torch

    bases = (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)
    return (
        isinstance(found, type)
        and issubclass(found, bases)
        and found.__module__.startswith(_TORCH_OPTIM)
    )


_ACTIVE: ContextVar[AllowList | None] = ContextVar("hydra_pipeline_allow_list", default=None)


def active_allow_list() -> AllowList:
    """The allow-list in force: the application's, inside a job; otherwise none beyond the
    package (a plain ``train(cfg)`` call builds only hydra_pipeline's and torch's objects)."""
    return _ACTIVE.get() or AllowList()


def session_allow_list() -> AllowList | None:
    """The allow-list of the application's session in progress, or ``None`` outside one
    (Hydra's own settings are applied only by a Hydra run, which the application drives)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def allowing(allow_list: AllowList) -> Iterator[None]:
    """Make ``allow_list`` the active one inside the block."""
    token = _ACTIVE.set(allow_list)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
