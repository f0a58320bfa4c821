"""A run callback of the example project: remembers the best training return and its step."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra_pipeline.engine.callbacks import Callback


class BestReturn(Callback):
    """Writes the best mean episode return seen at a metric point, and its total step
    count, to ``<run>/<file>`` whenever it improves.

    Args:
        file: The file's name in the run's folder.
    """

    def __init__(self, file: str = "best_return.json") -> None:
        self.file = file
        self.path: Path | None = None
        self.best = float("-inf")

    def on_run_start(self, *, run_dir: Path, **_: Any) -> None:
        self.path = run_dir / self.file

    def on_log(
        self, *, mode: str, total_steps: int, metrics: Mapping[str, float], **_: Any
    ) -> None:
        reward = metrics.get("reward")
        if mode == "train" and reward is not None and reward > self.best and self.path:
            self.best = reward
            self.path.write_text(json.dumps({"reward": reward, "total_steps": total_steps}))
