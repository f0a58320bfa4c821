"""Config checks Hydra cannot do, run at startup before anything is built.

Hydra type-checks every value of a typed node at override time. It cannot see:

* keys forced with ``+`` into a node (``+pipeline.optimizer_builder.momentum=0.9`` with Adam),
  which only fail deep inside ``instantiate``;
* values under fields that accept any ``_target_`` node (losses, early-stopping criteria,
  data sources, user tasks), which it never type-checks;
* ``_target_`` paths outside the allowed import prefixes (``_target_`` runs code);
* mandatory values (``???``) left unset.

:func:`check_config` closes these gaps and raises :class:`~hydra_pipeline.errors.ConfigError`
naming the full key, the value and the fix.
"""

from __future__ import annotations

import difflib
import inspect
import re
import types
from collections.abc import Iterator, Sequence
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, Node, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hydra_pipeline.config.builder import builder_of
from hydra_pipeline.config.store import SCHEMAS, schema_for_target
from hydra_pipeline.errors import ConfigError

__all__ = [
    "ALLOWED_TARGET_PREFIXES",
    "allowed_prefixes",
    "check_config",
    "config_nodes",
    "dotted_key",
    "is_allowed",
    "target_nodes",
]

ALLOWED_TARGET_PREFIXES: tuple[str, ...] = ("hydra_pipeline.", "torch.optim.")
"""Import prefixes the package's own configs instantiate. Any other ``_target_`` (or optimizer
``class_type``) is refused unless the config's ``allowed_targets`` adds its prefix."""

_SPECIAL_KEYS = frozenset({"_target_", "_convert_", "_recursive_", "_partial_", "_args_"})


def allowed_prefixes(extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The package's prefixes plus ``extra`` (a bare module name also allows its contents)."""
    added = tuple(prefix if prefix.endswith(".") else f"{prefix}." for prefix in extra if prefix)
    return ALLOWED_TARGET_PREFIXES + added


def is_allowed(path: str, prefixes: Sequence[str]) -> bool:
    """Whether the dotted ``path`` lies under one of ``prefixes``."""
    return any(path.startswith(prefix) or f"{path}." == prefix for prefix in prefixes)


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


def check_config(cfg: DictConfig) -> None:
    """Run every startup check on the composed application config.

    Raises:
        ConfigError: The first problem found, with its full key and the fix.
    """
    _check_mandatory_values(cfg)
    prefixes = allowed_prefixes(list(cfg.get("allowed_targets") or []))
    for key, node in target_nodes(cfg):
        target = _target_path(key, node)
        is_builder = _allowed_object(key, target, prefixes) is builder_of
        if is_builder:  # whatever path names builder_of: the class it builds is what runs
            target = _class_type(key, node)
            _allowed_object(key, target, prefixes)
        _check_keys(key, node, target, is_builder)
        _check_types(key, node, target)


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


def _allowed_object(key: str, path: str, prefixes: Sequence[str]) -> Any:
    """The object at ``path``, if both ``path`` and the module defining the object are allowed.

    ``path`` is checked before anything is imported. The defining module is checked too because
    Hydra resolves a path by attribute access: ``hydra_pipeline.config.checks.inspect.os.system``
    lies under an allowed prefix and is ``os.system``.
    """
    home: Any = None
    if is_allowed(path, prefixes):
        found = _locate(key, path)
        attribute = "__name__" if isinstance(found, types.ModuleType) else "__module__"
        home = getattr(found, attribute, None)
        if isinstance(home, str) and is_allowed(home, prefixes):
            return found
    module = home if isinstance(home, str) else path.rsplit(".", 1)[0]
    where = f" (defined in {home!r})" if isinstance(home, str) else ""
    raise ConfigError(
        f"'{key}' names '{path}'{where}, which is outside the allowed import prefixes "
        f"{list(prefixes)}. _target_ runs code, so only these are instantiated. If you "
        f"trust it, add its module: allowed_targets='[{module}]' (or "
        "list it under allowed_targets in your config)."
    )


def _locate(key: str, path: str) -> Any:
    try:
        return get_object(path)
    except Exception as error:  # Hydra reports import failures as several exception types
        raise ConfigError(f"'{key}' names '{path}', which cannot be imported: {error}") from None


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


def _check_keys(key: str, node: DictConfig, target: str, is_builder: bool) -> None:
    parameters = _parameters(_locate(key, target))
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


def _check_types(key: str, node: DictConfig, target: str) -> None:
    """Type-check a node against the schema of its target, if the package has one."""
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
