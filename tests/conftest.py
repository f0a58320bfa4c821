"""Settings shared by every test, and the rules of the quick lane.

The quick lane, ``python -m pytest -m "not slow"``, leaves out the tests marked ``slow``. Most
of them are marked here by rule (every test of a folder in :data:`SLOW_FOLDERS`), the others
where they are written (a module's ``pytestmark``, a test's decorator). A test left in the
quick lane may not start a process: it fails, saying so, if it does.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# Property tests explore the same examples on every run (a failure reproduces), and a slow
# shared machine cannot fail them on time.
settings.register_profile("hydra_pipeline", derandomize=True, deadline=None)
settings.load_profile("hydra_pipeline")

TESTS = Path(__file__).resolve().parent

SLOW_FOLDERS = ("app",)
"""Folders of ``tests/`` whose every test is slow: ``tests/app`` runs the application end to
end (its command line in a process or in this one, run folders, training, sweeps)."""

PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.fork", "os.forkpty", "os.system", "os.posix_spawn", "os.exec"}
)
"""Audit events of a new process (a subprocess, a fork, a command of the shell)."""

_running_quick_test: list[str] = []
"""The node id of the test running now, while it is one of the quick lane's."""


class QuickTestStartedProcessError(RuntimeError):
    """A test of the quick lane started a process (a new interpreter costs seconds)."""


def _refuse_processes_in_quick_tests(event: str, arguments: tuple[Any, ...]) -> None:
    """Audit hook: a test of the quick lane that starts a process fails, naming the fix."""
    if _running_quick_test and event in PROCESS_EVENTS:
        raise QuickTestStartedProcessError(
            f"{_running_quick_test[-1]} is in the quick lane but starts a process ({event}): "
            "mark it slow (@pytest.mark.slow), as tests/conftest.py explains, or keep it in "
            "this process"
        )


sys.addaudithook(_refuse_processes_in_quick_tests)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of :data:`SLOW_FOLDERS` slow (before ``-m`` selects by marks)."""
    for item in items:
        if item.path.resolve().relative_to(TESTS).parts[0] in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Watch for new processes while a quick test runs (its setup and teardown included)."""
    quick = item.get_closest_marker("slow") is None
    if quick:
        _running_quick_test.append(item.nodeid)
    try:
        yield
    finally:
        if quick:
            _running_quick_test.pop()


@pytest.fixture(autouse=True, scope="session")
def single_thread() -> Iterator[None]:
    """One torch thread, as the app uses by default: on a small shared machine, tiny tensor
    operations stall when split across threads."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
