"""The file helpers' process check: a run folder claimed by a process that has ended is free."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hydra_pipeline.files import process_is_running

pytestmark = pytest.mark.slow  # each test starts a process


def test_a_running_process_is_running_and_an_ended_one_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_is_running(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not process_is_running(child.pid)
    assert process_is_running(os.getpid())
    assert not process_is_running(0)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_a_zombie_does_not_hold_a_run_folder() -> None:
    """An ended process whose exit status nobody collected yet (the ranks of a killed
    torchrun, orphaned in a container) is not running: a resume may take its folder."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        stat = Path(f"/proc/{child.pid}/stat")
        deadline = time.monotonic() + 30
        while stat.read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child did not end"
            time.sleep(0.01)
        os.kill(child.pid, 0)  # the id still names a process: the zombie
        assert not process_is_running(child.pid)
    finally:
        child.wait()
