"""The relay of stop signals from the process that starts a distributed run to its processes:
the first signal's name is written whole, each process's poller hands it to its runner at once
or as soon as it appears, every handler is put back afterwards, and a signal relayed after the
processes finished is heard as after training."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from hydra_pipeline.app.distributed import RankError, start_processes
from hydra_pipeline.app.run_info import RunInfo
from hydra_pipeline.app.signals import (
    RELAYED_SIGNALS,
    StoppedOutsideTraining,
    polled_stop_requests,
    relayed_stop_requests,
    stopping_outside_training,
)
from hydra_pipeline.errors import TrainingInterrupted


def recorder(names: list[str], seen: threading.Event) -> Callable[[str], None]:
    """A stop request's receiver that keeps the names it gets and sets ``seen``."""

    def record(name: str) -> None:
        names.append(name)
        seen.set()

    return record


def test_the_first_relayed_signal_is_written_and_the_handlers_put_back(tmp_path: Path) -> None:
    request = tmp_path / "stop_request"
    before = {number: signal.getsignal(number) for number in RELAYED_SIGNALS}
    with relayed_stop_requests(request):
        assert not request.exists()
        os.kill(os.getpid(), signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal: the first one stands
    assert request.read_text() == "SIGUSR2"
    assert not request.with_suffix(".tmp").exists()
    assert {number: signal.getsignal(number) for number in RELAYED_SIGNALS} == before


def test_a_request_written_before_polling_starts_is_seen_at_once(tmp_path: Path) -> None:
    request = tmp_path / "stop_request"
    request.write_text("SIGTERM")
    names: list[str] = []
    seen = threading.Event()
    with polled_stop_requests(request, recorder(names, seen)):
        assert seen.wait(5)
    assert names == ["SIGTERM"]


def test_a_request_written_while_polling_is_seen_once(tmp_path: Path) -> None:
    request = tmp_path / "stop_request"
    names: list[str] = []
    seen = threading.Event()
    with polled_stop_requests(request, recorder(names, seen)):
        assert not seen.wait(0.5)
        with relayed_stop_requests(request):
            os.kill(os.getpid(), signal.SIGUSR1)
        assert seen.wait(5)
    assert names == ["SIGUSR1"]
    assert not any(thread.name == "stop-requests" for thread in threading.enumerate())


def test_off_the_main_thread_nothing_is_relayed_and_nothing_fails(tmp_path: Path) -> None:
    """A launcher may run a job in a thread, where Python cannot set signal handlers."""
    errors: list[BaseException] = []

    def job() -> None:
        try:
            with relayed_stop_requests(tmp_path / "stop_request"):
                pass
        except BaseException as error:  # reported to the test's thread
            errors.append(error)

    before = {number: signal.getsignal(number) for number in RELAYED_SIGNALS}
    thread = threading.Thread(target=job)
    thread.start()
    thread.join()
    assert errors == []
    assert {number: signal.getsignal(number) for number in RELAYED_SIGNALS} == before


def test_a_signal_relayed_after_the_processes_finished_is_heard_as_after_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM reaching the process that started a distributed run after its processes made
    their last check (they finished training) is not lost: once they are done it is heard as a
    one-process run hears a signal after training, with the same message."""
    import torch.distributed.launcher.api as launcher

    def finished_then_signalled(config: Any, entrypoint: Any) -> Any:
        def run(job: Any) -> dict[int, float]:
            os.kill(os.getpid(), signal.SIGTERM)  # relayed to a file no process reads any more
            return {0: 1.5, 1: 1.5}

        return run

    monkeypatch.setattr(launcher, "elastic_launch", finished_then_signalled)
    cfg = OmegaConf.create({"device": "cpu", "distributed": {"nproc_per_node": 2, "timeout_s": 30}})
    info = RunInfo(overrides=[], output_subdir=None, choices={}, job={})
    with stopping_outside_training(), pytest.raises(StoppedOutsideTraining) as stopped:
        start_processes(cfg, info, tmp_path)
    assert stopped.value.signal_name == "SIGTERM" and stopped.value.after_training
    assert "Stopped by SIGTERM after training" in str(stopped.value)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers before, back


def test_an_interruption_rank_zero_could_not_report_is_told_from_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 0 wrote the interruption's checkpoint but was stopped (the agent's SIGTERM, once
    rank 1 had exited) before it said so: the run still ends as interrupted, naming that
    checkpoint, not as a process that ended without a word."""
    import torch.distributed.launcher.api as launcher
    from torch.distributed.elastic.multiprocessing.errors import (
        ChildFailedError,
        ProcessFailure,
    )

    checkpoint = tmp_path / "checkpoints" / "ckpt__stage_01__steps_000000004096.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"written whole")
    record = {
        "rank": 1, "time": 0.0, "type": "TrainingInterrupted", "message": "", "full_message": "",
        "interrupted": True, "traceback": "", "signal_name": "SIGTERM", "total_steps": 4096,
        "checkpoint": str(checkpoint),
    }  # fmt: skip

    def rank_zero_cut_short(config: Any, entrypoint: Any) -> Any:
        def run(job: Any) -> dict[int, float]:
            (job.reports / "rank_1.json").write_text(json.dumps(record))
            killed = ProcessFailure(local_rank=0, pid=0, exitcode=-15, error_file="<none>")
            raise ChildFailedError("rank_main", {0: killed})

        return run

    monkeypatch.setattr(launcher, "elastic_launch", rank_zero_cut_short)
    cfg = OmegaConf.create({"device": "cpu", "distributed": {"nproc_per_node": 2, "timeout_s": 30}})
    info = RunInfo(overrides=[], output_subdir=None, choices={}, job={})
    with pytest.raises(TrainingInterrupted) as stopped:
        start_processes(cfg, info, tmp_path)
    assert stopped.value.signal_name == "SIGTERM" and stopped.value.total_steps == 4096
    assert stopped.value.checkpoint == checkpoint
    checkpoint.unlink()  # not written whole: nothing says the run stopped at a safe point
    with pytest.raises(RankError, match="ended without a word"):
        start_processes(cfg, info, tmp_path)
