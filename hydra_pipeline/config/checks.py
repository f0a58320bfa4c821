r"""Config checks Hydra cannot do, run at startup before anything is built.

Hydra type-checks every value of a typed node at override time. It cannot see:

* keys forced with ``+`` into a node (``+pipeline.optimizer_builder.momentum=0.9`` with Adam)
  or at the top level (``+sed=3``), which only fail deep inside ``instantiate`` or are never
  read;
* values under fields that accept any ``_target_`` node (losses, early-stopping criteria,
  data sources, user tasks), which it never type-checks;
* what a ``_target_``, a builder's ``class_type`` or a ``module:Env`` id would import and run
  (decided by the trust gate, :mod:`hydra_pipeline.config.trust`);
* ``${...}`` that would be resolved again when a node is built (an escaped ``\${...}``
  becomes a live interpolation once the config is resolved);
* ``_partial_``, ``_args_`` and ``_recursive_`` on objects that are built whole;
* mandatory values (``???``) left unset.

:func:`check_config` closes these gaps and raises :class:`~hydra_pipeline.errors.ConfigError`
naming the full key, the value and the fix.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, Node, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hydra_pipeline.config.builder import builder_of
from hydra_pipeline.config.resolvers import check_side_effects
from hydra_pipeline.config.root import Config
from hydra_pipeline.config.store import SCHEMAS, schema_for_target
from hydra_pipeline.config.task import IMPORTS_MODULE
from hydra_pipeline.config.trust import AllowList, active_allow_list, buildable_objects
from hydra_pipeline.errors import ConfigError

__all__ = [
    "check_before_resolving",
    "check_config",
    "check_hydra_callbacks",
    "config_nodes",
    "dotted_key",
    "target_nodes",
]

_SPECIAL_KEYS = frozenset({"_target_", "_convert_", "_recursive_", "_partial_", "_args_"})


def dotted_key(key: str) -> str:
    """An OmegaConf key (``a.b[1].c``) as the command line writes it (``a.b.1.c``)."""
    return re.sub(r"\[(\d+)\]", r".\1", key)


def config_nodes(node: Any, key: str = "") -> Iterator[tuple[str, Node]]:
    """Every node under ``node`` (itself included) with its dotted key (list indices as ``.N``,
    as on the command line), parents before children; null and ``???`` containers are leaves.
    """
    yield key, node
    if not isinstance(node, (DictConfig, ListConfig)) or node._is_none() or node._is_missing():
        return
    children: list[Any] = (
        list(map(str, node)) if isinstance(node, DictConfig) else [*range(len(node))]
    )
    for child in children:
        yield from config_nodes(node._get_node(child), f"{key}.{child}" if key else str(child))


def target_nodes(node: Any, key: str = "") -> Iterator[tuple[str, DictConfig]]:
    """Every node with a ``_target_`` under ``node``, with its dotted key."""
    for path, child in config_nodes(node, key):
        if not isinstance(child, DictConfig) or child._is_none() or child._is_missing():
            continue
        if "_target_" in child:
            yield path, child


def check_before_resolving(cfg: DictConfig) -> None:
    """Refuse a resolver with side effects where it does not belong (``new_folder`` outside
    Hydra's output folders), before anything resolves the config.

    Raises:
        ConfigError: The first such value, named by its key.
    """
    for key, node in config_nodes(cfg):
        if not isinstance(node, (DictConfig, ListConfig)):
            check_side_effects(key, node._value())


def check_config(cfg: DictConfig, allow_list: AllowList | None = None) -> None:
    """Run every startup check on the composed, resolved application config.

    Args:
        cfg: The config exactly as it will be instantiated (resolved).
        allow_list: What this run trusts beyond the package; by default the active one
            (see :func:`~hydra_pipeline.config.trust.active_allow_list`).

    Raises:
        ConfigError: The first problem found, with its full key and the fix.
    """
    allow = allow_list or active_allow_list()
    _check_resolved("", cfg)
    _check_top_level_keys(cfg)
    allow.check_listed("allowed_targets", [str(p) for p in cfg.get("allowed_targets") or []])
    _check_mandatory_values(cfg)
    for key, node in target_nodes(cfg):
        _check_target_node(key, node, allow)


def check_hydra_callbacks(cfg: DictConfig, allow_list: AllowList | None = None) -> None:
    """Hold the ``hydra.callbacks`` Hydra is about to instantiate to the trust gate: each must
    be an installed Hydra callback, and any ``_target_`` among its arguments buildable.

    Args:
        cfg: The config Hydra composed, ``hydra`` node included.
        allow_list: What this run trusts; by default the active one.

    Raises:
        ConfigError: A callback is not allowed, or cannot be resolved to be checked.
    """
    if not OmegaConf.select(cfg, "hydra.callbacks"):
        return
    allow = allow_list or active_allow_list()
    callbacks = copy.deepcopy(cfg).hydra.callbacks
    try:
        OmegaConf.resolve(callbacks)
    except OmegaConfBaseException as error:
        raise ConfigError(
            f"'hydra.callbacks' cannot be resolved to be checked before Hydra builds it: "
            f"{str(error).strip().splitlines()[0]}"
        ) from None
    for name in map(str, callbacks):
        key = f"hydra.callbacks.{name}"
        node = callbacks._get_node(name)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(f"'{key}' must be a node with a _target_ (got {node!r}).")
        _check_resolved(key, node)
        allow.hydra_callback(key, _target_path(key, node))
        for inner_key, inner in target_nodes(node, key):
            if inner is not node:
                _check_target_node(inner_key, inner, allow)


def _check_target_node(key: str, node: DictConfig, allow: AllowList) -> None:
    """Every check of one node with a ``_target_`` (resolved beforehand)."""
    target = _target_path(key, node)
    named = allow.target(key, target)
    built, is_builder = named, named is builder_of
    if is_builder:  # whatever path names builder_of: the class it builds is what runs
        target = _class_type(key, node)
        built = allow.builder_class(key, target)
    if named in buildable_objects():
        _check_call_keys(key, node, target)
    _check_keys(key, node, target, built, is_builder)
    _check_types(key, node, target, allow)


def _check_top_level_keys(cfg: DictConfig) -> None:
    """Refuse top-level keys no schema declares (``+sed=3``): nothing would read them."""
    schema = OmegaConf.get_type(cfg)
    declared = schema if dataclasses.is_dataclass(schema) else Config
    names = [field.name for field in dataclasses.fields(declared)]
    for key in map(str, cfg):
        if key not in names and key != "hydra":
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"'{key}' is not a key of the config (was it added with '+'?), so nothing "
                f"would read it. Top-level keys: {', '.join(names)}.{hint}"
            )


def _check_resolved(key: str, node: DictConfig) -> None:
    r"""Refuse a ``${...}`` left after the config was resolved: reading or building the node
    would resolve it again, after the checks, so what runs would not be what was checked (an
    escaped ``\${...}`` ends up like this)."""
    for path, child in config_nodes(node, key):
        if child._is_interpolation():
            raise ConfigError(
                f"'{path}' still holds an interpolation after the config was resolved "
                f"({child._value()!r}): reading or building it would resolve it again, after "
                "the startup checks. Escaped interpolations ('\\${...}') cannot be used in a "
                "run's config; write the value itself."
            )


def _check_mandatory_values(cfg: DictConfig) -> None:
    missing = sorted(dotted_key(key) for key in OmegaConf.missing_keys(cfg))
    if missing:
        first = missing[0]
        raise ConfigError(
            f"'{first}' has no value (it is mandatory, '???'). Set it on the command line, "
            f"e.g. {first}=<value>." + (f" Also unset: {missing[1:]}." if len(missing) > 1 else "")
        )


def _target_path(key: str, node: DictConfig) -> str:
    """The dotted path of a node's ``_target_``."""
    target = node._get_node("_target_")._value()  # type: ignore[union-attr]
    if not isinstance(target, str):
        raise ConfigError(f"'{key}._target_' must be a dotted path (got {target!r}).")
    return target


def _class_type(key: str, node: DictConfig) -> str:
    """The dotted path of the class a builder node builds."""
    class_type = node.get("class_type")
    if not isinstance(class_type, str):
        raise ConfigError(f"'{key}.class_type' must name a class (got {class_type!r}).")
    return class_type


_CALL_KEYS: dict[str, Callable[[Any], bool]] = {
    "_partial_": lambda value: value is True,
    "_recursive_": lambda value: value is False,
    "_args_": lambda value: bool(value),
}
"""Instantiation keys that change how an object is built, and when they are in effect."""


def _check_call_keys(key: str, node: DictConfig, target: str) -> None:
    """Refuse ``_partial_``, ``_args_`` and ``_recursive_`` on the package's objects: they are
    built whole, from keyword arguments and with their parts built (a user's own target may
    use them as its author intends)."""
    for name, in_effect in _CALL_KEYS.items():
        if name in node and in_effect(node[name]):
            raise ConfigError(
                f"'{key}.{name}' is set ({node[name]!r}), but {target} is built whole, from "
                f"keyword arguments and with its parts built: hydra_pipeline's objects take no "
                f"{name}. Remove it."
            )


def _parameters(target: Any) -> dict[str, inspect.Parameter] | None:
    """The keyword parameters ``target`` accepts; ``None`` when it takes any (``**kwargs``)
    or its signature is unknown."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    parameters = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return {
        name: p
        for name, p in parameters.items()
        if p.kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL)
    }


def _check_keys(key: str, node: DictConfig, target: str, built: Any, is_builder: bool) -> None:
    """Refuse keys that ``built`` (the object at ``target``) does not take."""
    parameters = _parameters(built)
    if parameters is None:
        return
    own_keys = _SPECIAL_KEYS | ({"class_type"} if is_builder else set())
    for name in map(str, node):
        if name in own_keys or name in parameters:
            continue
        hint = ""
        close = difflib.get_close_matches(name, list(parameters), n=1)
        if close:
            hint = f" Did you mean '{close[0]}'?"
        alternatives = _options_with_field(target, name)
        if alternatives:
            group, options = alternatives
            hint += (
                f" The {group} options that take '{name}' are {options}: e.g. "
                f"{group}={options[0]} {key}.{name}=..."
            )
        raise ConfigError(
            f"'{key}.{name}' is not a parameter of {target} (was it added with '+'?). "
            f"{target} takes: {', '.join(parameters)}.{hint}"
        )


def _options_with_field(target: str, name: str) -> tuple[str, list[str]] | None:
    """The group and the options in it whose schema has field ``name``, for the group of the
    schema of ``target``."""
    schema = schema_for_target(target)
    group = next((s.group for s in SCHEMAS if s.node is schema), None)
    if group is None:
        return None
    options = sorted(
        s.name.removeprefix("base_")
        for s in SCHEMAS
        if s.group == group and name in s.node.__dataclass_fields__
    )
    return (group, options) if options else None


def _check_types(key: str, node: DictConfig, target: str, allow: AllowList) -> None:
    """Type-check a node against the schema of its target, if the package has one, and hold
    the values of fields that import a module to the allow-list."""
    schema = schema_for_target(target)
    if schema is None:
        return
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException as error:
        where = f"{key}.{error.full_key}" if error.full_key else key
        problem = (error.msg or str(error)).splitlines()[0]
        raise ConfigError(
            f"'{where}': {problem} ({schema.__name__} types it). Give it a value of that type, "
            f"e.g. {where}=<value>."
        ) from None
    unset = sorted(OmegaConf.missing_keys(merged))
    if unset:
        raise ConfigError(
            f"'{key}.{unset[0]}' has no value ({target} requires it). Set it in the config or "
            f"on the command line: {key}.{unset[0]}=<value>."
        )
    for field in dataclasses.fields(schema):
        value = OmegaConf.select(merged, field.name)
        if field.metadata.get(IMPORTS_MODULE) and isinstance(value, str) and ":" in value:
            allow.module(f"{key}.{field.name}", value.split(":", 1)[0])
