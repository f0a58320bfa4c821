"""The engine stays readable as it grows: small files, and a runner whose ``run()`` reads as
a training loop (collect, learn, evaluate, log, checkpoint) rather than a tour of helpers."""

from __future__ import annotations

import ast
from pathlib import Path

import hydra_pipeline.engine as engine

ENGINE = Path(engine.__file__).parent
MAX_ENGINE_FILE_LINES = 500
MAX_RUNNER_LINES = 400
MAX_RUN_HELPERS = 6


def private_calls(function: ast.FunctionDef) -> set[str]:
    """The names of the ``self._...`` methods ``function`` calls."""
    return {
        node.func.attr
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "self"
        and node.func.attr.startswith("_")
    }


def runner_method(name: str) -> ast.FunctionDef:
    tree = ast.parse((ENGINE / "runner.py").read_text())
    (runner,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "OnPolicyRunner"]
    (method,) = [n for n in runner.body if isinstance(n, ast.FunctionDef) and n.name == name]
    return method


def test_no_engine_file_is_over_500_lines() -> None:
    """Every module of the engine fits in one reading."""
    lengths = {path.name: len(path.read_text().splitlines()) for path in ENGINE.glob("*.py")}
    too_long = {name: n for name, n in lengths.items() if n > MAX_ENGINE_FILE_LINES}
    assert not too_long, f"engine files over {MAX_ENGINE_FILE_LINES} lines: {too_long}"


def test_the_runner_is_the_loop_and_little_else() -> None:
    """The runner keeps the order of work; the work lives in the collector, the learner,
    the statistics, the fit checks and the run state."""
    lines = len((ENGINE / "runner.py").read_text().splitlines())
    assert lines < MAX_RUNNER_LINES, f"runner.py has {lines} lines"


def test_run_reads_top_to_bottom() -> None:
    """``run()`` calls the collector and the learner itself and jumps to few helpers of its
    own."""
    run = runner_method("run")
    helpers = private_calls(run)
    assert len(helpers) <= MAX_RUN_HELPERS, sorted(helpers)
    called = {
        f"{node.func.value.id}.{node.func.attr}"
        for node in ast.walk(run)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
    }
    assert {"collector.collect", "learner.update", "learner.step_lr_scheduler"} <= called


def test_the_detector_sees_helpers() -> None:
    """Positive control: the helper count reads the calls it is meant to read."""
    source = "def run(self):\n    self._a()\n    self.b()\n    other._c()\n"
    (function,) = ast.parse(source).body
    assert isinstance(function, ast.FunctionDef)
    assert private_calls(function) == {"_a"}
