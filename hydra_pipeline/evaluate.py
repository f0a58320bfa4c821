"""``python -m hydra_pipeline.evaluate run=<run folder>``: the same command as
``hydra-pipeline-evaluate``; it evaluates a run's checkpoints (see
:mod:`hydra_pipeline.app.evaluate`)."""

from hydra_pipeline.app import evaluate_main

if __name__ == "__main__":
    evaluate_main()
