"""The argument rules (hydra_pipeline/arguments.py), as the pipeline objects apply them."""

from __future__ import annotations

import math
from typing import Any

import pytest

from hydra_pipeline import (
    Builder,
    InvalidArgumentError,
    LinearDecay,
    PipelineStage,
    PlateauEarlyStopping,
    ThresholdEarlyStopping,
)
from tests.pipeline.test_training_pipeline import make_pipeline


class TestNonFiniteNumbers:
    @pytest.mark.parametrize(
        ("build", "argument"),
        [
            (lambda v: PipelineStage(["a"], 10, loss_weights=[v]), "loss_weights.0"),
            (lambda v: ThresholdEarlyStopping(threshold=v), "threshold"),
            (lambda v: PlateauEarlyStopping(min_delta=v), "min_delta"),
            (lambda v: LinearDecay(steps=10, startp=v), "startp"),
            (lambda v: LinearDecay(steps=10, endp=v), "endp"),
            (lambda v: make_pipeline(gamma=v), "gamma"),
        ],
    )
    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
    def test_refused_where_they_make_no_sense(
        self, build: Any, argument: str, value: float
    ) -> None:
        """A NaN weight or an infinite threshold would train on silently wrong."""
        with pytest.raises(InvalidArgumentError) as caught:
            build(value)
        assert caught.value.argument == argument
        assert "must be" in caught.value.problem

    def test_an_infinite_gradient_norm_means_no_clipping(self) -> None:
        assert make_pipeline(max_grad_norm=math.inf).max_grad_norm == math.inf
        with pytest.raises(InvalidArgumentError, match="'max_grad_norm' must be a finite number"):
            make_pipeline(max_grad_norm=math.nan)


class TestBuilderArguments:
    @pytest.mark.parametrize(
        ("kwargs", "argument"),
        [
            ({"lr": -0.001}, "optimizer_builder.lr"),
            ({"lr": math.inf}, "optimizer_builder.lr"),
            ({"lr": math.nan}, "optimizer_builder.lr"),
            ({"eps": -1e-8}, "optimizer_builder.eps"),
            ({"weight_decay": -0.1}, "optimizer_builder.weight_decay"),
            ({"momentum": -0.9}, "optimizer_builder.momentum"),
            ({"alpha": math.nan}, "optimizer_builder.alpha"),
            ({"dampening": math.inf}, "optimizer_builder.dampening"),
            ({"betas": [0.9, 1.0]}, "optimizer_builder.betas.1"),
            ({"betas": [-0.1, 0.999]}, "optimizer_builder.betas.0"),
            ({"betas": [0.9]}, "optimizer_builder.betas"),
            ({"betas": "0.9,0.99"}, "optimizer_builder.betas"),
        ],
    )
    def test_optimizer_arguments(self, kwargs: dict[str, Any], argument: str) -> None:
        """Checked by name before the optimizer is built (torch checks some only then, and a
        NaN learning rate never)."""
        with pytest.raises(InvalidArgumentError) as caught:
            make_pipeline(optimizer_builder=Builder(dict, kwargs))
        assert caught.value.argument == argument

    @pytest.mark.parametrize(
        ("kwargs", "argument"),
        [
            ({"step_size": 0}, "lr_scheduler_builder.step_size"),
            ({"T_max": 0}, "lr_scheduler_builder.T_max"),
            ({"T_max": 1.5}, "lr_scheduler_builder.T_max"),
            ({"gamma": 0.0}, "lr_scheduler_builder.gamma"),
            ({"eta_min": -1.0}, "lr_scheduler_builder.eta_min"),
            ({"last_epoch": -2}, "lr_scheduler_builder.last_epoch"),
        ],
    )
    def test_scheduler_arguments(self, kwargs: dict[str, Any], argument: str) -> None:
        with pytest.raises(InvalidArgumentError) as caught:
            make_pipeline(lr_scheduler_builder=Builder(dict, kwargs))
        assert caught.value.argument == argument

    def test_valid_and_unknown_arguments_pass(self) -> None:
        """Valid values pass; arguments the rules do not know are left to the class."""
        built = make_pipeline(
            optimizer_builder=Builder(dict, {"lr": 0.0, "betas": (0.0, 0.999), "foo": -1}),
            lr_scheduler_builder=Builder(dict, {"step_size": 1, "last_epoch": -1}),
        )
        assert built.optimizer_builder(params=[])["foo"] == -1
