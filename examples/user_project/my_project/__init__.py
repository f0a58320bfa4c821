"""An example user project: its own task and loss, trained through hydra_pipeline's pipelines."""
