"""Schemas of storages (group ``storage``, placed at ``pipeline.named_storages.<name>``).

``+storage@pipeline.named_storages.demos=expert_demonstrations`` adds a data source that a
stage component can learn from; ``rollout`` is the rollout storage a pipeline has by default.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RolloutBlockStorageConf"]


@dataclass
class RolloutBlockStorageConf:
    """A ``RolloutBlockStorage``: the rollout storage.

    Attributes:
        init_size: AllenAct's initial allocation, in steps; accepted, but the engine sizes the
            storage from each stage's num_steps.
    """

    _target_: str = "hydra_pipeline.RolloutBlockStorage"
    init_size: int = 50
