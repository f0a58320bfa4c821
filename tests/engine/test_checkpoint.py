"""Checkpoint files: round trips, atomic writes, clear errors, finding the latest, RNG state."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pytest
import torch

from hydra_pipeline import CheckpointError
from hydra_pipeline.engine.checkpoint import (
    CHECKPOINT_DIRECTORY,
    capture_rng_state,
    checkpoint_name,
    find_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def payload() -> dict[str, Any]:
    return {
        "total_steps": 128,
        "model": {"weight": torch.arange(6.0).view(2, 3), "bias": torch.tensor([0.5, -0.5])},
        "pipeline": {"current_stage_index": 1, "stages": []},
        "engine": {"rollout_count": 4, "latest_metrics": {"reward": 12.5}, "names": ["a", "b"]},
        "lr_scheduler": None,
        "metadata": {"overrides": ["seed=3"]},
    }


def assert_same(loaded: dict[str, Any], expected: dict[str, Any]) -> None:
    assert loaded["total_steps"] == expected["total_steps"]
    for key, value in expected["model"].items():
        assert torch.equal(loaded["model"][key], value)
    assert loaded["engine"] == expected["engine"]
    assert loaded["metadata"] == expected["metadata"]
    assert loaded["lr_scheduler"] is None


def touch_checkpoint(run: Path, stage: int, steps: int) -> Path:
    path = run / CHECKPOINT_DIRECTORY / checkpoint_name(stage, steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


class TestRoundTrip:
    def test_save_then_load(self, tmp_path: Path) -> None:
        """What is saved loads back equal, tagged with the checkpoint format."""
        path = tmp_path / "deep" / "folder" / "c.pt"
        save_checkpoint(payload(), path)
        loaded = load_checkpoint(path)
        assert_same(loaded, payload())
        assert loaded["format"] == "hydra_pipeline/5"

    def test_no_temporary_file_left(self, tmp_path: Path) -> None:
        """After a save the folder holds the checkpoint alone."""
        path = tmp_path / "c.pt"
        save_checkpoint(payload(), path)
        save_checkpoint(payload(), path)  # overwriting too
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]

    def test_name(self) -> None:
        """File names carry the stage index and the zero-padded total step count."""
        assert checkpoint_name(1, 2048) == "stage_01__steps_000000002048.pt"
        assert checkpoint_name(12, 0) == "stage_12__steps_000000000000.pt"


class TestAtomicWrite:
    def test_failed_save_keeps_previous_checkpoint(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """torch.save failing after writing some bytes leaves the old checkpoint intact and no
        temporary file behind."""
        path = tmp_path / "c.pt"
        save_checkpoint(payload(), path)
        before = path.read_bytes()
        written: list[str] = []

        def failing_save(obj: Any, file: BinaryIO, *args: Any, **kwargs: Any) -> None:
            file.write(b"PK\x03\x04 partial checkpoint bytes")
            written.append(getattr(file, "name", "?"))
            raise OSError("disk full")

        monkeypatch.setattr(torch, "save", failing_save)
        changed = payload()
        changed["total_steps"] = 999
        with pytest.raises(OSError, match="disk full"):
            save_checkpoint(changed, path)
        assert written and Path(written[0]) != path  # it wrote elsewhere than the checkpoint
        assert path.read_bytes() == before
        assert_same(load_checkpoint(path), payload())
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]

    def test_failed_first_save_leaves_nothing(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failed first save leaves no file that find_checkpoint could pick up."""

        def failing_save(obj: Any, file: BinaryIO, *args: Any, **kwargs: Any) -> None:
            file.write(b"partial")
            raise KeyboardInterrupt

        monkeypatch.setattr(torch, "save", failing_save)
        path = tmp_path / CHECKPOINT_DIRECTORY / checkpoint_name(0, 8)
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(payload(), path)
        assert list(path.parent.iterdir()) == []
        with pytest.raises(CheckpointError, match="holds no checkpoint"):
            find_checkpoint(tmp_path)


class TestLoadErrors:
    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is named in the error."""
        path = tmp_path / "nope.pt"
        with pytest.raises(CheckpointError, match=r"Checkpoint file '.*nope\.pt' does not exist"):
            load_checkpoint(path)

    @pytest.mark.parametrize("fraction", [0.05, 0.5, 0.98])
    def test_truncated_file(self, tmp_path: Path, fraction: float) -> None:
        """A truncated checkpoint gives a CheckpointError naming the file, not a torch error."""
        path = tmp_path / "c.pt"
        save_checkpoint(payload(), path)
        data = path.read_bytes()
        truncated = tmp_path / "truncated.pt"
        truncated.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(CheckpointError) as error:
            load_checkpoint(truncated)
        message = str(error.value)
        assert str(truncated) in message
        assert "corrupt or truncated" in message
        assert "Resume from another checkpoint" in message
        assert error.value.__cause__ is None  # no chained torch traceback

    @pytest.mark.parametrize(
        "content", [os.urandom(256), b"", b"hello, I am not a checkpoint\n" * 10]
    )
    def test_garbage_file(self, tmp_path: Path, content: bytes) -> None:
        """Random bytes, an empty file or text give a CheckpointError naming the file."""
        path = tmp_path / "garbage.pt"
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match=r"'.*garbage\.pt' is corrupt or truncated"):
            load_checkpoint(path)

    def test_many_random_files(self, tmp_path: Path) -> None:
        """Whatever the bytes (random, pickle-like, a checkpoint with flipped bytes), loading
        gives a CheckpointError, never a raw KeyError, IndexError or struct.error."""
        good = tmp_path / "good.pt"
        save_checkpoint(payload(), good)
        original = good.read_bytes()
        rng = random.Random(0)
        path = tmp_path / "bad.pt"
        for index in range(300):
            if index % 3 == 0:
                data = rng.randbytes(rng.randrange(1, 64))
            elif index % 3 == 1:  # a pickle opcode first: the legacy (non-zip) load path
                data = rng.choice([b"h", b"j", b"q", b"r", b"\x80\x02"]) + rng.randbytes(30)
            else:
                corrupted = bytearray(original)
                for _ in range(5):
                    corrupted[rng.randrange(len(corrupted))] = rng.randrange(256)
                data = bytes(corrupted)
            path.write_bytes(data)
            try:
                load_checkpoint(path)
            except CheckpointError as error:
                assert str(path) in str(error)

    @pytest.mark.filterwarnings("ignore:Detected pickle protocol")
    def test_plain_pickle_is_refused(self, tmp_path: Path) -> None:
        """A pickle that is not a torch zip file is refused, not executed."""
        path = tmp_path / "pickle.pt"
        path.write_bytes(pickle.dumps({"format": "hydra_pipeline/1"}))
        with pytest.raises(CheckpointError, match=r"pickle\.pt"):
            load_checkpoint(path)

    @pytest.mark.parametrize(
        "content",
        [
            {"model": {"w": torch.zeros(2)}},
            {"format": "hydra_pipeline/0", "model": {}},
            torch.zeros(3),
            [1, 2, 3],
        ],
    )
    def test_foreign_torch_file(self, tmp_path: Path, content: Any) -> None:
        """A torch file written by something else is refused as not a hydra_pipeline
        checkpoint."""
        path = tmp_path / "foreign.pt"
        torch.save(content, path)
        with pytest.raises(
            CheckpointError,
            match=r"'.*foreign\.pt' is not a hydra_pipeline checkpoint \(expected format "
            r"'hydra_pipeline/5'\)",
        ):
            load_checkpoint(path)

    def test_code_in_pickle_is_not_run(self, tmp_path: Path) -> None:
        """A torch file carrying an arbitrary object is refused without running its code."""
        path = tmp_path / "evil.pt"
        torch.save({"format": "hydra_pipeline/1", "x": _Evil()}, path)
        _Evil.ran = False
        with pytest.raises(CheckpointError, match=r"evil\.pt"):
            load_checkpoint(path)
        assert not _Evil.ran


class _Evil:
    ran = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Evil._run, ())

    @staticmethod
    def _run() -> _Evil:
        _Evil.ran = True
        return _Evil()


class TestFindCheckpoint:
    def test_latest_by_total_steps(self, tmp_path: Path) -> None:
        """The checkpoint with the most total steps wins, whatever its stage or write order."""
        touch_checkpoint(tmp_path, 1, 40)
        latest = touch_checkpoint(tmp_path, 0, 10**12 + 5)  # longer than the zero-padding
        touch_checkpoint(tmp_path, 3, 900)
        touch_checkpoint(tmp_path, 2, 64)
        assert find_checkpoint(tmp_path) == latest

    def test_ignores_other_files(self, tmp_path: Path) -> None:
        """Temporary files and unrelated names in checkpoints/ are ignored."""
        wanted = touch_checkpoint(tmp_path, 0, 16)
        folder = tmp_path / CHECKPOINT_DIRECTORY
        (folder / f".{checkpoint_name(0, 32)}.123.tmp").write_bytes(b"")
        (folder / "stage_00__steps_999.pt.bak").write_bytes(b"")
        (folder / "notes.txt").write_text("x")
        assert find_checkpoint(tmp_path) == wanted

    def test_accepts_file(self, tmp_path: Path) -> None:
        """A file is returned as is, whatever its name."""
        path = tmp_path / "anything.bin"
        path.write_bytes(b"")
        assert find_checkpoint(path) == path

    def test_missing_path(self, tmp_path: Path) -> None:
        """A path that does not exist is reported as neither a file nor a run folder."""
        with pytest.raises(
            CheckpointError, match=r"'.*missing' is neither a checkpoint file nor a run folder"
        ):
            find_checkpoint(tmp_path / "missing")

    def test_empty_run_folder(self, tmp_path: Path) -> None:
        """A run folder without checkpoints says so and points at save_interval."""
        with pytest.raises(CheckpointError, match=r"holds no checkpoint.*save_interval"):
            find_checkpoint(tmp_path)
        (tmp_path / CHECKPOINT_DIRECTORY).mkdir()
        with pytest.raises(CheckpointError, match=f"Run folder '{tmp_path}' holds no checkpoint"):
            find_checkpoint(tmp_path)


def draws() -> tuple[list[float], list[float], list[float]]:
    """Some draws from each global generator, Gaussian caches included."""
    return (
        [random.random(), random.gauss(0.0, 1.0), random.random()],
        [*np.random.standard_normal(3).tolist(), float(np.random.rand())],
        torch.randn(4).tolist(),
    )


class TestRngState:
    def test_restore_reproduces_draws(self) -> None:
        """Restoring a captured state makes Python, NumPy and torch repeat their draws."""
        random.seed(1)
        np.random.seed(2)
        torch.manual_seed(3)
        # Odd numbers of Gaussian draws leave a cached value in Python's and NumPy's state.
        random.gauss(0.0, 1.0)
        np.random.standard_normal()
        state = capture_rng_state()
        first = draws()
        restore_rng_state(state)
        assert draws() == first

    def test_survives_checkpoint_file(self, tmp_path: Path) -> None:
        """The state survives a save and a weights-only load."""
        random.seed(4)
        np.random.seed(5)
        torch.manual_seed(6)
        np.random.standard_normal()
        save_checkpoint(payload() | {"rng": capture_rng_state()}, tmp_path / "rng.pt")
        first = draws()
        random.seed(0)
        np.random.seed(0)
        torch.manual_seed(0)
        restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
        assert draws() == first

    def test_state_is_a_snapshot(self) -> None:
        """Drawing after a capture does not change the captured state."""
        state = capture_rng_state()
        expected = draws()
        draws()
        restore_rng_state(state)
        assert draws() == expected
