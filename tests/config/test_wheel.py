"""The wheel ships the presets and the search-path plugin, and any Hydra app can use them.

The project is built from a copy of the checkout (so the build writes nothing into it),
installed without dependencies into a fresh virtual environment outside the checkout, whose
dependencies come from this environment's site-packages through a ``.pth`` file. A ``.pth`` file
only adds that folder to ``sys.path``; the ``.pth`` files inside it (this environment's editable
finder for hydra_pipeline) are not run, so hydra_pipeline can only come from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

# Builds and installs a wheel, in processes of its own: slow.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NOT_SHIPPED = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".*_cache",
    ".hypothesis",
    "tests",
    "examples",
    "benchmarks",
    "outputs",
    "multirun",
)

APP = """
import copy
import json

import hydra
from omegaconf import DictConfig, OmegaConf


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    import hydra_pipeline
    import hydra_plugins.hydra_pipeline_searchpath.searchpath as plugin
    from hydra.core.plugins import Plugins
    from hydra.plugins.search_path_plugin import SearchPathPlugin
    from hydra_pipeline.config import check_config, instantiate_node

    cfg = copy.deepcopy(cfg)
    OmegaConf.resolve(cfg)
    check_config(cfg)
    pipeline = instantiate_node(cfg, "pipeline")
    optimizer = pipeline.optimizer_builder.class_type
    print(json.dumps({
        "package": hydra_pipeline.__file__,
        "plugin": plugin.__file__,
        "plugins": [p.__qualname__ for p in Plugins.instance().discover(SearchPathPlugin)],
        "stages": [stage.loss_names for stage in pipeline.pipeline_stages],
        "losses": {name: type(loss).__name__ for name, loss in pipeline.named_losses.items()},
        "optimizer": f"{optimizer.__module__}.{optimizer.__qualname__}",
        "lr_steps": pipeline.lr_scheduler_builder.kwargs["lr_lambda"].steps,
    }))


if __name__ == "__main__":
    main()
"""

APP_CONFIG = """
defaults:
  - pipeline: imitation_then_ppo
  - _self_
"""


@dataclass
class Installed:
    wheel: Path
    python: Path
    site_packages: Path
    app: Path


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel, installed in a fresh venv, and a Hydra app folder next to it."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SHIPPED, symlinks=True)
    run(
        sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", tmp, ".", cwd=source
    )
    (wheel,) = tmp.glob("hydra_pipeline-*.whl")

    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "--quiet", wheel, cwd=tmp)  # fmt: skip
    purelib = run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp
    )
    site_packages = Path(purelib.stdout.strip())
    dependencies = sysconfig.get_paths()["purelib"]
    (site_packages / "_this_environments_dependencies.pth").write_text(dependencies + "\n")

    app = tmp / "app"
    (app / "conf").mkdir(parents=True)
    (app / "my_app.py").write_text(textwrap.dedent(APP))
    (app / "conf" / "config.yaml").write_text(APP_CONFIG)
    return Installed(wheel, python, site_packages, app)


@pytest.fixture(scope="module")
def names(installed: Installed) -> set[str]:
    """The files in the wheel."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        return set(wheel.namelist())


class TestWheelContents:
    def test_presets_are_shipped(self, names: set[str]) -> None:
        """Every YAML of conf/ is in the wheel under hydra_pipeline/conf/."""
        assert "hydra_pipeline/conf/config.yaml" in names
        assert "hydra_pipeline/conf/__init__.py" in names
        presets = sorted(p.relative_to(ROOT / "conf") for p in (ROOT / "conf").rglob("*.yaml"))
        assert {"pipeline/ppo.yaml", "pipeline/imitation_then_ppo.yaml"} <= {
            p.as_posix() for p in presets
        }
        missing = [p for p in presets if f"hydra_pipeline/conf/{p.as_posix()}" not in names]
        assert missing == []

    def test_plugin_is_shipped_in_the_namespace_package(self, names: set[str]) -> None:
        """The plugin module ships; hydra_plugins stays a namespace (no __init__.py)."""
        assert "hydra_plugins/hydra_pipeline_searchpath/searchpath.py" in names
        assert "hydra_plugins/hydra_pipeline_searchpath/__init__.py" in names
        assert "hydra_plugins/__init__.py" not in names

    def test_every_package_and_module_is_shipped(self, names: set[str]) -> None:
        """Each package of hydra_pipeline/ (and every module in it) is in the wheel."""
        packages = [
            Path(folder).relative_to(ROOT)
            for folder, _, files in os.walk(ROOT / "hydra_pipeline")
            if "__init__.py" in files and "__pycache__" not in folder
        ]
        assert len(packages) >= 7
        missing = [
            (package / module.name).as_posix()
            for package in packages
            for module in (ROOT / package).glob("*.py")
            if (package / module.name).as_posix() not in names
        ]
        assert missing == []
        assert "hydra_pipeline/py.typed" in names


class TestInstalledWheel:
    def test_imports_from_the_wheel_not_the_checkout(self, installed: Installed) -> None:
        """In the new venv, hydra_pipeline and the plugin come from its own site-packages."""
        code = (
            "import hydra_pipeline, hydra_pipeline.conf, "
            "hydra_plugins.hydra_pipeline_searchpath.searchpath as p; "
            "print(hydra_pipeline.__file__); print(hydra_pipeline.conf.__file__); "
            "print(p.__file__)"
        )
        files = run(installed.python, "-c", code, cwd=installed.app).stdout.split()
        assert len(files) == 3
        for file in files:
            assert Path(file).is_relative_to(installed.site_packages), file
            assert not Path(file).resolve().is_relative_to(ROOT), file

    def test_app_composes_the_preset_through_the_plugin(self, installed: Installed) -> None:
        """--cfg job of an app naming only pipeline: imitation_then_ppo shows the preset."""
        shown = run(installed.python, "my_app.py", "--cfg", "job", cwd=installed.app).stdout
        cfg = yaml.safe_load(shown)
        pipeline = cfg["pipeline"]
        assert [stage["loss_names"] for stage in pipeline["pipeline_stages"]] == [
            ["imitation_loss"],
            ["ppo_loss"],
        ]
        assert pipeline["optimizer_builder"]["class_type"] == "torch.optim.Adam"
        assert pipeline["optimizer_builder"]["lr"] == 0.003
        assert set(pipeline["named_losses"]) == {"imitation_loss", "ppo_loss"}
        assert set(cfg) == {"pipeline"}  # nothing but what the app's defaults asked for

    def test_app_runs_and_builds_the_pipeline(self, installed: Installed) -> None:
        """Running the app resolves, checks and builds the preset from the installed wheel."""
        out = installed.app / "outputs"
        result = run(
            installed.python,
            "my_app.py",
            f"hydra.run.dir={out}",
            "hydra.output_subdir=null",
            "hydra/job_logging=disabled",
            "hydra/hydra_logging=disabled",
            cwd=installed.app,
        )
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert Path(report["package"]).is_relative_to(installed.site_packages)
        assert Path(report["plugin"]).is_relative_to(installed.site_packages)
        assert "HydraPipelineSearchPathPlugin" in report["plugins"]
        assert report["stages"] == [["imitation_loss"], ["ppo_loss"]]
        assert report["losses"] == {"imitation_loss": "Imitation", "ppo_loss": "PPO"}
        assert report["optimizer"] == "torch.optim.adam.Adam"
        assert report["lr_steps"] == 32_768 + 300_000
