"""No run loses another's results: a run folder belongs to one process at a time, a new run
never overwrites one, runs started together get their own folders, and an unwritable folder
is found before anything trains."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hydra_pipeline.app.run_folder import LOCK_FILE
from hydra_pipeline.config.resolvers import new_folder
from tests.app.conftest import wait_for

Cli = Any


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (but the lock file) with its bytes."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != LOCK_FILE
    }


def test_a_folder_in_use_is_refused_until_its_process_ends(
    app: Cli, small: list[str], tmp_path: Path
) -> None:
    """While a run trains in a folder, neither a new run nor a resume may use it; once the
    process is gone (even killed, with no chance to clean up), the folder is free."""
    long_run = [
        *small,
        "pipeline.pipeline_stages.1.max_stage_steps=10000000",
        "pipeline.pipeline_stages.1.early_stopping_criterion=null",  # never ends by itself
        "pipeline.save_interval=512",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "hydra_pipeline", *long_run, "hydra.run.dir=busy"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        checkpoints = tmp_path / "busy" / "checkpoints"
        wait_for(lambda: any(checkpoints.glob("*.pt")), process, "its first checkpoint")
        for arguments in ([*small, "hydra.run.dir=busy"], ["resume=busy"]):
            result = app(*arguments)
            assert result.returncode == 1
            assert f"Run folder '{tmp_path / 'busy'}' is in use by another process" in result.stderr
            assert f"pid {process.pid}" in result.stderr
            assert "Traceback" not in result.stderr
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    result = app("resume=busy", "pipeline.pipeline_stages.1.max_stage_steps=1024")
    assert result.returncode == 0, result.stderr


def test_a_new_run_never_overwrites_a_runs_results(
    app: Cli, small: list[str], tmp_path: Path
) -> None:
    """A fresh run in a folder holding a run's checkpoints and summary is refused, and the
    files stay as they were."""
    first = app(*small, "hydra.run.dir=run")
    assert first.returncode == 0, first.stderr
    before = snapshot(tmp_path / "run" / "checkpoints")
    summary = (tmp_path / "run" / "summary.json").read_bytes()
    for overrides in ([], ["seed=3"], ["resume=null"]):
        result = app(*small, *overrides, "hydra.run.dir=run")
        assert result.returncode == 1
        assert "already holds a run's results (summary.json, checkpoints)" in result.stderr
        assert "resume=" in result.stderr
    assert snapshot(tmp_path / "run" / "checkpoints") == before
    assert (tmp_path / "run" / "summary.json").read_bytes() == summary


def test_runs_given_the_same_folder_name_get_their_own(
    app: Cli, small: list[str], tmp_path: Path
) -> None:
    """The default folders are claimed when resolved: a second run asking for the same name
    (as two runs started in the same second do) gets the next free one."""
    for _ in range(2):
        result = app(*small, "hydra.run.dir=${new_folder:outputs/same-second}")
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "outputs" / "same-second" / "summary.json").is_file()
    assert (tmp_path / "outputs" / "same-second_2" / "summary.json").is_file()


def test_the_default_folders_are_claimed(app: Cli) -> None:
    """Both Hydra folders of the app's config go through the claiming resolver."""
    result = app("--cfg", "hydra")
    assert "dir: ${new_folder:outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}}" in result.stdout
    assert "dir: ${new_folder:multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}}" in result.stdout


def _claim(base: str) -> str:
    return new_folder(base)


def test_concurrent_claims_get_distinct_folders(tmp_path: Path) -> None:
    """Processes claiming the same name at once each get a folder of their own."""
    base = str(tmp_path / "outputs" / "12-00-00")
    with multiprocessing.get_context("fork").Pool(4) as pool:
        claimed = pool.map(_claim, [base] * 8)
    assert len(set(claimed)) == 8
    assert sorted(claimed) == sorted([base] + [f"{base}_{n}" for n in range(2, 9)])


def a_file_where_a_folder_goes(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a folder")


@pytest.mark.parametrize(
    ("file", "folder", "expected"),
    [
        ("afile", "afile/run", "cannot write 'afile/run'"),
        ("run/checkpoints", "run", "/run/checkpoints' is a file"),
        ("run/tensorboard", "run", "/run/tensorboard' is a file"),
        (None, "/proc/hydra_pipeline_run", "cannot write '/proc/hydra_pipeline_run'"),
    ],
)
def test_an_unwritable_folder_is_found_at_startup(
    app: Cli, small: list[str], tmp_path: Path, file: str | None, folder: str, expected: str
) -> None:
    """Before anything trains (not at the first checkpoint an hour later), with the folder
    named and nothing of the user's touched (root may write anywhere, so these are folders
    that cannot exist)."""
    if file is not None:
        a_file_where_a_folder_goes(tmp_path / file)
    before = snapshot(tmp_path)
    result = app(*small, f"hydra.run.dir={folder}")
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr
    assert "hydra.run.dir=<folder>" in result.stderr
    assert "Traceback" not in result.stderr
    assert {k: v for k, v in snapshot(tmp_path).items() if k in before} == before


def test_stale_temporary_files_of_a_killed_sweep_summary_write_are_removed(
    tmp_path: Path,
) -> None:
    from hydra_pipeline.app.callbacks import write_sweep_summary
    from hydra_pipeline.app.sweep_report import SUMMARY_CSV as SWEEP_SUMMARY_FILE

    stale = tmp_path / f".{SWEEP_SUMMARY_FILE}.999999999.tmp"
    stale.write_text("half")
    write_sweep_summary(tmp_path)
    assert not stale.exists()
    assert (tmp_path / SWEEP_SUMMARY_FILE).read_text().startswith("job,")
