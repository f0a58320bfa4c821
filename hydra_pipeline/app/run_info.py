"""``RunInfo``: what a run takes from Hydra's job, as plain values that the processes of a
distributed run (started without Hydra) receive too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.types import RunMode
from omegaconf import OmegaConf

from hydra_pipeline.app.resume import RUN_KEYS, TRUST_KEYS, override_key

__all__ = ["RunInfo"]


@dataclass(frozen=True)
class RunInfo:
    """What a run takes from Hydra's job, as plain values (the processes of a distributed
    run, started without Hydra, receive it too).

    Attributes:
        overrides: The job's overrides, without those that say how it starts (``resume``...)
            or what it trusts.
        output_subdir: Hydra's folder for the job's configs in the run folder (``.hydra``;
            ``None``: none).
        choices: The config groups' chosen options (Hydra's own excepted).
        job: Where the run stands in a sweep, for the callbacks.
    """

    overrides: list[str]
    output_subdir: str | None
    choices: dict[str, str]
    job: dict[str, Any]

    @classmethod
    def of(cls, hydra_config: Any) -> RunInfo:
        """The run information of Hydra's running job, whose config is ``hydra_config``."""
        # As typed: iterating the ListConfig itself would resolve ${...} inside overrides.
        typed: list[str] = OmegaConf.to_container(hydra_config.overrides.task)  # type: ignore[assignment]
        overrides = [o for o in typed if override_key(o) not in (*RUN_KEYS, *TRUST_KEYS)]
        return cls(
            overrides=overrides,
            output_subdir=hydra_config.output_subdir,
            choices={
                group: option
                for group, option in hydra_config.runtime.choices.items()
                if not group.startswith("hydra/")
            },
            job=_job(hydra_config, overrides),
        )


def _job(hydra_config: Any, overrides: list[str]) -> dict[str, Any]:
    """Where the run stands in a sweep, for the callbacks (trackers group a sweep's jobs)."""
    job: dict[str, Any] = {"name": hydra_config.job.name, "overrides": overrides}
    if hydra_config.mode == RunMode.MULTIRUN:
        job["sweep_dir"] = str(Path(hydra_config.runtime.cwd) / hydra_config.sweep.dir)
        job["number"] = hydra_config.job.num
    return job
