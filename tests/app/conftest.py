"""Fixtures to run the real command line: in a subprocess (``cli``), or in this process
(``app``, for the many tests of what a single invocation reports)."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]

Cli = Callable[..., subprocess.CompletedProcess[str]]


SMALL = (
    "task.num_envs=8",
    "pipeline.num_steps=32",
    "pipeline.num_mini_batch=2",
    "pipeline.metric_accumulate_interval=512",
    "pipeline.pipeline_stages.0.max_stage_steps=1024",
    "pipeline.pipeline_stages.1.max_stage_steps=1024",
)
"""Overrides that make the default run train for about a second."""


@pytest.fixture
def small() -> list[str]:
    """:data:`SMALL`, as a list a test may extend."""
    return list(SMALL)


@pytest.fixture
def root() -> Path:
    """The repository's root folder."""
    return ROOT


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """``cli(*arguments, script=None, env=None, cwd=tmp_path)`` runs ``python -m
    hydra_pipeline`` (or ``python <script>``) and returns the completed process."""

    def run(
        *arguments: str,
        script: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: Path = tmp_path,
        timeout: float = 240,
    ) -> subprocess.CompletedProcess[str]:
        command = (
            [sys.executable, str(script)] if script else [sys.executable, "-m", "hydra_pipeline"]
        )
        environment = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
        environment.update(env or {})
        return subprocess.run(
            [*command, *arguments],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment,
            check=False,
        )

    return run


App = Callable[..., subprocess.CompletedProcess[str]]


def run_in_process(
    arguments: list[str], cwd: Path, program: str = "hydra-pipeline"
) -> subprocess.CompletedProcess[str]:
    """Run ``hydra_pipeline``'s command-line entry point (or, for ``program`` equal to
    ``hydra-pipeline-evaluate``, the evaluate command's) in this process, in ``cwd``, and
    return its exit status and output as ``subprocess.run`` would."""
    from hydra_pipeline.app import evaluate_main, main

    entry_point = evaluate_main if program == "hydra-pipeline-evaluate" else main
    stdout, stderr = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        patch.delenv("HYDRA_FULL_ERROR", raising=False)
        patch.setattr(sys, "argv", [program, *arguments])
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                entry_point()
            except SystemExit as exit_:
                code = exit_.code
    return subprocess.CompletedProcess(
        [program, *arguments], int(code or 0), stdout.getvalue(), stderr.getvalue()
    )


@pytest.fixture
def app(tmp_path: Path) -> App:
    """``app(*arguments)`` runs ``hydra_pipeline``'s command-line entry point in this process,
    in ``tmp_path``, and returns its exit status and output like ``cli`` does. It is the same
    code as ``python -m hydra_pipeline`` without the second or so a new process takes to
    import torch, for tests of what one invocation reports."""
    return lambda *arguments: run_in_process(list(arguments), tmp_path)


def wait_for(
    condition: Callable[[], bool], process: subprocess.Popen[Any], what: str, timeout: float = 180
) -> None:
    """Wait until ``condition()`` holds, failing if ``process`` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the process ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def communicate_or_explain(
    process: subprocess.Popen[str], timeout: float, logs: list[Path]
) -> tuple[str, str]:
    """``process.communicate(timeout=timeout)``; if ``process`` has not ended by then, fail
    with what says where it hangs: the Python stacks of it and of every process it started
    (``py-spy dump``, when py-spy is installed), the end of ``logs`` and of its stderr. The
    processes are killed first-found first, children included."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    pids = [process.pid, *descendants(process.pid)]
    report = [f"process {process.pid} did not end within {timeout:g} s"]
    report += [_python_stack(pid) for pid in pids]
    for log in logs:
        text = log.read_text(errors="replace") if log.is_file() else "(missing)"
        report.append(f"--- end of {log}:\n" + "\n".join(text.splitlines()[-60:]))
    for pid in reversed(pids):  # the children first: the parent may restart or wait on them
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _, stderr = process.communicate()
    deadline = time.monotonic() + 30  # SIGKILL is delivered, not awaited: see them gone
    while not all(ended(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    report.append("--- end of its stderr:\n" + "\n".join(stderr.splitlines()[-40:]))
    pytest.fail("\n".join(report), pytrace=False)


def ended(pid: int) -> bool:
    """Whether process ``pid`` has ended: gone, or a zombie not yet collected (its parent
    ended, and a container's first process may not collect it soon)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def descendants(pid: int) -> list[int]:
    """The processes ``pid`` started, and theirs, from Linux's ``/proc`` (none elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        children.setdefault(parent, []).append(int(stat.parent.name))
    found: list[int] = []
    waiting = [pid]
    while waiting:
        for child in children.get(waiting.pop(), []):
            found.append(child)
            waiting.append(child)
    return found


def _python_stack(pid: int) -> str:
    """The threads' Python stacks of process ``pid``, by ``py-spy dump``."""
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        return f"--- process {pid}: no stack (py-spy is not installed)"
    try:
        dump = subprocess.run(
            [py_spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        return f"--- process {pid}: py-spy dump timed out"
    return f"--- process {pid}:\n{dump.stdout}{dump.stderr}"


_NUMBERS = itertools.count()


class Evil(NamedTuple):
    """A module that records being imported (its code ran) in ``ran``."""

    name: str
    ran: Path


@pytest.fixture
def evil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Evil:
    """A fresh importable module in the run's folder, as a config from elsewhere would name
    one: importing it creates ``ran``. It holds a Hydra callback, a loss, an optimizer, a
    logging filter factory, handler and stream, and a plain function, so every route would
    reach code of its."""
    name = f"untrusted_{next(_NUMBERS)}"
    ran = tmp_path / f"{name}.ran"
    (tmp_path / f"{name}.py").write_text(
        "import logging, pathlib, sys\n"
        f"pathlib.Path({str(ran)!r}).write_text('imported')\n"
        "from hydra.experimental.callback import Callback\n"
        "class Hook(Callback):\n    pass\n"
        "class Loss:\n    needs_expert_actions = False\n"
        "def Optim(**kwargs):\n    raise SystemExit('built')\n"
        "def pwn(*args, **kwargs):\n    return logging.Filter()\n"
        "class Handler(logging.StreamHandler):\n    pass\n"
        "stream = sys.stderr\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # as `python -m` puts the current folder there
    return Evil(name, ran)


def assert_refused(result: Any, evil: Evil | None, *expected: str) -> None:
    """Status 1, one message naming what was refused, no traceback, nothing imported."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("Error: "), result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert evil is None or not evil.ran.exists(), "the untrusted module was imported"
