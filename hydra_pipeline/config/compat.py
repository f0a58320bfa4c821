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
from omegaconf import OmegaConf

__all__ = ["HYDRA_1_4", "main_arguments", "register_resolver", "version_base"]


def _version(module: Any) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", module.__version__)[:2])


HYDRA_1_4 = _version(hydra) >= (1, 4)
"""Whether the installed hydra-core is 1.4 or later."""


def version_base() -> dict[str, str]:
    """The ``version_base`` argument for ``initialize*``: "1.3" on hydra-core 1.3 (its
    defaults, without a warning), none on 1.4 (which deprecates it)."""
    return {} if HYDRA_1_4 else {"version_base": "1.3"}


def main_arguments(allowed_prefixes: tuple[str, ...]) -> dict[str, Any]:
    """Version-dependent arguments of ``hydra.main``: ``version_base`` on 1.3; on 1.4 the
    execution allow-list for what Hydra itself instantiates (callbacks)."""
    if not HYDRA_1_4:
        return version_base()
    return {"execution_whitelist": [f"{prefix}*" for prefix in allowed_prefixes]}


def register_resolver(name: str, resolver: Callable[..., Any]) -> None:
    """Register an OmegaConf resolver once per process, with the API of the installed version."""
    if OmegaConf.has_resolver(name):
        return
    if _version(omegaconf) >= (2, 4):
        OmegaConf.register_resolver(name, resolver)
    else:  # OmegaConf 2.3's register_resolver is the legacy, strings-only one
        OmegaConf.register_new_resolver(name, resolver)
