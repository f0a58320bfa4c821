"""The engine: acting, rollouts, losses, updates, evaluation, checkpoints and logging for a
``TrainingPipeline``."""

from hydra_pipeline.engine.acting import Actor, TaskStepper
from hydra_pipeline.engine.evaluation import BestEvaluation, EvaluationResult, Evaluator
from hydra_pipeline.engine.losses import A2C, PPO, A2CConfig, Imitation, Loss, PPOConfig
from hydra_pipeline.engine.rollout import Minibatch, RolloutStorage
from hydra_pipeline.engine.runner import OnPolicyRunner
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
    "Loss",
    "Minibatch",
    "OnPolicyRunner",
    "PPOConfig",
    "RolloutStorage",
    "RunSummary",
    "StageSummary",
    "TaskStepper",
]
