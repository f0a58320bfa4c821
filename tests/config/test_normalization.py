"""The ``normalization`` node: what it builds, and its mistakes named by key."""

from __future__ import annotations

from typing import Any

import pytest
from omegaconf import OmegaConf

from hydra_pipeline import ConfigError
from hydra_pipeline.config.normalization import NormalizationConf, build_normalization


def config(pipeline_gamma: float | None = 0.95, **normalization: Any) -> Any:
    node = OmegaConf.merge(OmegaConf.structured(NormalizationConf), normalization)
    return OmegaConf.create({"normalization": node, "pipeline": {"gamma": pipeline_gamma}})


def test_nothing_to_normalise_builds_nothing() -> None:
    assert build_normalization(config()) is None


def test_gamma_defaults_to_the_pipelines() -> None:
    normalization = build_normalization(config(rewards=True))
    assert normalization is not None and normalization.gamma == 0.95
    assert build_normalization(config(rewards=True, gamma=0.5)).gamma == 0.5  # type: ignore[union-attr]


def test_no_gamma_anywhere_is_one_message() -> None:
    with pytest.raises(ConfigError, match=r"'normalization.gamma' is null .* normalization.gamma="):
        build_normalization(config(pipeline_gamma=None, rewards=True))


def test_a_value_out_of_range_is_named_by_its_key() -> None:
    with pytest.raises(ConfigError, match=r"'normalization.clip_observations' must be > 0"):
        build_normalization(config(observations=True, clip_observations=0.0))
