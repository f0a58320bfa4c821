"""The quick lane's rules (tests/conftest.py): what is marked slow, and that a quick test
cannot start a process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import SLOW_FOLDERS, QuickTestStartedProcessError


def test_every_test_of_a_slow_folder_is_marked_slow(request: pytest.FixtureRequest) -> None:
    """The folder rule marks each test of ``tests/app`` (in the quick lane, none is selected),
    and leaves others alone."""
    items = request.session.items
    in_slow_folders = [
        item for item in items if any(f"tests/{folder}/" in item.nodeid for folder in SLOW_FOLDERS)
    ]
    assert all(item.get_closest_marker("slow") for item in in_slow_folders)
    assert request.node.get_closest_marker("slow") is None


def test_a_quick_test_cannot_start_a_subprocess() -> None:
    """The audit hook refuses before the process exists, naming the test and the fix."""
    with pytest.raises(QuickTestStartedProcessError, match=r"test_lanes\.py.*mark it slow"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_a_quick_test_cannot_fork() -> None:
    with pytest.raises(QuickTestStartedProcessError, match=r"os\.fork"):
        pid = os.fork()
        if pid == 0:  # only reached if the hook failed to refuse: end the child at once
            os._exit(0)


@pytest.mark.slow
def test_a_slow_test_may_start_a_process() -> None:
    assert subprocess.run([sys.executable, "-c", "pass"], check=False).returncode == 0
