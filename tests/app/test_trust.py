"""No route runs code the command line did not allow: each is tried through the real command
line with a module whose import leaves a file behind, and must end with status 1, one message
naming the key or the file, and no such file.

Routes: Hydra's callbacks, escaped and resolver-made ``_target_`` nodes, callables under the
package's prefix, builder classes, Gymnasium ids naming a module, config files extending the
allow-list, and checkpoints whose stored overrides try any of these.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.app.conftest import Evil, assert_refused

Cli = Any

SMALL = [
    "task.num_envs=4",
    "pipeline.num_steps=8",
    "pipeline.num_mini_batch=1",
    "pipeline.pipeline_stages.0.max_stage_steps=32",
    "pipeline.pipeline_stages.1.max_stage_steps=32",
]


def write_config(tmp_path: Path, text: str) -> Path:
    """A config folder from elsewhere holding ``experiment/untrusted.yaml``."""
    folder = tmp_path / "elsewhere"
    (folder / "experiment").mkdir(parents=True)
    (folder / "experiment" / "untrusted.yaml").write_text("# @package _global_\n" + text)
    return folder


def test_the_detector_works(app: Cli, evil: Evil) -> None:
    """Allowed on the command line, the module is imported: the tests below would see it."""
    result = app(
        *SMALL, f"allowed_targets=[{evil.name}]", f"+hydra.callbacks.x._target_={evil.name}.Hook"
    )
    assert result.returncode == 0, result.stderr
    assert evil.ran.exists()


COMMAND_LINE_ROUTES: list[tuple[Callable[[str], list[str]], str]] = [
    (lambda m: [f"+hydra.callbacks.x._target_={m}.Hook"], "'hydra.callbacks.x' names"),
    (
        lambda m: [
            f"+hydra.callbacks.x={{_target_:hydra.experimental.callbacks.LogJobReturnCallback,extra:{{_target_:{m}.Loss}}}}"
        ],
        "'hydra.callbacks.x.extra' names",
    ),
    (
        lambda m: [f"+pipeline.named_losses.x='\\${{oc.create:{{_target_:{m}.Loss}}}}'"],
        "'pipeline.named_losses.x' still holds an interpolation",
    ),
    (
        lambda m: [f"+pipeline.named_losses.x='${{oc.create:{{_target_:{m}.Loss}}}}'"],
        "'pipeline.named_losses.x' names",
    ),
    (
        lambda m: [
            "+pipeline.named_losses.x={_target_:hydra_pipeline.config.builder.get_object,"
            f"path:{m}.Loss}}"
        ],
        "not an object a config may build",
    ),
    (
        lambda m: [f"pipeline.optimizer_builder.class_type={m}.Optim"],
        "'pipeline.optimizer_builder' names",
    ),
    (
        lambda m: ["task=gym", "pipeline=imitation_then_ppo", f"task.env_id={m}:Env-v0"],
        "'task.env_id' makes Gymnasium import module",
    ),
    (
        lambda m: ["allowed_targets=[]", f"task._target_={m}.Task"],
        "'task' names",
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), COMMAND_LINE_ROUTES)
def test_routes_on_the_command_line(
    app: Cli, evil: Evil, overrides: Callable[[str], list[str]], expected: str
) -> None:
    result = app(*SMALL, *overrides(evil.name))
    assert_refused(result, evil, expected)


CONFIG_FILES = [
    ("hydra:\n  callbacks:\n    x:\n      _target_: {m}.Hook\n", "'hydra.callbacks.x' names"),
    (
        "pipeline:\n  named_losses:\n    x: \"\\\\${{oc.create:'{{_target_: {m}.Loss}}'}}\"\n",
        "'pipeline.named_losses.x' still holds an interpolation",
    ),
    (
        "pipeline:\n  named_losses:\n    x: \"${{oc.create:'{{_target_: {m}.Loss}}'}}\"\n",
        "'pipeline.named_losses.x' names",
    ),
    (
        "allowed_targets: [{m}]\ntask:\n  _target_: {m}.Task\n",
        "'allowed_targets' lists",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CONFIG_FILES)
def test_routes_in_a_config_file(
    app: Cli, evil: Evil, tmp_path: Path, text: str, expected: str
) -> None:
    """A config folder from elsewhere (--config-dir) is not trusted either."""
    folder = write_config(tmp_path, text.format(m=evil.name))
    result = app("--config-dir", str(folder), *SMALL, "+experiment=untrusted")
    assert_refused(result, evil, expected)


def test_a_config_file_route_in_a_real_process(cli: Cli, evil: Evil, tmp_path: Path) -> None:
    """The same, with the module found in the current folder of a new process."""
    folder = write_config(
        tmp_path, f"hydra:\n  callbacks:\n    x:\n      _target_: {evil.name}.Hook\n"
    )
    result = cli("--config-dir", str(folder), *SMALL, "+experiment=untrusted")
    assert_refused(result, evil, "'hydra.callbacks.x' names")


@pytest.fixture
def checkpoint(app: Cli, tmp_path: Path) -> Path:
    """The last checkpoint of a short run."""
    result = app(*SMALL, "hydra.run.dir=run")
    assert result.returncode == 0, result.stderr
    return sorted((tmp_path / "run" / "checkpoints").iterdir())[-1]


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("+hydra.callbacks.x._target_={m}.Hook", "which sets Hydra's own settings"),
        ("hydra.job.env_set.PYTHONPATH=.", "which sets Hydra's own settings"),
        ("hydra/launcher=joblib", "which sets Hydra's own settings"),
        ("allowed_targets=[{m}]", "which extends the allow-list"),
        ("seed=0,1", "which is a sweep"),
        ("restart_from_weights=elsewhere", "which says how a run starts"),
        ("task._target_={m}.Task", "'task' names"),
        ("pipeline.gamma=[", "does not parse"),
    ],
)
def test_routes_through_a_checkpoint(
    app: Cli, evil: Evil, checkpoint: Path, tmp_path: Path, stored: str, expected: str
) -> None:
    """A checkpoint that loads with weights_only=True still stores overrides: they are data,
    re-applied only after the checks the command line gets, and the refusal names it."""
    payload = torch.load(checkpoint, weights_only=True)
    payload["metadata"]["overrides"].append(stored.format(m=evil.name))
    crafted = tmp_path / "from_elsewhere.pt"
    torch.save(payload, crafted)
    result = app(f"resume={crafted}")
    assert_refused(result, evil, expected, str(crafted))
