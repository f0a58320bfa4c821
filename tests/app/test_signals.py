"""The relay of stop signals from the process that starts a distributed run to its processes:
the first signal's name is written whole, each process's poller hands it to its runner at once
or as soon as it appears, and every handler is put back afterwards."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from hydra_pipeline.app.signals import (
    RELAYED_SIGNALS,
    polled_stop_requests,
    relayed_stop_requests,
)


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
