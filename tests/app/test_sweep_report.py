"""A sweep's results over seeds: per-configuration statistics matching a computation from
the runs' own files, learning-curve pictures, several seeds in one job, and the command that
rebuilds it all."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
from scipy import stats

from hydra_pipeline.app.sweep_report import read_jobs, sweep_figure
from hydra_pipeline.report import main as report

matplotlib.use("Agg")
import matplotlib.pyplot as pyplot

Cli = Any
PNG = b"\x89PNG\r\n\x1a\n"


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two configurations (gamma) x three seeds, with short runs."""
    from tests.app.conftest import run_in_process

    folder = tmp_path_factory.mktemp("sweep")
    result = run_in_process(
        [
            "-m",
            "task.num_envs=4",
            "pipeline.num_steps=16",
            "pipeline.num_mini_batch=1",
            "pipeline.metric_accumulate_interval=128",
            "pipeline.pipeline_stages.0.max_stage_steps=256",
            "pipeline.pipeline_stages.1.max_stage_steps=512",
            "pipeline.gamma=0.9,0.99",
            "seed=0,1,2",
            "hydra.sweep.dir=sweep",
        ],
        folder,
    )
    assert result.returncode == 0, result.stderr
    assert "Sweep " in result.stdout + result.stderr  # the table, on the console
    return folder / "sweep"


def test_groups_match_the_runs_own_files(sweep: Path) -> None:
    """One row per configuration; its statistics are those of the final returns the runs'
    summary.json files hold (mean, sample std, interquartile mean, 95% bootstrap interval)."""
    groups = rows(sweep / "sweep_groups.csv")
    assert [g["configuration"].split()[-1] for g in groups] == [
        "pipeline.gamma=0.9",
        "pipeline.gamma=0.99",
    ]
    for group, jobs in zip(groups, (["0", "1", "2"], ["3", "4", "5"]), strict=True):
        assert group["jobs"].split() == jobs and group["seeds"] == "3"
        finals = np.array(
            [
                json.loads((sweep / job / "summary.json").read_text())["final_metrics"]["reward"]
                for job in jobs
            ]
        )
        interval = stats.bootstrap(
            (finals,), np.mean, confidence_level=0.95, method="percentile", random_state=0
        ).confidence_interval
        assert float(group["mean"]) == pytest.approx(finals.mean())
        assert float(group["std"]) == pytest.approx(finals.std(ddof=1))
        assert float(group["iqm"]) == pytest.approx(stats.trim_mean(finals, 0.25))
        assert float(group["ci_low"]) == pytest.approx(interval.low)
        assert float(group["ci_high"]) == pytest.approx(interval.high)
        assert float(group["ci_low"]) <= float(group["mean"]) <= float(group["ci_high"])
    summary = rows(sweep / "sweep_summary.csv")
    assert [row["objective"] for row in summary] == [row["reward"] for row in summary]


def test_pictures_one_curve_per_configuration(sweep: Path) -> None:
    """sweep_curves.png and each run's curves.png are PNG images; the sweep's figure holds
    one curve per configuration, the mean of its seeds' training returns."""
    assert (sweep / "sweep_curves.png").read_bytes().startswith(PNG)
    assert all((sweep / str(job) / "curves.png").read_bytes().startswith(PNG) for job in range(6))
    assert pyplot.imread(sweep / "sweep_curves.png").shape[:2] == (500, 800)
    figure = sweep_figure(read_jobs(sweep), pyplot)
    (axes,) = figure.axes
    lines = axes.get_lines()
    assert [line.get_label() for line in lines] == [
        "pipeline.gamma=0.9 (3 seeds, train)",
        "pipeline.gamma=0.99 (3 seeds, train)",
    ]
    by_step: dict[int, list[float]] = {}  # seeds with no finished episode yet have no value
    for job in range(3):
        for row in rows(sweep / str(job) / "metrics.csv"):
            if row["train/reward"]:
                by_step.setdefault(int(row["total_steps"]), []).append(float(row["train/reward"]))
    assert list(lines[0].get_xdata()) == sorted(by_step)
    assert np.allclose(lines[0].get_ydata(), [np.mean(by_step[s]) for s in sorted(by_step)])
    pyplot.close(figure)


def test_evaluated_runs_are_pictured_by_their_evaluations(tmp_path: Path) -> None:
    """A configuration whose runs all evaluated is drawn from their eval/reward points (the
    mean over seeds at each step); one whose runs did not, from their training returns."""
    from hydra_pipeline.app.sweep_report import Job

    header = "mode,total_steps,train/reward,eval/reward\n"
    curves = {
        "a0": "train,10,1.0,\neval,20,,5.0\neval,40,,7.0\n",
        "a1": "train,10,3.0,\neval,20,,9.0\neval,40,,11.0\n",
        "b0": "train,10,2.0,\ntrain,20,4.0,\n",
    }
    for name, body in curves.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.csv").write_text(header + body)
    jobs = [
        Job(number, tmp_path / name, [f"x={name[0]}", f"seed={name[1]}"], "completed")
        for number, name in enumerate(curves)
    ]
    for job in jobs:
        job.runs = [job.folder]
    figure = sweep_figure(jobs, pyplot)
    evaluated, trained = figure.axes[0].get_lines()
    assert evaluated.get_label() == "x=a (2 seeds, eval)" and trained.get_label().endswith("train)")
    assert list(evaluated.get_xdata()) == [20, 40]
    assert list(evaluated.get_ydata()) == [7.0, 9.0]
    assert list(trained.get_ydata()) == [2.0, 4.0]
    pyplot.close(figure)


def test_the_report_command_rebuilds_the_files(sweep: Path, tmp_path: Path, capsys: Any) -> None:
    (sweep / "sweep_groups.csv").unlink()
    (sweep / "sweep_curves.png").unlink()
    assert report([str(sweep)]) == 0
    assert (sweep / "sweep_groups.csv").is_file() and (sweep / "sweep_curves.png").is_file()
    assert report([str(tmp_path)]) == 1
    assert "is neither a sweep folder" in capsys.readouterr().err


def test_seeds_in_one_job(app: Cli, small: list[str], tmp_path: Path) -> None:
    """seeds=[...] trains once per seed, each in its own folder, and the job's objective (what
    Optuna sees) is the mean of theirs; a sweep of such jobs groups every seed."""
    result = app("-m", *small, "seeds=[0,1,2]", "pipeline.gamma=0.9,0.99", "hydra.sweep.dir=sweep")
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        seeds = json.loads((sweep / job / "seeds.json").read_text())
        assert seeds["runs"] == ["seed_0", "seed_1", "seed_2"]
        finals = [
            json.loads((sweep / job / run / "summary.json").read_text())["final_metrics"]["reward"]
            for run in seeds["runs"]
        ]
        assert seeds["objectives"] == finals
        (status,) = [row for row in rows(sweep / "sweep_summary.csv") if row["job"] == job]
        assert float(status["objective"]) == pytest.approx(np.mean(finals))
        assert json.loads((sweep / job / "seed_1" / "summary.json").read_text())["seed"] == 1
    groups = rows(sweep / "sweep_groups.csv")
    assert [group["seeds"] for group in groups] == ["3", "3"]


@pytest.mark.parametrize(
    ("seeds", "message"),
    [("[0,0]", "'seeds' lists a seed more than once"), ("[1,-2]", "'seeds.1' must be in")],
)
def test_bad_seeds(app: Cli, small: list[str], seeds: str, message: str) -> None:
    result = app(*small, f"seeds={seeds}", "hydra.run.dir=run")
    assert result.returncode == 1 and message in result.stderr


def test_statistics_without_variation_or_values() -> None:
    """One seed has no spread; equal seeds a zero-width interval; a run with no finished
    episode (-inf) counts as a seed but not in the mean."""
    from hydra_pipeline.app.sweep_report import _statistics

    assert _statistics([5.0]) == {
        "seeds": 1, "mean": 5.0, "std": "", "iqm": 5.0, "ci_low": "", "ci_high": ""
    }  # fmt: skip
    same = _statistics([2.0, 2.0])
    assert (same["ci_low"], same["ci_high"], same["std"]) == (2.0, 2.0, 0.0)
    partial = _statistics([1.0, 3.0, -math.inf])
    assert partial["seeds"] == 3 and partial["mean"] == 2.0
