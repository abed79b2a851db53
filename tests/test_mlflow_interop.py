"""What MLflow itself (its API and UI) and catalogs read from a store recdash wrote (issue 22): registered versions
linked to their logged model both ways, registry and annotation calls that touch only the store they are given and
leave nothing behind when they fail, the model's own metrics on its logged model, the experiment kind MLflow's UI
opens on, and the saved format the running recdash checks. Real SQLite stores, real (tiny) trainings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from stores import sqlite_store

from recdash import registry
from recdash.models.rankfm import Hyperparams
from recdash.train import TrainConfig, load_data, train

TINY = {"n_users": 60, "n_items": 40, "n_interactions": 900}
MODEL_VERSIONS_TAG = "mlflow.modelVersions"  # what mlflow.register_model writes on the logged model


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two runs with a logged model and one without, trained once; each test gets a copy of the database."""
    root = tmp_path_factory.mktemp("interop_template")
    with sqlite_store(root):
        base = TrainConfig(
            dataset="synthetic", dataset_options=TINY, epochs=1, patience=0, experiment="interop",
            hparams=Hyperparams(factors=4, max_samples=5),
        )  # fmt: skip
        data = load_data(base)
        a = train(TrainConfig(**{**base.__dict__, "run_name": "a"}), data).run_id
        b = train(TrainConfig(**{**base.__dict__, "run_name": "b", "seed": 7}), data).run_id
        bare = train(TrainConfig(**{**base.__dict__, "run_name": "bare", "log_model": False}), data).run_id
    return {"db": root / "mlflow.db", "a": a, "b": b, "bare": bare}


@pytest.fixture
def store(template: dict[str, object], tracking_store: str, tmp_path: Path) -> dict[str, object]:
    shutil.copy(template["db"], tmp_path / "mlflow.db")  # type: ignore[arg-type]
    return {**template, "uri": tracking_store, "client": MlflowClient(tracking_store)}


def _model_id(client: MlflowClient, run_id: str) -> str:
    return client.get_run(run_id).data.tags["recdash.model_id"]


def test_registering_links_the_logged_model_the_way_mlflow_register_model_does(store: dict[str, object]) -> None:
    """MLflow's UI shows a logged model as registered, with its versions, from the logged model's
    ``mlflow.modelVersions`` tag; recdash must leave it exactly as ``mlflow.register_model`` does."""
    client: MlflowClient = store["client"]  # type: ignore[assignment]
    a, b = str(store["a"]), str(store["b"])
    for name in ("first", "second"):  # the same two registrations of one logged model each: MLflow's, recdash's
        mlflow.register_model(f"runs:/{a}/model", f"{name}-by-mlflow")
        registry.register_run_model(b, f"{name}-by-recdash", client=client)
    by_mlflow = client.get_logged_model(_model_id(client, a)).tags[MODEL_VERSIONS_TAG]
    by_recdash = client.get_logged_model(_model_id(client, b)).tags[MODEL_VERSIONS_TAG]
    assert json.loads(by_mlflow) == [
        {"name": "first-by-mlflow", "version": 1},
        {"name": "second-by-mlflow", "version": 1},
    ]
    assert by_recdash == by_mlflow.replace("-by-mlflow", "-by-recdash")  # the same JSON, byte for byte

    # and the versions themselves: the same source (the logged model), run and status
    ours = client.get_model_version("first-by-recdash", "1")
    theirs = client.get_model_version("first-by-mlflow", "1")
    assert (ours.source, ours.run_id, ours.status) == (f"models:/{_model_id(client, b)}", b, "READY")
    assert (theirs.source, theirs.run_id, theirs.status) == (f"models:/{_model_id(client, a)}", a, "READY")
