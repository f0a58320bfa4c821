"""``train(cfg)``: the composition root. Config in, trained model and run outputs out.

Order of work: check the config exactly as it will be built (nothing built yet), claim the run
folder, then train: in this process (:func:`~hydra_pipeline.app.rank.train_rank`), or, with
``distributed.nproc_per_node`` > 1, in the processes started here
(:func:`~hydra_pipeline.app.distributed.start_processes`), each of which trains as one rank.
With ``seeds=[...]``, once per seed (with ``vectorize_seeds``, the seeds as one batch in this
process: :func:`~hydra_pipeline.app.rank.train_seed_batch`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import re
import statistics
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hydra_pipeline.app.distributed import launched_ranks, share_run_folder, start_processes
from hydra_pipeline.app.evaluate import check_evaluation
from hydra_pipeline.app.rank import (
    checkpoint_to_continue,
    garbage_collector_paused,
    save_resolved_config,
    train_rank,
    train_seed_batch,
)
from hydra_pipeline.app.resume import override_key
from hydra_pipeline.app.run_folder import claimed_run_folder, refuse_existing_results
from hydra_pipeline.app.run_info import RunInfo
from hydra_pipeline.app.sweep_report import SEEDS_FILE
from hydra_pipeline.arguments import require_seed
from hydra_pipeline.config import check_config
from hydra_pipeline.config.checks import config_nodes, dotted_key
from hydra_pipeline.errors import ConfigError, InvalidArgumentError
from hydra_pipeline.files import refuse_links

__all__ = ["train"]


def train(cfg: DictConfig) -> float:
    """Train as ``cfg`` says, in Hydra's output folder, and return the run's ``objective``
    for optimizing sweepers such as Optuna: by default the last evaluation's mean return when
    the run evaluates, else the final mean training return (-inf without a value, so such a
    run ranks last). With ``seeds=[...]``, train once per seed, each in a folder
    ``seed_<n>`` of the output folder, and return the mean of their objectives.

    Raises:
        ConfigError: A config mistake, named by its key, before anything is built.
        CheckpointError: ``resume`` or ``restart_from_weights`` points at an unusable
            checkpoint, or one of another run.
        RunFolderError: The run folder is in use, holds another run, or cannot be written.
        TrainingInterrupted: Ctrl-C or SIGTERM stopped training at a safe point.
    """
    hydra_config = HydraConfig.get()
    output_dir = Path(hydra_config.runtime.output_dir)
    info = RunInfo.of(hydra_config)
    share_run_folder(cfg, output_dir)  # with the ranks torchrun started, if any
    if not cfg.seeds:
        return _train_run(cfg, info, output_dir)
    seeds = _checked_seeds(cfg, info.overrides)
    if cfg.vectorize_seeds:
        objectives = _train_seed_batch(cfg, info, output_dir, seeds)
        _write_seeds(output_dir, seeds, objectives)
    else:
        objectives = []
        for seed in seeds:
            objectives.append(_train_run(_seed_config(cfg, seed), info, output_dir / _run(seed)))
            # Rewritten after each seed, so a report made while the job runs holds what is done.
            _write_seeds(output_dir, seeds, objectives)
    finite = [value for value in objectives if math.isfinite(value)]
    return statistics.fmean(finite) if len(finite) == len(objectives) else -math.inf


def _seed_config(cfg: DictConfig, seed: int) -> DictConfig:
    """``cfg`` as the run of one of its ``seeds``."""
    one = copy.deepcopy(cfg)
    one.seed, one.seeds = seed, []
    return one


def _run(seed: int) -> str:
    """The folder of ``seed``'s run in a job of several seeds."""
    return f"seed_{seed}"


def _write_seeds(output_dir: Path, seeds: list[int], objectives: list[float]) -> None:
    """Write the job's ``seeds.json``: its seeds, and the runs and objectives of the seeds
    done (the first ``len(objectives)``)."""
    runs = [_run(seed) for seed in seeds[: len(objectives)]]
    (output_dir / SEEDS_FILE).write_text(
        json.dumps({"seeds": seeds, "runs": runs, "objectives": objectives}) + "\n"
    )


def _train_seed_batch(
    cfg: DictConfig, info: RunInfo, output_dir: Path, seeds: list[int]
) -> list[float]:
    """``vectorize_seeds``: the runs of ``seeds``, each in its folder ``seed_<n>`` as the
    runs one after the other write them, trained in this process as one batch; their
    objectives.

    Raises:
        ConfigError: The run is distributed (a batch of seeds trains in one process).
    """
    if launched_ranks() is not None or cfg.distributed.nproc_per_node > 1:
        raise ConfigError(
            "'vectorize_seeds' trains the seeds in one process, and "
            f"'distributed.nproc_per_node' is {cfg.distributed.nproc_per_node} (or the job "
            "was started by torchrun). Use one of them: vectorize_seeds=false trains the seeds "
            "one after the other, each with its processes."
        )
    with contextlib.ExitStack() as run:
        configs, folders = [], []
        with garbage_collector_paused():
            for seed in seeds:
                one = _checked_and_resolved(_seed_config(cfg, seed))
                folder = output_dir / _run(seed)
                if one.resume is not None:  # a folder that may come from elsewhere
                    refuse_links(folder, "the resumed run")
                run.enter_context(claimed_run_folder(folder, writes_to=_folders_written(one)))
                configs.append(one)
                folders.append(folder)
        return train_seed_batch(configs, info, folders, run)


def _checked_seeds(cfg: DictConfig, overrides: list[str]) -> list[int]:
    """``cfg.seeds`` if each is a valid seed, none repeats, and the command line does not set
    ``seed`` too (it would be ignored)."""
    try:
        seeds = [require_seed(f"seeds.{i}", seed) for i, seed in enumerate(cfg.seeds)]
    except InvalidArgumentError as error:
        raise ConfigError(error.message_at("")) from None
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"'seeds' lists a seed more than once (got {seeds}).")
    if any(override_key(override) == "seed" for override in overrides):
        raise ConfigError(
            f"'seed' is set ({cfg.seed}) together with 'seeds' ({seeds}), which trains one run "
            f"per seed it lists and ignores seed. Give one of them: "
            f"seeds=[{','.join(map(str, seeds))}] or seed={cfg.seed}."
        )
    return seeds


def _train_run(cfg: DictConfig, info: RunInfo, output_dir: Path) -> float:
    """One training run in ``output_dir``; its objective. With
    ``distributed.nproc_per_node`` > 1, the run's processes are started here; under torchrun
    (or another launcher that sets ``RANK`` and ``WORLD_SIZE``), this process is one of them."""
    ranks = launched_ranks()
    with contextlib.ExitStack() as run:
        with garbage_collector_paused():  # startup allocates many long-lived objects
            cfg = _checked_and_resolved(cfg)
            if ranks is None or ranks.is_main:  # a run folder has one owner
                if cfg.resume is not None:  # a folder that may come from elsewhere
                    refuse_links(output_dir, "the resumed run")
                folders = _folders_written(cfg)
                run.enter_context(claimed_run_folder(output_dir, writes_to=folders))
        if ranks is None and cfg.distributed.nproc_per_node > 1:
            # This process starts the run's processes and waits for them.
            checkpoint = checkpoint_to_continue(cfg, output_dir, info.overrides)
            if checkpoint is None:
                refuse_existing_results(output_dir)
            save_resolved_config(cfg, output_dir, info)
            return start_processes(cfg, info, output_dir)
        return train_rank(cfg, info, output_dir, ranks, run)


def _checked_and_resolved(cfg: DictConfig) -> DictConfig:
    """``cfg`` with every ``${...}`` resolved, after the startup checks (nodes are built one
    by one, so interpolations across them must be resolved first; checking the resolved form
    means what is built is exactly what was checked)."""
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
    _check_run_settings(cfg)
    check_evaluation(cfg)
    return cfg


def _check_run_settings(cfg: DictConfig) -> None:
    """The top-level settings' own rules."""
    if cfg.resume is not None and cfg.restart_from_weights is not None:
        raise ConfigError(
            "resume= and restart_from_weights= are two ways to start: resume= continues a run "
            "exactly, restart_from_weights= starts a new run from its weights. Give only one."
        )
    for key in ("distributed.nproc_per_node", "distributed.timeout_s"):
        if OmegaConf.select(cfg, key) < 1:
            raise ConfigError(f"'{key}' must be >= 1 (got {OmegaConf.select(cfg, key)}).")
    _check_processes(cfg)
    if cfg.num_threads < 1:
        raise ConfigError(f"'num_threads' must be >= 1 (got {cfg.num_threads}).")
    try:
        require_seed("seed", cfg.seed)
    except InvalidArgumentError as error:
        raise ConfigError(error.message_at("")) from None


def _check_processes(cfg: DictConfig) -> None:
    """Refuse more processes on the CPU than the cores this process may use, unless asked for
    with ``distributed.oversubscribe``: a typo (1000 for 10) would fork them all."""
    nproc = int(cfg.distributed.nproc_per_node)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if nproc <= cores or cfg.distributed.oversubscribe or launched_ranks() is not None:
        return
    if cfg.device != "cpu":
        import torch

        if cfg.device != "auto" or torch.cuda.is_available():
            return  # one process per GPU, checked when each takes its own
    raise ConfigError(
        f"'distributed.nproc_per_node' is {nproc}, more processes than the {cores} CPU cores "
        "this run may use: they would take turns on the cores. Use at most "
        f"distributed.nproc_per_node={cores}, or add distributed.oversubscribe=true if you mean "
        "it."
    )


def _unresolvable_key(cfg: DictConfig) -> str:
    """The first key whose ``${...}`` cannot be resolved (``OmegaConf.resolve`` does not say)."""
    for key, node in config_nodes(cfg):
        try:
            node._dereference_node()
        except OmegaConfBaseException:
            return key
    return ""


def _folders_written(cfg: DictConfig) -> tuple[str, ...]:
    """The run folder's sub-folders this run will write to (checked writable at startup)."""
    from hydra_pipeline.engine.checkpoint import CHECKPOINT_DIRECTORY
    from hydra_pipeline.engine.reporting import TENSORBOARD_DIRECTORY
    from hydra_pipeline.engine.video import VIDEO_DIRECTORY

    evaluating = cfg.evaluation.interval is not None
    folders = [""]
    if cfg.pipeline.save_interval is not None or evaluating:  # best.pt
        folders.append(CHECKPOINT_DIRECTORY)
    if evaluating and cfg.evaluation.video:
        folders.append(VIDEO_DIRECTORY)
    if cfg.tensorboard and cfg.pipeline.should_log:
        folders.append(TENSORBOARD_DIRECTORY)
    return tuple(folders)
