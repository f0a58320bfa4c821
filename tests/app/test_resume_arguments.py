"""The pieces of resume=: quoting paths for Hydra, stored overrides as data, the command that
resumes a run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import given
from hypothesis import strategies as st
from omegaconf import OmegaConf

from hydra_pipeline import CheckpointError
from hydra_pipeline.app.resume import hydra_quote, resume_command, stored_overrides

# Printable text, the characters Hydra's grammar treats specially over-represented.
paths = st.text(
    alphabet=st.sampled_from([*"ab/._- =,'\"\\:[]{}()$@~+#%*?!&|<>"]), min_size=1, max_size=40
).filter(lambda text: "\\${" not in text)


@given(paths)
def test_a_quoted_path_reads_back_exactly(path: str) -> None:
    """Whatever a folder is called, the override Hydra parses holds that name, and so does
    the config value it becomes."""
    value = OverridesParser.create().parse_override(f"resume={hydra_quote(path)}").value()
    assert OmegaConf.create({"resume": value}).resume == path


@pytest.mark.parametrize(
    "stored",
    [
        ["pipeline.gamma=0.9", "+hydra.job.chdir=true"],
        ["hydra.run.dir=/elsewhere"],
        ["hydra/launcher=submitit_slurm"],
        ["allowed_targets=[os]"],
        ["+allowed_targets=[os]"],
        ["resume=other"],
        ["seed=range(3)"],
        ["seed=0,1"],
        ["pipeline.gamma=["],
        "pipeline.gamma=0.9",
        [3],
    ],
)
def test_stored_overrides_that_are_not_data_are_refused(stored: object) -> None:
    with pytest.raises(CheckpointError, match=r"^Checkpoint '/runs/x\.pt' stores"):
        stored_overrides(Path("/runs/x.pt"), {"overrides": stored})


def test_stored_overrides_that_rebuild_a_run() -> None:
    stored = [
        "pipeline=ppo",
        "+loss@pipeline.named_losses.aux=a2c",
        "~pipeline.lr_scheduler_builder",
        "seed=3",
    ]
    assert stored_overrides(Path("x.pt"), {"overrides": stored}) == stored
    assert stored_overrides(Path("x.pt"), {}) == []


@pytest.mark.parametrize(
    ("orig_argv", "argv", "expected"),
    [
        (
            ["python", "-m", "hydra_pipeline", "seed=1"],
            ["/site/hydra_pipeline/__main__.py", "seed=1"],
            "python -m hydra_pipeline resume=/runs/a",
        ),
        (
            ["/venv/bin/python", "train.py", "--config-dir", "conf", "+experiment=x"],
            ["train.py", "--config-dir", "conf", "+experiment=x"],
            "python train.py --config-dir conf resume=/runs/a",
        ),
        (
            ["/venv/bin/python", "/venv/bin/hydra-pipeline", "-cn=tune", "a=b"],
            ["/venv/bin/hydra-pipeline", "-cn=tune", "a=b"],
            "python /venv/bin/hydra-pipeline -cn=tune resume=/runs/a",
        ),
    ],
)
def test_the_resume_command_repeats_what_is_not_stored(
    monkeypatch: pytest.MonkeyPatch, orig_argv: list[str], argv: list[str], expected: str
) -> None:
    """Config folder flags and the allow-list are not in checkpoints: the command repeats
    them; overrides are stored, so it does not."""
    monkeypatch.setattr(sys, "orig_argv", orig_argv)
    monkeypatch.setattr(sys, "argv", argv)
    assert resume_command(Path("/runs/a")) == expected
    assert resume_command(Path("/runs/a b"), ["my_project"]).endswith(
        "'allowed_targets=[my_project]' 'resume=/runs/a b'"
    )
