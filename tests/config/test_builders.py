"""Optimizer and scheduler configs instantiate into plain ``Builder`` s, equal to hand-written
ones, that survive pickling and deep copies."""

from __future__ import annotations

import copy
import pickle
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from omegaconf import DictConfig, ListConfig

from hydra_pipeline import Builder, LinearDecay, TrainingPipeline

TORCH_FLAGS = {"foreach": None, "maximize": False, "differentiable": False}

# What each preset should give, written out by hand from conf/optimizer/*.yaml and torch's
# defaults for the keys the presets leave alone.
HAND_WRITTEN_OPTIMIZERS: dict[str, Builder[Any]] = {
    "adam": Builder(
        torch.optim.Adam,
        {
            "lr": 0.001,
            "betas": [0.9, 0.999],
            "eps": 1e-08,
            "weight_decay": 0.0,
            "amsgrad": False,
            **TORCH_FLAGS,
            "capturable": False,
            "fused": True,
            "decoupled_weight_decay": False,
        },
    ),
    "adam_cartpole": Builder(
        torch.optim.Adam,
        {
            "lr": 0.003,
            "betas": [0.9, 0.999],
            "eps": 1e-05,
            "weight_decay": 0.0,
            "amsgrad": False,
            **TORCH_FLAGS,
            "capturable": False,
            "fused": True,
            "decoupled_weight_decay": False,
        },
    ),
    "adamw": Builder(
        torch.optim.AdamW,
        {
            "lr": 0.001,
            "betas": [0.9, 0.999],
            "eps": 1e-05,
            "weight_decay": 0.01,
            "amsgrad": False,
            **TORCH_FLAGS,
            "capturable": False,
            "fused": True,
        },
    ),
    "sgd": Builder(
        torch.optim.SGD,
        {
            "lr": 0.01,
            "momentum": 0.9,
            "dampening": 0.0,
            "weight_decay": 0.0,
            "nesterov": False,
            **TORCH_FLAGS,
            "fused": None,
        },
    ),
    "rmsprop": Builder(
        torch.optim.RMSprop,
        {
            "lr": 0.0007,
            "alpha": 0.99,
            "eps": 1e-05,
            "weight_decay": 0.0,
            "momentum": 0.0,
            "centered": False,
            "capturable": False,
            **TORCH_FLAGS,
        },
    ),
}


def omegaconf_objects(value: Any, where: str = "") -> list[str]:
    """Where an OmegaConf container hides in ``value`` (dicts, lists, tuples, builders and
    plain objects' attributes, recursively)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return [where or "<root>"]
    children: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        children = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        children = [(str(i), v) for i, v in enumerate(value)]
    elif isinstance(value, Builder):
        children = [("kwargs", value.kwargs), ("default", value.default)]
    elif hasattr(value, "__dict__") and not isinstance(value, (type, torch.nn.Module)):
        children = list(vars(value).items())
    found: list[str] = []
    for key, child in children:
        found += omegaconf_objects(child, f"{where}.{key}" if where else key)
    return found


class TestBuilderFromConfig:
    @pytest.mark.parametrize("optimizer", list(HAND_WRITTEN_OPTIMIZERS))
    def test_optimizer_builder_equals_the_hand_written_one(
        self, build: Callable[..., Any], optimizer: str
    ) -> None:
        """The preset's Builder equals Builder(torch class, {every kwarg}) written by hand."""
        built = build(f"optimizer={optimizer}").optimizer_builder
        expected = HAND_WRITTEN_OPTIMIZERS[optimizer]
        assert type(built) is Builder
        assert built.class_type is expected.class_type
        assert built.kwargs == expected.kwargs
        assert built.default == {}
        assert built == expected

    def test_betas_is_a_plain_list(self, build: Callable[..., Any]) -> None:
        """Containers in kwargs are plain Python (betas is a list, not a ListConfig)."""
        betas = build("optimizer=adam").optimizer_builder.kwargs["betas"]
        assert type(betas) is list
        assert all(type(beta) is float for beta in betas)

    def test_lambda_lr_builder_holds_a_real_linear_decay(self, build: Callable[..., Any]) -> None:
        """linear_decay gives Builder(LambdaLR, {lr_lambda: LinearDecay(...), last_epoch: -1})."""
        built = build("lr_scheduler=linear_decay").lr_scheduler_builder
        assert built == Builder(
            torch.optim.lr_scheduler.LambdaLR,
            {"lr_lambda": LinearDecay(steps=332_768, startp=1.0, endp=0.0), "last_epoch": -1},
        )
        assert type(built.kwargs["lr_lambda"]) is LinearDecay

    def test_lambda_lr_multiplies_the_learning_rate_by_the_decay(
        self, build: Callable[..., Any]
    ) -> None:
        """Stepped to half the total steps (as the engine steps it), the LR is halved."""
        pipeline = build("lr_scheduler=linear_decay", "optimizer=sgd")
        model = torch.nn.Linear(2, 2)
        opt = pipeline.optimizer_builder(params=model.parameters())
        scheduler = pipeline.lr_scheduler_builder(optimizer=opt)
        model(torch.ones(1, 2)).sum().backward()
        opt.step()
        with warnings.catch_warnings():  # the engine steps with the epoch (total steps) too
            warnings.filterwarnings("ignore", message=".*epoch parameter.*", category=UserWarning)
            scheduler.step(332_768 // 2)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5)

    def test_schema_option_gives_torch_defaults(self, build: Callable[..., Any]) -> None:
        """optimizer=base_sgd (the schema itself) builds SGD with torch's own defaults."""
        built = build("optimizer=base_sgd").optimizer_builder
        opt = built(params=torch.nn.Linear(2, 2).parameters())
        reference = torch.optim.SGD(torch.nn.Linear(2, 2).parameters())
        assert opt.defaults == reference.defaults

    @pytest.mark.parametrize("optimizer", list(HAND_WRITTEN_OPTIMIZERS))
    @pytest.mark.parametrize("scheduler", ["linear_decay", "cosine", "step"])
    def test_no_omegaconf_object_in_the_pipeline(
        self, build: Callable[..., Any], optimizer: str, scheduler: str
    ) -> None:
        """No DictConfig or ListConfig anywhere in the built pipeline, builders included."""
        pipeline = build(f"optimizer={optimizer}", f"lr_scheduler={scheduler}")
        assert omegaconf_objects(pipeline) == []
        assert omegaconf_objects(pipeline.optimizer_builder) == []
        assert omegaconf_objects(pipeline.lr_scheduler_builder) == []
        assert all(type(stage.loss_names) is list for stage in pipeline.pipeline_stages)


class TestRoundTrips:
    @pytest.fixture
    def pipeline(self, build: Callable[..., Any]) -> TrainingPipeline:
        built = build("pipeline.pipeline_stages.1.loss_weights=[2.0]")
        assert isinstance(built, TrainingPipeline)
        return built

    @pytest.mark.parametrize(
        "copy_of",
        [
            pytest.param(lambda obj: pickle.loads(pickle.dumps(obj)), id="pickle"),
            pytest.param(copy.deepcopy, id="deepcopy"),
        ],
    )
    def test_pipeline_round_trip(
        self, pipeline: TrainingPipeline, copy_of: Callable[[Any], Any]
    ) -> None:
        """A copied pipeline has equal builders, stages and losses, and builds working objects."""
        pipeline.pipeline_stages[0].steps_taken_in_stage = 1000
        copied = copy_of(pipeline)
        assert copied is not pipeline
        assert copied.optimizer_builder == pipeline.optimizer_builder
        assert copied.lr_scheduler_builder == pipeline.lr_scheduler_builder
        assert copied.optimizer_builder.kwargs is not pipeline.optimizer_builder.kwargs
        assert copied.state_dict() == pipeline.state_dict()
        for mine, theirs in zip(copied.pipeline_stages, pipeline.pipeline_stages, strict=True):
            assert mine is not theirs
            assert (mine.loss_names, mine.loss_weights, mine.max_stage_steps) == (
                theirs.loss_names,
                theirs.loss_weights,
                theirs.max_stage_steps,
            )
            assert mine.teacher_forcing == theirs.teacher_forcing
        criterion = copied.pipeline_stages[1].early_stopping_criterion
        assert criterion is not None and criterion.threshold == 475.0
        assert {name: type(loss) for name, loss in copied.named_losses.items()} == {
            name: type(loss) for name, loss in pipeline.named_losses.items()
        }
        assert vars(copied.named_losses["ppo_loss"]) == vars(pipeline.named_losses["ppo_loss"])

        model = torch.nn.Linear(2, 2)
        opt = copied.optimizer_builder(params=model.parameters())
        scheduler = copied.lr_scheduler_builder(optimizer=opt)
        assert type(opt) is torch.optim.Adam and opt.defaults["lr"] == 0.003
        assert type(scheduler) is torch.optim.lr_scheduler.LambdaLR
        before = model.weight.detach().clone()
        model(torch.ones(4, 2)).square().sum().backward()
        opt.step()
        scheduler.step()
        assert not torch.equal(model.weight, before)

    @pytest.mark.parametrize("optimizer", list(HAND_WRITTEN_OPTIMIZERS))
    @pytest.mark.parametrize("scheduler", ["linear_decay", "cosine", "step"])
    def test_builders_round_trip_alone(
        self, build: Callable[..., Any], optimizer: str, scheduler: str
    ) -> None:
        """Each preset's builders pickle and deep-copy to equal builders."""
        pipeline = build(f"optimizer={optimizer}", f"lr_scheduler={scheduler}")
        for builder in (pipeline.optimizer_builder, pipeline.lr_scheduler_builder):
            assert pickle.loads(pickle.dumps(builder)) == builder
            assert copy.deepcopy(builder) == builder
