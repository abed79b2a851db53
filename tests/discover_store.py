"""A store for the Discover tests, built once per module with real trainings (about 10 s):

* ``ml``: a popularity model on MovieLens-100K (run ``pop-ml``), registered as ``ml-recs`` v1 (alias challenger),
  and an ItemKNN model by ``bob`` on the same data (``knn-ml``), registered as ``ml-recs`` v2 (alias champion);
* ``syn``: two small rankfm runs on synthetic data, registered as ``syn-recs`` v1 (champion) and v2 (challenger);
* ``csv``: a ratings file trained on (``csv-old``, registered as ``csv-recs`` v1), then changed (rows appended) and
  trained on again (``csv-new``): the dataset's digest changed between the two runs;
* ``foreign``: a run another tool logged, by ``alice``, with no dataset input, a param and a tag.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from stores import sqlite_store

from recdash import registry
from recdash.config import TrainConfig
from recdash.models.rankfm import Hyperparams
from recdash.training.run import load_data, train

SMALL = {"n_users": 120, "n_items": 80, "n_interactions": 3000}


def _ratings(path: Path, users: int) -> None:
    lines = ["user_id,item_id,rating"]
    lines += [f"u{u},i{(u * 7 + k) % 40},{1 + (u + k) % 5}" for u in range(users) for k in range(12)]
    path.write_text("\n".join(lines) + "\n")


def build_discover_store(root: Path) -> dict[str, str]:
    """Fill ``root/mlflow.db`` (artifacts beside it); returns run name -> run id plus ``uri`` and the digests."""
    ids: dict[str, str] = {}
    with sqlite_store(root) as uri:
        client = MlflowClient(uri)
        ml = train(TrainConfig(dataset="movielens-100k", model="popularity", experiment="ml", run_name="pop-ml"))
        ids["pop-ml"] = ml.run_id
        registry.register_run_model(ml.run_id, "ml-recs", client=client)
        knn = TrainConfig(
            dataset="movielens-100k", model="itemknn", experiment="ml", run_name="knn-ml", tags={"mlflow.user": "bob"}
        )
        ids["knn-ml"] = train(knn).run_id
        registry.register_run_model(ids["knn-ml"], "ml-recs", client=client)
        registry.set_alias("ml-recs", "challenger", 1, client=client)
        registry.set_alias("ml-recs", "champion", 2, client=client)

        base = TrainConfig(
            dataset="synthetic",
            dataset_options=SMALL,
            epochs=3,
            patience=0,
            experiment="syn",
            hparams=Hyperparams(factors=8, max_samples=10),
        )
        data = load_data(base)
        for name, seed in (("syn-a", 1), ("syn-b", 2)):
            ids[name] = train(TrainConfig(**{**base.__dict__, "run_name": name, "seed": seed}), data).run_id
            registry.register_run_model(ids[name], "syn-recs", client=client)
        registry.set_alias("syn-recs", "champion", 1, client=client)
        registry.set_alias("syn-recs", "challenger", 2, client=client)

        ratings = root / "ratings.csv"
        _ratings(ratings, 60)
        csv = TrainConfig(dataset=str(ratings), model="popularity", experiment="csv", run_name="csv-old")
        ids["csv-old"] = train(csv).run_id
        registry.register_run_model(ids["csv-old"], "csv-recs", client=client)
        _ratings(ratings, 80)  # the file changes: same name and path, new digest
        ids["csv-new"] = train(TrainConfig(**{**csv.__dict__, "run_name": "csv-new"})).run_id

        experiment = client.create_experiment("foreign")
        with mlflow.start_run(experiment_id=experiment, run_name="lgbm-ranker", tags={"mlflow.user": "alice"}) as run:
            mlflow.log_params({"learner": "lightgbm", "num_leaves": 31})
            mlflow.set_tag("team", "ads-ranking")
            mlflow.log_metric("val_auc", 0.71)
        ids["lgbm-ranker"] = run.info.run_id
        ids["uri"] = uri
    return ids
