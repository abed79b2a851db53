"""The Recommend page in Streamlit's AppTest over a real store with two trained models."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from stores import sqlite_store
from streamlit.testing.v1 import AppTest

from recdash.model import Hyperparams
from recdash.train import TrainConfig, TrainResult, train

APP = str(Path(__file__).parents[1] / "app.py")
SMALL = {"n_users": 120, "n_items": 80, "n_interactions": 3000}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Runs 'alpha' (registered as recs@champion) and 'beta' with models, trained once for the module."""
    root = tmp_path_factory.mktemp("store")
    with sqlite_store(root) as uri:
        runs = {}
        for name, hp in (("alpha", Hyperparams(factors=8, max_samples=10)), ("beta", Hyperparams(factors=4))):
            runs[name] = train(
                TrainConfig(
                    dataset="synthetic", dataset_options=SMALL, epochs=2, patience=0, experiment="page",
                    run_name=name, hparams=hp, registered_model_name="recs" if name == "alpha" else None,
                )
            )  # fmt: skip
        MlflowClient(uri).set_registered_model_alias("recs", "champion", "1")
    return {"uri": uri, **runs}


@pytest.fixture
def page(store: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(store["uri"]))
    mlflow.set_tracking_uri(str(store["uri"]))
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/recommend.py")  # through the router, so links to other pages resolve
    return at


def tables(page: AppTest, column: str) -> list[pd.DataFrame]:
    """Shown tables that have ``column``, top to bottom (display dataframes carry no key in AppTest):
    "weight" = history, "score" = recommendations (the page's list, then A and B when comparing),
    "similarity" = similar items."""
    return [d.value for d in page.dataframe if column in d.value.columns]


def run_of(store: dict[str, object], name: str) -> TrainResult:
    result = store[name]
    assert isinstance(result, TrainResult)
    return result


def test_pick_a_run_and_a_known_user_shows_titles_history_and_hits(page: AppTest, store: dict[str, object]) -> None:
    alpha = run_of(store, "alpha")
    page.query_params["run"] = alpha.run_id
    page.run()
    assert not page.exception and not page.error
    assert "alpha" in page.selectbox(key="a_run").format_func(page.selectbox(key="a_run").value)
    user = str(alpha.recommender.user_ids[5])
    page.text_input(key="user_id").input(user)
    page.number_input(key="k").set_value(7)
    page.run()
    assert not page.exception and not page.error and not page.warning
    recs = tables(page, "score")[0]
    assert len(recs) == 7 and list(recs["rank"]) == list(range(1, 8))
    assert recs["title"].str.startswith("The ").all()
    assert list(recs["item_id"]) == list(alpha.recommender.recommend([user], k=7)["item_id"])
    assert set(recs["hit"]) <= {"✓", ""}
    history = tables(page, "weight")[0]
    assert len(history) == len(alpha.recommender.seen_items(5)) and "title" in history.columns
    assert not set(history["item_id"]) & set(recs["item_id"])  # seen items are excluded by default
    assert any("held-out test items" in c.value for c in page.caption)


def test_unknown_user_sees_the_fallback_message_and_popular_items(page: AppTest, store: dict[str, object]) -> None:
    page.run()
    page.text_input(key="user_id").input("no-such-user")
    page.run()
    assert not page.exception and not page.error
    (warning,) = page.warning
    assert "no\\-such\\-user is not in this model's training data" in warning.value
    assert "most popular items" in warning.value
    recs = tables(page, "score")[0]
    assert len(recs) == 10 and recs["popularity"].is_monotonic_decreasing
    assert (recs["score"] == recs["popularity"]).all()
    assert any(s.value == "Popular items (fallback)" for s in page.subheader)


def test_compare_two_models_shows_both_lists_and_the_overlap(page: AppTest, store: dict[str, object]) -> None:
    alpha, beta = run_of(store, "alpha"), run_of(store, "beta")
    page.query_params["run"] = alpha.run_id
    user = str(alpha.recommender.user_ids[0])
    page.session_state["user_id"] = user
    page.run()
    page.toggle(key="compare").set_value(True)
    page.run()
    assert not page.exception and not page.error
    assert "beta" in page.selectbox(key="b_run").format_func(page.selectbox(key="b_run").value)
    a_items = set(tables(page, "score")[1]["item_id"])
    b_items = set(tables(page, "score")[2]["item_id"])
    assert b_items == set(beta.recommender.recommend([user], k=10)["item_id"])
    shared = len(a_items & b_items)
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["Overlap"] == f"{shared} of 10"
    assert metrics["Jaccard"] == f"{shared / len(a_items | b_items):.2f}"
    assert {"Hits, model A", "Hits, model B"} <= set(metrics)


def test_registered_alias_random_user_and_similar_items(page: AppTest, store: dict[str, object]) -> None:
    page.run()
    page.radio(key="a_source").set_value("Registered model")
    page.run()
    assert (
        page.selectbox(key="a_registered")
        .format_func(page.selectbox(key="a_registered").value)
        .startswith("recs@champion")
    )
    page.button(key="random_user").click()
    page.run()
    assert not page.exception and not page.error
    user = page.text_input(key="user_id").value
    assert user in set(run_of(store, "alpha").recommender.user_ids)
    similar = tables(page, "similarity")[0]
    assert len(similar) == 10 and "title" in similar.columns and similar["similarity"].is_monotonic_decreasing
    page.selectbox(key="user_pick").set_value("u0003")
    page.run()
    assert page.text_input(key="user_id").value == "u0003"


def test_a_model_that_cannot_load_is_an_error_message_not_a_trace(page: AppTest) -> None:
    page.query_params["model"] = "runs:/0123456789abcdef/model"
    page.run()
    assert not page.exception
    assert "No model at runs:/0123456789abcdef/model" in page.error[0].value
    page.text_input(key="a_uri").input("models:/recs@champion")
    page.run()
    assert not page.exception and not page.error
    assert any("Enter a user ID" in i.value for i in page.info)
