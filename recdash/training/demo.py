"""Demo runs for a fresh store: a handful of small real trainings so a new user has runs to browse and compare
before training anything of their own."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from recdash.config import TrainConfig
from recdash.models.rankfm import Hyperparams
from recdash.training.run import load_data, train

DEMO_EXPERIMENT = "recdash-demo"
# Small enough that six trainings take a few seconds, big enough that the hyperparameters visibly matter.
DEMO_DATA = {"n_users": 150, "n_items": 100, "n_interactions": 4000}
DEMO_EPOCHS = 4


def create_demo_runs(experiment: str = DEMO_EXPERIMENT, n: int = 6, seed: int = 0) -> list[str]:
    """Train ``n`` small models on one synthetic dataset with varied hyperparameters; returns their run ids.

    Every run shares the same data and split, so the Compare page shows a fair comparison; only the first run
    logs a servable model, which keeps the whole thing to a few seconds while giving the Recommend page a model.
    """
    if n < 1:
        raise ValueError("n must be a positive integer")
    rng = np.random.default_rng(seed)
    base = TrainConfig(
        dataset="synthetic",
        dataset_options={**DEMO_DATA, "seed": seed},
        epochs=DEMO_EPOCHS,
        patience=0,
        experiment=experiment,
        tags={"recdash.demo": "true"},
    )
    data = load_data(base)
    run_ids = []
    for i in range(n):
        hparams = Hyperparams(
            factors=int(rng.choice([8, 16, 32])),
            loss=("warp", "bpr")[i % 2],
            max_samples=10,
            learning_rate=float(10 ** rng.uniform(-2.0, -0.5)),
            alpha=float(10 ** rng.uniform(-3.0, -1.0)),
        )
        name = f"demo-{i + 1}-{hparams.loss}-f{hparams.factors}"
        config = replace(base, hparams=hparams, run_name=name, log_model=i == 0)
        run_ids.append(train(config, data).run_id)
    return run_ids
