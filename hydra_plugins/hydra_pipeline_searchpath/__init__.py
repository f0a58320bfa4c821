"""Hydra search-path plugin of hydra_pipeline (discovered by Hydra; nothing to import)."""
