"""The engine: acting, rollouts, losses, updates, evaluation, checkpoints and logging for a
``TrainingPipeline``.

The names below are imported on first use, so that the torch-free parts of the engine (the run
callbacks, the summary, file names) can be imported by configuration-only commands without
importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hydra_pipeline.engine.acting import Actor, TaskStepper
    from hydra_pipeline.engine.collector import RolloutCollector
    from hydra_pipeline.engine.evaluation import BestEvaluation, EvaluationResult, Evaluator
    from hydra_pipeline.engine.learner import Learner
    from hydra_pipeline.engine.losses import A2C, PPO, A2CConfig, Imitation, Loss, PPOConfig
    from hydra_pipeline.engine.normalization import Normalization
    from hydra_pipeline.engine.rollout import Minibatch, RolloutStorage
    from hydra_pipeline.engine.runner import OnPolicyRunner
    from hydra_pipeline.engine.statistics import TrainingStatistics
    from hydra_pipeline.engine.summary import RunSummary, StageSummary

__all__ = [
    "A2C",
    "PPO",
    "A2CConfig",
    "Actor",
    "BestEvaluation",
    "EvaluationResult",
    "Evaluator",
    "Imitation",
    "Learner",
    "Loss",
    "Minibatch",
    "Normalization",
    "OnPolicyRunner",
    "PPOConfig",
    "RolloutCollector",
    "RolloutStorage",
    "RunSummary",
    "StageSummary",
    "TaskStepper",
    "TrainingStatistics",
]

_HOMES = {
    "Actor": "acting",
    "TaskStepper": "acting",
    "BestEvaluation": "evaluation",
    "EvaluationResult": "evaluation",
    "Evaluator": "evaluation",
    "RolloutCollector": "collector",
    "A2C": "losses",
    "PPO": "losses",
    "A2CConfig": "losses",
    "Imitation": "losses",
    "Loss": "losses",
    "Learner": "learner",
    "PPOConfig": "losses",
    "Normalization": "normalization",
    "Minibatch": "rollout",
    "RolloutStorage": "rollout",
    "OnPolicyRunner": "runner",
    "RunSummary": "summary",
    "StageSummary": "summary",
    "TrainingStatistics": "statistics",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'hydra_pipeline.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"hydra_pipeline.engine.{home}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
