"""Every command of the README and of the documentation's pages runs as written (on tiny
step counts), and every Python example that uses a trained run works."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.app.conftest import run_in_process
from tests.pages import README, code_blocks, name
from tests.test_docs import BUILD_DOCS
from tests.test_static import STATIC_CHECKS

ROOT = Path(__file__).resolve().parents[1]
PAGE_COMMANDS = [
    (page, line.strip())
    for page, block in code_blocks("bash")
    for line in block.splitlines()
    if line.strip()
]
"""Each command of a ``bash`` block, with its page: the README's first, in their order."""
COMMANDS = [command for _, command in PAGE_COMMANDS]
README_COMMANDS = [command for page, command in PAGE_COMMANDS if page == README]
PYTHON_EXAMPLES = [block for _, block in code_blocks("python")]
EVALUATE = ["python", "-m", "hydra_pipeline.evaluate"]

# Commands CI runs itself: .ci/run must run them exactly as the README writes them.
RUN_BY_CI = ['pip install -e ".[all]"', "python -m pytest"]

# Commands that start several processes: tests/app/test_distributed.py runs them (both ways,
# on tiny budgets, in runs shared between its tests).
DISTRIBUTED = ("torchrun --nproc-per-node=2 -m hydra_pipeline", "distributed.nproc_per_node=2")

DEVELOPER_TOOLS = ("pytest", "ruff", "mypy", "mkdocs")
"""Modules of ``python -m <tool>`` commands that check the project itself: the suite runs what
the pages show of them (:func:`test_developer_command_is_what_the_suite_runs`)."""


def is_developer_command(command: str) -> bool:
    """Whether ``command`` runs one of the project's own checks rather than the package."""
    return shlex.split(command)[:3] in (["python", "-m", tool] for tool in DEVELOPER_TOOLS)


def trains(command: str) -> bool:
    """Whether checking ``command`` trains (or needs a finished run, which trains): all but
    the informational ones and those composed only, for want of a cluster."""
    informational = any(flag in shlex.split(command) for flag in ("--help", "--cfg"))
    return not informational and "needs a" not in command.partition("  #")[2]


def shrink(arguments: list[str]) -> list[str]:
    """The arguments with step counts cut down (and sweeps shortened) so the run is quick."""
    one_stage = "pipeline=ppo" in arguments or any(a.startswith("+experiment=") for a in arguments)
    stages = 1 if one_stage else 2
    small = {f"pipeline.pipeline_stages.{i}.max_stage_steps": "512" for i in range(stages)}
    small |= {
        "pipeline.num_steps": "16",
        # Few enough for the shortened rollouts of any preset (a recurrent one splits its
        # sequences, num_envs of them at 16 steps).
        "pipeline.num_mini_batch": "2",
        "pipeline.metric_accumulate_interval": "256",
        "hydra.sweeper.n_trials": "2",
    }
    if "task=gym" not in arguments:
        small["task.num_envs"] = "8"
    shrunk = []
    for argument in arguments:
        key, _, value = argument.partition("=")
        if key in small:
            argument = f"{key}={small.pop(key)}"
        elif "-m" in arguments and "," in value and not any(c in value for c in "[]{}()"):
            argument = f"{key}={','.join(value.split(',')[:2])}"  # a sweep: its first two
        shrunk.append(argument)
    sweeps_optuna = "--config-name" in arguments
    return shrunk + [
        f"{key}={value}"
        for key, value in small.items()
        if key != "hydra.sweeper.n_trials" or sweeps_optuna
    ]


def run(arguments: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a documented command in ``cwd`` as if from the repository's root (paths of the
    repository's files are made absolute): ``python -m hydra_pipeline ...`` through the app's
    entry point in this process (the same code, without a new process's second of imports),
    anything else in a process of its own."""
    arguments = [str(ROOT / a) if "/" in a and (ROOT / a).exists() else a for a in arguments]
    if arguments[:3] == ["python", "-m", "hydra_pipeline"]:
        return run_in_process(arguments[3:], cwd)
    if arguments[:3] == EVALUATE:
        return run_in_process(arguments[3:], cwd, program="hydra-pipeline-evaluate")
    environment = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [sys.executable, *arguments[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=environment,
    )


CLUSTER_LAUNCHERS = {
    "SLURM": [
        r"hydra_plugins\.hydra_submitit_launcher\.submitit_launcher\.SlurmLauncher",
        r"gpus_per_node: \d",
        r"partition: gpu",
    ],
    "Ray": [
        r"hydra_plugins\.hydra_ray_launcher\.ray_launcher\.RayLauncher",
        r"address: auto",
        r"num_gpus: \d",
    ],
}
"""What a documented command marked ``# needs a <name> cluster`` composes into, checked in its
place (its launcher, and settings its page names)."""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short finished run that evaluated, for the documented resume and evaluate commands."""
    folder = tmp_path_factory.mktemp("readme") / "run"
    evaluating = ["evaluation.interval=512", "evaluation.episodes=2"]
    # Episodes must end within the short run (a good policy balances for longer): the
    # documented TensorBoard and report commands read their returns.
    ending = ["task.max_episode_steps=40"]
    arguments = [*shrink([]), *evaluating, *ending, f"hydra.run.dir={folder}"]
    result = run(["python", "-m", "hydra_pipeline", *arguments], folder.parent)
    assert result.returncode == 0, result.stderr
    return folder


def test_readme_has_commands() -> None:
    """The README shows how to install, run and test; the documentation how to sweep and
    resume."""
    assert README_COMMANDS[:3] == [
        'pip install -e ".[all]"',
        "python -m hydra_pipeline",
        *RUN_BY_CI[1:],
    ]
    assert any(" -m " in command and "seed=0,1,2" in command for command in COMMANDS)
    assert any("resume=" in command for command in COMMANDS)


def test_every_page_is_read() -> None:
    """The commands come from the README and from pages of the site, guides included."""
    pages = {name(page) for page, _ in PAGE_COMMANDS}
    assert {"README.md", "docs/concepts/pipeline.md", "docs/guides/evaluation.md"} <= pages


@pytest.mark.parametrize(
    "command",
    sorted({c for c in COMMANDS if is_developer_command(c) and c not in RUN_BY_CI}),
)
def test_developer_command_is_what_the_suite_runs(
    command: str, pytestconfig: pytest.Config
) -> None:
    """A check the pages tell developers to run is one the suite runs too (so it passes), or
    the quick lane, whose markers the suite declares."""
    arguments = tuple(shlex.split(command)[2:])
    if arguments[0] == "pytest":
        assert arguments[1] == "-m", command
        declared = [line.split(":")[0] for line in pytestconfig.getini("markers")]
        words = set(arguments[2].split()) - {"not", "and", "or"}
        assert words and words <= set(declared), (words, declared)
    else:
        assert arguments in {*STATIC_CHECKS, BUILD_DOCS}, command


def test_ci_runs_the_readme_install_and_test_commands() -> None:
    """.ci/run installs and tests with the README's commands."""
    ci = (ROOT / ".ci" / "run").read_text()
    for command in RUN_BY_CI:
        assert re.search(rf"^\s*(python -m )?{re.escape(command)}\s*$", ci, flags=re.MULTILINE), (
            command
        )


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(command, marks=[pytest.mark.slow] if trains(command) else [])
        for command in dict.fromkeys(COMMANDS)
        if command not in RUN_BY_CI
        and not command.endswith(DISTRIBUTED)
        and not is_developer_command(command)
    ],
    ids=lambda command: command[:60],
)
def test_readme_command_runs(command: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The command exits with status 0 and does what its page says it does."""
    words, _, comment = command.partition("  #")
    arguments = shlex.split(words)

    def finished_run() -> Path:
        """The finished run, made on first use: only the commands that train use it."""
        run_folder: Path = request.getfixturevalue("finished_run")
        return run_folder

    if arguments[0] == "tensorboard":
        # Inspect the event files instead of serving them.
        logdir = finished_run() / "tensorboard"
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "tensorboard"),
                "--inspect",
                "--logdir",
                str(logdir),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "train/reward" in result.stdout
        return
    if arguments[:3] == ["python", "-m", "hydra_pipeline.report"]:
        # The report of the finished run: its learning-curve picture.
        (finished_run() / "curves.png").unlink(missing_ok=True)
        result = run([*arguments[:3], str(finished_run())], tmp_path)
        assert result.returncode == 0, result.stderr
        assert (finished_run() / "curves.png").read_bytes().startswith(b"\x89PNG")
        return
    assert arguments[:2] in (["python", "-m"], ["python", "examples/user_project/train.py"])
    if arguments[:3] == EVALUATE:
        check_evaluate_command(arguments, finished_run(), tmp_path)
        return
    arguments = [
        f"{a.split('=', 1)[0]}={finished_run()}"
        if a.startswith(("resume=", "restart_from_weights="))
        else a
        for a in arguments
    ]
    cluster = next((c for c in CLUSTER_LAUNCHERS if f"needs a {c} cluster" in comment), None)
    if cluster is not None:
        # No cluster here: check that the launcher preset composes into the cluster's launcher.
        single_run = arguments[:3] + [a for a in arguments[3:] if a != "-m" and "," not in a]
        result = run([*single_run, "--cfg", "hydra"], tmp_path)
        assert result.returncode == 0, result.stderr
        for expected in CLUSTER_LAUNCHERS[cluster]:
            assert re.search(expected, result.stdout), expected
        return
    informational = any(flag in arguments for flag in ("--help", "--cfg"))
    program = 3 if arguments[1] == "-m" else 2  # python -m hydra_pipeline | python script.py
    multirun = "-m" in arguments[program:]
    if not informational:
        arguments = shrink(arguments)
        folder = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        if not any(a.startswith(("resume=",)) for a in arguments):
            arguments.append(f"{folder}={tmp_path / 'out'}")
    result = run(arguments, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    if informational:
        assert "pipeline" in result.stdout
    elif any(a.startswith("resume=") for a in arguments):
        assert (finished_run() / "summary.json").is_file()
    elif multirun:
        assert (tmp_path / "out" / "sweep_summary.csv").is_file()
    else:
        assert (tmp_path / "out" / "summary.json").is_file()


def check_evaluate_command(arguments: list[str], finished_run: Path, tmp_path: Path) -> None:
    """An evaluate command, on the finished run, with few episodes, writes its JSON files."""
    small = {"run": str(finished_run), "episodes": "2", "task.num_envs": "2"}
    arguments = [
        f"{key}={small[key]}" if (key := a.split("=", 1)[0]) in small else a for a in arguments
    ]
    if "-m" in arguments:
        arguments.append(f"hydra.sweep.dir={tmp_path / 'sweep'}")
    shutil.rmtree(finished_run / "evaluation", ignore_errors=True)
    result = run(arguments, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert list((finished_run / "evaluation").glob("*.json"))
    assert "total steps" in result.stdout


@pytest.mark.slow
def test_readme_policy_example_runs(finished_run: Path) -> None:
    """The documentation's Policy example works as written, on a finished run's folder."""
    [example] = [code for code in PYTHON_EXAMPLES if "Policy.from_run" in code]
    code = re.sub(r'from_run\("[^"]*"', f"from_run({str(finished_run)!r}", example)
    namespace = {"observations": np.zeros((3, 4), dtype=np.float32)}
    exec(code, namespace)
    assert namespace["actions"].shape == (3,)
