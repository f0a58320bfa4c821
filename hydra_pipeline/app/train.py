"""``train(cfg)``: the composition root. Config in, trained model and run outputs out.

Order of work: check the config (nothing built yet), save the resolved config, seed every
generator and set determinism, pick the device, build the pipeline, the task and the model
(each constructor validates its own arguments), then let the engine run the stages.
"""

from __future__ import annotations

import copy
import gc
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hydra_pipeline.app.cli import RESUME_RULE, override_key
from hydra_pipeline.config import check_config, instantiate_node
from hydra_pipeline.config.checks import config_nodes, dotted_key
from hydra_pipeline.errors import CheckpointError, ConfigError, InvalidArgumentError
from hydra_pipeline.pipeline import set_deterministic_cudnn, set_seed

__all__ = ["RUN_KEYS", "train"]

RUN_KEYS = ("resume", "restart_from_weights")
"""Keys that say how a run starts, not what it trains: not carried over when resuming."""

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
log = logging.getLogger("hydra_pipeline")


def train(cfg: DictConfig) -> float:
    """Train as ``cfg`` says, in Hydra's output folder, and return the final mean episode
    return: the objective of optimizing sweepers such as Optuna (-inf if no episode ended, so
    such a run ranks last).

    Raises:
        ConfigError: A config mistake, named by its key, before anything is built.
        CheckpointError: ``resume`` or ``restart_from_weights`` points at an unusable checkpoint.
    """
    cfg = _checked_and_resolved(cfg)
    device = _device(cfg.device)
    hydra_config = HydraConfig.get()
    output_dir = Path(hydra_config.runtime.output_dir)
    _save_resolved_config(cfg, output_dir, hydra_config)
    if cfg.deterministic_cudnn:
        # cuBLAS needs this before CUDA starts to run deterministically.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

    if cfg.num_threads < 1:
        raise ConfigError(f"'num_threads' must be >= 1 (got {cfg.num_threads}).")

    import torch

    from hydra_pipeline.engine import OnPolicyRunner
    from hydra_pipeline.engine.checkpoint import find_checkpoint

    torch.set_num_threads(cfg.num_threads)
    set_seed(cfg.seed)
    if cfg.deterministic_cudnn:
        set_deterministic_cudnn()
        # Warn, rather than fail, on an operation with no deterministic GPU kernel (a user
        # model may use one): the run goes on and the log says what broke determinism.
        torch.use_deterministic_algorithms(True, warn_only=True)
    pipeline = instantiate_node(cfg, "pipeline")
    task = instantiate_node(cfg, "task")
    model = instantiate_node(
        cfg, "model", observation_shape=task.observation_shape, action_space=task.action_space
    )
    overrides = [o for o in hydra_config.overrides.task if override_key(o) not in RUN_KEYS]
    try:
        runner = OnPolicyRunner(
            pipeline,
            task,
            model,
            output_dir=output_dir,
            seed=cfg.seed,
            device=device,
            tensorboard=cfg.tensorboard,
            progress_bar=cfg.progress_bar,
            checkpoint_metadata={"overrides": overrides},
            hparams=_swept_values(overrides, cfg.seed),
        )
    except InvalidArgumentError as error:
        raise ConfigError(error.message_at("pipeline")) from None
    try:
        if cfg.resume is not None:
            runner.resume(find_checkpoint(Path(cfg.resume)))
        elif cfg.restart_from_weights is not None:
            runner.load_weights(find_checkpoint(Path(cfg.restart_from_weights)))
    except CheckpointError as error:
        key = "resume" if cfg.resume is not None else "restart_from_weights"
        raise CheckpointError(
            f"{key}={OmegaConf.select(cfg, key)}: {error} {RESUME_RULE}"
        ) from None
    # Everything built so far lives for the whole run: keep the garbage collector off it
    # (pipeline_app disabled the collector during startup; this turns it back on).
    gc.freeze()
    gc.enable()
    try:
        summary = runner.run()
    finally:
        task.close()
    if "reward" not in summary.final_metrics:
        log.warning("No episode ended during the run: its objective is -inf.")
        return -math.inf
    return summary.final_metrics["reward"]


def _checked_and_resolved(cfg: DictConfig) -> DictConfig:
    """``cfg`` after the startup checks, with every ``${...}`` resolved (nodes are built one by
    one, so interpolations across them must be resolved first)."""
    cfg = copy.deepcopy(cfg)
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as error:
        text = str(error)
        key = _unresolvable_key(cfg)
        missing = re.search(r"Missing mandatory value: (\S+)", text)
        if missing:
            unset = dotted_key(missing.group(1))
            referrer = f" and '{key}' refers to it" if key else ""
            raise ConfigError(
                f"'{unset}' has no value (it is mandatory, '???'){referrer}. Set it, e.g. "
                f"{unset}=<value>."
            ) from None
        raise ConfigError(f"'{key}' cannot be resolved: {text.strip().splitlines()[0]}") from None
    check_config(cfg)
    return cfg


def _unresolvable_key(cfg: DictConfig) -> str:
    """The first key whose ``${...}`` cannot be resolved (``OmegaConf.resolve`` does not say)."""
    for key, node in config_nodes(cfg):
        try:
            node._dereference_node()
        except OmegaConfBaseException:
            return key
    return ""


def _device(name: str) -> str:
    """The torch device for the config's ``device`` value."""
    if not _DEVICE.match(name):
        raise ConfigError(
            f"'device' must be auto, cpu, cuda or cuda:N (got {name!r}). For example device=cpu."
        )
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"'device' is {name!r} but torch sees no GPU. Use device=cpu.")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"'device' is {name!r} but torch sees {torch.cuda.device_count()} GPU(s)."
            )
    return name


def _save_resolved_config(cfg: DictConfig, output_dir: Path, hydra_config: Any) -> None:
    """Save the resolved config and the group choices next to Hydra's own files.

    Hydra saves the config unresolved (``${...}`` kept); the resolved copy records the values
    the run actually used.
    """
    if not hydra_config.output_subdir:
        return
    folder = output_dir / hydra_config.output_subdir
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "resolved_config.yaml", resolve=True)
    choices = {
        group: option
        for group, option in hydra_config.runtime.choices.items()
        if not group.startswith("hydra/")
    }
    OmegaConf.save(OmegaConf.create(choices), folder / "choices.yaml")


def _swept_values(overrides: list[str], seed: int) -> dict[str, Any]:
    """Hyperparameters for TensorBoard's hparams view: the run's overrides and its seed."""
    values: dict[str, Any] = {"seed": seed}
    for override in overrides:
        values[override_key(override)] = override.partition("=")[2]
    return values
