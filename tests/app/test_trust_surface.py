"""The whole trust surface, tried as someone who hands a user a config folder, a preset, a
checkpoint or a run folder would.

1. Hydra's own settings from a config file (logging factories, launcher and sweeper configs,
   the search path, resolvers with side effects) and checkpoints reaching ``hydra.*`` through
   ``group@package``: status 1, the key and file named, nothing imported.
2. A run folder from elsewhere stays inside itself: the evaluate, resume and report commands
   refuse symbolic links and paths leading out of the folder, and touch nothing outside.
3. Files from elsewhere get one message naming the file and the field, never a traceback or
   a hang.
4. Mistakes that used to run silently or oddly.

Each route runs through the real command line in this process (``app``), or in a new process
where only one shows it (signals, a killed job, a config that would exhaust memory). A module
whose import leaves a file behind (``evil``) tells whether any code of the config's ran.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from hydra_pipeline import CheckpointError, ConfigError, Policy
from hydra_pipeline.report import main as report_main
from tests.app.conftest import Evil, assert_refused, run_in_process, wait_for

Cli = Any

SMALL = [
    "task.num_envs=4",
    "pipeline.num_steps=8",
    "pipeline.num_mini_batch=1",
    "pipeline.metric_accumulate_interval=16",
    "pipeline.pipeline_stages.0.max_stage_steps=32",
    "pipeline.pipeline_stages.1.max_stage_steps=32",
]

CORES = len(os.sched_getaffinity(0))

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def config_folder(tmp_path: Path, files: dict[str, str]) -> Path:
    """A config folder from elsewhere holding ``files`` (path -> text)."""
    folder = tmp_path / "elsewhere"
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def preset(text: str) -> str:
    """An experiment preset (``+experiment=untrusted``) with ``text`` at the top level."""
    return "# @package _global_\n" + text


def nested(dotted: str, body: str) -> str:
    """YAML setting ``body`` (``key: value`` lines) at the key ``dotted``."""
    lines = []
    for depth, key in enumerate(dotted.split(".")):
        lines.append("  " * depth + f"{key}:")
    indent = "  " * len(dotted.split("."))
    return "\n".join([*lines, *(indent + line for line in body.splitlines())]) + "\n"


def choosing(group: str, option: str) -> str:
    """A preset choosing ``option`` of Hydra's group ``group``."""
    return preset(f"defaults:\n  - override /hydra/{group}: {option}\n")


def logging_config(extra: str) -> str:
    """A ``logging.config`` dictionary: one console handler, plus ``extra``."""
    return (
        "version: 1\n"
        "handlers:\n  console:\n    class: logging.StreamHandler\n"
        "root:\n  handlers: [console]\n" + extra
    )


# --------------------------------------------------------------------------------------------
# 1. Hydra's own settings from a config file


class Route:
    """A config folder (``files``, with ``{m}`` the untrusted module and ``{tmp}`` the test's
    folder), the command-line ``arguments`` that use it, and what the refusal must name."""

    def __init__(self, files: dict[str, str], arguments: list[str], *named: str) -> None:
        self.files, self.arguments, self.named = files, arguments, named


FILTER = "filters:\n  pwn:\n    (): {m}.pwn\n"
FILE_ROUTES: dict[str, Route] = {
    "logging option with a filter factory": Route(
        {
            "hydra/job_logging/pwnlog.yaml": logging_config(FILTER),
            "experiment/untrusted.yaml": choosing("job_logging", "pwnlog"),
        },
        ["+experiment=untrusted"],
        "'hydra.job_logging.filters.pwn.()'",
        "pwnlog.yaml",
        "{m}.pwn",
    ),
    "logging option with a handler class": Route(
        {
            "hydra/job_logging/pwnlog.yaml": (
                "version: 1\nhandlers:\n  console:\n    class: {m}.Handler\n"
                "root:\n  handlers: [console]\n"
            ),
            "experiment/untrusted.yaml": choosing("job_logging", "pwnlog"),
        },
        ["+experiment=untrusted"],
        "'hydra.job_logging.handlers.console.class'",
        "{m}.Handler",
    ),
    "logging option with an ext:// reference": Route(
        {
            "hydra/job_logging/pwnlog.yaml": (
                "version: 1\nhandlers:\n  console:\n    class: logging.StreamHandler\n"
                "    stream: ext://{m}.stream\nroot:\n  handlers: [console]\n"
            ),
            "experiment/untrusted.yaml": choosing("job_logging", "pwnlog"),
        },
        ["+experiment=untrusted"],
        "'hydra.job_logging.handlers.console.stream'",
        "ext://{m}.stream",
    ),
    "Hydra's own logging option": Route(
        {
            "hydra/hydra_logging/pwnlog.yaml": logging_config(FILTER),
            "experiment/untrusted.yaml": choosing("hydra_logging", "pwnlog"),
        },
        ["+experiment=untrusted"],
        "'hydra.hydra_logging.filters.pwn.()'",
    ),
    "logging inline in a preset": Route(
        {
            "experiment/untrusted.yaml": preset(
                nested("hydra.job_logging.filters.pwn", "(): {m}.pwn")
            )
        },
        ["+experiment=untrusted"],
        "'hydra.job_logging.filters.pwn.()'",
        "untrusted.yaml",
    ),
    "logging inline in a primary config": Route(
        {
            "primary.yaml": (
                "defaults:\n  - config\n  - _self_\n"
                "hydra:\n  job_logging:\n    filters:\n      pwn:\n        (): {m}.pwn\n"
            )
        },
        ["--config-name", "primary"],
        "'hydra.job_logging.filters.pwn.()'",
        "primary.yaml",
    ),
    "logging through a search path from the command line": Route(
        {
            "hydra/job_logging/pwnlog.yaml": logging_config(FILTER),
            "experiment/untrusted.yaml": choosing("job_logging", "pwnlog"),
        },
        ["hydra.searchpath=[file://{tmp}/elsewhere]", "+experiment=untrusted", "--no-config-dir"],
        "'hydra.job_logging.filters.pwn.()'",
    ),
    "a log file outside the run's folder": Route(
        {
            "experiment/untrusted.yaml": preset(
                nested("hydra.job_logging.handlers.file", "filename: {tmp}/outside.log")
            )
        },
        ["+experiment=untrusted"],
        "'hydra.job_logging.handlers.file.filename'",
    ),
    "a job name leading out of the run's folder": Route(
        {"experiment/untrusted.yaml": preset("hydra:\n  job:\n    name: ../escaped\n")},
        ["+experiment=untrusted"],
        "'hydra.job.name'",
    ),
    "a launcher option building something next to the launcher": Route(
        {
            "hydra/launcher/evil.yaml": f"_target_: {JOBLIB}\nn_jobs: 1\n"
            + nested("pwn", "_target_: {m}.pwn"),
            "experiment/untrusted.yaml": choosing("launcher", "evil"),
        },
        ["-m", "+experiment=untrusted"],
        "'hydra.launcher.pwn'",
        "{m}.pwn",
    ),
    "a sweeper option building something next to the sweeper": Route(
        {
            "hydra/sweeper/evil.yaml": (
                f"_target_: {BASIC_SWEEPER}\nmax_batch_size: null\nparams: null\n"
                "pwn:\n  _target_: {m}.pwn\n"
            ),
            "experiment/untrusted.yaml": choosing("sweeper", "evil"),
        },
        ["-m", "+experiment=untrusted"],
        "'hydra.sweeper.pwn'",
    ),
    "the Optuna sweeper's sampler": Route(
        {
            "experiment/untrusted.yaml": preset(
                "defaults:\n  - override /hydra/sweeper: optuna\n"
                "hydra:\n  sweeper:\n    n_trials: 1\n    sampler:\n      _target_: {m}.pwn\n"
            )
        },
        ["-m", "+experiment=untrusted"],
        "'hydra.sweeper.sampler'",
        "{m}.pwn",
    ),
    "the Optuna sweeper's custom search space": Route(
        {
            "experiment/untrusted.yaml": preset(
                "defaults:\n  - override /hydra/sweeper: optuna\n"
                "hydra:\n  sweeper:\n    n_trials: 1\n    custom_search_space: {m}.pwn\n"
            )
        },
        ["-m", "+experiment=untrusted"],
        "'hydra.sweeper.custom_search_space'",
        "{m}.pwn",
    ),
    "the Ray launcher's ray.init mapping": Route(
        {
            "experiment/untrusted.yaml": preset(
                "defaults:\n  - override /hydra/launcher: ray\n"
                + nested("hydra.launcher.ray.init.pwn", "_target_: {m}.pwn")
            )
        },
        ["-m", "+experiment=untrusted"],
        "'hydra.launcher.ray.init.pwn'",
    ),
    "Submitit's setup commands": Route(
        {
            "experiment/untrusted.yaml": preset(
                "defaults:\n  - override /hydra/launcher: submitit_slurm\n"
                "hydra:\n  launcher:\n    setup: ['python -c \"import {m}\"']\n"
            )
        },
        ["-m", "+experiment=untrusted"],
        "'hydra.launcher.setup'",
    ),
    "the job's environment": Route(
        {
            "experiment/untrusted.yaml": preset(
                nested("hydra.job.env_set", "PYTHONPATH: /elsewhere")
            )
        },
        ["+experiment=untrusted"],
        "'hydra.job.env_set.PYTHONPATH'",
    ),
    "Hydra's record of the command line": Route(
        {
            "experiment/untrusted.yaml": preset(
                nested("hydra.overrides", "hydra: ['hydra.job.env_set.X=1']")
            )
        },
        ["+experiment=untrusted"],
        "'hydra.overrides.hydra",
    ),
    "a sweep over Hydra's settings": Route(
        {
            "experiment/untrusted.yaml": preset(
                nested("hydra.sweeper.params", "+hydra.job.env_set.X: a,b")
            )
        },
        ["-m", "+experiment=untrusted"],
        "'hydra.sweeper.params",
        "hydra.job.env_set.X",
    ),
    "a search path entry importing a module": Route(
        {"primary.yaml": "defaults:\n  - config\n  - _self_\nhydra:\n  searchpath: [pkg://{m}]\n"},
        ["--config-name", "primary"],
        "'hydra.searchpath'",
        "pkg://{m}",
    ),
    "a structured search path entry": Route(
        {
            "primary.yaml": "defaults:\n  - config\n  - _self_\nhydra:\n  searchpath: [structured://{m}]\n"
        },
        ["--config-name", "primary"],
        "'hydra.searchpath'",
        "structured://{m}",
    ),
}


def run_route(app: Cli, tmp_path: Path, evil: Evil, route: Route, *extra: str) -> Any:
    """Write the route's folder and run the app on it."""

    def fill(text: str) -> str:
        return text.replace("{m}", evil.name).replace("{tmp}", str(tmp_path))

    folder = config_folder(tmp_path, {name: fill(text) for name, text in route.files.items()})
    arguments = [fill(a) for a in route.arguments]
    if "--no-config-dir" in arguments:
        arguments.remove("--no-config-dir")
    else:
        arguments = ["--config-dir", str(folder), *arguments]
    return app(*arguments, *SMALL, "hydra.run.dir=run", "hydra.sweep.dir=sweep", *extra)


@pytest.mark.parametrize("route", list(FILE_ROUTES))
def test_hydra_settings_from_a_config_file(
    app: Cli, evil: Evil, tmp_path: Path, route: str
) -> None:
    """Every callable in Hydra's nodes, every search-path module and every Hydra setting a
    file may not change is held to the allow-list: refused, naming the key and the file."""
    result = run_route(app, tmp_path, evil, FILE_ROUTES[route])
    named = [text.replace("{m}", evil.name) for text in FILE_ROUTES[route].named]
    assert_refused(result, evil, *named)
    assert not (tmp_path / "outside.log").exists()
    assert not list(tmp_path.glob("escaped*"))


def test_a_logging_route_in_a_real_process(cli: Cli, evil: Evil, tmp_path: Path) -> None:
    """The same, with the module found in the current folder of a new process."""
    route = FILE_ROUTES["logging option with a filter factory"]
    result = run_route(cli, tmp_path, evil, route)
    assert_refused(result, evil, "'hydra.job_logging.filters.pwn.()'", f"{evil.name}.pwn")


def test_the_detector_sees_a_logging_factory_run(app: Cli, evil: Evil, tmp_path: Path) -> None:
    """Positive control: allowed on the command line, the factory is imported and runs."""
    route = FILE_ROUTES["logging option with a filter factory"]
    result = run_route(app, tmp_path, evil, route, f"allowed_targets=[{evil.name}]")
    assert result.returncode == 0, result.stderr
    assert evil.ran.exists()


def test_what_a_config_file_may_set_under_hydra(app: Cli, tmp_path: Path) -> None:
    """Output folders, the job name, verbosity and Hydra's installed options stay a file's to
    choose."""
    folder = config_folder(
        tmp_path,
        {
            "experiment/settled.yaml": preset(
                "defaults:\n  - override /hydra/job_logging: disabled\n"
                "hydra:\n  run:\n    dir: chosen\n  job:\n    name: named\n    chdir: false\n"
                "  verbose: [hydra_pipeline]\n  output_subdir: .settings\n"
            )
        },
    )
    result = app("--config-dir", str(folder), *SMALL, "+experiment=settled")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "chosen" / ".settings" / "config.yaml").is_file()
    assert not (tmp_path / "chosen" / "named.log").exists()  # logging disabled


def test_the_command_line_stays_trusted(app: Cli, tmp_path: Path) -> None:
    """What a file may not set under hydra.*, the command line may."""
    result = app(*SMALL, "+hydra.job.env_set.HYDRA_PIPELINE_TRUSTED=1", "hydra.run.dir=run")
    assert result.returncode == 0, result.stderr


def test_a_config_file_that_is_an_alias_bomb(app: Cli, tmp_path: Path) -> None:
    """Hydra's own loading of a config file is bounded too."""
    lines = ["# @package _global_", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    folder = config_folder(tmp_path, {"experiment/bomb.yaml": "\n".join(lines) + "\n"})
    result = app("--config-dir", str(folder), *SMALL, "+experiment=bomb")
    assert_refused(result, None, str(folder / "experiment" / "bomb.yaml"), "expand")


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("objective", "objective: ${{new_folder:{deep}}}\n"),
        ("hydra.job.name", "hydra:\n  job:\n    name: ${{new_folder:{deep}}}\n"),
        ("pipeline.named_losses", "pipeline:\n  named_losses:\n    x: ${{new_folder:{deep}}}\n"),
    ],
)
def test_a_resolver_with_side_effects_outside_the_output_folders(
    app: Cli, tmp_path: Path, key: str, text: str
) -> None:
    """new_folder creates folders: it is refused outside hydra.run.dir and hydra.sweep.dir,
    before it creates anything."""
    deep = tmp_path / "anywhere" / "deep"
    folder = config_folder(tmp_path, {"experiment/untrusted.yaml": preset(text.format(deep=deep))})
    result = app("--config-dir", str(folder), *SMALL, "+experiment=untrusted", "hydra.run.dir=run")
    assert_refused(result, None, f"'{key}", "new_folder")
    assert not (tmp_path / "anywhere").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short finished run, trained once for the module (tests work on copies)."""
    folder = tmp_path_factory.mktemp("trained")
    result = run_in_process([*SMALL, "pipeline.save_interval=32", "hydra.run.dir=run"], folder)
    assert result.returncode == 0, result.stderr
    return folder / "run"


@pytest.fixture
def run_copy(trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained run, handed over as a folder from elsewhere."""
    return Path(shutil.copytree(trained, tmp_path / "handed_over", symlinks=True))


@pytest.mark.parametrize(
    ("stored", "named"),
    [
        ("+schedule@hydra.job_logging.handlers.file=linear_decay", "hydra.job_logging"),
        ("+callbacks@hydra.job_logging=wandb", "hydra.job_logging"),
        ("+callbacks@hydra=wandb", "@hydra"),
        ("+callbacks@_global_.hydra.launcher=wandb", "hydra.launcher"),
        ("hydra/job_logging=disabled", "hydra/job_logging"),
    ],
)
def test_checkpoint_overrides_reaching_hydra_through_a_package(
    app: Cli, run_copy: Path, tmp_path: Path, stored: str, named: str
) -> None:
    """A stored override is data whichever part of it names Hydra's node: the group, the key
    or the package after @."""
    checkpoint = sorted((run_copy / "checkpoints").glob("*.pt"))[-1]
    payload = torch.load(checkpoint, weights_only=True)
    payload["metadata"]["overrides"].append(stored)
    crafted = tmp_path / "from_elsewhere.pt"
    torch.save(payload, crafted)
    result = app(f"resume={crafted}")
    assert_refused(result, None, "which sets Hydra's own settings", named, str(crafted))


# --------------------------------------------------------------------------------------------
# 2. A run folder from elsewhere stays inside itself


def evaluate(cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return run_in_process(list(arguments), cwd, program="hydra-pipeline-evaluate")


def outside(tmp_path: Path) -> Path:
    """A folder outside the run, with a file and a sub-folder the tools must not touch."""
    folder = tmp_path / "outside"
    (folder / "tensorboard").mkdir(parents=True)
    (folder / "tensorboard" / "precious.txt").write_text("keep")
    (folder / "precious.txt").write_text("keep")
    return folder


def untouched(folder: Path) -> bool:
    return sorted(p.name for p in folder.rglob("*")) == [
        "precious.txt",
        "precious.txt",
        "tensorboard",
    ] and all(p.read_text() == "keep" for p in folder.rglob("precious.txt"))


def link(path: Path, target: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def test_evaluate_into_a_linked_evaluation_folder(run_copy: Path, tmp_path: Path) -> None:
    """evaluation/ as a link to another folder: refused before anything is deleted or
    written there."""
    elsewhere = outside(tmp_path)
    link(run_copy / "evaluation", elsewhere)
    result = evaluate(tmp_path, f"run={run_copy}", "checkpoint=all", "episodes=1")
    assert_refused(result, None, f"'{run_copy / 'evaluation'}'", "symbolic link")
    assert untouched(elsewhere)


def test_evaluate_into_a_linked_result_file(run_copy: Path, tmp_path: Path) -> None:
    elsewhere = outside(tmp_path)
    stem = sorted((run_copy / "checkpoints").glob("*.pt"))[-1].stem
    link(run_copy / "evaluation" / f"{stem}.json", elsewhere / "precious.txt")
    result = evaluate(tmp_path, f"run={run_copy}", "episodes=1")
    assert_refused(result, None, f"{stem}.json", "symbolic link")
    assert untouched(elsewhere)


def test_evaluate_keeps_what_it_did_not_write(run_copy: Path, tmp_path: Path) -> None:
    """A second checkpoint=all evaluation rewrites its own curve and deletes nothing else."""
    board = run_copy / "evaluation" / "tensorboard"
    for evaluation in range(2):
        result = evaluate(tmp_path, f"run={run_copy}", "checkpoint=all", "episodes=1")
        assert result.returncode == 0, result.stderr
        if evaluation == 0:
            (board / "notes.txt").write_text("mine")
    assert (board / "notes.txt").read_text() == "mine"
    assert len(list(board.glob("events.out.tfevents.*"))) == 1


@pytest.mark.parametrize("entry", ["summary.json", "app.log", "metrics.csv", ".hydra"])
def test_resume_through_a_linked_entry(
    app: Cli, run_copy: Path, tmp_path: Path, entry: str
) -> None:
    """summary.json, the log, metrics.csv or .hydra as links out of the folder: the resumed
    run would overwrite or append to their targets."""
    elsewhere = outside(tmp_path)
    link(run_copy / entry, elsewhere if entry == ".hydra" else elsewhere / "precious.txt")
    result = app(f"resume={run_copy}")
    assert_refused(result, None, f"'{run_copy / entry}'", "symbolic link")
    assert untouched(elsewhere)


def crafted_sweep(tmp_path: Path, jobs: int = 2) -> Path:
    """A sweep folder as a finished sweep leaves it: per job its status, summary and
    metrics."""
    sweep = tmp_path / "sweep"
    for number in range(jobs):
        job = sweep / str(number)
        job.mkdir(parents=True)
        status = {
            "job": number,
            "overrides": [f"seed={number}"],
            "status": "completed",
            "error": "",
            "objective": 10.0 + number,
            "pid": 1,
            "host": "elsewhere",
        }
        (job / "job_status.json").write_text(json.dumps(status))
        summary = {"total_steps": 64, "final_metrics": {"reward": 10.0 + number}}
        (job / "summary.json").write_text(json.dumps(summary))
        (job / "metrics.csv").write_text(
            "mode,total_steps,stage,train/reward\ntrain,32,0,9.0\ntrain,64,1,10.0\n"
        )
    return sweep


def report(*folders: Path) -> tuple[int, str]:
    """Run the report command in this process; its status and what it printed."""
    import contextlib
    import io

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = report_main([str(folder) for folder in folders])
    return status, stderr.getvalue()


def test_report_through_a_linked_picture(tmp_path: Path) -> None:
    sweep = crafted_sweep(tmp_path)
    elsewhere = outside(tmp_path)
    link(sweep / "1" / "curves.png", elsewhere / "precious.txt")
    status, stderr = report(sweep)
    assert status == 1
    assert f"'{sweep / '1' / 'curves.png'}'" in stderr and "symbolic link" in stderr
    assert "Traceback" not in stderr
    assert untouched(elsewhere)


def test_report_of_seeds_outside_the_job(tmp_path: Path) -> None:
    """seeds.json names the job's run folders: one leading out of the job is refused."""
    sweep = crafted_sweep(tmp_path)
    elsewhere = outside(tmp_path)
    shutil.copy(sweep / "0" / "metrics.csv", elsewhere / "metrics.csv")
    seeds = {"seeds": [0], "runs": ["../../outside"], "objectives": [1.0]}
    (sweep / "0" / "seeds.json").write_text(json.dumps(seeds))
    status, stderr = report(sweep)
    assert status == 1
    assert "seeds.json" in stderr and "../../outside" in stderr
    assert not (elsewhere / "curves.png").exists()


# --------------------------------------------------------------------------------------------
# 3. Files from elsewhere: a message, not a traceback or a hang


@pytest.mark.parametrize(
    ("damage", "file"),
    [
        (lambda job: (job / "job_status.json").write_text('{"job": 1, "overr'), "job_status.json"),
        (lambda job: (job / "summary.json").write_text("[1, 2]"), "summary.json"),
        (
            lambda job: (job / "job_status.json").write_text(
                json.dumps({"job": 1, "overrides": [], "status": "completed", "objective": "abc"})
            ),
            "job_status.json",
        ),
        (
            lambda job: (job / "metrics.csv").write_text("total_steps,train/reward\nabc,1\n"),
            "metrics.csv",
        ),
    ],
)
def test_report_of_a_damaged_job(tmp_path: Path, damage: Callable[[Path], Any], file: str) -> None:
    """One message naming the file, and the report of the jobs that are readable."""
    sweep = crafted_sweep(tmp_path)
    damage(sweep / "1")
    status, stderr = report(sweep)
    assert status == 1
    assert str(sweep / "1" / file) in stderr
    assert "Traceback" not in stderr
    with open(sweep / "sweep_summary.csv") as table:
        assert next(csv.DictReader(table))["job"] == "0"


def test_spreadsheet_formulas_are_escaped(tmp_path: Path) -> None:
    """Cells from overrides and error messages that a spreadsheet would read as formulas;
    numbers stay numbers."""
    sweep = crafted_sweep(tmp_path)
    status = json.loads((sweep / "0" / "job_status.json").read_text())
    status |= {"overrides": ["=cmd|'/c calc'!A1", "+x=1"], "status": "failed"}
    status |= {"error": "@SUM(1+1)", "objective": None}
    (sweep / "0" / "job_status.json").write_text(json.dumps(status))
    status = json.loads((sweep / "1" / "job_status.json").read_text()) | {"objective": -1.5}
    (sweep / "1" / "job_status.json").write_text(json.dumps(status))
    assert report(sweep)[0] == 0
    with open(sweep / "sweep_summary.csv") as table:
        rows = list(csv.DictReader(table))
    assert rows[0]["overrides"] == "'=cmd|'/c calc'!A1 +x=1"
    assert rows[0]["error"] == "'@SUM(1+1)"
    assert rows[1]["objective"] == "-1.5"


def limit_memory() -> None:
    """In a child process: at most 2 GiB of data, so a runaway config cannot take the
    machine."""
    resource.setrlimit(resource.RLIMIT_DATA, (2 << 30, 2 << 30))


def test_a_saved_config_that_is_an_alias_bomb(run_copy: Path, tmp_path: Path) -> None:
    """Refused by what it would expand to, quickly, naming the file."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    lines += ["task: {_target_: hydra_pipeline.tasks.CartPoleTask, bomb: *a8}"]
    saved = run_copy / ".hydra" / "resolved_config.yaml"
    saved.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "hydra_pipeline.evaluate", f"run={run_copy}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, preexec_fn=limit_memory,
        check=False,
    )  # fmt: skip
    assert_refused(result, None, str(saved), "expand")


def rewritten_checkpoint(run: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """The run's last checkpoint, changed in place as a damaged file from elsewhere would be."""
    path = sorted((run / "checkpoints").glob("*.pt"))[-1]
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)
    return path


CHECKPOINT_DAMAGE: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "total_steps is text": (lambda p: p.update(total_steps="abc"), "'total_steps'"),
    "no pipeline entry": (lambda p: p.pop("pipeline"), "'pipeline'"),
    "stage index is text": (
        lambda p: p["pipeline"].update(current_stage_index="abc"),
        "'pipeline.current_stage_index'",
    ),
    "metadata is a list": (lambda p: p.update(metadata=[1]), "'metadata'"),
}


@pytest.mark.parametrize("damage", list(CHECKPOINT_DAMAGE))
def test_a_checkpoint_with_wrong_fields(
    app: Cli, run_copy: Path, tmp_path: Path, damage: str
) -> None:
    """Evaluate, resume and Policy.from_run name the checkpoint and the field."""
    change, field = CHECKPOINT_DAMAGE[damage]
    path = rewritten_checkpoint(run_copy, change)
    for result in (evaluate(tmp_path, f"run={run_copy}"), app(f"resume={run_copy}")):
        assert_refused(result, None, str(path), field)
    with pytest.raises(CheckpointError, match=field) as caught:
        Policy.from_run(run_copy, "last")
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [("seed", "abc"), ("normalization", "abc"), ("evaluation", [1]), ("task", "abc")],
)
def test_a_saved_config_with_wrong_fields(
    run_copy: Path, tmp_path: Path, key: str, value: Any
) -> None:
    saved = run_copy / ".hydra" / "resolved_config.yaml"
    cfg = OmegaConf.load(saved)
    cfg[key] = value
    OmegaConf.save(cfg, saved)
    assert_refused(evaluate(tmp_path, f"run={run_copy}"), None, str(saved), f"'{key}")
    with pytest.raises(ConfigError, match=key) as caught:
        Policy.from_run(run_copy, "last")
    assert str(saved) in str(caught.value)


# --------------------------------------------------------------------------------------------
# 4. Mistakes that used to run silently or oddly


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["evaluation.interval=16", "evaluation.metric=rewrd"], "Did you mean 'reward'?"),
        (["evaluation.interval=16", "evaluation.metric=episode_lenght"], "'episode_length'"),
        (
            [f"distributed.nproc_per_node={CORES + 1}"],
            f"'distributed.nproc_per_node' is {CORES + 1}",
        ),
        (["seeds=[0,1]", "seed=5"], "'seed'"),
        (["callbacks=[wandbb]"], "Did you mean 'callbacks=[wandb]'?"),
        (["callbacks=[wandb,mlfow]"], "Did you mean"),
    ],
)
def test_mistakes_that_ran_silently(app: Cli, arguments: list[str], expected: str) -> None:
    result = app(*SMALL, *arguments, "hydra.run.dir=run")
    assert_refused(result, None, expected)


def test_more_processes_than_cores_when_asked(app: Cli) -> None:
    """Explicitly asked for, more processes than cores start."""
    result = app(
        *SMALL, f"distributed.nproc_per_node={CORES + 1}", "distributed.oversubscribe=true"
    )
    assert result.returncode == 0, result.stderr


def test_sigterm_during_startup(tmp_path: Path) -> None:
    """Stopped before training began: a message saying so and what to do, exit 143; resume
    then says there is nothing to continue and how to start again."""
    arguments = [*SMALL, "hydra.run.dir=run"]
    process = subprocess.Popen(
        [sys.executable, "-m", "hydra_pipeline", *arguments],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    saved = tmp_path / "run" / ".hydra" / "overrides.yaml"
    wait_for(lambda: saved.is_file() and "pipeline" in saved.read_text(), process, "the run folder")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM.value, stderr
    assert "SIGTERM" in stderr and "before training" in stderr, stderr
    assert "Traceback" not in stderr
    assert not list((tmp_path / "run").glob("checkpoints/*.pt"))
    resumed = subprocess.run(
        [sys.executable, "-m", "hydra_pipeline", f"resume={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert_refused(resumed, None, "no checkpoint", "Start it again")
    assert "python -m hydra_pipeline task.num_envs=4 pipeline.num_steps=8" in resumed.stderr


def job_status(sweep: Path, job: int) -> dict[str, Any]:
    try:
        status: dict[str, Any] = json.loads((sweep / str(job) / "job_status.json").read_text())
    except (OSError, ValueError):
        return {}
    return status


def test_a_killed_job_of_a_joblib_sweep_loses_no_other(tmp_path: Path) -> None:
    """One job's process killed (SIGKILL, out of memory): the job running beside it and the
    jobs after it complete; the killed one is marked with the command that reruns it."""
    sweep = tmp_path / "sweep"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "hydra_pipeline", "-m", *SMALL,
            "pipeline.pipeline_stages.1.max_stage_steps=100000000,4096,32",
            "pipeline.pipeline_stages.1.early_stopping_criterion=null",  # job 0 never ends
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(
        lambda: (
            job_status(sweep, 0).get("status") == "running"
            and job_status(sweep, 1).get("status") == "running"
            and (sweep / "0" / "metrics.csv").is_file()
        ),
        process,
        "jobs 0 and 1 to train",
    )
    os.kill(job_status(sweep, 0)["pid"], signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert "Traceback" not in stderr
    with open(sweep / "sweep_summary.csv") as table:
        rows = list(csv.DictReader(table))
    assert [row["status"] for row in rows] == ["killed", "completed", "completed"]
    assert "python -m hydra_pipeline" in rows[0]["error"]
    assert str(sweep / "0") in rows[0]["error"]
    assert process.returncode == 1
