"""Instantiating config nodes, with errors reported against the config's keys."""

from __future__ import annotations

import re
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hydra_pipeline.config.checks import target_nodes
from hydra_pipeline.config.compat import HYDRA_1_4
from hydra_pipeline.config.trust import active_allow_list
from hydra_pipeline.errors import ConfigError, InvalidArgumentError

__all__ = ["instantiate_node"]

_FULL_KEY = re.compile(r"full_key: (\S+)")


def instantiate_node(cfg: DictConfig, key: str, **runtime_kwargs: Any) -> Any:
    """Instantiate the node of ``cfg`` at ``key`` into plain Python objects.

    Containers are converted to ``dict``/``list`` (``_convert_="all"``), so no OmegaConf object
    leaks into torch objects or checkpoints. ``runtime_kwargs`` (objects that exist only at run
    time, such as a task's action space) are passed to the target as they are. ``cfg`` must
    have passed :func:`~hydra_pipeline.config.check_config`. On hydra-core 1.4, which requires
    an execution allow-list, the active allow-list is passed as ``_execution_whitelist_``.

    Raises:
        ConfigError: Building an object failed; the message names its full key and why.
    """
    node = OmegaConf.select(cfg, key)
    options: dict[str, Any] = {"_convert_": "all"}
    if HYDRA_1_4:
        options["_execution_whitelist_"] = active_allow_list().execution_whitelist()
    try:
        if not runtime_kwargs:
            return instantiate(node, **options)
        # Hydra would turn dataclass arguments into dicts; a partial passes them untouched.
        build = instantiate(node, _partial_=True, **options)
    except InstantiationException as error:
        raise _as_config_error(error, cfg, key) from None
    try:
        return build(**runtime_kwargs)
    except InvalidArgumentError as error:
        raise ConfigError(error.message_at(key)) from None
    except Exception as error:  # a constructor may fail in any way; the key is what matters
        raise ConfigError(f"Cannot build '{key}': {type(error).__name__}: {error}") from None


def _as_config_error(error: InstantiationException, cfg: DictConfig, key: str) -> ConfigError:
    """Name the config key of the node whose constructor failed, and what it rejected.

    Hydra reports the failing node by OmegaConf's full key, which for list items drops the
    separator (``pipeline.pipeline_stages1``); it is mapped back to the dotted key of the
    command line (``pipeline.pipeline_stages.1``) through the config's own nodes.
    """
    reported = _FULL_KEY.findall(str(error))
    dotted_keys = {node._get_full_key(None): path for path, node in target_nodes(cfg)}
    node_key = dotted_keys.get(reported[-1], reported[-1]) if reported else key
    cause = error.__cause__
    if isinstance(cause, InvalidArgumentError):
        return ConfigError(cause.message_at(node_key))
    detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(error)
    return ConfigError(f"Cannot build '{node_key}': {detail}")
