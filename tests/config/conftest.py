"""Fixtures of the config-layer tests: compose the shipped presets as the app does.

The app (``hydra_pipeline.app.train``) resolves a deep copy of the composed config, runs
``check_config`` on it, then instantiates each node with ``instantiate_node``; the fixtures here
do the same, so the tests see exactly what a training run would build.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Iterator
from typing import Any

import hydra
import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from hydra_pipeline.config import check_config, instantiate_node

Compose = Callable[..., DictConfig]


class TinyLoss:
    """A harmless loss outside hydra_pipeline: the allow-list tests point ``_target_`` at it."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale


TINY_LOSS_MODULE = TinyLoss.__module__
TINY_LOSS_TARGET = f"{TINY_LOSS_MODULE}.TinyLoss"


def resolved(cfg: DictConfig) -> DictConfig:
    """A resolved deep copy of ``cfg``, as the app makes before checking and instantiating."""
    cfg = copy.deepcopy(cfg)
    OmegaConf.resolve(cfg)
    return cfg


def checked(cfg: DictConfig) -> DictConfig:
    """``cfg`` resolved, after the app's startup checks passed on it."""
    cfg = resolved(cfg)
    check_config(cfg)
    return cfg


_COMPOSED: dict[tuple[str, ...], DictConfig] = {}
"""Compositions already made in this session (the tests compose the same configs often)."""


@pytest.fixture
def compose() -> Iterator[Compose]:
    """``compose(*overrides)``: the app's primary config composed with ``overrides``.

    Hydra's global state is cleared before and after the test (and around every composition,
    so a test may compose several configs). Each call returns a fresh copy.
    """
    GlobalHydra.instance().clear()

    def _compose(*overrides: str) -> DictConfig:
        if overrides not in _COMPOSED:
            GlobalHydra.instance().clear()
            try:
                with hydra.initialize_config_module(
                    version_base="1.3", config_module="hydra_pipeline.conf"
                ):
                    _COMPOSED[overrides] = hydra.compose("config", overrides=list(overrides))
            finally:
                GlobalHydra.instance().clear()
        return copy.deepcopy(_COMPOSED[overrides])

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture
def prepare() -> Callable[[DictConfig], DictConfig]:
    """``prepare(cfg)``: a resolved deep copy of ``cfg`` (what the app checks and builds)."""
    return resolved


@pytest.fixture
def app_config(compose: Compose) -> Compose:
    """``app_config(*overrides)``: the composed config, resolved, after ``check_config``."""

    def _app_config(*overrides: str) -> DictConfig:
        return checked(compose(*overrides))

    return _app_config


@pytest.fixture
def build(compose: Compose) -> Callable[..., Any]:
    """``build(*overrides, key="pipeline", **runtime_kwargs)``: compose, resolve, check and
    instantiate the node at ``key`` exactly as the app does."""

    def _build(*overrides: str, key: str = "pipeline", **runtime_kwargs: Any) -> Any:
        cfg = checked(compose(*overrides))
        return instantiate_node(cfg, key, **runtime_kwargs)

    return _build


@pytest.fixture
def tiny_loss_module() -> str:
    """The importable module path of :class:`TinyLoss` (this conftest)."""
    module = importlib.import_module(TINY_LOSS_MODULE)
    assert module.TinyLoss is TinyLoss, "the conftest must be importable by its module path"
    return TINY_LOSS_MODULE
