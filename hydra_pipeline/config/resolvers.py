"""OmegaConf resolvers the presets use."""

from __future__ import annotations

from typing import Any

from hydra_pipeline.config.compat import register_resolver

__all__ = ["register_resolvers"]


def total_max_stage_steps(stages: Any) -> int:
    """The sum of the stages' ``max_stage_steps``: the length of a whole-run LR schedule.

    Used as ``${total_max_stage_steps:${pipeline.pipeline_stages}}``.
    """
    return sum(max(int(stage.max_stage_steps), 0) for stage in stages)


def register_resolvers() -> None:
    """Register the resolvers (once per process)."""
    register_resolver("total_max_stage_steps", total_max_stage_steps)
