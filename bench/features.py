"""What side features cost rankfm on MovieLens-100K: training time per epoch, and single-user predict.

Why: features are what a factorization machine is for, but they must not make training or serving much slower
than plain matrix factorization, or nobody will turn them on.

- ``features_epoch_ratio``: seconds per SGD epoch with the built-in user (age bucket, gender, occupation) and item
  (genres, decade) features divided by seconds per epoch without any, same hyperparameters (recdash's defaults:
  WARP, 64 factors), same data; the median of epochs 2..N of each (epoch 1 also builds rankfmc's indexes).
- ``features_predict_ratio``: ``mlflow.pyfunc`` predict of one known user's top-10 from the model with features
  divided by the same from the model without (median of 200 warm calls each).
- ``new_user_predict_ms``: the same call for a user the model never saw, given age, gender and occupation (the
  cold-start path), and ``known_user_predict_ms`` / ``plain_predict_ms`` for the two known-user calls.

The split is recdash's random 80/10/10 with seed 42. Everything is written in a temporary directory (a throwaway
SQLite tracking store holds the two logged models). Run: ``python bench/features.py``; the last stdout line is one
JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

import mlflow
import pandas as pd

from recdash.data import load_dataset, split_dataset
from recdash.data.features import builtin_features
from recdash.models import Interactions, RankFM
from recdash.serving import log_model

EPOCHS = 6
CALLS = 200


def epoch_seconds(inter: Interactions) -> tuple[float, RankFM]:
    """Median seconds of epochs 2..EPOCHS of a default rankfm on ``inter``."""
    model = RankFM(seed=1)
    model.fit(inter, epochs=0)
    times = []
    for _ in range(EPOCHS):
        t0 = time.perf_counter()
        model.fit_epoch(inter)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]), model


def predict_ms(model: Any, frame: pd.DataFrame) -> float:
    """Median milliseconds of warm pyfunc predict calls (k=10)."""
    for _ in range(5):
        model.predict(frame, params={"k": 10})
    times = []
    for _ in range(CALLS):
        t0 = time.perf_counter()
        model.predict(frame, params={"k": 10})
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="recdash-bench-features-") as tmp:
        os.chdir(tmp)
        mlflow.set_tracking_uri(f"sqlite:///{Path(tmp) / 'mlflow.db'}")
        ds = load_dataset("movielens-100k")
        split = split_dataset(ds, "random", (0.8, 0.1, 0.1), seed=42)
        plain = Interactions.from_frame(split.train)
        featured = Interactions.from_frame(split.train, builtin_features(ds, "user"), builtin_features(ds, "item"))

        without_s, plain_model = epoch_seconds(plain)
        with_s, feature_model = epoch_seconds(featured)
        print(f"epoch: {without_s:.3f}s without features, {with_s:.3f}s with", flush=True)

        uris = {}
        for name, model in (("plain", plain_model.snapshot()), ("features", feature_model.snapshot())):
            with mlflow.start_run(run_name=name) as run:
                log_model(model)
            uris[name] = f"runs:/{run.info.run_id}/model"
        loaded = {name: mlflow.pyfunc.load_model(uri) for name, uri in uris.items()}
        known = pd.DataFrame({"user_id": [str(plain_model.user_ids[10])]})
        new_user = pd.DataFrame({"user_id": ["new"], "age": [31], "gender": ["F"], "occupation": ["engineer"]})
        plain_ms = predict_ms(loaded["plain"], known)
        known_ms = predict_ms(loaded["features"], known)
        new_ms = predict_ms(loaded["features"], new_user)

    out = {
        "features_epoch_ratio": round(with_s / without_s, 3),
        "epoch_s_without_features": round(without_s, 4),
        "epoch_s_with_features": round(with_s, 4),
        "features_predict_ratio": round(known_ms / plain_ms, 3),
        "plain_predict_ms": round(plain_ms, 3),
        "known_user_predict_ms": round(known_ms, 3),
        "new_user_predict_ms": round(new_ms, 3),
        "user_feature_width": featured.user_features.encoding.width if featured.user_features else 0,
        "item_feature_width": featured.item_features.encoding.width if featured.item_features else 0,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
