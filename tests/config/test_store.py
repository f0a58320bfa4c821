"""ConfigStore registration: every schema stored once, where ``SCHEMAS`` says, never twice."""

from __future__ import annotations

import pytest
from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from omegaconf import OmegaConf

from hydra_pipeline import ConfigError
from hydra_pipeline.config import SCHEMAS, register_configs
from hydra_pipeline.config.store import StoredSchema


def fresh_store() -> ConfigStore:
    """A new, empty ConfigStore that is not Hydra's singleton."""
    store = ConfigStore.__new__(ConfigStore)
    store.__init__()  # type: ignore[misc]
    return store


def config_path(schema: StoredSchema) -> str:
    return f"{schema.group}/{schema.name}.yaml" if schema.group else f"{schema.name}.yaml"


def assert_holds_every_schema(store: ConfigStore) -> None:
    for schema in SCHEMAS:
        entry = store.load(config_path(schema))
        assert OmegaConf.get_type(entry.node) is schema.node, schema
        assert entry.package == schema.package, schema
        assert entry.group == schema.group, schema


class TestRegistration:
    def test_every_schema_is_in_hydras_store(self) -> None:
        """Importing hydra_pipeline.config stored each SCHEMAS entry, at its package."""
        assert_holds_every_schema(ConfigStore.instance())

    def test_entries_are_unique(self) -> None:
        """No two SCHEMAS entries share a group and name (one would silently replace the other)."""
        places = [(schema.group, schema.name) for schema in SCHEMAS]
        assert len(places) == len(set(places))

    def test_second_registration_is_refused(self) -> None:
        """register_configs() again raises ConfigError naming the entry already stored."""
        with pytest.raises(ConfigError, match=r"ConfigStore already holds 'base_config'"):
            register_configs()
        assert_holds_every_schema(ConfigStore.instance())

    def test_registers_cleanly_in_a_fresh_store(self) -> None:
        """A fresh ConfigStore receives every entry, and a second call is refused."""
        store = fresh_store()
        register_configs(store)
        assert_holds_every_schema(store)
        with pytest.raises(ConfigError, match="already holds"):
            register_configs(store)

    def test_registers_into_a_fresh_singleton(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With Hydra's singleton replaced by an empty store, register_configs() fills it."""
        store = fresh_store()
        monkeypatch.setitem(Singleton._instances, ConfigStore, store)
        assert ConfigStore.instance() is store
        register_configs()
        assert_holds_every_schema(store)

    def test_conflict_stores_nothing(self) -> None:
        """A name already taken (a user's optimizer/base_sgd) fails before any entry is stored."""
        store = fresh_store()
        store.store(group="optimizer", name="base_sgd", node={"lr": 1.0})
        with pytest.raises(ConfigError, match=r"'optimizer/base_sgd'.*Rename your own entry"):
            register_configs(store)
        assert "base_config.yaml" not in store.list("")
        assert store.list("optimizer") == ["base_sgd.yaml"]
        assert OmegaConf.to_container(store.load("optimizer/base_sgd.yaml").node) == {"lr": 1.0}
