"""``python -m hydra_pipeline``: the same application as the ``hydra-pipeline`` command."""

from hydra_pipeline.app import main

if __name__ == "__main__":
    main()
