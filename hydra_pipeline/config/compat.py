"""What differs between the Hydra / OmegaConf versions the package runs on, and the few places
it reaches into their internals.

hydra-core 1.3 with OmegaConf 2.3 is the supported pair; hydra-core 1.4 (OmegaConf 2.4) is
prepared for: it wants an execution allow-list for ``instantiate``, no ``version_base``, and
OmegaConf's ``register_resolver`` instead of ``register_new_resolver``.

Hydra offers no hook between composing a config and acting on it, so the checks of what a
config may run are installed by wrapping its internals here (:func:`check_before_hydra_merges`,
:func:`check_before_hydra_callbacks`), and OmegaConf's YAML loader is bounded here
(:func:`load_yaml`, :func:`bound_yaml_expansion`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import hydra
import omegaconf
import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = [
    "HYDRA_1_4",
    "YAML_EXPANSION_LIMIT",
    "LoadedConfig",
    "YamlExpansionError",
    "bound_yaml_expansion",
    "check_before_hydra_callbacks",
    "check_before_hydra_merges",
    "load_yaml",
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


class LoadedConfig(NamedTuple):
    """A config file Hydra is about to merge into a composition.

    Attributes:
        source: The search-path source it comes from (``pkg://...``, ``structured://``,
            ``file:///...``).
        path: Its path in the source, without ``.yaml`` (``experiment/ppo_cartpole``).
        package: Where its content goes (``""``: the root; ``hydra.launcher``).
        config: Its content as loaded (its ``defaults`` list included).
    """

    source: str
    path: str
    package: str
    config: DictConfig


_SEARCH_PATH_OF_PRIMARY_CONFIG = "hydra.searchpath in main"
"""The provider Hydra gives the search-path entries a primary config adds."""


def check_before_hydra_merges(
    check_config: Callable[[LoadedConfig], None],
    check_search_path: Callable[[Sequence[str]], None],
) -> None:
    """Have Hydra call ``check_config`` on every config it merges into a composition, before
    merging it (so before it configures logging from it or builds a launcher), and
    ``check_search_path`` on the entries a primary config adds to the search path, before it
    creates their sources (a ``pkg://`` or ``structured://`` source imports its module).

    Hydra offers no hook there; this wraps the config loader's merge of the defaults list and
    the config repository's creation of sources (once per process).
    """
    from hydra._internal import config_loader_impl, config_repository

    loader_class: Any = config_loader_impl.ConfigLoaderImpl
    repository_class: Any = config_repository.ConfigRepository
    if getattr(loader_class, "checked_before_merging", False):
        return
    merge = loader_class._compose_config_from_defaults_list
    create_sources = repository_class.initialize_sources

    def checked_merge(self: Any, defaults: list[Any], repo: Any) -> DictConfig:
        for default in defaults:
            loaded = repo.load_config(default.config_path) if default.config_path else None
            if loaded is not None and isinstance(loaded.config, DictConfig):
                place = default.package or ""
                check_config(LoadedConfig(loaded.path, default.config_path, place, loaded.config))
        merged: DictConfig = merge(self, defaults, repo)
        return merged

    def checked_sources(self: Any, search_path: Any) -> None:
        added = [
            entry.path
            for entry in search_path.get_path()
            if entry.provider == _SEARCH_PATH_OF_PRIMARY_CONFIG
        ]
        check_search_path(added)
        create_sources(self, search_path)

    loader_class._compose_config_from_defaults_list = checked_merge
    loader_class.checked_before_merging = True
    repository_class.initialize_sources = checked_sources


YAML_EXPANSION_LIMIT = 100_000
"""The most values a YAML document may expand to, counting each use of an alias: a config is
a few hundred, and an "alias bomb" of a few lines expands to billions."""


class YamlExpansionError(ValueError):
    """A YAML document expands to more than :data:`YAML_EXPANSION_LIMIT` values."""


def _bounded_loader(base: Any) -> Any:
    """``base`` (a PyYAML loader class) refusing a document that expands too far, before
    building anything from it."""

    class BoundedLoader(base):  # type: ignore[misc]
        def construct_document(self, node: yaml.Node) -> Any:
            _check_expansion(node, str(getattr(self, "name", "<string>")))
            return super().construct_document(node)

    return BoundedLoader


def _check_expansion(root: yaml.Node, name: str) -> None:
    """Refuse ``root`` if it expands to more than :data:`YAML_EXPANSION_LIMIT` values (or
    refers to itself)."""
    sizes: dict[int, int] = {}

    def refuse(why: str) -> YamlExpansionError:
        return YamlExpansionError(
            f"'{name}' {why} (YAML aliases repeat what they refer to): refused, as such a "
            "file could take all memory."
        )

    def size(node: yaml.Node) -> int:
        seen = sizes.get(id(node))
        if seen is not None:
            if seen < 0:
                raise refuse("refers to itself")
            return seen
        sizes[id(node)] = -1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > YAML_EXPANSION_LIMIT:
                raise refuse(f"would expand to more than {YAML_EXPANSION_LIMIT} values")
        sizes[id(node)] = total
        return total

    try:
        size(root)
    except RecursionError:
        raise refuse("is nested too deeply") from None


def load_yaml(path: str | Path) -> DictConfig | ListConfig:
    """``OmegaConf.load(path)``, refusing a file that expands too far (see
    :data:`YAML_EXPANSION_LIMIT`) before building anything from it.

    Raises:
        yaml.YAMLError: The file is not YAML.
        YamlExpansionError: It expands too far (the message names it).
        OSError: It cannot be read.
    """
    from omegaconf import _utils

    with open(path, encoding="utf-8") as file:
        data = yaml.load(file, Loader=_bounded_loader(_utils.get_yaml_loader()))
    loaded: DictConfig | ListConfig = OmegaConf.create(data)
    return loaded


def bound_yaml_expansion() -> None:
    """Have every YAML file OmegaConf loads in this process (Hydra's config files among them)
    refused when it expands too far (see :data:`YAML_EXPANSION_LIMIT`); once per process."""
    from omegaconf import _utils

    if getattr(_utils.get_yaml_loader, "bounded", False):
        return
    unbounded = _utils.get_yaml_loader

    def get_yaml_loader() -> Any:
        return _bounded_loader(unbounded())

    get_yaml_loader.bounded = True  # type: ignore[attr-defined]
    _utils.get_yaml_loader = get_yaml_loader


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
