"""The example project's own Hydra app: ``python train.py [overrides]``.

It composes hydra_pipeline's config groups with its own (see conf/config.yaml) and trains with
hydra_pipeline's engine. ``pipeline_app`` is ``hydra.main`` plus hydra_pipeline's command-line
behaviour (the trust gate, resume=, clear errors).
"""

from omegaconf import DictConfig

from hydra_pipeline.app import pipeline_app, train


# The project's own _target_s (my_project.*) are allowed here, in code: config files cannot
# extend the allow-list.
@pipeline_app(config_path="conf", config_name="config", allowed_targets=["my_project"])
def main(cfg: DictConfig) -> float:
    return train(cfg)


if __name__ == "__main__":
    main()
