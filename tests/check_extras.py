"""Each optional extra works on its own: in a fresh virtual environment that holds only the
core and that extra, what the documentation shows with it runs.

``python tests/check_extras.py [extra ...]`` (every extra by default; CI runs it as a step of
its own, see ``.ci/run``) makes one virtual environment with the core (torch's CPU build
first, ``pip install torch==2.13.0``, then ``pip install -e .``) and, for each extra, a copy
of it into which ``pip install -e ".[<extra>]"`` adds the extra. There it runs the extra's
commands (:data:`EXTRA_CHECKS`, the documented ones on tiny step counts), each in an empty
working folder, and checks what each must write and print. The environments are removed at
the end. It ends with ``N passed, M failed`` and exit status 1 if any failed.

An environment with ``[all]`` (as CI's) hides a missing requirement: another extra may bring
it (Optuna brings the SQLAlchemy and Alembic that MLflow's SQLite store needs).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TORCH = "torch==2.13.0"
"""The CPU build of torch on this machine's disk (pip would otherwise pick a CUDA build)."""


@dataclass(frozen=True)
class Check:
    """A command of an extra and what it must do.

    Attributes:
        arguments: What follows ``python`` (run with the environment's interpreter).
        writes: Glob patterns, relative to the working folder, that must each match a file.
        shows: Texts the output (stdout and stderr) must hold.
        hides: Texts the output must not hold (besides :data:`NOISE`).
        allows: Texts of :data:`NOISE` this command may print (Ray colours the lines it
            relays from its workers, whatever the output is).
        env: Environment variables to set (as the suite's own run of the same command does).
        at_root: Run it from the repository's root (a developer tool reading the project's
            configuration) instead of the working folder; ``{work}`` in ``arguments`` stands
            for the working folder.
    """

    arguments: tuple[str, ...]
    writes: tuple[str, ...] = ()
    shows: tuple[str, ...] = ()
    hides: tuple[str, ...] = ()
    allows: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    at_root: bool = False


APP = ("-m", "hydra_pipeline")
TINY = ("pipeline.num_steps=16", "pipeline.metric_accumulate_interval=128", "progress_bar=false")
ONE_STAGE = (*TINY, "pipeline.pipeline_stages.0.max_stage_steps=256")
TWO_STAGES = (*ONE_STAGE, "pipeline.pipeline_stages.1.max_stage_steps=256", "task.num_envs=8")
"""Overrides that make a documented run take seconds (two stages: the default pipeline)."""

NOISE = ("Traceback", "\x1b[", "setup plugin alembic", "fontManager", "XDG_RUNTIME_DIR")
"""What no command may print: tracebacks, ANSI colour codes and other libraries' chatter."""

EXTRA_CHECKS: dict[str, tuple[Check, ...]] = {
    "gym": (
        Check(
            (*APP, "task=gym", "task.env_id=LunarLander-v3", *ONE_STAGE, "hydra.run.dir=run"),
            writes=("run/summary.json",),
        ),
    ),
    "minigrid": (
        Check(
            (*APP, "task=minigrid", "task.num_envs=4", *ONE_STAGE, "hydra.run.dir=run"),
            writes=("run/summary.json",),
        ),
        Check(
            (
                *APP,
                "pipeline=imitation_then_ppo",
                "task=minigrid",
                "task.env_id=BabyAI-GoToObj-v0",
                *TWO_STAGES,
                "hydra.run.dir=babyai",
            ),
            writes=("babyai/summary.json",),
        ),
    ),
    "video": (
        Check(
            (
                *APP,
                *TWO_STAGES,
                "evaluation.interval=256",
                "evaluation.episodes=1",
                "evaluation.video=true",
                "hydra.run.dir=run",
            ),
            writes=("run/videos/*.mp4",),
        ),
        Check(
            ("-m", "hydra_pipeline.evaluate", "run=run", "video=true", "episodes=1"),
            writes=("run/videos/*-1.mp4", "run/evaluation/*.json"),
            shows=("Wrote:",),
        ),
    ),
    "launchers": (
        Check(
            (*APP, "-m", "seed=0,1", "hydra/launcher=joblib", *TWO_STAGES, "hydra.sweep.dir=j"),
            writes=("j/sweep_summary.csv", "j/0/summary.json", "j/1/summary.json"),
        ),
        Check(
            (
                *APP,
                "-m",
                "seed=0",
                "hydra/launcher=submitit_local",
                *TWO_STAGES,
                "hydra.sweep.dir=s",
            ),
            writes=("s/0/summary.json",),
        ),
    ),
    "ray": (
        Check(
            (*APP, "-m", "seed=0", "hydra/launcher=ray", *TWO_STAGES, "hydra.sweep.dir=r"),
            writes=("r/0/summary.json",),
            allows=("\x1b[",),
        ),
    ),
    "optuna": (
        Check(
            (
                *APP,
                "--config-dir",
                str(ROOT / "examples" / "optuna"),
                "--config-name",
                "tune",
                "-m",
                "hydra.sweeper.n_trials=2",
                *TWO_STAGES,
                "hydra.sweep.dir=o",
            ),
            writes=("o/optimization_results.yaml", "o/sweep_summary.csv"),
        ),
    ),
    "wandb": (
        Check(
            (
                *APP,
                "callbacks=[wandb]",
                "callbacks.wandb.mode=offline",
                *TWO_STAGES,
                "hydra.run.dir=run",
            ),
            writes=("run/wandb/offline-run-*",),
        ),
    ),
    "mlflow": (
        Check(
            (
                *APP,
                "callbacks=[mlflow]",
                "callbacks.mlflow.tracking_uri=sqlite:///mlruns.db",
                *TWO_STAGES,
                "hydra.run.dir=run",
            ),
            writes=("mlruns.db",),
            shows=("MLflow: finished run",),
        ),
    ),
    "analysis": (
        Check(
            (*APP, "-m", "seed=0,1", *TWO_STAGES, "hydra.sweep.dir=sweep"),
            writes=("sweep/sweep_curves.png", "sweep/sweep_groups.csv", "sweep/0/curves.png"),
            hides=("pip install",),  # the warning naming the extra when a library is missing
        ),
        Check(("-m", "hydra_pipeline.report", "sweep"), shows=("Wrote:", "sweep_curves.png")),
    ),
    "benchmark": (
        Check(
            (
                str(ROOT / "benchmarks" / "sb3_zoo.py"),
                "--env",
                "LunarLander-v3",
                "--steps",
                "512",
                "--episodes",
                "1",
                "--result",
                "sb3.json",
            ),
            writes=("sb3.json",),
        ),
    ),
    "dev": (
        Check(("-m", "ruff", "check", "."), at_root=True),
        Check(("-m", "mypy", "--strict", "hydra_pipeline", "hydra_plugins"), at_root=True),
        Check(("-m", "pytest", "--version"), shows=("pytest",)),
    ),
    "docs": (
        Check(
            ("-m", "mkdocs", "build", "--strict", "--site-dir", "{work}/site"),
            writes=("site/index.html",),
            # Off, as in tests/test_docs.py: mkdocs-material's banner about MkDocs 2.
            env=(("NO_MKDOCS_2_WARNING", "1"), ("DISABLE_MKDOCS_2_WARNING", "true")),
            at_root=True,
        ),
    ),
}
"""The commands each extra must run on its own (every extra but ``all``, which is the others)."""


def optional_extras() -> list[str]:
    """The package's extras, as ``pyproject.toml`` declares them, but ``all`` (read without
    ``tomllib``, which Python 3.10 lacks)."""
    text = (ROOT / "pyproject.toml").read_text()
    table = text.split("[project.optional-dependencies]\n", 1)[1].split("\n[", 1)[0]
    names = re.findall(r"^([a-z0-9_-]+) = \[", table, flags=re.MULTILINE)
    return [name for name in names if name != "all"]


def _pip(python: Path, *arguments: str) -> None:
    """``pip install`` with ``python``; its output only if it fails.

    Raises:
        subprocess.CalledProcessError: pip failed.
    """
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        print(result.stdout + result.stderr, flush=True)
        result.check_returncode()


def core_environment(folder: Path) -> Path:
    """A virtual environment in ``folder`` with the core installed; its interpreter."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    _pip(python, TORCH)
    _pip(python, "-e", str(ROOT))
    return python


def run_check(python: Path, check: Check, cwd: Path) -> list[str]:
    """Run ``check`` with ``python`` in ``cwd``; the problems found (none: it passed)."""
    arguments = [argument.replace("{work}", str(cwd)) for argument in check.arguments]
    unset = ("HYDRA_FULL_ERROR", "VIRTUAL_ENV")
    environment = {k: v for k, v in os.environ.items() if k not in unset} | dict(check.env)
    result = subprocess.run(
        [str(python), *arguments],
        cwd=ROOT if check.at_root else cwd,
        capture_output=True,
        text=True,
        check=False,
        env=environment,
        timeout=900,
    )
    output = result.stdout + result.stderr
    problems = []
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}")
    problems += [f"wrote no {p}" for p in check.writes if not glob.glob(str(cwd / p))]
    problems += [f"did not print {text!r}" for text in check.shows if text not in output]
    unwanted = [text for text in NOISE if text not in check.allows] + list(check.hides)
    problems += [f"printed {text!r}" for text in unwanted if text in output]
    if problems:
        problems.append("its output ends:\n" + "\n".join(output.splitlines()[-25:]))
    return problems


def check_extra(extra: str, core: Path, scratch: Path) -> list[str]:
    """Install ``extra`` into a copy of the core environment and run its checks; the
    problems found, each naming the command."""
    environment = scratch / f"venv-{extra}"
    shutil.copytree(core.parents[1], environment, symlinks=True)
    python = environment / "bin" / "python"
    problems = []
    try:
        _pip(python, "-e", f"{ROOT}[{extra}]")
    except subprocess.CalledProcessError as error:
        return [f"pip install -e '.[{extra}]' failed ({error.returncode})"]
    cwd = scratch / f"work-{extra}"
    cwd.mkdir()
    for check in EXTRA_CHECKS[extra]:
        shown = " ".join(check.arguments)
        problems += [f"python {shown}: {problem}" for problem in run_check(python, check, cwd)]
    shutil.rmtree(environment)
    return problems


def main(arguments: list[str] | None = None) -> int:
    """Check the extras named (all by default); the exit status."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("extras", nargs="*", help="extras to check (default: all of them)")
    extras = parser.parse_args(arguments).extras or optional_extras()
    unknown = sorted(set(extras) - set(EXTRA_CHECKS))
    if unknown:
        parser.error(f"no checks for {unknown}; known: {sorted(EXTRA_CHECKS)}")
    failed = []
    with tempfile.TemporaryDirectory(prefix="hydra_pipeline_extras_") as scratch:
        core = core_environment(Path(scratch) / "core")
        for extra in extras:
            start = time.monotonic()
            problems = check_extra(extra, core, Path(scratch))
            verdict = "FAILED" if problems else "ok"
            print(f"[{extra}] {verdict} in {time.monotonic() - start:.0f} s", flush=True)
            for problem in problems:
                print(f"  {problem}", flush=True)
            failed += [extra] if problems else []
    print(f"{len(extras) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
