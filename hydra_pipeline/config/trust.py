"""The trust gate: the one place that decides what a configuration may import and call.

``_target_`` runs code, and so do a few other values (an optimizer's ``class_type``, a Hydra
callback, a Gymnasium id of the form ``module:Env``). The trust model:

* **Trusted**: the installed code, and the command line's own ``allowed_targets=[...]``. From
  the installed code come hydra_pipeline's buildable objects (every schema of
  :data:`~hydra_pipeline.config.store.SCHEMAS`), torch's optimizers and learning-rate
  schedulers, Hydra's plugins and callbacks, and the import prefixes an application declares
  in Python (``pipeline_app(..., allowed_targets=["my_project"])``).
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
]

PACKAGE_PREFIX = "hydra_pipeline."
"""Names under this prefix must be buildable objects of the package."""

_TORCH_OPTIM = "torch.optim."
_HYDRA_CALLBACKS = "hydra.experimental.callbacks."


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
    """

    prefixes: tuple[str, ...] = ()

    @classmethod
    def of(cls, *sources: Sequence[str]) -> AllowList:
        """The allow-list of the prefixes in ``sources`` (a bare module name allows its
        contents: ``my_project`` means ``my_project.``)."""
        prefixes = {
            prefix if prefix.endswith(".") else f"{prefix}."
            for source in sources
            for prefix in source
            if prefix
        }
        return cls(tuple(sorted(prefixes)))

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


@contextlib.contextmanager
def allowing(allow_list: AllowList) -> Iterator[None]:
    """Make ``allow_list`` the active one inside the block."""
    token = _ACTIVE.set(allow_list)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
