"""The application's top-level schema, stored as ``base_config``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from hydra_pipeline.config.distributed import DistributedConf
from hydra_pipeline.config.evaluation import EvaluationConf
from hydra_pipeline.config.normalization import NormalizationConf
from hydra_pipeline.config.pipeline import TrainingPipelineConf

__all__ = ["Config"]


@dataclass
class Config:
    """Everything a training run reads.

    Attributes:
        pipeline: The training pipeline: losses, stages, optimizer, schedule (group pipeline).
        task: The environments to train on (group task).
        model: The actor-critic model (group model).
        seed: Seeds Python, NumPy, torch (CPU and every GPU) and the task's environments.
        seeds: Several seeds to train one after the other in this job (each in a folder
            seed_<n>); the job's objective is the mean of theirs. Empty: just seed.
        vectorize_seeds: Train the seeds in one batched computation instead of one after the
            other (memoryless models, one process): the same folders and results.
        deterministic_cudnn: Deterministic cuDNN and torch algorithms (slower on GPU).
        device: auto (a GPU when available), cpu, cuda or cuda:N.
        num_threads: torch's CPU threads; 1 suits small models, whose small operations only
            wait on each other's threads (and stall when other processes share the cores).
        resume: A run folder or checkpoint file to continue exactly, in that run's folder.
        restart_from_weights: A run folder or checkpoint file whose model weights start a
            fresh run of the pipeline (AllenAct's restart_pipeline).
        tensorboard: Write TensorBoard event files to the run folder.
        progress_bar: A progress bar for the run (time left, stage, speed, return); null
            shows it only on a terminal.
        allowed_targets: Extra import prefixes that _target_ may name (my_project); only the
            command line may set it.
        callbacks: Run callbacks by name, called during training (trackers: callbacks=[wandb]
            or callbacks=[wandb,mlflow]; your own: +callbacks.mine={_target_:my_project.Hook}).
        return_window: The training return (reward: logged, watched by early-stopping
            criteria, and the summary's) is the mean of this many of the last episodes that
            ended in the current stage (100, as Stable-Baselines3 reports).
        evaluation: Evaluation of the policy during training on a separate copy of the task
            (evaluation.interval=N turns it on).
        distributed: Training one run with several processes (distributed.nproc_per_node=2;
            task.num_envs is per process, max_stage_steps and the other step counts are the
            run's, over all processes).
        objective: The summary metric the run returns to an optimizing sweeper (Optuna):
            reward (the final training return), eval/reward (the last evaluation's), or any
            other final or eval/ metric; null: eval/reward when the run evaluates, else reward.
        normalization: Running-statistics normalisation of observations and rewards
            (normalization.observations=true, normalization.rewards=true).
    """

    pipeline: TrainingPipelineConf = MISSING
    task: Any = MISSING
    model: Any = MISSING
    seed: int = 0
    seeds: List[int] = field(default_factory=list)
    vectorize_seeds: bool = False
    deterministic_cudnn: bool = False
    device: str = "auto"
    num_threads: int = 1
    resume: Optional[str] = None
    restart_from_weights: Optional[str] = None
    tensorboard: bool = True
    progress_bar: Optional[bool] = None
    allowed_targets: List[str] = field(default_factory=list)
    callbacks: Dict[str, Any] = field(default_factory=dict)
    return_window: int = 100
    evaluation: EvaluationConf = field(default_factory=EvaluationConf)
    objective: Optional[str] = None
    distributed: DistributedConf = field(default_factory=DistributedConf)
    normalization: NormalizationConf = field(default_factory=NormalizationConf)
