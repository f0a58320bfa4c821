"""Videos of episodes: MP4 files written with PyAV, an optional extra.

PyAV (``pip install "hydra-pipeline[video]"``) is imported only when a video is written or
read, so the rest of the package works without it; :func:`require_video_support` lets a
program check for it before it starts the work that ends in a video.
"""

from __future__ import annotations

import importlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from torch import Tensor

from hydra_pipeline.errors import InvalidArgumentError
from hydra_pipeline.files import temporary_path
from hydra_pipeline.tasks.protocol import Task

__all__ = [
    "VIDEO_DIRECTORY",
    "VIDEO_EXTRA",
    "animated_gif",
    "check_renders",
    "frames_per_second",
    "read_frames",
    "render",
    "require_video_support",
    "write_video",
]

VIDEO_DIRECTORY = "videos"
"""Where a run keeps its videos, relative to its output folder."""

VIDEO_EXTRA = 'pip install "hydra-pipeline[video]"'
"""The command that installs what videos need."""

_DEFAULT_FPS = 30


def require_video_support() -> ModuleType:
    """PyAV, or an ImportError that says how to install it."""
    try:
        return importlib.import_module("av")
    except ImportError as error:
        raise ImportError(f"Videos need PyAV, an optional extra: {VIDEO_EXTRA}") from error


def check_renders(task: Task) -> None:
    """Refuse a task that cannot be watched: it has no ``render()`` method, or drawing its
    first picture fails.

    Raises:
        InvalidArgumentError: It cannot be watched; the argument is ``video``.
    """
    hint = "Turn video off."
    if not callable(getattr(task, "render", None)):
        reason = f"{type(task).__qualname__} has no render() method"
        hint = "Give the task one (see hydra_pipeline.tasks.protocol), or turn video off."
    else:
        try:
            render(task)
            return
        except Exception as error:  # a task's renderer may fail in any way
            reason = f"drawing its picture fails: {error}"
    raise InvalidArgumentError(
        "video", f"needs a task that can be watched, and {reason}", True, hint
    )


def render(task: Task) -> np.ndarray[Any, Any]:
    """The task's picture of its first environment, as ``uint8`` ``(height, width, 3)``."""
    frame: Tensor = task.render()  # type: ignore[attr-defined]  # checked by check_renders
    return frame.numpy(force=True).astype(np.uint8, copy=False)


def frames_per_second(task: Task) -> int:
    """The rate the task's videos play at (its ``render_fps``, or 30)."""
    return int(getattr(task, "render_fps", None) or _DEFAULT_FPS)


def write_video(path: Path, frames: Sequence[np.ndarray[Any, Any]], fps: int) -> Path:
    """Write ``frames`` (RGB ``uint8`` pictures of one size) as an H.264 MP4 file, atomically.

    Odd picture sizes lose their last row or column (H.264's colour format needs even ones).
    """
    av = require_video_support()
    height, width = (size - size % 2 for size in frames[0].shape[:2])
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        with av.open(str(temporary), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for frame in frames:
                picture = np.ascontiguousarray(frame[:height, :width])
                container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
            container.mux(stream.encode())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read_frames(path: Path) -> tuple[np.ndarray[Any, Any], int]:
    """The frames of a video file, ``uint8`` ``(frames, height, width, 3)``, and its rate."""
    av = require_video_support()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = round(float(stream.average_rate or _DEFAULT_FPS))
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return np.stack(frames), fps


def animated_gif(frames: np.ndarray[Any, Any], fps: int, *, shrink: int = 2) -> bytes:
    """``frames`` as an animated GIF, ``shrink`` times smaller each way (TensorBoard shows
    videos as animated GIFs)."""
    av = require_video_support()
    small = frames[:, ::shrink, ::shrink]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="gif") as container:
        stream = container.add_stream("gif", rate=fps)
        stream.width, stream.height, stream.pix_fmt = small.shape[2], small.shape[1], "rgb8"
        for frame in small:
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
    return buffer.getvalue()
