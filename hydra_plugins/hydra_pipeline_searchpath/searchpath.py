"""Adds hydra_pipeline's YAML presets to every Hydra app's config search path.

Once the package is installed, any Hydra app can compose ``pipeline: imitation_then_ppo``,
``optimizer: adamw``, ``task: cartpole``... Hydra imports every module of ``hydra_plugins``
when an app starts, so this one imports only Hydra and, when a search path is built,
hydra_pipeline's config schemas (the presets extend them).
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class HydraPipelineSearchPathPlugin(SearchPathPlugin):
    """Appends ``pkg://hydra_pipeline.conf`` to the search path."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        import hydra_pipeline.config  # noqa: F401 - registers the schemas the presets extend

        search_path.append(provider="hydra_pipeline", path="pkg://hydra_pipeline.conf")
