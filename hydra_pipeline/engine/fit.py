"""Fit checks: what a pipeline needs of the task, the model and the engine, checked before
anything runs.

The pipeline objects check their own arguments when they are built; what needs the task (its
environments, its expert), the model (memory) or what the engine logs is checked here, by
:func:`check_fit`, when the runner is made, so a mistake surfaces at startup with the key that
causes it rather than minutes into training.
"""

from __future__ import annotations

import difflib

from hydra_pipeline.engine.evaluation import EVALUATION_METRICS
from hydra_pipeline.engine.losses import declared_terms, needs_expert_actions
from hydra_pipeline.engine.reporting import metric_tag
from hydra_pipeline.engine.statistics import (
    EPISODE_METRICS,
    TEACHER_FORCING_METRICS,
    UPDATE_METRICS,
    loss_metric_prefix,
)
from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.pipeline import (
    PipelineStage,
    StageComponent,
    TrainingPipeline,
    TrainingSettings,
)
from hydra_pipeline.pipeline.settings import MINIBATCH_SPLITS, setting_source
from hydra_pipeline.tasks.protocol import Task

__all__ = ["check_fit", "expert_needs", "minibatch_split", "sequence_steps"]


def check_fit(pipeline: TrainingPipeline, task: Task, *, evaluating: bool, memory: bool) -> None:
    """Check that ``pipeline`` can train on ``task`` with a model with or without ``memory``,
    in a run that evaluates or not.

    Raises:
        InvalidArgumentError: More minibatches than the rollout can be split into, a model
            with memory with minibatches of single transitions or learning from a data source,
            a stage needing expert actions from a task without an expert, a stage component on
            a storage that is not a data source, or an early-stopping criterion watching a
            metric its stage never logs.
    """
    _check_watched_metrics(pipeline, evaluating)
    for index, stage in enumerate(pipeline.pipeline_stages):
        where = f"pipeline_stages.{index}"
        for number, component in enumerate(stage.stage_components):
            if component.storage_uuid == pipeline.rollout_storage_uuid:
                _check_minibatches(where, number, component, task, memory)
            else:
                _check_data_source(pipeline, where, number, component, memory)
        needing = expert_needs(pipeline, stage)
        if needing and not task.has_expert:
            raise InvalidArgumentError(
                where,
                f"uses {needing}, which need expert actions, but the task has no expert",
                stage.loss_names,
                "Train with PPO alone (pipeline=ppo), use a task with an expert (task=cartpole, "
                "a BabyAI level, or task.expert), or remove them from the stage.",
            )


def expert_needs(pipeline: TrainingPipeline, stage: PipelineStage) -> list[str]:
    """What in ``stage`` needs the task's expert actions during rollouts: its teacher forcing
    and the losses that learn from the rollout (data sources bring their own)."""
    rollout_uuid = pipeline.rollout_storage_uuid
    if rollout_uuid is None:
        return []
    needing = ["teacher_forcing"] if stage.teacher_forcing is not None else []
    for component in stage.stage_components:
        if component.storage_uuid == rollout_uuid:
            needing += [
                name
                for name in component.loss_names
                if needs_expert_actions(pipeline.get_loss(name))
            ]
    return needing


def minibatch_split(component: StageComponent) -> str:
    """How ``component`` splits a rollout into minibatches (``"environments"`` unless set)."""
    return component.training_settings.minibatch_split or MINIBATCH_SPLITS[0]


def _check_minibatches(
    where: str, number: int, component: StageComponent, task: Task, memory: bool
) -> None:
    """The rollout can be split into the component's minibatches, as the model learns."""
    settings = component.training_settings
    num_mini_batch = settings.num_mini_batch
    if not (component.loss_names and settings.update_repeats) or num_mini_batch is None:
        return
    split = minibatch_split(component)
    if memory and split != "environments":
        raise InvalidArgumentError(
            setting_source(where, number, settings, "minibatch_split"),
            "must be 'environments' for a model with memory, which learns from whole "
            "sequences of each environment",
            split,
            "Set minibatch_split=environments, or use a model without memory.",
        )
    if split == "environments" and memory:
        limit = task.num_envs * _sequences_per_rollout(where, number, settings)
        why = (
            f"the sequences in a rollout (num_envs * num_steps / sequence_length = {limit}), "
            "because minibatches split them",
            "Lower it, or cut rollouts into shorter sequences (sequence_length).",
        )
    elif split == "environments":
        limit = task.num_envs
        why = (
            f"the task's num_envs ({limit}), because minibatches split the environments",
            "Lower it, or set minibatch_split=transitions to split single transitions.",
        )
    else:
        assert settings.num_steps is not None  # required of every stage with a rollout
        limit = settings.num_steps * task.num_envs
        why = (
            f"the transitions in a rollout (num_steps * num_envs = {limit})",
            "Lower it, or collect longer rollouts.",
        )
    if num_mini_batch > limit:
        raise InvalidArgumentError(
            setting_source(where, number, settings, "num_mini_batch"),
            f"must be <= {why[0]}",
            num_mini_batch,
            why[1],
        )


def sequence_steps(settings: TrainingSettings) -> int:
    """The steps of each sequence a model with memory replays: ``sequence_length``, or the
    whole rollout when that is unset or at least as long."""
    num_steps = settings.num_steps
    assert num_steps is not None  # required of every stage with a rollout
    return min(settings.sequence_length or num_steps, num_steps)


def _sequences_per_rollout(where: str, number: int, settings: TrainingSettings) -> int:
    """How many sequences a model with memory cuts each environment's rollout into."""
    num_steps, length = settings.num_steps, sequence_steps(settings)
    assert num_steps is not None  # required of every stage with a rollout
    if num_steps % length:
        raise InvalidArgumentError(
            setting_source(where, number, settings, "sequence_length"),
            f"must divide the rollout's num_steps ({num_steps}) when shorter: a model with "
            "memory learns from sequences of that many steps",
            length,
            "Choose a divisor of num_steps, or null for whole rollouts.",
        )
    return num_steps // length


def _check_data_source(
    pipeline: TrainingPipeline, where: str, number: int, component: StageComponent, memory: bool
) -> None:
    """A component not on the rollout learns from a data source, with a memoryless model."""
    if memory and component.loss_names:
        raise InvalidArgumentError(
            f"{where}.stage_components.{number}",
            f"learns from the data source {component.storage_uuid!r}, whose minibatches are "
            "single transitions, but the model has memory and learns from whole sequences only",
            component.uuid,
            "Use a model without memory (e.g. model=mlp) for off-policy learning from "
            "demonstrations, or learn by imitation from the rollout (the imitation loss with "
            "teacher forcing) instead.",
        )
    source = pipeline.get_storage(component.storage_uuid)
    if not callable(source):
        raise InvalidArgumentError(
            f"named_storages.{component.storage_uuid}",
            f"must be the rollout storage ({pipeline.rollout_storage_uuid!r}) or a data source "
            f"(a callable returning an iterator of minibatches), as "
            f"{where}.stage_components.{number} learns from it",
            source,
        )


def _logged_metrics(
    pipeline: TrainingPipeline, stage: PipelineStage, evaluating: bool
) -> tuple[set[str], set[str]]:
    """The metrics the engine logs for ``stage``, and the prefixes under which a loss that
    does not declare its ``terms`` may log any."""
    names = {*EPISODE_METRICS, *UPDATE_METRICS}
    if evaluating:
        names |= {metric_tag(name, "eval") for name in EVALUATION_METRICS}
    if stage.teacher_forcing is not None:
        names |= set(TEACHER_FORCING_METRICS)
    prefixes: set[str] = set()
    for component in stage.stage_components:
        on_rollout = component.storage_uuid == pipeline.rollout_storage_uuid
        prefix = loss_metric_prefix(component.uuid, on_rollout)
        for name in component.loss_names:
            terms = declared_terms(pipeline.get_loss(name))
            if terms is None:
                prefixes.add(f"{prefix}{name}/")
            else:
                names |= {f"{prefix}{name}/{term}" for term in terms}
    return names, prefixes


def _check_watched_metrics(pipeline: TrainingPipeline, evaluating: bool) -> None:
    """Refuse an early-stopping criterion watching a metric its stage never logs (a typo
    would otherwise silently run the whole stage)."""
    for index, stage in enumerate(pipeline.pipeline_stages):
        metric = getattr(stage.early_stopping_criterion, "metric", None)
        if not isinstance(metric, str):
            continue
        names, prefixes = _logged_metrics(pipeline, stage, evaluating)
        if metric in names or metric.startswith(tuple(prefixes)):
            continue
        close = difflib.get_close_matches(metric, sorted(names), n=1)
        evaluation = metric.startswith(metric_tag("", "eval")) and not evaluating
        raise InvalidArgumentError(
            f"pipeline_stages.{index}.early_stopping_criterion.metric",
            "is not a metric this stage logs, so the criterion would never see it",
            metric,
            f"The stage logs: {', '.join(sorted(names))}."
            + (f" Did you mean '{close[0]}'?" if close and not evaluation else "")
            + (
                " Evaluation metrics are logged when the run evaluates: set evaluation.interval."
                if evaluation
                else ""
            ),
        )
