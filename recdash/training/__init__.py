"""Training: one run (:mod:`~recdash.training.run`), reference runs, Optuna sweeps, the dashboard's job queue and
the demo runs. Everything here writes MLflow runs that follow :mod:`recdash.contract`."""
