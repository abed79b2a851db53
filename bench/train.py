"""Overhead of a recdash training run (MLflow logging, per-epoch evaluation, test + baseline metrics, model
logging) against bare ``RankFM.fit`` for the same epochs on the same ML-100K train split.

Run: python bench/train.py   (makes its own SQLite store in a temp dir; prints one JSON line last)
Target (foundation issue): overhead_ratio <= 1.5.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import mlflow
import numpy as np
from rankfmc import RankFM

from recdash.config import TrainConfig
from recdash.training.run import load_data, train

EPOCHS = 30


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        config = TrainConfig(dataset="movielens-100k", epochs=EPOCHS, patience=0, experiment="bench")
        data = load_data(config)
        train_df = data[1].train[["user_id", "item_id"]]
        hp = config.hparams

        # warm-up: first MLflow use creates the database tables; not part of a training run's cost
        mlflow.set_experiment("warmup")
        with mlflow.start_run():
            mlflow.log_param("x", 1)

        bare, ours = [], []
        for repeat in range(2):
            np.random.seed(repeat)
            t0 = time.perf_counter()
            RankFM(n_jobs=1, **hp.as_dict()).fit(train_df, epochs=EPOCHS)
            bare.append(time.perf_counter() - t0)
            print(f"bare RankFM.fit {EPOCHS} epochs: {bare[-1]:.2f}s", flush=True)

            t0 = time.perf_counter()
            result = train(config, data)
            ours.append(time.perf_counter() - t0)
            print(
                f"recdash train() {EPOCHS} epochs: {ours[-1]:.2f}s  "
                f"test_recall_at_10={result.metrics['test_recall_at_10']:.4f}",
                flush=True,
            )
        print(
            json.dumps(
                {
                    "overhead_ratio": round(min(ours) / min(bare), 3),
                    "bare_fit_seconds": round(min(bare), 3),
                    "recdash_train_seconds": round(min(ours), 3),
                    "epochs": EPOCHS,
                }
            )
        )


if __name__ == "__main__":
    main()
