"""What differs between the Hydra / OmegaConf versions the package runs on.

hydra-core 1.3 with OmegaConf 2.3 is the supported pair; hydra-core 1.4 (OmegaConf 2.4) is
prepared for: it wants an execution allow-list for ``instantiate``, no ``version_base``, and
OmegaConf's ``register_resolver`` instead of ``register_new_resolver``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import hydra
import omegaconf
from omegaconf import DictConfig, OmegaConf

__all__ = [
    "HYDRA_1_4",
    "check_before_hydra_callbacks",
    "main_arguments",
    "register_resolver",
    "version_base",
]


def _version(module: Any) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", module.__version__)[:2])


HYDRA_1_4 = _version(hydra) >= (1, 4)
"""Whether the installed hydra-core is 1.4 or later."""


def version_base() -> dict[str, str]:
    """The ``version_base`` argument for ``initialize*``: "1.3" on hydra-core 1.3 (its
    defaults, without a warning), none on 1.4 (which deprecates it)."""
    return {} if HYDRA_1_4 else {"version_base": "1.3"}


def main_arguments(execution_whitelist: list[str]) -> dict[str, Any]:
    """Version-dependent arguments of ``hydra.main``: ``version_base`` on 1.3; on 1.4 the
    execution allow-list for what Hydra itself instantiates (callbacks)."""
    if not HYDRA_1_4:
        return version_base()
    return {"execution_whitelist": execution_whitelist}


def check_before_hydra_callbacks(check: Callable[[DictConfig], None]) -> None:
    """Have Hydra call ``check`` on every config it composes for a run or a sweep, before it
    instantiates the config's ``hydra.callbacks`` (once per process).

    Hydra builds its callbacks right after composing the config, before any task function
    runs, and offers no hook in between; this wraps the ``Callbacks`` class its run and
    multirun use, which both versions define in ``hydra._internal.hydra``.
    """
    from hydra._internal import hydra as hydra_internal

    callbacks_class: Any = getattr(hydra_internal, "Callbacks")  # noqa: B009 -- not exported
    if getattr(callbacks_class, "checked_before_building", False):
        return

    class CheckedCallbacks(callbacks_class):  # type: ignore[misc]
        checked_before_building = True

        def __init__(self, config: DictConfig | None = None) -> None:
            if config is not None:
                check(config)
            super().__init__(config)

    setattr(hydra_internal, "Callbacks", CheckedCallbacks)  # noqa: B010 -- not exported


def register_resolver(name: str, resolver: Callable[..., Any], *, use_cache: bool = False) -> None:
    """Register an OmegaConf resolver once per process, with the API of the installed version.

    With ``use_cache``, a config resolves each call once and keeps the value (Hydra copies the
    cache into every job's config of a sweep, as it does for ``${now:...}``).
    """
    if OmegaConf.has_resolver(name):
        return
    if _version(omegaconf) >= (2, 4):
        register = getattr(OmegaConf, "register_resolver")  # noqa: B009 -- 2.3's stubs differ
        register(name, resolver, use_cache=use_cache)
    else:  # OmegaConf 2.3's register_resolver is the legacy, strings-only one
        OmegaConf.register_new_resolver(name, resolver, use_cache=use_cache)
