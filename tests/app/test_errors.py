"""Mistakes end the program with status 1 and one message naming the key or file, before
anything trains; the help, --cfg and --info screens never import torch.

The table of mistakes runs through the command-line entry point in this process (the ``app``
fixture); a few tests check the same in a real process.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hydra_pipeline.app.help import GROUPS, PLACED_GROUPS, PRESETS

Cli = Any

ROOT = Path(__file__).resolve().parents[2]

MISTAKES = [
    pytest.param(
        ["optimizer=adma"],
        [
            "'adma' is not an option of config group 'optimizer'",
            "adam, adam_cartpole, adamw, rmsprop, sgd",
            "Did you mean 'optimizer=adam'?",
        ],
        id="unknown-group-option",
    ),
    pytest.param(
        ["pipeline.pipeline_stages.7.max_stage_steps=5"],
        ["'pipeline.pipeline_stages.7' is out of range", "has 2 entries (indices 0 to 1)"],
        id="stage-index-out-of-range",
    ),
    pytest.param(
        ["+pipeline.optimizer_builder.momentum=0.9"],
        [
            "'pipeline.optimizer_builder.momentum' is not a parameter of torch.optim.Adam",
            "'rmsprop', 'sgd'",
        ],
        id="forced-key-the-target-rejects",
    ),
    pytest.param(
        ["+pipeline.pipeline_stages.1.early_stopping_criterion.treshold=3"],
        [
            "'pipeline.pipeline_stages.1.early_stopping_criterion.treshold'",
            "Did you mean 'threshold'?",
        ],
        id="typo-in-untyped-node",
    ),
    pytest.param(
        ["pipeline.pipeline_stages.1.early_stopping_criterion.threshold=abc"],
        ["'pipeline.pipeline_stages.1.early_stopping_criterion.threshold'", "'abc'"],
        id="wrong-type-in-untyped-node",
    ),
    pytest.param(
        ["pipeline.pipeline_stages.1.loss_names=[nope]"],
        [
            "'pipeline.pipeline_stages.1.loss_names' names ['nope']",
            "Defined losses: ['imitation_loss', 'ppo_loss']",
        ],
        id="unknown-loss-name",
    ),
    pytest.param(
        ["pipeline.pipeline_stages.1.loss_weights=[1,2]"],
        ["'pipeline.pipeline_stages.1.loss_weights'", "2 weights for 1 names"],
        id="loss-weights-length",
    ),
    pytest.param(
        ["pipeline.gamma=1.5"], ["'pipeline.gamma' must be in [0, 1] (got 1.5)"], id="gamma-range"
    ),
    pytest.param(
        ["pipeline.gae_lambda=-1"],
        ["'pipeline.gae_lambda' must be in [0, 1]"],
        id="gae-lambda-range",
    ),
    pytest.param(
        ["pipeline.num_mini_batch=0"],
        ["'pipeline.num_mini_batch' must be >= 1 where stage component 'onpolicy'", "(got 0)"],
        id="num-mini-batch",
    ),
    pytest.param(
        ["pipeline.update_repeats=-1"],
        ["'pipeline.update_repeats' must be >= 0"],
        id="update-repeats",
    ),
    pytest.param(["pipeline.num_steps=0"], ["'pipeline.num_steps' must be >= 1"], id="num-steps"),
    pytest.param(
        ["pipeline.metric_accumulate_interval=0"],
        ["'pipeline.metric_accumulate_interval' must be >= 1"],
        id="metric-interval",
    ),
    pytest.param(
        ["pipeline.max_grad_norm=0"], ["'pipeline.max_grad_norm' must be > 0"], id="max-grad-norm"
    ),
    pytest.param(
        ["pipeline.advance_scene_rollout_period=0"],
        ["'pipeline.advance_scene_rollout_period' must be >= 1"],
        id="scene-period",
    ),
    pytest.param(
        ["pipeline.num_mini_batch=100"],
        ["'pipeline.num_mini_batch' must be <= the task's num_envs (64)"],
        id="more-minibatches-than-envs",
    ),
    pytest.param(
        ["pipeline.gamma=abc"],
        ["pipeline.gamma", "'abc'", "could not be converted"],
        id="wrong-type-at-override-time",
    ),
    pytest.param(["task.num_envs=0"], ["'task.num_envs' must be >= 1 (got 0)"], id="task-num-envs"),
    pytest.param(
        ["task=gym", "task.env_id=CartPol-v1", "pipeline=ppo"],
        ["'task.env_id' is not a registered Gymnasium environment", "CartPole-v1"],
        id="unknown-env-id",
    ),
    pytest.param(
        ["task=gym", "pipeline=imitation_then_ppo"],
        [
            "'pipeline.pipeline_stages.0' uses ['teacher_forcing', "
            "'imitation_loss'], which need expert actions",
            "Train with PPO alone (pipeline=ppo)",
        ],
        id="imitation-without-expert",
    ),
    pytest.param(
        ["pipeline.gama=0.9"],
        ["'pipeline.gama' is not a key of 'pipeline'. Did you mean 'pipeline.gamma'?"],
        id="typo-in-a-typed-node",
    ),
    pytest.param(
        ["evaluation.intervall=5"],
        ["'evaluation.intervall' is not a key of 'evaluation'", "'evaluation.interval'?"],
        id="typo-in-evaluation",
    ),
    pytest.param(
        ["sed=3"],
        ["'sed' is not a top-level key. Did you mean 'seed'?"],
        id="typo-at-the-top",
    ),
    pytest.param(
        ["pipeline.named_losses.ppo_loss._target_=os.system"],
        ["'pipeline.named_losses.ppo_loss' names 'os.system'", "allowed_targets"],
        id="target-outside-allow-list",
    ),
    # Optimizer and scheduler arguments torch rejects, or never checks.
    pytest.param(
        ["pipeline.optimizer_builder.lr=-0.1"],
        ["'pipeline.optimizer_builder.lr' must be >= 0 (got -0.1)"],
        id="negative-lr",
    ),
    pytest.param(
        ["pipeline.optimizer_builder.lr=inf"],
        ["'pipeline.optimizer_builder.lr' must be a finite number (got inf)"],
        id="infinite-lr",
    ),
    pytest.param(
        ["pipeline.optimizer_builder.eps=nan"],
        ["'pipeline.optimizer_builder.eps' must be a finite number (got nan)"],
        id="nan-eps",
    ),
    pytest.param(
        ["pipeline.optimizer_builder.betas=[0.9,1.0]"],
        ["'pipeline.optimizer_builder.betas.1' must be in [0, 1) (got 1.0)"],
        id="beta-out-of-range",
    ),
    pytest.param(
        ["pipeline.optimizer_builder.betas=[0.9]"],
        ["'pipeline.optimizer_builder.betas' must be a pair of numbers (got [0.9])"],
        id="one-beta",
    ),
    pytest.param(
        ["optimizer=sgd", "pipeline.optimizer_builder.momentum=-1"],
        ["'pipeline.optimizer_builder.momentum' must be >= 0 (got -1.0)"],
        id="negative-momentum",
    ),
    pytest.param(
        [
            "optimizer=sgd",
            "pipeline.optimizer_builder.nesterov=true",
            "pipeline.optimizer_builder.momentum=0",
        ],
        [
            "'pipeline.optimizer_builder' cannot be built: ValueError: Nesterov momentum "
            "requires a momentum and zero dampening"
        ],
        id="nesterov-without-momentum",
    ),
    pytest.param(
        ["lr_scheduler=step", "pipeline.lr_scheduler_builder.step_size=0"],
        ["'pipeline.lr_scheduler_builder.step_size' must be >= 1 (got 0)"],
        id="step-size-zero",
    ),
    pytest.param(
        ["lr_scheduler=cosine", "pipeline.lr_scheduler_builder.T_max=0"],
        ["'pipeline.lr_scheduler_builder.T_max' must be >= 1 (got 0)"],
        id="t-max-zero",
    ),
    pytest.param(
        ["lr_scheduler=step", "pipeline.lr_scheduler_builder.gamma=nan"],
        ["'pipeline.lr_scheduler_builder.gamma' must be a finite number (got nan)"],
        id="nan-scheduler-gamma",
    ),
    # Non-finite values where they make no sense.
    pytest.param(
        ["pipeline.pipeline_stages.1.loss_weights=[nan]"],
        ["'pipeline.pipeline_stages.1.loss_weights.0' must be a finite number (got nan)"],
        id="nan-loss-weight",
    ),
    pytest.param(
        ["pipeline.pipeline_stages.1.early_stopping_criterion.threshold=nan"],
        [
            "'pipeline.pipeline_stages.1.early_stopping_criterion.threshold' must be a finite "
            "number (got nan)"
        ],
        id="nan-threshold",
    ),
    pytest.param(
        ["pipeline.pipeline_stages.0.teacher_forcing.startp=-inf"],
        ["'pipeline.pipeline_stages.0.teacher_forcing.startp' must be a finite number"],
        id="infinite-teacher-forcing",
    ),
    pytest.param(
        ["pipeline.named_losses.ppo_loss.entropy_coef=inf"],
        ["'pipeline.named_losses.ppo_loss.entropy_coef' must be a finite number (got inf)"],
        id="infinite-loss-coefficient",
    ),
    # An early-stopping metric the run never logs.
    pytest.param(
        ["pipeline.pipeline_stages.1.early_stopping_criterion.metric=rewrd"],
        [
            "'pipeline.pipeline_stages.1.early_stopping_criterion.metric' is not a metric this "
            "stage logs",
            "ppo_loss/entropy",
            "Did you mean 'reward'?",
        ],
        id="early-stopping-metric-typo",
    ),
    pytest.param(
        ["pipeline.pipeline_stages.1.early_stopping_criterion.metric=ppo_loss/entropi"],
        ["is not a metric this stage logs", "Did you mean 'ppo_loss/entropy'?"],
        id="early-stopping-loss-term-typo",
    ),
    pytest.param(
        ["pipeline.pipeline_stages.1.early_stopping_criterion.metric=teacher_forcing"],
        ["is not a metric this stage logs"],
        id="early-stopping-metric-of-another-stage",
    ),
    # Seeds every generator accepts, keys nothing reads, instantiation keys, start modes.
    pytest.param(["seed=-1"], ["'seed' must be in [0, 2**32 - 1] (got -1)"], id="negative-seed"),
    pytest.param(
        ["seed=4294967296"], ["'seed' must be in [0, 2**32 - 1] (got 4294967296)"], id="huge-seed"
    ),
    pytest.param(
        ["+sed=3"],
        ["'sed' is not a key of the config", "Did you mean 'seed'?"],
        id="new-top-level-key",
    ),
    pytest.param(
        ["+pipeline._partial_=true"],
        ["'pipeline._partial_' is set (True)", "take no _partial_"],
        id="partial-pipeline",
    ),
    pytest.param(
        ["+pipeline.pipeline_stages.0._args_=[1]"],
        ["'pipeline.pipeline_stages.0._args_' is set ([1])"],
        id="positional-arguments",
    ),
    pytest.param(
        ["+task._recursive_=false"],
        ["'task._recursive_' is set (False)"],
        id="non-recursive-task",
    ),
    pytest.param(
        ["resume=somewhere", "restart_from_weights=elsewhere"],
        ["resume= and restart_from_weights= are two ways to start", "Give only one"],
        id="resume-and-restart",
    ),
    pytest.param(
        ["pipeline.pipeline_stages.1.max_stage_steps=???"],
        ["'pipeline.pipeline_stages.1.max_stage_steps' has no value (it is mandatory, '???')"],
        id="unset-mandatory-value",
    ),
    pytest.param(
        ["pipeline.gamma=${nope}"], ["'pipeline.gamma' cannot be resolved"], id="bad-interpolation"
    ),
    pytest.param(
        ["pipeline=ppo", "pipeline.pipeline_stages.0.offpolicy_component.updates=5"],
        ["sets a key inside a config node that is null", "'pipeline.pipeline_stages.0={"],
        id="key-inside-null-node",
    ),
    pytest.param(["num_threads=0"], ["'num_threads' must be >= 1 (got 0)"], id="num-threads"),
    pytest.param(
        ["device=gpu"], ["'device' must be auto, cpu, cuda or cuda:N (got 'gpu')"], id="device"
    ),
    pytest.param(
        ["resume=/nonexistent/run"],
        ["'/nonexistent/run' is neither a checkpoint"],
        id="resume-missing-folder",
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), MISTAKES)
def test_config_mistake_gives_one_clear_message(
    app: Cli, tmp_path: Path, overrides: list[str], expected: list[str]
) -> None:
    """Status 1, a message naming the key and the fix, no traceback, nothing trained."""
    result = app(*overrides, "hydra.run.dir=run")
    assert result.returncode == 1, result.stdout + result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    assert result.stderr.startswith("Error: ")
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not (tmp_path / "run" / "summary.json").exists()


@pytest.mark.parametrize(
    "overrides",
    [
        ["pipeline.gamma=1.5"],
        ["optimizer=adma"],
        ["pipeline.optimizer_builder.lr=nan"],
        ["pipeline.gama=0.9"],
        ["evaluation.intervall=5"],
    ],
)
def test_a_mistake_in_a_real_process(cli: Cli, overrides: list[str]) -> None:
    """In a process of its own, a mistake gives status 1 and one message on stderr alone;
    a mistyped key gets its did-you-mean at once, not Hydra's advice to add it with '+'."""
    result = cli(*overrides, "hydra.run.dir=run")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "To append to your config" not in result.stderr


def test_full_error_shows_the_traceback(cli: Cli) -> None:
    """HYDRA_FULL_ERROR=1 still gives the traceback, for debugging."""
    result = cli("pipeline.gamma=1.5", "hydra.run.dir=run", env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr


@pytest.mark.parametrize("flags", [["--help"], ["--cfg", "job"], ["--info"]])
def test_configuration_screens_do_not_import_torch(tmp_path: Path, flags: list[str]) -> None:
    """--help, --cfg job and --info compose configs without importing torch."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "hydra_pipeline", *flags],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    assert "torch" not in imported
    assert "hydra_pipeline.config" in imported


def test_help_lists_groups_options_and_typed_keys(cli: Cli) -> None:
    """The help screen lists each group's options and the main keys with types and docs."""
    result = cli("--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "pipeline      imitation_then_ppo*, ppo, ppo_sb3" in text
    assert "optimizer     adam, adam_cartpole*, adamw, rmsprop, sgd" in text
    assert "lr_scheduler  constant, cosine, linear_decay*, step, warmup_linear_decay" in text
    assert "task          cartpole*, gym" in text
    assert "callbacks     mlflow, wandb (none in effect)" in text
    assert "loss          a2c, imitation, ppo, ppo_cartpole" in text
    assert "in effect: pipeline.named_losses.ppo_loss=ppo_cartpole" in text
    assert "storage       expert_demonstrations, rollout" in text
    assert "schedule      linear_decay, multi_linear_decay" in text
    presets = text.split("+experiment=<name> sets up a whole run:\n")[1].split("\n\n")[0]
    assert presets.split() == sorted(path.stem for path in (ROOT / "conf" / "experiment").iterdir())
    assert "base_" not in text
    assert "seed: int = 0" in text and "Seeds Python, NumPy, torch" in text
    assert "resume: str or null = null" in text
    assert "pipeline.gamma: float" in text and "Discount factor" in text


def _table_options(markdown: str) -> dict[str, list[str]]:
    """The options of each group in a page's group table (``| `group` | options | ... |``)."""
    table = {}
    for row in re.findall(r"^\| `(\w+)` \| (.*?) \|", markdown, flags=re.MULTILINE):
        table[row[0]] = sorted(re.findall(r"`(\w+)`", row[1]))
    return table


def test_the_docs_group_table_lists_what_help_lists(cli: Cli) -> None:
    """The config tree page's table has every group of the help screen with the same options
    (a preset or option added without a row's update fails here)."""
    result = cli("--help")
    assert result.returncode == 0, result.stderr
    listed = {}
    for line in result.stdout.splitlines():
        group, _, options = line.strip().partition(" ")
        if group in {*GROUPS, *PLACED_GROUPS}:
            listed[group] = sorted(o.strip(" *") for o in options.split(" (")[0].split(","))
    presets = result.stdout.split("+experiment=<name> sets up a whole run:\n")[1]
    listed[PRESETS] = sorted(presets.split("\n\n")[0].split())
    table = _table_options((ROOT / "docs" / "concepts" / "config-tree.md").read_text())
    assert table["pipeline"] == ["imitation_then_ppo", "ppo", "ppo_sb3"]
    assert table == listed


@pytest.mark.parametrize("task", ["gym", "minigrid"])
def test_help_marks_the_options_the_command_line_chose(cli: Cli, task: str) -> None:
    """A task without an expert brings pipeline=ppo, and the help screen shows it."""
    result = cli(f"task={task}", "--help")
    assert result.returncode == 0, result.stderr
    assert "pipeline      imitation_then_ppo, ppo*, ppo_sb3" in result.stdout
    assert f"{task}*" in result.stdout
    chosen = cli(f"task={task}", "pipeline=imitation_then_ppo", "--help")
    assert "pipeline      imitation_then_ppo*, ppo, ppo_sb3" in chosen.stdout


@pytest.mark.parametrize(
    ("missing", "extra"),
    [
        ("hydra/launcher/submitit_slurm", "launchers"),
        ("hydra/launcher/ray", "ray"),
        ("hydra/sweeper/optuna", "optuna"),
    ],
)
def test_a_preset_whose_plugin_is_missing_names_the_extra(missing: str, extra: str) -> None:
    """Without a launcher or sweeper plugin, Hydra reports a config it cannot load; the
    message names the option and the extra that installs it (the plugins are all installed
    here, so Hydra's error is made by hand)."""
    from hydra.errors import MissingConfigException

    from hydra_pipeline.app.cli import _explain

    error = MissingConfigException(
        f"In 'hydra/launcher/slurm': Could not load '{missing}'.", missing_cfg_file=missing
    )
    group, _, option = missing.rpartition("/")
    message = _explain(error, [], "pkg://hydra_pipeline.conf", "config")
    assert f"'{group}={option}' comes from a Hydra plugin that is not installed" in message
    assert f'pip install "hydra-pipeline[{extra}]"' in message
