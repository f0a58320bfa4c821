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

from hydra_pipeline.app.sweep_report import Job, read_jobs, short_labels, sweep_figure
from hydra_pipeline.report import main as report
from hydra_pipeline.seed_statistics import bootstrap_interval

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
    summary.json files hold (mean, sample std, interquartile mean, 95% percentile-bootstrap
    interval of the mean, within the seeds' range)."""
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
        assert float(group["mean"]) == pytest.approx(finals.mean())
        assert float(group["std"]) == pytest.approx(finals.std(ddof=1))
        assert float(group["iqm"]) == pytest.approx(stats.trim_mean(finals, 0.25))
        low, high = bootstrap_interval(list(finals))
        assert (float(group["ci_low"]), float(group["ci_high"])) == pytest.approx((low, high))
        assert finals.min() <= low <= float(group["mean"]) <= high <= finals.max()
    summary = rows(sweep / "sweep_summary.csv")
    assert [row["objective"] for row in summary] == [row["reward"] for row in summary]


def test_pictures_one_curve_per_configuration(sweep: Path) -> None:
    """sweep_curves.png and each run's curves.png are PNG images; the sweep's figure holds
    one curve per configuration, best first: the mean of its seeds' training returns on the
    steps where every seed has one, in a band within the seeds' values; the title and axes
    say what is drawn."""
    assert (sweep / "sweep_curves.png").read_bytes().startswith(PNG)
    assert all((sweep / str(job) / "curves.png").read_bytes().startswith(PNG) for job in range(6))
    figure = sweep_figure(read_jobs(sweep), pyplot)
    (axes,) = figure.axes
    assert axes.get_title() == "Training return: mean over seeds, 95% bootstrap band"
    assert axes.get_xlabel() == "total steps"
    assert axes.get_ylabel() == "training return (mean of the stage's last ≤100 episodes)"
    groups = rows(sweep / "sweep_groups.csv")
    best_first = sorted(groups, key=lambda group: -float(group["mean"]))
    lines = {line.get_label(): line for line in axes.get_lines()}
    labels = [group["configuration"].split()[-1].replace("pipeline.", "") for group in best_first]
    assert list(lines) == [f"{label} (3 seeds)" for label in labels]
    line, band = lines["gamma=0.9 (3 seeds)"], axes.collections[labels.index("gamma=0.9")]
    # A seed has no value where no episode has ended in the stage yet (the start of each
    # stage): the curves are compared from the last first value to the first last one,
    # each seed interpolated where it has none.
    seeds = []
    for job in range(3):
        points = [r for r in rows(sweep / str(job) / "metrics.csv") if r["train/reward"]]
        seeds.append([(int(r["total_steps"]), float(r["train/reward"])) for r in points])
    start, end = max(seed[0][0] for seed in seeds), min(seed[-1][0] for seed in seeds)
    steps = sorted({step for seed in seeds for step, _ in seed if start <= step <= end})
    values = np.array([np.interp(steps, *zip(*seed, strict=True)) for seed in seeds])
    assert any(len(seed) < len(steps) for seed in seeds) or start > 128  # the case arises
    assert list(line.get_xdata()) == steps
    assert np.allclose(line.get_ydata(), values.mean(axis=0))
    lowest, highest = (
        dict(zip(steps, values.min(axis=0), strict=True)),
        dict(zip(steps, values.max(axis=0), strict=True)),
    )
    for x, y in band.get_paths()[0].vertices:
        if int(x) in lowest:
            assert lowest[int(x)] - 1e-9 <= y <= highest[int(x)] + 1e-9
    figure.canvas.draw()
    legend = axes.get_legend()
    assert legend.get_window_extent().x0 >= axes.get_window_extent().x1  # beside, not over
    pyplot.close(figure)


def made_up_jobs(folder: Path, curves: dict[str, str], objectives: dict[str, float]) -> list[Job]:
    """Completed jobs of configurations ``x=<first letter>`` and seeds ``<second letter>``,
    each with the metrics.csv body and the objective given under its name."""
    header = "mode,total_steps,train/reward,eval/reward\n"
    jobs = []
    for number, (name, body) in enumerate(curves.items()):
        (folder / name).mkdir()
        (folder / name / "metrics.csv").write_text(header + body)
        job = Job(number, folder / name, [f"x={name[0]}", f"seed={name[1]}"], "completed")
        job.runs, job.objectives = [job.folder], [objectives[name]]
        jobs.append(job)
    return jobs


def test_evaluated_runs_are_pictured_by_their_evaluations(tmp_path: Path) -> None:
    """When every run evaluated, the curves are the evaluations' mean returns, aligned on the
    steps where every seed has one: seed a0 has no evaluation at 30, so its value there is
    interpolated (6.0), and a1's point at 50 is past a0's last, so it is left out."""
    jobs = made_up_jobs(
        tmp_path,
        {
            "a0": "train,10,1.0,\neval,20,,5.0\neval,40,,7.0\n",
            "a1": "train,10,3.0,\neval,20,,9.0\neval,30,,10.0\neval,40,,11.0\neval,50,,12.0\n",
            "b0": "train,10,2.0,\neval,20,,4.0\n",
        },
        {"a0": 7.0, "a1": 11.0, "b0": 4.0},
    )
    figure = sweep_figure(jobs, pyplot)
    axes = figure.axes[0]
    assert axes.get_title().startswith("Evaluation return")
    evaluated, single = axes.get_lines()
    assert evaluated.get_label() == "x=a (2 seeds)" and single.get_label() == "x=b (1 seed)"
    assert list(evaluated.get_xdata()) == [20, 30, 40]
    assert list(evaluated.get_ydata()) == [7.0, 8.0, 9.0]
    assert len(axes.collections) == 1  # one seed: no band
    pyplot.close(figure)


def test_training_returns_unless_every_run_evaluated(tmp_path: Path) -> None:
    jobs = made_up_jobs(
        tmp_path,
        {"a0": "train,10,1.0,\neval,20,,5.0\n", "b0": "train,10,2.0,\ntrain,20,4.0,\n"},
        {"a0": 5.0, "b0": 4.0},
    )
    figure = sweep_figure(jobs, pyplot)
    assert figure.axes[0].get_title().startswith("Training return")
    assert [list(line.get_ydata()) for line in figure.axes[0].get_lines()] == [[1.0], [2.0, 4.0]]
    pyplot.close(figure)


def test_many_configurations_draw_the_best_with_short_labels(tmp_path: Path) -> None:
    """An Optuna-like sweep of 12 learning rates: the 10 best are drawn, best first, each
    labelled by the last part of its key and 3 significant digits; the title says so."""
    rates = [0.0020554062603827007 * (index + 1) for index in range(12)]
    curves, objectives = {}, {}
    for index in range(12):
        name = f"{chr(ord('a') + index)}0"
        curves[name] = f"train,10,{index}.0,\ntrain,20,{index + 1}.0,\n"
        objectives[name] = float(index)
    jobs = made_up_jobs(tmp_path, curves, objectives)
    for job, rate in zip(jobs, rates, strict=True):
        job.overrides = [f"pipeline.optimizer_builder.lr={rate!r}", "seed=0"]
    figure = sweep_figure(jobs, pyplot)
    axes = figure.axes[0]
    assert axes.get_title().endswith("\n(the 10 best of 12 configurations)")
    labels = [line.get_label() for line in axes.get_lines()]
    assert labels[0] == "lr=0.0247 (1 seed)" and labels[-1] == "lr=0.00617 (1 seed)"
    assert len(labels) == 10
    pyplot.close(figure)


def test_short_labels() -> None:
    """Only the overrides that differ; keys by their last part unless two share it."""
    labels = short_labels(
        [
            "a.lr=0.0020554062603827007 b.lr=1 task=x",
            "a.lr=0.5 b.lr=2 task=x",
        ]
    )
    assert list(labels.values()) == ["a.lr=0.00206 b.lr=1", "a.lr=0.5 b.lr=2"]
    assert short_labels(["x.gamma=0.9", "x.gamma=0.99"])["x.gamma=0.99"] == "gamma=0.99"
    assert short_labels(["seed=1"]) == {"seed=1": "(as configured)"}


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


def test_a_runs_curves_stage_by_stage(tmp_path: Path) -> None:
    """A run's curves.png draws each stage's training return apart (a stage's return is that
    of its own episodes) and marks where stages end."""
    from hydra_pipeline.app.sweep_report import _stage_ends, plot_run

    (tmp_path / "metrics.csv").write_text(
        "mode,total_steps,stage,episodes,train/reward,eval/reward\n"
        "train,10,0,2,5.0,\ntrain,20,0,4,7.0,\neval,20,0,10,,9.0\n"
        "train,30,1,1,2.0,\ntrain,40,1,3,4.0,\n"
    )
    assert _stage_ends(tmp_path) == [20]
    plot_run(tmp_path, pyplot)
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG)


def test_a_stage_with_one_metric_point_is_drawn(tmp_path: Path) -> None:
    """A stage whose return has one metric point (the default run can stop at its first) is
    a marked point, not a line of one point that draws nothing."""
    from hydra_pipeline.app.sweep_report import plot_run

    (tmp_path / "metrics.csv").write_text(
        "mode,total_steps,stage,episodes,train/reward\n"
        "train,16,0,0,\ntrain,32,0,64,500.0\ntrain,48,1,0,\ntrain,64,1,64,500.0\n"
    )
    figures = []

    class KeepFigure:
        """pyplot, but closing keeps the figure for the test."""

        def __getattr__(self, name: str) -> Any:
            return getattr(pyplot, name)

        def close(self, figure: Any) -> None:
            figures.append(figure)

    plot_run(tmp_path, KeepFigure())
    (figure,) = figures
    curves = [line for line in figure.axes[0].get_lines() if line.get_marker() == "."]
    assert [(list(line.get_xdata()), list(line.get_ydata())) for line in curves] == [
        ([32], [500.0]),
        ([64], [500.0]),
    ]
    pyplot.close(figure)
