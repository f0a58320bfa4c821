"""``device_for``: the torch device a config's ``device`` value names, checked before anything
is built (training, its processes and the evaluate command all pick their device here)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from hydra_pipeline.errors import ConfigError

if TYPE_CHECKING:
    from hydra_pipeline.engine.distributed import Ranks

__all__ = ["device_for"]

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def device_for(name: str, ranks: Ranks | None = None) -> str:
    """The torch device for the config's ``device`` value; in a distributed run, a GPU is
    the rank's own: ``cuda:<local rank>`` (set as the current device).

    Raises:
        ConfigError: ``name`` is no device, or names a GPU torch does not see.
    """
    if not _DEVICE.match(name):
        raise ConfigError(
            f"'device' must be auto, cpu, cuda or cuda:N (got {name!r}). For example device=cpu."
        )
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and ranks is not None:
        name = f"cuda:{ranks.local_rank}"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"'device' is {name!r} but torch sees no GPU. Use device=cpu.")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"'device' is {name!r} but torch sees {torch.cuda.device_count()} GPU(s)."
                + (" Start at most one process per GPU." if ranks is not None else "")
            )
        if ranks is not None:
            torch.cuda.set_device(index)
    return name
