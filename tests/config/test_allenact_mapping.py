"""The "From AllenAct" table of the documentation is literally true: each row's config column,
composed on the default config, builds what its AllenAct column builds with
``hydra_pipeline.experiment_utils``.

The rows are read from the page itself (``docs/guides/allenact.md``): the first code span of
each cell, with the table's placeholders (``N``, ``M``, ``K``, ``LR``) given values. Rows that
are not objects (command-line flags, methods of an experiment config) are listed in
``NOT_OBJECTS``; a row in neither list fails, so the table cannot drift from this test.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR

from hydra_pipeline import TrainingPipeline, experiment_utils
from hydra_pipeline.engine.losses import A2C, PPO, A2CConfig, PPOConfig
from hydra_pipeline.tasks import CartPoleTask, ExpertDemonstrations

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "guides" / "allenact.md").read_text()
VALUES = {"N": 12_345, "M": 67_890, "K": 2, "LR": 0.00042}
NAMESPACE: dict[str, Any] = {
    **{name: getattr(experiment_utils, name) for name in experiment_utils.__all__},
    "optim": torch.optim,
    "LambdaLR": LambdaLR,
    "PPO": PPO,
    "PPOConfig": PPOConfig,
    "A2C": A2C,
    "A2CConfig": A2CConfig,
    "ExpertDemonstrations": ExpertDemonstrations,
    "CartPoleTask": CartPoleTask,
    **VALUES,
}
STEPS = [0, 1, 500, 6_000, 12_345, 40_000, 80_235, 10**6]


def table_rows() -> list[tuple[str, str]]:
    """The cells of the "From AllenAct" table (their first code spans), row by row."""
    rows = []
    for line in PAGE.splitlines():
        match = re.fullmatch(r"\| (.*) \| (.*) \|", line)
        if match and not line.startswith(("| AllenAct", "|---")):
            rows.append((first_code(match.group(1)), first_code(match.group(2))))
    return rows


def first_code(cell: str) -> str:
    """A cell's first code span (the whole cell when it has none)."""
    code = re.search(r"`([^`]*)`", cell)
    return code.group(1) if code else cell


def with_values(text: str) -> str:
    return re.sub(r"\b(N|M|K|LR)\b", lambda match: str(VALUES[match.group(1)]), text)


def same_attributes(*names: str) -> Callable[[Any, Any], None]:
    def check(expected: Any, built: Any) -> None:
        assert type(built) is type(expected)
        for name in names:
            assert getattr(built, name) == getattr(expected, name), name

    return check


def same_losses(expected: dict[str, Any], built: dict[str, Any]) -> None:
    assert expected.keys() == built.keys()
    for name, loss in expected.items():
        assert type(built[name]) is type(loss) and vars(built[name]) == vars(loss)


def same_optimizers(expected: Any, built: Any) -> None:
    """Both builders make the same optimizer: class and every hyperparameter (the config's
    Adam is torch's fused implementation of the same step)."""
    params = [torch.nn.Parameter(torch.zeros(2))]
    made, wanted = built(params=params), expected(params=params)
    implementation = {"fused", "foreach"}
    assert type(made) is type(wanted)
    assert {k: v for k, v in made.defaults.items() if k not in implementation} == {
        k: v for k, v in wanted.defaults.items() if k not in implementation
    }


def same_schedulers(expected: Any, built: Any) -> None:
    """Both builders make the same scheduler: class, multiplier (equal, and at many steps) and
    starting LR."""
    made = built(optimizer=torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0))
    wanted = expected(optimizer=torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0))
    assert type(made) is type(wanted)
    (made_lambda,), (wanted_lambda,) = made.lr_lambdas, wanted.lr_lambdas
    assert made_lambda == wanted_lambda
    assert [made_lambda(s) for s in STEPS] == [wanted_lambda(s) for s in STEPS]
    assert made.get_last_lr() == wanted.get_last_lr()


def same_settings(expected: Any, built: Any) -> None:
    assert built.own_values() == expected.own_values()


def same_storages(expected: dict[str, Any], built: dict[str, Any]) -> None:
    assert expected.keys() == built.keys()
    for name, storage in expected.items():
        assert type(built[name]) is type(storage)
        if isinstance(storage, ExpertDemonstrations):
            for attribute in ("num_steps", "batch_size", "seed"):
                assert getattr(built[name], attribute) == getattr(storage, attribute)
            task, wanted = built[name].task, storage.task
            assert type(task) is type(wanted)
            assert (task.num_envs, task.max_episode_steps) == (
                wanted.num_envs,
                wanted.max_episode_steps,
            )
        else:
            assert built[name] == storage


def same_components(expected: list[Any], built: list[Any]) -> None:
    assert len(built) == len(expected)
    for made, wanted in zip(built, expected, strict=True):
        for name in ("uuid", "storage_uuid", "loss_names", "loss_weights"):
            assert getattr(made, name) == getattr(wanted, name), name
        same_settings(wanted.training_settings, made.training_settings)


def equal(expected: Any, built: Any) -> None:
    assert built == expected and type(built) is type(expected)


class Row(NamedTuple):
    """Where a row's object sits in the built pipeline, and how two of them compare."""

    built: Callable[[TrainingPipeline], Any]
    compare: Callable[[Any, Any], None]


ROWS: dict[str, Row] = {
    'PipelineStage(loss_names=["ppo_loss"], max_stage_steps=N)': Row(
        lambda p: p.pipeline_stages[1], same_attributes("loss_names", "max_stage_steps")
    ),
    'named_losses={"ppo_loss": PPO(**PPOConfig)}': Row(
        lambda p: {"ppo_loss": p.named_losses["ppo_loss"]}, same_losses
    ),
    'named_losses={"ppo_loss": A2C(**A2CConfig)}': Row(
        lambda p: {"ppo_loss": p.named_losses["ppo_loss"]}, same_losses
    ),
    "optimizer_builder=Builder(optim.Adam, dict(lr=LR))": Row(
        lambda p: p.optimizer_builder, same_optimizers
    ),
    'lr_scheduler_builder=Builder(LambdaLR, {"lr_lambda": LinearDecay(steps=N)})': Row(
        lambda p: p.lr_scheduler_builder, same_schedulers
    ),
    'lr_scheduler_builder=Builder(LambdaLR, {"lr_lambda": MultiLinearDecay([LinearDecay('
    "steps=N, startp=0.1, endp=1.0), LinearDecay(steps=M)])})": Row(
        lambda p: p.lr_scheduler_builder, same_schedulers
    ),
    "teacher_forcing=LinearDecay(steps=N, startp=1, endp=0)": Row(
        lambda p: p.pipeline_stages[0].teacher_forcing, equal
    ),
    "early_stopping_criterion=NeverEarlyStoppingCriterion()": Row(
        lambda p: p.pipeline_stages[0].early_stopping_criterion, same_attributes()
    ),
    "num_mini_batch=K": Row(lambda p: p.num_mini_batch, equal),
    "training_settings=TrainingSettings(num_mini_batch=K)": Row(
        lambda p: p.pipeline_stages[1].training_settings, same_settings
    ),
    'named_storages={"onpolicy": RolloutBlockStorage(), "demos": ExpertDemonstrations('
    "CartPoleTask(16))}": Row(
        lambda p: {name: p.get_storage(name) for name in p.named_storages}, same_storages
    ),
    'stage_components=[StageComponent(uuid="bc", storage_uuid="demos", loss_names=['
    '"imitation_loss"])]': Row(
        lambda p: list(p.pipeline_stages[0].stage_components), same_components
    ),
}
"""Every object row of the table, by its AllenAct code."""

NOT_OBJECTS = {
    "ExperimentConfig.training_pipeline()",
    "machine_params()",
    "create_model()",
    "make_sampler_fn()",
    "main.py <experiment>",
    "--seed",
    "--deterministic_cudnn",
    "--checkpoint <file>",
    "--checkpoint <file> --restart_pipeline",
    "--output_dir",
    "--config_kwargs '{...}'",
    "--disable_tensorboard",
    "--disable_config_saving",
    "--callbacks",
    "--distributed_ip_and_port",
    "valid_pipeline_stage",  # a mode: evaluation during training (tests/app/test_evaluate.py)
    "test_pipeline_stage",  # a mode: the evaluate command (tests/app/test_evaluate.py)
}
"""Rows that map a method, a command-line flag or a mode, not an object."""


def test_every_row_is_checked() -> None:
    codes = [code for code, _ in table_rows()]
    assert set(codes) <= set(ROWS) | NOT_OBJECTS, set(codes) - set(ROWS) - NOT_OBJECTS
    assert set(ROWS) <= set(codes), set(ROWS) - set(codes)


@pytest.mark.parametrize(
    ("allenact", "config"),
    [row for row in table_rows() if row[0] in ROWS],
    ids=lambda text: text[:40],
)
def test_the_config_column_builds_the_allenact_column(
    build: Callable[..., Any], allenact: str, config: str
) -> None:
    keyword = re.fullmatch(r"(\w+)=(.*)", allenact, flags=re.DOTALL)
    expected = eval(keyword.group(2) if keyword else allenact, dict(NAMESPACE))
    pipeline = build(*shlex.split(with_values(config)))
    row = ROWS[allenact]
    row.compare(expected, row.built(pipeline))
