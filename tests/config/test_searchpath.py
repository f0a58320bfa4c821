"""The search-path plugin: Hydra finds it, and it adds the presets to any app's search path."""

from __future__ import annotations

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin

from hydra_plugins.hydra_pipeline_searchpath.searchpath import HydraPipelineSearchPathPlugin

PLUGIN = "hydra_plugins.hydra_pipeline_searchpath.searchpath.HydraPipelineSearchPathPlugin"


def search_path() -> ConfigSearchPath:
    """The search path of an app with no config folder of its own, plugins applied."""
    return create_config_search_path(None)


class TestSearchPathPlugin:
    def test_discovered_by_hydra(self) -> None:
        """Plugins.discover(SearchPathPlugin) lists the package's plugin."""
        # Hydra loads plugin modules itself, so compare names rather than class objects.
        discovered = [
            f"{plugin.__module__}.{plugin.__qualname__}"
            for plugin in Plugins.instance().discover(SearchPathPlugin)
        ]
        assert discovered.count(PLUGIN) == 1

    def test_appends_the_presets_package(self) -> None:
        """The search path holds pkg://hydra_pipeline.conf, provided by hydra_pipeline, once."""
        entries = [(e.provider, e.path) for e in search_path().get_path()]
        assert entries.count(("hydra_pipeline", "pkg://hydra_pipeline.conf")) == 1

    def test_loader_lists_the_pipeline_options(self) -> None:
        """A config loader on that search path offers the pipeline presets and their schema."""
        loader = ConfigLoaderImpl(config_search_path=search_path())
        assert loader.get_group_options("pipeline") == [
            "base_training_pipeline",
            "imitation_then_ppo",
            "ppo",
            "ppo_sb3",
        ]

    def test_loader_lists_every_group(self) -> None:
        """The other groups' presets are there too, next to their base_ schemas."""
        loader = ConfigLoaderImpl(config_search_path=search_path())
        options = {
            group: set(loader.get_group_options(group))
            for group in ("optimizer", "lr_scheduler", "task", "model", "loss")
        }
        assert {"adam", "adamw", "sgd", "rmsprop", "base_adam"} <= options["optimizer"]
        assert {"constant", "linear_decay", "cosine", "step"} <= options["lr_scheduler"]
        assert {"cartpole", "gym", "base_gym"} <= options["task"]
        assert {"mlp", "base_mlp"} <= options["model"]
        assert {"ppo", "base_ppo", "a2c", "imitation"} <= options["loss"]

    def test_manipulate_search_path_directly(self) -> None:
        """Calling the plugin on an empty search path appends exactly the presets."""
        from hydra._internal.config_search_path_impl import ConfigSearchPathImpl

        path = ConfigSearchPathImpl()
        HydraPipelineSearchPathPlugin().manipulate_search_path(path)
        assert [(e.provider, e.path) for e in path.get_path()] == [
            ("hydra_pipeline", "pkg://hydra_pipeline.conf")
        ]
