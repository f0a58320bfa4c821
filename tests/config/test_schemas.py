"""Schema parity: every schema mirrors its target's constructor (names, defaults, types), and
documents every field.

The optimizer and scheduler schemas copy torch's signatures by hand, so these tests fail as soon
as torch renames, adds or retypes a parameter, or changes a default.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import sys
import types
import typing
from typing import Any, NamedTuple

import pytest
from hydra.utils import get_object
from omegaconf import MISSING

from hydra_pipeline import Builder
from hydra_pipeline.config import (
    BUILDER_TARGET,
    SCHEMAS,
    EvaluationConf,
    MLPActorCriticConf,
    RecurrentActorCriticConf,
)
from hydra_pipeline.config.docs import field_docs
from hydra_pipeline.config.optimizer import AdamConf, AdamWConf
from hydra_pipeline.config.pipeline import (
    PipelineStageConf,
    StageComponentConf,
    ThresholdEarlyStoppingConf,
    TrainingPipelineConf,
    TrainingSettingsConf,
)
from hydra_pipeline.config.task import CartPoleTaskConf, GymTaskConf, MiniGridTaskConf
from hydra_pipeline.pipeline.settings import TRAINING_SETTING_KEYS

CONFIG_KEYS = {"_target_", "_convert_", "class_type"}
"""Schema fields that are Hydra's or the builder's, not the target's parameters."""

RUNTIME_PARAMETERS = {
    "optimizer": {"params"},
    "lr_scheduler": {"optimizer"},
    "model": {"observation_shape", "action_space", "observation_space"},
}
"""Parameters the engine passes at call time, by config group: never in a config."""


class Deviation(NamedTuple):
    schema_default: Any
    reason: str


DEVIATIONS: dict[tuple[type[Any], str], Deviation] = {
    (AdamConf, "betas"): Deviation([0.9, 0.999], "YAML has lists, not tuples; torch takes both"),
    (AdamWConf, "betas"): Deviation([0.9, 0.999], "YAML has lists, not tuples; torch takes both"),
    (AdamConf, "fused"): Deviation(True, "the same step, several times faster on the CPU"),
    (AdamWConf, "fused"): Deviation(True, "the same step, several times faster on the CPU"),
    (MLPActorCriticConf, "hidden_sizes"): Deviation(
        [64, 64], "YAML has lists, not tuples; MLPActorCritic takes any sequence"
    ),
    (MLPActorCriticConf, "shared_hidden_sizes"): Deviation(
        [], "YAML has lists, not tuples; MLPActorCritic takes any sequence"
    ),
    (MLPActorCriticConf, "cnn_channels"): Deviation(
        [16, 32], "YAML has lists, not tuples; MLPActorCritic takes any sequence"
    ),
    (RecurrentActorCriticConf, "encoder_hidden_sizes"): Deviation(
        [64], "YAML has lists, not tuples; RecurrentActorCritic takes any sequence"
    ),
    (RecurrentActorCriticConf, "head_hidden_sizes"): Deviation(
        [], "YAML has lists, not tuples; RecurrentActorCritic takes any sequence"
    ),
    (RecurrentActorCriticConf, "cnn_channels"): Deviation(
        [16, 32], "YAML has lists, not tuples; RecurrentActorCritic takes any sequence"
    ),
    (ThresholdEarlyStoppingConf, "threshold"): Deviation(
        MISSING, "a config must choose its threshold; the constructor's 0.0 is never meant"
    ),
    (CartPoleTaskConf, "hide_observations"): Deviation(
        [], "YAML has lists, not tuples; CartPoleTask takes any sequence"
    ),
    (GymTaskConf, "hide_observations"): Deviation(
        [], "YAML has lists, not tuples; GymTask takes any sequence"
    ),
    (GymTaskConf, "env_kwargs"): Deviation(
        {}, "a dict node lets +task.env_kwargs.<key>=... add keys; GymTask reads None as {}"
    ),
    (MiniGridTaskConf, "env_kwargs"): Deviation(
        {}, "a dict node lets +task.env_kwargs.<key>=... add keys; MiniGridTask reads None as {}"
    ),
    (TrainingPipelineConf, "named_storages"): Deviation(
        {},
        "a dict node lets +storage@pipeline.named_storages.<name>=... add storages; "
        "TrainingPipeline reads {} as None",
    ),
    (PipelineStageConf, "training_settings"): Deviation(
        TrainingSettingsConf(),
        "a node of nulls lets ...training_settings.<key>=... set one setting; all-null settings "
        "fall back to the pipeline's, as None does",
    ),
    (StageComponentConf, "training_settings"): Deviation(
        TrainingSettingsConf(),
        "a node of nulls lets ...training_settings.<key>=... set one setting; all-null settings "
        "fall back to the stage's, as None does",
    ),
}
"""Schema defaults that differ from the constructor's on purpose."""


class OtherForm(NamedTuple):
    parameters: frozenset[str]
    reason: str


OTHER_FORMS: dict[type[Any], OtherForm] = {
    TrainingPipelineConf: OtherForm(
        frozenset({"training_settings"}),
        "configs give the pipeline's settings as its own keys (pipeline.num_steps=...)",
    ),
    PipelineStageConf: OtherForm(
        frozenset(TRAINING_SETTING_KEYS),
        "configs give a stage's settings under training_settings (one form, AllenAct 0.5's)",
    ),
}
"""Constructor parameters a schema leaves out because AllenAct offers two forms of the same
arguments and configs use one."""


def target_of(schema: type[Any]) -> Any:
    """The object a schema instantiates (a builder schema's ``class_type``)."""
    defaults = {f.name: f.default for f in dataclasses.fields(schema)}
    path = defaults["_target_"]
    if path == BUILDER_TARGET:
        path = defaults["class_type"]
    return get_object(path)


TARGETED = [
    pytest.param(schema, id=schema.name)
    for schema in SCHEMAS
    if any(f.name == "_target_" for f in dataclasses.fields(schema.node))
]


def schema_fields(schema: type[Any]) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(schema) if f.name not in CONFIG_KEYS}


def constructor_parameters(target: Any, group: str | None) -> dict[str, inspect.Parameter]:
    skipped = RUNTIME_PARAMETERS.get(group or "", set())
    parameters = inspect.signature(target).parameters
    return {name: p for name, p in parameters.items() if name not in skipped}


def schema_default(field: dataclasses.Field[Any]) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def parameter_annotation(target: Any, name: str, parameter: inspect.Parameter) -> Any:
    """The parameter's annotation as a type, or ``None`` where there is none (or it cannot be
    evaluated: some torch annotations name types imported only for type checkers)."""
    annotation = parameter.annotation
    if annotation is inspect.Parameter.empty and isinstance(target, type):
        annotation = typing.get_type_hints(target).get(name, inspect.Parameter.empty)
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, typing.ForwardRef):  # NamedTuple fields under PEP 563
        annotation = annotation.__forward_arg__
    if isinstance(annotation, str):
        namespace = {**vars(typing), **vars(sys.modules[target.__module__])}
        try:
            return eval(annotation, namespace)
        except (NameError, AttributeError, TypeError):
            return None
    return annotation


def alternatives(annotation: Any) -> list[Any]:
    """The members of a union annotation (the annotation itself otherwise)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return list(typing.get_args(annotation))
    return [annotation]


def built_type(schema_type: Any) -> Any:
    """What a field of a schema's type becomes when instantiated."""
    if dataclasses.is_dataclass(schema_type) and any(
        f.name == "_target_" for f in dataclasses.fields(schema_type)
    ):
        defaults = {f.name: f.default for f in dataclasses.fields(schema_type)}
        return Builder if defaults["_target_"] == BUILDER_TARGET else target_of(schema_type)
    return schema_type


def accepts(annotation: Any, schema_type: Any) -> bool:
    """Whether a parameter annotated ``annotation`` accepts every value of ``schema_type``."""
    if annotation is Any or schema_type is Any:
        return True
    wanted = alternatives(schema_type)
    if len(wanted) > 1:  # Optional[X]: None and X must both be accepted
        return all(accepts(annotation, member) for member in wanted)
    schema_type = built_type(schema_type)
    for member in alternatives(annotation):
        origin = typing.get_origin(member) or member
        args = typing.get_args(member)
        if member is Any or member == schema_type:
            return True
        if schema_type is int and member is float:  # an int is fine where a float is
            return True
        if typing.get_origin(schema_type) is list:
            (element,) = typing.get_args(schema_type)
            if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable):
                element_annotations = [a for a in args if a is not Ellipsis] or [Any]
                if all(accepts(a, element) for a in element_annotations):
                    return True
            continue
        if typing.get_origin(schema_type) is dict:
            if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
                return True
            continue
        if origin is collections.abc.Callable:
            if isinstance(schema_type, type) and any(
                "__call__" in vars(cls) for cls in schema_type.__mro__
            ):
                return True
            continue
        if (
            isinstance(origin, type)
            and isinstance(schema_type, type)
            and schema_type is not bool
            and issubclass(schema_type, origin)
        ):
            return True
    return False


class TestSchemaParity:
    @pytest.mark.parametrize("stored", TARGETED)
    def test_fields_are_the_constructor_parameters(self, stored: Any) -> None:
        """Field names equal the target's parameters, less those the engine supplies and
        those of the form configs do not use."""
        target = target_of(stored.node)
        parameters = constructor_parameters(target, stored.group)
        other_form = OTHER_FORMS.get(stored.node, OtherForm(frozenset(), ""))
        assert other_form.parameters <= set(parameters)
        assert set(schema_fields(stored.node)) == set(parameters) - other_form.parameters

    @pytest.mark.parametrize("stored", TARGETED)
    def test_runtime_parameters_exist(self, stored: Any) -> None:
        """The parameters left to the engine are really the target's parameters."""
        target = target_of(stored.node)
        skipped = RUNTIME_PARAMETERS.get(stored.group or "", set())
        assert skipped <= set(inspect.signature(target).parameters)

    @pytest.mark.parametrize("stored", TARGETED)
    def test_defaults_are_the_constructor_defaults(self, stored: Any) -> None:
        """Where the constructor has a default, the schema has the same (or a listed reason)."""
        parameters = constructor_parameters(target_of(stored.node), stored.group)
        for name, field in schema_fields(stored.node).items():
            default = parameters[name].default
            mine = schema_default(field)
            deviation = DEVIATIONS.get((stored.node, name))
            if deviation is not None:
                assert mine == deviation.schema_default, (name, deviation.reason)
                assert not (mine == default and type(mine) is type(default)), (
                    f"{stored.node.__name__}.{name} no longer deviates; drop it from DEVIATIONS"
                )
            elif default is not inspect.Parameter.empty:
                assert mine == default, f"{stored.node.__name__}.{name}: {mine!r} != {default!r}"

    def test_every_deviation_names_a_real_field(self) -> None:
        """DEVIATIONS lists only existing fields with a reason."""
        for (schema, name), deviation in DEVIATIONS.items():
            assert name in schema_fields(schema)
            assert deviation.reason

    @pytest.mark.parametrize("stored", TARGETED)
    def test_field_types_fit_the_annotations(self, stored: Any) -> None:
        """Each field's type is accepted by the parameter's annotation, where there is one."""
        target = target_of(stored.node)
        parameters = constructor_parameters(target, stored.group)
        hints = typing.get_type_hints(stored.node)
        for name in schema_fields(stored.node):
            annotation = parameter_annotation(target, name, parameters[name])
            if annotation is None:
                continue
            assert accepts(annotation, hints[name]), (
                f"{stored.node.__name__}.{name}: {hints[name]} does not fit {annotation}"
            )

    def test_torch_annotations_are_checked(self) -> None:
        """The type check does read torch's annotations (lr: float | Tensor, betas: tuple)."""
        import torch

        adam = inspect.signature(torch.optim.Adam).parameters
        assert accepts(parameter_annotation(torch.optim.Adam, "lr", adam["lr"]), float)
        betas = parameter_annotation(torch.optim.Adam, "betas", adam["betas"])
        assert accepts(betas, typing.List[float])  # noqa: UP006 - the schemas' spelling
        assert not accepts(betas, typing.List[str])  # noqa: UP006
        assert not accepts(parameter_annotation(torch.optim.Adam, "eps", adam["eps"]), str)
        lambda_lr = inspect.signature(torch.optim.lr_scheduler.LambdaLR).parameters
        lr_lambda = parameter_annotation(
            torch.optim.lr_scheduler.LambdaLR, "lr_lambda", lambda_lr["lr_lambda"]
        )
        assert lr_lambda is not None, "LambdaLR's lr_lambda annotation should evaluate"
        assert not accepts(lr_lambda, int)

    def test_annotation_check_rejects_mismatches(self) -> None:
        """accepts() is strict enough to catch a wrong field type."""
        assert not accepts(int, float)
        assert not accepts(float, str)
        assert not accepts(bool, typing.Optional[bool])  # noqa: UP045 - None not accepted
        assert accepts(bool | None, typing.Optional[bool])  # noqa: UP045
        assert accepts(float, int)


class TestFieldDocs:
    @pytest.mark.parametrize(
        "schema",
        [pytest.param(s.node, id=s.name) for s in SCHEMAS]
        + [pytest.param(EvaluationConf, id="evaluation")],  # a node of base_config
    )
    def test_every_field_is_documented(self, schema: Any) -> None:
        """Each field (but _target_ and _convert_) has an entry in an Attributes: section."""
        documented = field_docs(schema)
        fields = {f.name for f in dataclasses.fields(schema)} - {"_target_", "_convert_"}
        assert fields - set(documented) == set()
        assert set(documented) - fields == set(), "documents fields that do not exist"
        assert all(text.strip() for text in documented.values())


class TestTrainingSettingFields:
    """The schemas' settings fields are TRAINING_SETTING_KEYS, the one list of the settings."""

    def test_settings_node_holds_exactly_the_keys_in_order(self) -> None:
        fields = [f.name for f in dataclasses.fields(TrainingSettingsConf)]
        assert fields == ["_target_", *TRAINING_SETTING_KEYS]

    def test_pipeline_node_holds_every_key(self) -> None:
        """The pipeline's settings are its own keys (its other fields are its other
        arguments)."""
        fields = {f.name for f in dataclasses.fields(TrainingPipelineConf)}
        assert set(TRAINING_SETTING_KEYS) <= fields
        assert all(getattr(TrainingPipelineConf(), key) is None for key in TRAINING_SETTING_KEYS)
