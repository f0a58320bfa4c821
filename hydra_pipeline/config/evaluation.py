"""Evaluation schemas: the training config's ``evaluation`` node, and the evaluate command's
primary config (stored as ``base_evaluate``).

AllenAct 0.5's ``valid_pipeline_stage`` / ``test_pipeline_stage`` carry losses and settings for
its validation and test modes; here validation is the ``evaluation`` node (the policy on a
separate copy of the task, every ``interval`` steps) and testing is the evaluate command on a
run's checkpoints. Neither computes losses, so those stages are accepted and kept, not run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

__all__ = ["EvaluateConfig", "EvaluationConf"]


@dataclass
class EvaluationConf:
    """How a run evaluates its policy while it trains (the ``evaluation`` node).

    Attributes:
        interval: Total steps between evaluations; null turns evaluation off. A run that
            evaluates also evaluates once more after its last stage.
        episodes: Episodes per evaluation, spread over the evaluation's environments.
        num_envs: Environments of the evaluation's own copy of the task (null: the task's
            num_envs).
        deterministic: Act with each action distribution's mode instead of a sample.
        seed: Seeds every evaluation, so each plays the same episodes; null derives it from
            the run's seed.
        metric: The evaluation metric that picks checkpoints/best.pt: reward, reward_std,
            episode_length or an episode metric of the task (success).
        mode: max or min: whether a larger or a smaller metric is better.
        video: Record the first environment's episodes of each evaluation as MP4 files in the
            run's videos/ folder and in TensorBoard (needs the video extra).
    """

    interval: Optional[int] = None
    episodes: int = 10
    num_envs: Optional[int] = None
    deterministic: bool = True
    seed: Optional[int] = None
    metric: str = "reward"
    mode: str = "max"
    video: bool = False


@dataclass
class EvaluateConfig:
    """Everything the evaluate command (``python -m hydra_pipeline.evaluate``) reads.

    Attributes:
        run: The run folder to evaluate: one with .hydra/resolved_config.yaml and
            checkpoints/.
        checkpoint: auto (checkpoints/best.pt when the run evaluated while it trained, else
            the latest), last (the latest), best (checkpoints/best.pt), all (every checkpoint,
            with TensorBoard test/ scalars), or a checkpoint file (a path, or a file name in
            the run's checkpoints/).
        episodes: Episodes per checkpoint, spread over the task's environments.
        deterministic: Act with each action distribution's mode instead of a sample.
        seed: Seeds the episodes; null takes the run's evaluation seed, so the episodes are
            those of its evaluations during training.
        video: Record the first environment's episodes as MP4 files in the run's videos/
            folder (needs the video extra; task.num_envs=1 records every episode).
        task: Overrides of the run's task config: task.num_envs=8, or task.env_id=<another
            id> to test generalisation.
        device: auto (a GPU when available), cpu, cuda or cuda:N.
        num_threads: torch's CPU threads.
        allowed_targets: Extra import prefixes the run's config may build (my_project), as
            for training; only the command line may set it.
    """

    run: str = MISSING
    checkpoint: str = "auto"
    episodes: int = 10
    deterministic: bool = True
    seed: Optional[int] = None
    video: bool = False
    task: Dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    num_threads: int = 1
    allowed_targets: List[str] = field(default_factory=list)
