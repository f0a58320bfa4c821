"""The ``--help`` screen: config groups with their options, and the main keys with their types
and one-line docs, read from the schemas.

It is produced by an OmegaConf resolver used in the help template
(``conf/hydra/help/hydra_pipeline.yaml``), so it reflects whatever options the search path
holds (user projects' included) and imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import MISSING, OmegaConf

from hydra_pipeline.config import Config, EvaluateConfig, TrainingPipelineConf
from hydra_pipeline.config.compat import register_resolver
from hydra_pipeline.config.docs import field_docs

__all__ = [
    "GROUPS",
    "PLACED_GROUPS",
    "PRESETS",
    "evaluate_help_text",
    "help_text",
    "register_help_resolver",
]

GROUPS = ("pipeline", "optimizer", "lr_scheduler", "task", "model", "callbacks")
"""The config groups that choose a part of the config (``group=option``), in the help
screen's order."""

PLACED_GROUPS = {
    "loss": "+loss@pipeline.named_losses.aux=a2c",
    "storage": "+storage@pipeline.named_storages.demos=expert_demonstrations",
    "schedule": "+schedule@pipeline.named_losses.ppo_loss.clip_decay=linear_decay",
}
"""The config groups whose options are placed under a key the command line names, each with
an example."""

PRESETS = "experiment"
"""The group of whole presets (``+experiment=<name>``)."""


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return f"{_type_name(inner[0])} or null"
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if origin is dict:
        return f"dict[{_type_name(args[0])}, {_type_name(args[1])}]"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _keys(schema: type[Any], prefix: str, skip: set[str]) -> list[str]:
    docs = field_docs(schema)
    hints = typing.get_type_hints(schema)
    lines = []
    for field in dataclasses.fields(schema):
        if field.name.startswith("_") or field.name in skip:
            continue
        default = field.default
        shown = (
            ""
            if default is MISSING or default is dataclasses.MISSING
            else f" = {OmegaConf.to_yaml({'v': default})[3:].strip()}"
        )
        lines.append(f"  {prefix}{field.name}: {_type_name(hints[field.name])}{shown}")
        lines.append(f"      {docs.get(field.name, '').replace('``', '')}")
    return lines


def _options(group: str) -> list[str]:
    if not GlobalHydra.instance().is_initialized():
        return []
    loader = GlobalHydra.instance().config_loader()
    return sorted(o for o in loader.get_group_options(group) if not o.startswith("base_"))


def _choices() -> dict[str, str]:
    """The option of each group in the composed config (``group@package`` -> option): the
    defaults, as the command line changed them."""
    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {str(key): str(value) for key, value in choices.items() if value is not None}


def _group_lines(choices: dict[str, str]) -> list[str]:
    lines = ["Config groups (group=option; * marks the one in effect, the default unless given):"]
    for group in GROUPS:
        chosen = choices.get(group)
        options = [f"{o}*" if o == chosen else o for o in _options(group)]
        none = "" if chosen else " (none in effect)"
        lines.append(f"  {group:<13} {', '.join(options)}{none}")
    lines += ["", "Config groups placed under a key (+group@key=option):"]
    for group, example in PLACED_GROUPS.items():
        lines.append(f"  {group:<13} {', '.join(_options(group))}")
        placed = [
            f"{key.partition('@')[2]}={option}"
            for key, option in choices.items()
            if key.startswith(f"{group}@")
        ]
        if placed:
            lines.append(f"      in effect: {', '.join(placed)}")
        lines.append(f"      add one: {example}")
    lines += ["", f"Presets ({PRESETS}): +{PRESETS}=<name> sets up a whole run:"]
    lines += [f"  {name}" for name in _options(PRESETS)]
    return lines


def help_text() -> str:
    """The body of the help screen."""
    lines = _group_lines(_choices())
    lines += ["", "Main keys (key=value):"]
    lines += _keys(Config, "", skip=set(GROUPS))
    lines += ["", "Pipeline keys (pipeline.key=value; see --cfg job for the whole tree):"]
    lines += _keys(TrainingPipelineConf, "pipeline.", skip={"named_losses"})
    return "\n".join(lines)


def evaluate_help_text() -> str:
    """The body of the evaluate command's help screen."""
    return "\n".join(["Keys (key=value):", *_keys(EvaluateConfig, "", skip=set())])


def _help_if_asked(text: Any) -> Any:
    # Hydra resolves its own config, help template included, on every run; listing the
    # options costs about 0.1 s, so it is done only when the help screen is shown.
    return lambda: text() if {"--help", "-h"} & set(sys.argv[1:]) else ""


def register_help_resolver() -> None:
    """Register ``${hydra_pipeline_help:}`` and ``${hydra_pipeline_evaluate_help:}`` (once per
    process)."""
    register_resolver("hydra_pipeline_help", _help_if_asked(help_text))
    register_resolver("hydra_pipeline_evaluate_help", _help_if_asked(evaluate_help_text))
