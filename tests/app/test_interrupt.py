"""Ctrl-C and SIGTERM (what SLURM sends on preemption and before a time limit) stop a run at
the next safe point with a checkpoint, even with save_interval=null, and say how to resume;
the resumed run ends as the uninterrupted one. ``resume=auto`` lets a job restarted in its
own folder (requeued) continue by itself, with the very same command."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.app.conftest import (
    communicate_or_explain,
    descendants,
    ended,
    run_in_process,
    wait_for,
)

Cli = Any

RUN = [
    "task.num_envs=8",
    "pipeline.num_steps=32",
    "pipeline.num_mini_batch=2",
    "pipeline.metric_accumulate_interval=256",
    "pipeline.pipeline_stages.0.max_stage_steps=512",
    "pipeline.pipeline_stages.1.max_stage_steps=8192",
    "pipeline.pipeline_stages.1.early_stopping_criterion=null",
    "pipeline.save_interval=null",
    "progress_bar=false",
]


def final_metrics(run: Path) -> Any:
    return json.loads((run / "summary.json").read_text())["final_metrics"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The final metrics of the run never interrupted."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = run_in_process([*RUN, "hydra.run.dir=full"], folder)
    assert result.returncode == 0, result.stderr
    return final_metrics(folder / "full")


def interrupt(
    tmp_path: Path,
    arguments: list[str],
    number: signal.Signals,
    program: tuple[str, ...] = ("-m", "hydra_pipeline"),
) -> tuple[int, str]:
    """Start the app, send it ``number`` once it trains its second stage, and return its exit
    status and stderr."""
    process = subprocess.Popen(
        [sys.executable, *program, *arguments],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = tmp_path / "run" / "app.log"
    wait_for(
        lambda: log.is_file() and "stage 2 | stage steps" in log.read_text(),
        process,
        "the second stage",
    )
    process.send_signal(number)
    _, stderr = communicate_or_explain(process, 120, [log])
    return process.returncode, stderr


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_at_a_safe_point_and_resume_matches(
    app: Cli, tmp_path: Path, uninterrupted: Any, number: signal.Signals
) -> None:
    status, stderr = interrupt(tmp_path, [*RUN, "hydra.run.dir=run"], number)
    assert status == 128 + number.value
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"Interrupted by {number.name} at step ")
    assert "checkpoint saved" in last and "Traceback" not in stderr
    command = last.split("Resume with: ", 1)[1]
    assert command == f"python -m hydra_pipeline resume={tmp_path / 'run'}"
    checkpoints = list((tmp_path / "run" / "checkpoints").glob("*.pt"))
    assert len(checkpoints) == 1  # save_interval=null: only the interruption's
    assert f"__steps_{int(last.split('at step ')[1].split(';')[0]):012d}" in checkpoints[0].name
    assert not (tmp_path / "run" / "summary.json").exists()

    resumed = app(*shlex.split(command)[3:])
    assert resumed.returncode == 0, resumed.stderr
    assert final_metrics(tmp_path / "run") == uninterrupted


def test_resume_auto_continues_a_requeued_job_by_itself(
    app: Cli, tmp_path: Path, uninterrupted: Any
) -> None:
    """A job preempted with SIGTERM and started again with the same command (as Submitit
    requeues it) continues from its checkpoint and ends as the uninterrupted run."""
    command = [*RUN, "resume=auto", "hydra.run.dir=run"]

    status, _ = interrupt(tmp_path, command, signal.SIGTERM)
    assert status == 128 + signal.SIGTERM.value
    requeued = app(*command)
    assert requeued.returncode == 0, requeued.stderr
    assert final_metrics(tmp_path / "run") == uninterrupted


def test_resume_auto_starts_fresh_and_refuses_another_run(
    app: Cli, small: list[str], tmp_path: Path
) -> None:
    """In an empty folder resume=auto starts a new run; it never continues a run started
    with other overrides."""
    first = app(*small, "resume=auto", "hydra.run.dir=run")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "run" / "summary.json").is_file()
    other = app(*small, "seed=7", "resume=auto", "hydra.run.dir=run")
    assert other.returncode == 1
    assert "resume=auto: run folder" in other.stderr
    assert "holds a run started with other overrides" in other.stderr


# What Submitit does in a SLURM job: on its preemption signal its handler saves the job for
# requeueing, requeues it and exits (here: marks the requeue, and whether the run had saved a
# checkpoint by then, and exits with status 3).
REQUEUEING_JOB = """
import signal, sys
from pathlib import Path

def requeue(number, frame):
    with open("requeued", "a") as marks:
        saved = any(Path("run/checkpoints").glob("*.pt"))
        marks.write(f"{signal.Signals(number).name} saved={saved}\\n")
    sys.exit(3)

signal.signal(signal.SIGUSR2, requeue)
from hydra_pipeline.app import main
main()
"""


def test_a_preemption_signal_checkpoints_then_reaches_the_job_systems_handler(
    app: Cli, tmp_path: Path, uninterrupted: Any
) -> None:
    """SIGUSR2 (Submitit's preemption signal) stops training at a safe point with a
    checkpoint, then reaches the handler that was there before (which requeues the job);
    the requeued job, with the same command and resume=auto, ends as the uninterrupted run."""
    (tmp_path / "job.py").write_text(REQUEUEING_JOB)
    command = [*RUN, "resume=auto", "hydra.run.dir=run"]
    status, _ = interrupt(tmp_path, command, signal.SIGUSR2, program=("job.py",))
    assert status == 3
    assert (tmp_path / "requeued").read_text() == "SIGUSR2 saved=True\n"
    assert list((tmp_path / "run" / "checkpoints").glob("*.pt"))
    requeued = app(*command)
    assert requeued.returncode == 0, requeued.stderr
    assert final_metrics(tmp_path / "run") == uninterrupted


@pytest.mark.parametrize("number", [signal.SIGUSR2, signal.SIGTERM])
def test_a_distributed_run_stops_on_a_signal_then_hands_it_on_once_every_process_stopped(
    tmp_path: Path, number: signal.Signals
) -> None:
    """With ``distributed.nproc_per_node=2``, a stop signal reaching the job's process is
    relayed to both training processes, which stop with a checkpoint; then the job system's
    handler for that signal (here SIGUSR2's) hears it, once, in the job's process (the
    training processes do not inherit it)."""
    (tmp_path / "job.py").write_text(REQUEUEING_JOB)
    # A second stage the signal must end: on a loaded machine the 8192 steps of RUN can pass
    # before the relayed request is polled.
    longer = "pipeline.pipeline_stages.1.max_stage_steps=10000000"
    command = [*RUN, longer, "distributed.nproc_per_node=2", "hydra.run.dir=run"]
    status, stderr = interrupt(tmp_path, command, number, program=("job.py",))
    assert list((tmp_path / "run" / "checkpoints").glob("*.pt"))
    if number == signal.SIGUSR2:
        assert status == 3
        assert (tmp_path / "requeued").read_text() == "SIGUSR2 saved=True\n"
    else:
        assert status == 128 + number.value
        assert stderr.strip().splitlines()[-1].startswith("Interrupted by SIGTERM at step ")
        assert not (tmp_path / "requeued").exists()


HANGING = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("started", flush=True)
time.sleep(600)
"""


def test_a_run_that_does_not_end_is_reported_with_its_stacks_and_log(tmp_path: Path) -> None:
    """Should a signalled run hang, the test fails saying where: the stack of the process and
    of the process it started (py-spy), and the end of the run's log; both are killed."""
    log = tmp_path / "app.log"
    log.write_text("the last line of the log\n")
    process = subprocess.Popen(
        [sys.executable, "-c", HANGING], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "started\n"
    child = descendants(process.pid)
    with pytest.raises(pytest.fail.Exception) as caught:
        communicate_or_explain(process, 1, [log])
    report = str(caught.value)
    assert f"process {process.pid} did not end within 1 s" in report
    assert len(child) == 1 and f"--- process {child[0]}" in report
    assert "the last line of the log" in report
    if shutil.which("py-spy") or (Path(sys.executable).parent / "py-spy").exists():
        # A stack per process, or py-spy's word on why not (no permission to attach).
        assert report.count("Thread ") >= 2 or "Error" in report, report
    assert process.poll() is not None and ended(child[0])
