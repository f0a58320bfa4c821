"""Hydra YAML presets shipped with hydra_pipeline (the resource package ``hydra_pipeline.conf``)."""
