"""Evaluation in the app: the run's evaluations during training, and ``evaluate(cfg)``, the
task function of the evaluate command (``python -m hydra_pipeline.evaluate run=<folder>``).

The evaluate command rebuilds a run's task and model from its saved config (checked by the
trust gate like any config; ``task.*`` overrides apply on top), loads each checkpoint's weights
(weights-only), plays the episodes with the :class:`~hydra_pipeline.engine.evaluation.Evaluator`
training uses, and writes ``<run>/evaluation/<checkpoint stem>.json`` per checkpoint, plus
TensorBoard ``test/<metric>`` scalars against the checkpoints' step counts for
``checkpoint=all``.
"""

from __future__ import annotations

import copy
import difflib
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from hydra_pipeline.app.device import device_for
from hydra_pipeline.arguments import require_at_least, require_seed
from hydra_pipeline.config import instantiate_node
from hydra_pipeline.config.normalization import build_normalization
from hydra_pipeline.config.saved_run import saved_run_config
from hydra_pipeline.errors import CheckpointError, ConfigError, InvalidArgumentError
from hydra_pipeline.files import refuse_links
from hydra_pipeline.pipeline.early_stopping import metric_goal, metric_name
from hydra_pipeline.pipeline.metrics import EVALUATION_METRICS

if TYPE_CHECKING:
    from torch import nn

    from hydra_pipeline.engine.evaluation import Evaluator
    from hydra_pipeline.engine.normalization import Normalization

__all__ = [
    "EVALUATION_DIRECTORY",
    "check_evaluation",
    "evaluate",
    "evaluation_seed_of",
    "objective_value",
    "training_evaluation",
]

EVALUATION_DIRECTORY = "evaluation"
"""Where the evaluate command writes its results, relative to the run folder."""

_EVENT_FILES = "events.out.tfevents.*"
"""TensorBoard's event files, which the evaluate command replaces in its own folder."""

_EVAL = "eval/"
"""The prefix of evaluation metrics in early-stopping criteria and ``objective``: their
TensorBoard tag (``engine.reporting.metric_tag(name, "eval")``), spelled out here so that the
startup checks import no torch."""

log = logging.getLogger("hydra_pipeline")


def _checked(prefix: str, check: Any, *arguments: Any) -> Any:
    """``check(*arguments)``, its ``InvalidArgumentError`` as a ``ConfigError`` at ``prefix``."""
    try:
        return check(*arguments)
    except InvalidArgumentError as error:
        raise ConfigError(error.message_at(prefix)) from None


def _check_video(key: str, video: bool) -> None:
    """Refuse ``video=true`` without PyAV, naming the extra that installs it."""
    if not video:
        return
    from hydra_pipeline.engine.video import require_video_support

    try:
        require_video_support()
    except ImportError as error:
        raise ConfigError(f"'{key}' is true, but {error}.") from None


def evaluation_seed_of(cfg: DictConfig) -> int:
    """The seed of a run's evaluations: ``evaluation.seed``, or one drawn from its ``seed``."""
    from hydra_pipeline.engine.evaluation import evaluation_seed

    seed = OmegaConf.select(cfg, "evaluation.seed")
    return int(seed) if seed is not None else evaluation_seed(int(cfg.seed))


# --------------------------------------------------------------------------------------------
# During training


def check_evaluation(cfg: DictConfig) -> None:
    """The ``evaluation`` node's and ``objective``'s own rules, before anything is built.

    Raises:
        ConfigError: A value is out of range, ``objective`` names an evaluation metric of a
            run that does not evaluate, or videos are asked for without PyAV.
    """
    evaluation = cfg.evaluation
    objective = cfg.objective
    if evaluation.interval is None:
        if objective is not None and objective.startswith(_EVAL):
            raise ConfigError(
                f"'objective' is {objective!r}, an evaluation metric, but the run does not "
                "evaluate. Set evaluation.interval=<steps>, or objective=reward."
            )
        return
    _checked("evaluation", require_at_least, "interval", evaluation.interval, 1)
    _checked("evaluation", require_at_least, "episodes", evaluation.episodes, 1)
    if evaluation.num_envs is not None:
        _checked("evaluation", require_at_least, "num_envs", evaluation.num_envs, 1)
    if evaluation.seed is not None:
        _checked("evaluation", require_seed, "seed", evaluation.seed)
    _checked("evaluation", metric_name, evaluation.metric)
    _check_metric(evaluation.metric)
    _checked("evaluation", metric_goal, evaluation.mode)
    _check_video("evaluation.video", evaluation.video)


def _check_metric(metric: str) -> None:
    """Refuse an ``evaluation.metric`` that misspells one every evaluation reports: the run
    would keep no best checkpoint. (A task may report other metrics, unknown until it runs:
    the first evaluation without the metric says so in the log.)"""
    close = difflib.get_close_matches(metric, EVALUATION_METRICS, n=1, cutoff=0.75)
    if metric not in EVALUATION_METRICS and close:
        raise ConfigError(
            f"'evaluation.metric' is {metric!r}, which no evaluation reports, so the run would "
            f"keep no best checkpoint. Did you mean '{close[0]}'? Every evaluation reports "
            f"{', '.join(EVALUATION_METRICS)}; a task may add its own (such as success)."
        )


def training_evaluation(
    cfg: DictConfig,
    model: nn.Module,
    device: str,
    output_dir: Path,
    normalization: Normalization | None = None,
) -> dict[str, Any]:
    """The runner's keyword arguments that evaluate as ``cfg.evaluation`` says (``{}`` when
    the run does not evaluate); ``["evaluator"].task`` is the evaluation's own task, built
    without touching the global random generators. The evaluator reads training's
    ``normalization`` statistics as they are."""
    evaluation = cfg.evaluation
    if evaluation.interval is None:
        return {}
    from hydra_pipeline.engine.evaluation import BestEvaluation, Evaluator, isolated_random_state
    from hydra_pipeline.engine.video import VIDEO_DIRECTORY

    task_cfg = cfg
    if evaluation.num_envs is not None:
        if "num_envs" not in cfg.task:
            raise ConfigError(
                "'evaluation.num_envs' is set, but the task takes no num_envs. Remove it: the "
                "evaluation then runs as many environments as training."
            )
        task_cfg = copy.deepcopy(cfg)
        task_cfg.task.num_envs = evaluation.num_envs
    with isolated_random_state():
        task = instantiate_node(task_cfg, "task")
    try:
        evaluator = Evaluator(
            task,
            model,
            episodes=evaluation.episodes,
            deterministic=evaluation.deterministic,
            seed=evaluation_seed_of(cfg),
            device=device,
            video_folder=output_dir / VIDEO_DIRECTORY if evaluation.video else None,
            normalization=normalization,
        )
        best = BestEvaluation(evaluation.metric, evaluation.mode)
    except InvalidArgumentError as error:
        task.close()
        raise ConfigError(error.message_at("evaluation")) from None
    return {"evaluator": evaluator, "evaluation_interval": evaluation.interval, "best": best}


def objective_value(
    summary: Mapping[str, Any], objective: str | None, *, warn: bool = True
) -> float:
    """The value a run returns to an optimizing sweeper: ``objective`` (by default
    ``eval/reward`` when the run evaluated, else ``reward``) read from the run's summary
    (-inf, so the run ranks last, when it has no value, with a warning if ``warn``)."""
    evaluated = bool(summary.get("eval_metrics"))
    name = objective or (f"{_EVAL}reward" if evaluated else "reward")
    source = "eval_metrics" if name.startswith(_EVAL) else "final_metrics"
    metrics = summary.get(source, {})
    value = metrics.get(name.removeprefix(_EVAL))
    if value is None:
        if not warn:
            return -math.inf
        known = ", ".join(sorted(metrics)) or "none"
        log.warning(
            "The objective %r has no value (the run's %s: %s): the objective is -inf.",
            name,
            source,
            known,
        )
        return -math.inf
    return float(value)


# --------------------------------------------------------------------------------------------
# The evaluate command


def evaluate(cfg: DictConfig) -> float:
    """Evaluate the checkpoints ``cfg.checkpoint`` names, of the run in ``cfg.run``, and return
    the last one's mean episode return (the objective of an optimizing sweeper).

    Raises:
        ConfigError: The run folder, its saved config or a setting is unusable.
        CheckpointError: A checkpoint is missing, unreadable, or does not fit the model built
            for the (possibly overridden) task.
        RunFolderError: The run folder holds a symbolic link (the command writes into it).
    """
    if OmegaConf.is_missing(cfg, "run"):
        raise ConfigError(
            "'run' has no value: give the run folder to evaluate, e.g. "
            "run=outputs/2026-01-01/12-00-00."
        )
    run_dir = Path(cfg.run)
    run_cfg = saved_run_config(run_dir, OmegaConf.to_container(cfg.task))  # type: ignore[arg-type]
    refuse_links(run_dir, "the evaluate command")
    from hydra_pipeline.engine.checkpoint import (
        BEST_OR_LAST,
        checkpoints_named,
        picked_by_default,
    )

    checkpoints = checkpoints_named(run_dir, cfg.checkpoint)
    if cfg.checkpoint == BEST_OR_LAST:
        log.info("Evaluating %s.", picked_by_default(checkpoints[0]))
    _checked("", require_at_least, "episodes", cfg.episodes, 1)
    _checked("", require_at_least, "num_threads", cfg.num_threads, 1)
    seed = evaluation_seed_of(run_cfg)
    if cfg.seed is not None:
        seed = _checked("", require_seed, "seed", cfg.seed)
    _check_video("video", cfg.video)
    device = device_for(cfg.device)

    import torch

    from hydra_pipeline.engine.evaluation import Evaluator
    from hydra_pipeline.engine.video import VIDEO_DIRECTORY
    from hydra_pipeline.models.protocol import model_arguments

    torch.set_num_threads(cfg.num_threads)
    task = instantiate_node(run_cfg, "task")
    try:
        model = instantiate_node(run_cfg, "model", **model_arguments(task)).to(device)
        try:
            evaluator = Evaluator(
                task,
                model,
                episodes=cfg.episodes,
                deterministic=cfg.deterministic,
                seed=seed,
                device=device,
                video_folder=run_dir / VIDEO_DIRECTORY if cfg.video else None,
                normalization=build_normalization(run_cfg),
            )
        except InvalidArgumentError as error:
            raise ConfigError(error.message_at("")) from None
        records = [
            _evaluate_checkpoint(evaluator, model, path, run_dir, run_cfg) for path in checkpoints
        ]
    finally:
        task.close()
    folder = run_dir / EVALUATION_DIRECTORY
    folder.mkdir(exist_ok=True)
    written = []
    for record in records:
        written.append(folder / f"{Path(record['checkpoint']).stem}.json")
        written[-1].write_text(json.dumps(record, indent=2) + "\n")
    if cfg.checkpoint == "all":
        written.append(_write_test_scalars(folder, records))
    written += [run_dir / video for record in records for video in record["videos"]]
    print(_table(records))
    print("Wrote:\n" + "\n".join(f"  {path}" for path in written))
    return float(records[-1]["reward_mean"])


def _evaluate_checkpoint(
    evaluator: Evaluator, model: nn.Module, path: Path, run_dir: Path, run_cfg: DictConfig
) -> dict[str, Any]:
    """Load the weights of the checkpoint at ``path`` into ``model`` and evaluate them."""
    from hydra_pipeline.engine.checkpoint import load_weights, restore_normalization

    try:
        payload = load_weights(model, path)
        restore_normalization(evaluator.stepper.normalization, payload, path)
    except CheckpointError as error:
        raise CheckpointError(
            f"{error} The task evaluated: {_task_description(run_cfg)}."
        ) from None
    result = evaluator.evaluate(video_name=path.stem)
    summary = result.summary()
    stage = payload["pipeline"]["current_stage_index"]
    return {
        "checkpoint": _in_run(path, run_dir),
        "total_steps": int(payload["total_steps"]),
        "stage": len(payload["pipeline"]["stages"]) - 1 if stage is None else int(stage),
        "episodes": len(result.returns),
        "deterministic": evaluator.deterministic,
        "seed": evaluator.seed,
        "reward_mean": summary.pop("reward"),
        "reward_std": summary.pop("reward_std"),
        "episode_length_mean": summary.pop("episode_length"),
        "metrics": summary,
        "returns": result.returns,
        "episode_lengths": result.lengths,
        "videos": [_in_run(video, run_dir) for video in result.videos],
        "task": OmegaConf.to_container(run_cfg.task),
    }


def _in_run(path: Path, run_dir: Path) -> str:
    """``path`` relative to the run folder (absolute if outside it), as a JSON value."""
    path = path.resolve()
    return str(
        path.relative_to(run_dir.resolve()) if path.is_relative_to(run_dir.resolve()) else path
    )


def _task_description(run_cfg: DictConfig) -> str:
    task = OmegaConf.to_container(run_cfg.task)
    assert isinstance(task, dict)
    return ", ".join(str(key) + f"={value!r}" for key, value in task.items())


def _write_test_scalars(folder: Path, records: list[dict[str, Any]]) -> Path:
    """TensorBoard ``test/<metric>`` scalars of every checkpoint, against its step count, in
    ``<folder>/tensorboard`` (returned): the event files of an earlier evaluation there are
    replaced, so the curve is this evaluation's, and nothing else is touched."""
    from hydra_pipeline.engine.reporting import TENSORBOARD_DIRECTORY, TensorBoardWriter

    for earlier in (folder / TENSORBOARD_DIRECTORY).glob(_EVENT_FILES):
        if earlier.is_file():
            earlier.unlink()
    writer = TensorBoardWriter()
    writer.on_run_start(run_dir=folder, total_steps=0, resumed=False)
    try:
        for record in records:
            metrics = {
                "reward": record["reward_mean"],
                "reward_std": record["reward_std"],
                "episode_length": record["episode_length_mean"],
                **record["metrics"],
            }
            writer.on_log(
                mode="test",
                total_steps=record["total_steps"],
                stage_index=record["stage"],
                stage_steps=0,
                metrics=metrics,
                counts=dict.fromkeys(metrics, record["episodes"]),
            )
    finally:
        writer.close()
    return folder / TENSORBOARD_DIRECTORY


def _table(records: list[dict[str, Any]]) -> str:
    """A short table of the evaluated checkpoints."""
    header = f"{'checkpoint':<34} {'total steps':>12} {'episodes':>9} {'return':>20} {'length':>8}"
    lines = [header]
    for record in records:
        name = Path(record["checkpoint"]).name
        reward = f"{record['reward_mean']:.2f} +/- {record['reward_std']:.2f}"
        lines.append(
            f"{name:<34} {record['total_steps']:>12} {record['episodes']:>9} {reward:>20} "
            f"{record['episode_length_mean']:>8.1f}"
        )
    return "\n".join(lines)
