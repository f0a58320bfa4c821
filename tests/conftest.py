"""Settings shared by every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

# Property tests explore the same examples on every run (a failure reproduces), and a slow
# shared machine cannot fail them on time.
settings.register_profile("hydra_pipeline", derandomize=True, deadline=None)
settings.load_profile("hydra_pipeline")


@pytest.fixture(autouse=True, scope="session")
def single_thread() -> Iterator[None]:
    """One torch thread, as the app uses by default: on a small shared machine, tiny tensor
    operations stall when split across threads."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
