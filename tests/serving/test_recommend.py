"""recdash.recommend on a real store: listing and loading models (and every way loading fails), top-k through the
pyfunc contract, the rebuilt split behind history and hits, and the display helpers on hand-checkable data."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import schema
from stores import sqlite_store

from recdash import recommend as rx
from recdash.config import TrainConfig
from recdash.models import Recommender
from recdash.models.rankfm import Hyperparams, RankFM
from recdash.serving import log_model
from recdash.training.run import train
from recdash.views import recommend as rv

SMALL = {"n_users": 120, "n_items": 80, "n_interactions": 3000}


def small_config(**overrides: object) -> TrainConfig:
    base: dict[str, object] = dict(
        dataset="synthetic", dataset_options=SMALL, epochs=2, patience=0, experiment="recs",
        hparams=Hyperparams(factors=8, max_samples=10),
    )  # fmt: skip
    base.update(overrides)
    return TrainConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two trained models (one registered with alias champion) and a run without a model, in one real store."""
    root = tmp_path_factory.mktemp("store")
    with sqlite_store(root) as uri:
        a = train(small_config(run_name="alpha", registered_model_name="recs"))
        b = train(small_config(run_name="beta", hparams=Hyperparams(factors=4, loss="bpr")))
        mlflow.set_experiment("recs")
        with mlflow.start_run(run_name="no-model"):
            mlflow.log_param("x", 1)
        MlflowClient(uri).set_registered_model_alias("recs", "champion", "1")
    return {"uri": uri, "a": a, "b": b}


@pytest.fixture
def shared(store: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Point this test at the shared store (the autouse fixture restores its own afterwards)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(store["uri"]))
    mlflow.set_tracking_uri(str(store["uri"]))
    return store


def tiny_recommender() -> Recommender:
    """3 users x 4 items; item factors chosen so i1's nearest neighbour is i2 and u1 has seen i1."""
    return RankFM.from_factors(
        user_ids=["u1", "u2", "u3"],
        item_ids=["i1", "i2", "i3", "i4"],
        user_factors=np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
        item_factors=np.array([[1.0, 0.1], [0.9, 0.2], [0.0, 1.0], [-1.0, 0.0]]),
        item_bias=np.zeros(4),
        seen_indptr=np.array([0, 1, 2, 3]),
        seen_indices=np.array([0, 2, 3]),
        item_popularity=np.array([5, 1, 7, 2]),
    )


# ---- listing ---------------------------------------------------------------------------------------------------


def test_model_sources_lists_runs_with_models_only(shared: dict[str, object]) -> None:
    sources = rx.model_sources()
    a, b = shared["a"], shared["b"]
    assert set(sources["run_id"]) == {a.run_id, b.run_id}  # type: ignore[attr-defined]
    assert list(sources["run_name"]) == ["beta", "alpha"]  # newest first
    row = sources.iloc[1]
    assert row["experiment"] == "recs" and row["key_metric"] == "test_ndcg_at_10"
    # two runs may share a name: the short run id and the start time tell them apart (issue 11, finding 13)
    started = row["start_time"].strftime("%Y-%m-%d %H:%M")
    assert row["label"].startswith(f"recs / alpha ({a.run_id[:8]}, {started}) / model — test_ndcg_at_10 ")  # type: ignore[attr-defined]
    assert row["key_metric_value"] == pytest.approx(a.metrics["test_ndcg_at_10"])  # type: ignore[attr-defined]
    assert row["model_uri"].startswith("models:/m-")


def test_registered_sources_offer_versions_and_aliases(shared: dict[str, object]) -> None:
    reg = rx.registered_sources()
    assert list(reg["model_uri"]) == ["models:/recs@champion", "models:/recs/1"]
    assert set(reg["run_id"]) == {shared["a"].run_id}  # type: ignore[attr-defined]
    assert rx.resolve_alias("models:/recs@champion") == "models:/recs/1"
    assert rx.resolve_alias("models:/recs@nope") == "models:/recs@nope"  # load() reports it
    loaded = rx.load("models:/recs@champion")
    assert loaded.run_id == shared["a"].run_id and loaded.is_recdash  # type: ignore[attr-defined]


def test_empty_store_lists_nothing() -> None:
    assert rx.model_sources().empty and rx.registered_sources().empty


# ---- loading and recommending ---------------------------------------------------------------------------------


def test_recommend_through_predict_matches_the_trained_model(shared: dict[str, object]) -> None:
    a = shared["a"]
    loaded = rx.load(f"runs:/{a.run_id}/model")  # type: ignore[attr-defined]
    user = str(loaded.user_ids[3])
    recs = rx.recommend(loaded, user, k=5)
    expected = a.recommender.recommend([user], k=5)  # type: ignore[attr-defined]
    assert list(recs["item_id"]) == list(expected["item_id"]) and list(recs["rank"]) == [1, 2, 3, 4, 5]
    assert not rx.is_fallback(recs)
    context = rx.run_context(loaded.run_id)  # type: ignore[arg-type]
    assert not set(recs["item_id"]) & set(context.history(user)["item_id"])  # seen items excluded by default
    with_seen = rx.recommend(loaded, user, k=80, exclude_seen=False)
    assert len(with_seen) == 80


def test_unknown_user_gets_the_popularity_fallback(shared: dict[str, object]) -> None:
    loaded = rx.load(f"runs:/{shared['a'].run_id}/model")  # type: ignore[attr-defined]
    recs = rx.recommend(loaded, "nobody", k=3)
    assert rx.is_fallback(recs)
    pop = loaded.recommender.item_popularity  # type: ignore[union-attr]
    assert list(recs["score"]) == sorted(pop, reverse=True)[:3]
    with pytest.raises(ValueError, match="k must be a positive integer"):
        rx.recommend(loaded, "nobody", k=0)
    with pytest.raises(rx.PredictionError, match="Enter a user ID"):
        rx.recommend(loaded, "  ", k=3)


def test_run_context_rebuilds_the_exact_split(shared: dict[str, object]) -> None:
    a = shared["a"]
    context = rx.run_context(a.run_id)  # type: ignore[attr-defined]
    assert context.warnings == ()
    params = MlflowClient().get_run(a.run_id).data.params  # type: ignore[attr-defined]
    assert context.dataset.digest == params["dataset_digest"]
    rec = a.recommender  # type: ignore[attr-defined]
    user = str(rec.user_ids[0])
    seen = set(rec.item_ids[rec.seen_items(0)])
    history = context.history(user)
    assert set(history["item_id"]) == seen and len(history) == len(seen)
    assert history["time"].is_monotonic_decreasing and {"title", "genres", "year"} <= set(history.columns)
    test = context.split.test
    assert context.test_items(user) == set(test.loc[test["user_id"] == user, "item_id"])


def test_dataset_arguments_from_params() -> None:
    name, kwargs = rx.dataset_arguments(
        {"dataset": "csv", "data_path": "/d/r.csv", "min_rating": "4.0", "dataset_user_col": "1",
         "dataset_weight_col": "None", "dataset_digest": "abc", "dataset_rows": "10"}
    )  # fmt: skip
    assert name == "csv"
    assert kwargs == {"path": "/d/r.csv", "min_rating": 4.0, "user_col": "1", "weight_col": None}
    assert rx.dataset_arguments({"dataset": "synthetic", "dataset_n_users": "5", "min_rating": "None"}) == (
        "synthetic",
        {"n_users": 5},
    )
    with pytest.raises(rx.ContextError, match="no 'dataset' param"):
        rx.dataset_arguments({"factors": "8"})


def test_changed_data_file_is_a_warning(tmp_path: Path) -> None:
    from recdash.data import make_synthetic

    path = tmp_path / "ratings.csv"
    make_synthetic(n_users=60, n_items=40, n_interactions=900).interactions.to_csv(path, index=False)
    result = train(
        small_config(dataset="csv", data_path=str(path), dataset_options={"timestamp_col": "timestamp"}, epochs=1)
    )
    assert rx.run_context(result.run_id).warnings == ()
    frame = pd.read_csv(path)
    frame.iloc[:-5].to_csv(path, index=False)
    (note,) = rx.run_context(result.run_id).warnings
    assert "changed since this run was trained" in note
    path.unlink()
    with pytest.raises(rx.ContextError, match="cannot be rebuilt"):
        rx.run_context(result.run_id)


# ---- models that are not recdash's, and models that cannot load --------------------------------------------------


def _log_user_model(rec: Recommender) -> str:
    with mlflow.start_run():
        return log_model(rec).model_uri


def test_model_logged_by_user_code_works_without_run_context() -> None:
    uri = _log_user_model(tiny_recommender())
    assert uri in set(rx.model_sources()["model_uri"])
    loaded = rx.load(uri)
    assert loaded.is_recdash
    assert list(rx.recommend(loaded, "u1", k=2)["item_id"]) == ["i2", "i3"]  # i1 seen; scores 0.9, 0.0, -1
    assert list(rx.recommend(loaded, "u1", k=2, exclude_seen=False)["item_id"]) == ["i1", "i2"]
    with pytest.raises(rx.ContextError, match="no 'dataset' param"):
        rx.run_context(loaded.run_id)  # type: ignore[arg-type]
    assert list(rx.similar_items(loaded, "i1", k=1)["item_id"]) == ["i2"]
    with pytest.raises(rx.PredictionError, match="not in this model's catalogue"):
        rx.similar_items(loaded, "nope")
    assert list(rx.known_users(loaded)) == ["u1", "u2", "u3"]


class FixedTopK(mlflow.pyfunc.PythonModel):
    """A hand-written contract model: the same two items for everyone, in the contract's columns."""

    def predict(self, context, model_input, params=None):
        k = (params or {}).get("k", 10)
        rows = [(u, r + 1, f"x{r}", 1.0 - r) for u in model_input["user_id"] for r in range(min(k, 2))]
        return pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score"])


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


def test_foreign_contract_model_works() -> None:
    signature = ModelSignature(
        inputs=schema.Schema([schema.ColSpec("string", "user_id")]),
        outputs=schema.Schema(
            [schema.ColSpec("string", "user_id"), schema.ColSpec("long", "rank"),
             schema.ColSpec("string", "item_id"), schema.ColSpec("double", "score")]
        ),
        params=schema.ParamSchema([schema.ParamSpec("k", "long", 10)]),
    )  # fmt: skip
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="fixed", python_model=FixedTopK(), signature=signature, pip_requirements=["mlflow"]
        )
    loaded = rx.load(info.model_uri)
    assert not loaded.is_recdash and loaded.params == {"k"}
    recs = rx.recommend(loaded, "anyone", k=1)
    assert list(recs["item_id"]) == ["x0"] and list(recs["source"]) == ["model"]
    with pytest.raises(rx.PredictionError, match="only recdash models"):
        rx.similar_items(loaded, "x0")


def test_pyfunc_without_the_contract_says_what_the_page_needs() -> None:
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="echo", python_model=Echo(), input_example=pd.DataFrame({"x": [1]}), pip_requirements=["mlflow"]
        )
    with pytest.raises(rx.ModelLoadError, match="with no 'user_id'") as err:
        rx.load(info.model_uri)
    assert "params 'k'" in str(err.value) and "rank, item_id, score" in str(err.value)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="nosig", python_model=Echo(), pip_requirements=["mlflow"])
    with pytest.raises(rx.ModelLoadError, match="no signature"):
        rx.load(info.model_uri)


def test_foreign_flavor_is_a_clear_message(tmp_path: Path) -> None:
    model_dir = tmp_path / "foreign"
    model_dir.mkdir()
    mlflow.models.Model(flavors={"some_framework": {"version": "1"}}).save(model_dir / "MLmodel")
    with pytest.raises(rx.ModelLoadError, match="not a pyfunc model"):
        rx.load(str(model_dir), allow_local_paths=True)


def _artifact_dir(model_uri: str) -> Path:
    model = MlflowClient().get_logged_model(model_uri.removeprefix("models:/"))
    return Path(model.artifact_location.removeprefix("file://"))


def test_missing_artifacts_and_broken_files_are_clear_messages() -> None:
    uri = _log_user_model(tiny_recommender())
    weights = _artifact_dir(uri) / "artifacts" / "weights" / "weights.npz"
    weights.write_bytes(b"not an npz file")
    with pytest.raises(rx.ModelLoadError, match="broken") as broken:
        rx.load(uri)
    assert not isinstance(broken.value, rx.ModelFilesMissing)  # an error, not a note
    # files left out (a git export that ignores *.npz): named by the model's own folder, not MLflow's temp copy
    weights.unlink()
    with pytest.raises(rx.ModelFilesMissing) as partial:
        rx.load(uri)
    assert str(partial.value) == (
        f"The files of {uri} are incomplete: artifacts/weights/weights.npz is missing from its artifact location "
        f"{_artifact_dir(uri)}, so this model cannot be loaded."
    )
    shutil.rmtree(_artifact_dir(uri))
    with pytest.raises(rx.ModelFilesMissing, match="nothing is at its artifact location") as gone:
        rx.load(uri)
    assert str(_artifact_dir(uri)) in str(gone.value) and tempfile.gettempdir() + "/tmp" not in str(gone.value)
    for bad in ("runs:/0123456789abcdef/model", "models:/no-such-model@champion"):
        with pytest.raises(rx.ModelLoadError, match="No model at"):
            rx.load(bad)
    with pytest.raises(rx.ModelLoadError, match="Enter or pick a model URI"):
        rx.load(" ")


# ---- display helpers on hand-checkable data ------------------------------------------------------------------------


ITEMS = pd.DataFrame(
    {
        "item_id": ["i1", "i2", "i3"],
        "title": ["One", "Two", "Three"],
        "genres": ["A", "B", "A|B"],
        "year": [1990, 2000, 2010],
    }
)


def test_user_history_is_most_recent_first_with_metadata() -> None:
    train_df = pd.DataFrame(
        {"user_id": ["u1", "u1", "u2", "u1"], "item_id": ["i1", "i2", "i1", "i9"], "weight": [1.0, 2.0, 3.0, 4.0],
         "timestamp": [100, 300, 50, 200]}
    )  # fmt: skip
    history = rx.user_history(train_df, ITEMS, "u1")
    assert list(history["item_id"]) == ["i2", "i9", "i1"]
    assert list(history.columns) == ["item_id", "title", "genres", "year", "weight", "time"]
    assert history["title"].iloc[0] == "Two" and pd.isna(history["title"].iloc[1])  # i9 has no metadata
    assert history["time"].iloc[0] == pd.Timestamp(300, unit="s")
    no_time = rx.user_history(train_df.drop(columns="timestamp"), None, "u1")
    assert list(no_time["item_id"]) == ["i1", "i2", "i9"] and list(no_time.columns) == ["item_id", "weight"]
    assert rx.user_history(train_df, ITEMS, "nobody").empty


def test_decorate_marks_test_hits_and_popularity() -> None:
    recs = pd.DataFrame(
        {"user_id": "u1", "rank": [1, 2, 3], "item_id": ["i3", "i1", "i7"], "score": [0.9, 0.5, 0.1], "source": "model"}
    )
    out = rv.decorate(recs, ITEMS, pd.Series({"i1": 4, "i3": 2}), {"i1", "i7"})
    assert list(out.columns) == ["rank", "item_id", "title", "genres", "year", "score", "source", "popularity", "hit"]
    assert list(out["title"].fillna("")) == ["Three", "One", ""]
    assert list(out["popularity"]) == [2, 4, 0]
    assert list(out["hit"]) == [False, True, True]
    assert "hit" not in rv.decorate(recs).columns


def test_overlap_counts_and_jaccard() -> None:
    a = pd.DataFrame({"item_id": ["a", "b", "c"]})
    assert rv.overlap(a, ["b", "c", "d"]) == (2, 0.5)
    assert rv.overlap(a, a) == (3, 1.0)
    assert rv.overlap([], []) == (0, 0.0)


def test_item_labels_and_key_metric() -> None:
    assert rv.item_labels(["i1", "i9"], ITEMS) == {"i1": "One (i1)", "i9": "i9"}
    assert rx.key_metric({"val_ndcg_at_10": 0.2, "test_recall_at_10": 0.1, "test_ndcg_at_10": 0.3}) == (
        "test_ndcg_at_10",
        0.3,
    )
    assert rx.key_metric({"loss": 1.0}) == (None, None)


# ---- what the page calls a model, and its narrow tables (issue 11, findings 13 and 15) ------------------------------


def test_model_label_names_the_run_experiment_and_registered_version(shared: dict[str, object]) -> None:
    a, b = shared["a"], shared["b"]
    run_a = f"run alpha ({a.run_id[:8]}) · experiment recs"  # type: ignore[attr-defined]
    sources = rx.model_sources().set_index("run_id")
    logged = sources.loc[a.run_id, "model_uri"]  # type: ignore[attr-defined]
    assert logged.startswith("models:/m-") and rv.model_label(logged) == run_a
    assert rv.model_label(f"runs:/{a.run_id}/model") == run_a  # type: ignore[attr-defined]
    assert rv.model_label(f"runs:/{b.run_id}/model") == f"run beta ({b.run_id[:8]}) · experiment recs"  # type: ignore[attr-defined]
    assert rv.model_label("models:/recs@champion") == f"recs@champion (v1) · {run_a}"
    assert rv.model_label("models:/recs/1") == f"recs v1 (champion) · {run_a}"
    # what the store cannot say more about stays the URI (loading reports the problem)
    for uri in ("models:/recs@nope", "models:/nope/1", "runs:/0123456789abcdef/model", "file:///x", ""):
        assert rv.model_label(uri) == uri


def test_compact_puts_title_and_id_in_one_column() -> None:
    frame = pd.DataFrame(
        {"rank": [1, 2], "item_id": ["i1", "i9"], "title": ["One", None], "genres": ["A", None], "year": [1990, None]}
    )
    out = rv.compact(frame)
    assert list(out.columns) == ["rank", "item", "year"]
    assert list(out["item"]) == ["One (i1)", "i9"]
    assert list(rv.compact(frame, keep_id=True).columns) == ["rank", "item_id", "item", "year"]
    assert list(rv.compact(frame[["rank", "item_id"]]).columns) == ["rank", "item"]


def test_display_recs_marks_hits_shared_items_and_names_the_fallback_count() -> None:
    recs = pd.DataFrame(
        {"user_id": "u1", "rank": [1, 2, 3], "item_id": ["i3", "i1", "i7"], "score": [0.9, 0.5, 0.1], "source": "model"}
    )
    table = rv.decorate(recs, ITEMS, pd.Series({"i1": 4, "i3": 2}), {"i1", "i7"})
    shown = rv.display_recs(table)
    assert shown.attrs["shown"] == ["rank", "item", "year", "score", "popularity", "hit"]
    assert shown.attrs["labels"] == {}
    assert list(shown["item_id"]) == ["i3", "i1", "i7"]  # kept for lookups, shown through "item"
    assert list(shown["item"]) == ["Three (i3)", "One (i1)", "i7"] and list(shown["hit"]) == ["", "✓", "✓"]
    side = rv.display_recs(table, {"i3", "i7"}, popularity=False)
    assert side.attrs["shown"] == ["rank", "item", "year", "score", "hit", "in both"]
    assert list(side["in both"]) == ["✓", "", "✓"]

    # the popularity fallback's score is a count of training interactions: shown once, and called that
    popular = recs.assign(score=[486.0, 427.0, 5.0], source="popular")
    table = rv.decorate(popular, ITEMS, pd.Series({"i3": 486, "i1": 427, "i7": 5}), set())
    shown = rv.display_recs(table)
    assert shown.attrs["shown"] == ["rank", "item", "year", "score", "hit"]
    assert shown.attrs["labels"] == {"score": "training interactions"} and rv.FALLBACK_SCORE == "training interactions"
    assert list(shown["score"]) == [486, 427, 5]
    # a foreign model's fallback without known popularity keeps its own score, unrenamed
    assert rv.display_recs(rv.decorate(popular)).attrs["labels"] == {}
