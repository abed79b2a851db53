"""Home, Runs and Compare pages driven in-process with AppTest over a real SQLite store holding recdash trainings
and runs logged by other tools (odd names, no metrics, inf, failed runs)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from stores import sqlite_store
from streamlit.testing.v1 import AppTest

from recdash.config import TrainConfig
from recdash.models.rankfm import Hyperparams
from recdash.training.run import load_data, train

APP = str(Path(__file__).parents[2] / "app.py")
TIMEOUT = 60
SMALL = {"n_users": 120, "n_items": 80, "n_interactions": 3000}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Three quick recdash trainings plus foreign runs, shared read-only by the tests of this module."""
    root = tmp_path_factory.mktemp("pages_store")
    with sqlite_store(root) as uri:
        base = TrainConfig(dataset="synthetic", dataset_options=SMALL, epochs=2, patience=0, experiment="recdash-pages")
        data = load_data(base)
        ours = []
        for i, (loss, lr) in enumerate([("warp", 0.05), ("bpr", 0.1), ("warp", 0.01)]):
            hparams = Hyperparams(factors=8, loss=loss, max_samples=10, learning_rate=lr)
            config = replace(base, hparams=hparams, run_name=f"ours-{i}", log_model=False)
            ours.append(train(config, data).run_id)
        client = MlflowClient(uri)
        exp = client.create_experiment("foreign <b>exp</b> *md*")
        foreign = []
        for i, (params, metrics, status) in enumerate(
            [
                ({"lr": "0.001", "model.kind": "<script>x</script>"}, {"val_ndcg_at_10": 0.3, "loss": 1.0}, "FINISHED"),
                ({"lr": "0.1", "model.kind": "b"}, {"val_ndcg_at_10": math.inf}, "FINISHED"),
                ({"lr": "oops"}, {}, "FAILED"),
            ]
        ):
            run = client.create_run(exp, run_name=f"foreign [{i}](http://x)")
            for key, value in params.items():
                client.log_param(run.info.run_id, key, value)
            for step in range(3):
                for key, value in metrics.items():
                    client.log_metric(run.info.run_id, key, value * (step + 1) / 3, step=step)
            client.set_terminated(run.info.run_id, status)
            foreign.append(run.info.run_id)
    return {"uri": uri, "ours": ours, "foreign": foreign}


@pytest.fixture
def use_store(store: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    uri = str(store["uri"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield store


def app(page: str | None = None, **query: str) -> AppTest:
    """The whole app (router included) on ``page``, run once."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at


def table(at: AppTest, *columns: str) -> pd.DataFrame:
    """The first st.dataframe showing all of ``columns`` (read-only tables carry no key in AppTest)."""
    for frame in at.dataframe:
        value = frame.value
        if set(columns) <= {*value.columns, value.index.name}:
            return value
    raise AssertionError(f"no table with columns {columns}: {[list(f.value.columns) for f in at.dataframe]}")


def texts(elements: object) -> str:
    """What the elements show: their markdown bodies with backslash escapes resolved."""
    return re.sub(r"\\(.)", r"\1", " ".join(str(e.value) for e in elements))  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------ Home


def test_home_shows_store_experiments_latest_and_best_runs(use_store: dict[str, object]) -> None:
    at = app()
    assert str(use_store["uri"]) in texts(at.code)
    experiments = table(at, "name", "run_count", "last_update")
    assert set(experiments["name"]) == {"recdash-pages", "foreign <b>exp</b> *md*"}
    assert experiments.set_index("name").loc["recdash-pages", "run_count"] == 3
    assert len(table(at, "run_name", "experiment", "status")) == 6
    assert at.selectbox(key="best_metric").value == "best_val_ndcg_at_10"  # at the epoch each run kept
    at.selectbox(key="best_metric").set_value("val_ndcg_at_10").run()  # the one the other tool's runs logged too
    best = table(at, "experiment", "run_name", "run_id").set_index("experiment")
    assert best.loc["recdash-pages", "run_id"] in use_store["ours"]
    assert best.loc["foreign <b>exp</b> *md*", "run_id"] == use_store["foreign"][0]  # inf is not "best"
    assert not [b for b in at.button if b.key == "create_demo"]


def test_empty_store_offers_demo_runs_that_appear_after_one_click(tracking_store: str) -> None:
    at = app()
    assert "no runs yet" in texts(at.info)
    at.button(key="create_demo").click().run(timeout=120)
    assert not at.exception, at.exception
    runs = MlflowClient(tracking_store).search_runs(
        [MlflowClient(tracking_store).get_experiment_by_name("recdash-demo").experiment_id]
    )
    assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs)
    assert "recdash-demo" in set(table(at, "name", "run_count", "last_update")["name"])


def test_unreachable_store_shows_the_reason_and_a_retry_button(monkeypatch: pytest.MonkeyPatch) -> None:
    uri = "http://127.0.0.1:9"  # discard port: connection refused at once
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    for page in (None, "pages/runs.py", "pages/compare.py"):
        at = app(page)
        assert uri in texts(at.error) and "refused" in texts(at.error)
        at.button(key="retry").click().run()
        assert not at.exception and at.error


# ------------------------------------------------------------------------------------------------ Runs


def test_runs_page_lists_filters_and_rejects_malformed_filters(use_store: dict[str, object]) -> None:
    at = app("pages/runs.py")
    table = at.dataframe(key="runs_table").value
    assert len(table) == 6
    assert "foreign [0](http://x)" in set(table["run_name"])

    at.text_input(key="filter").input("params.loss = 'bpr'").run()
    assert not at.exception
    assert at.dataframe(key="runs_table").value["run_name"].tolist() == ["ours-1"]

    at.text_input(key="filter").input("metrics.val_ndcg_at_10 >>> 0.2").run()
    assert not at.exception
    assert "Invalid filter" in texts(at.error)
    assert not at.dataframe  # nothing stale shown under the error

    at.text_input(key="filter").input("").run()
    at.multiselect(key="statuses").set_value(["FAILED"]).run()
    assert at.dataframe(key="runs_table").value["run_name"].tolist() == ["foreign [2](http://x)"]


def test_runs_table_links_to_the_mlflow_ui_when_configured(
    use_store: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECDASH_MLFLOW_UI_URL", "http://mlflow.example:5000/")
    table = app("pages/runs.py").dataframe(key="runs_table").value
    assert table["mlflow_ui"].str.match(r"http://mlflow\.example:5000/#/experiments/\d+/runs/[0-9a-f]{32}").all()


def test_selected_rows_go_to_session_url_and_compare(use_store: dict[str, object]) -> None:
    at = app("pages/runs.py")
    ids = list(at.session_state["runs_table_ids"])
    at.session_state["runs_table"] = {"selection": {"rows": [0, 2], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert at.session_state["selected_runs"] == [ids[0], ids[2]]
    assert at.query_params["runs"] == f"{ids[0]},{ids[2]}"
    assert "2 selected." in texts(at.caption)

    at.button(key="compare_selected").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Compare runs"
    assert at.query_params["runs"] == f"{ids[0]},{ids[2]}"
    assert table(at, "run", "experiment", "started", "run_id")["run_id"].tolist() == [ids[0], ids[2]]
    assert len(at.get("plotly_chart")) == 2  # the colour key and the open tab's final-metric bars


def test_selection_from_a_shared_link_survives_filtering(use_store: dict[str, object]) -> None:
    ours = list(use_store["ours"])
    at = app("pages/runs.py", runs=f"{ours[0]},{ours[1]}")
    assert at.session_state["selected_runs"] == [ours[0], ours[1]]
    table_ids = list(at.session_state["runs_table_ids"])
    assert sorted(at.session_state["runs_table"]["selection"]["rows"]) == sorted(
        [table_ids.index(ours[0]), table_ids.index(ours[1])]
    )
    at.text_input(key="filter").input("params.loss = 'warp'").run()  # ours-1 (bpr) drops out of the table
    assert not at.exception
    assert at.session_state["selected_runs"] == [ours[0], ours[1]]
    assert "1 of them not in this table" in texts(at.caption)

    at.button(key="clear_selection").click().run()
    assert not at.exception
    assert at.session_state["selected_runs"] == [] and "runs" not in at.query_params
    assert at.session_state["runs_table"]["selection"]["rows"] == []


# ------------------------------------------------------------------------------------------------ Compare


def test_compare_from_query_param_shows_charts_diff_and_csv(use_store: dict[str, object]) -> None:
    ours = list(use_store["ours"])
    at = app("pages/compare.py", runs=",".join([*ours, "0" * 32]))
    assert "1 selected run(s) were not found" in texts(at.warning)
    assert table(at, "run", "experiment", "started", "run_id")["run_id"].tolist() == ours
    assert len(at.get("plotly_chart")) == 2  # the colour key and Final metrics' bars: other tabs draw when opened
    assert at.get("download_button")
    assert not at.warning[1:]  # same data and split: no lineage warning

    drawn = {}
    for view, chart_keys in {
        "Learning curves": ["history_chart"],
        "Hyperparameters": ["parallel_chart"],
        "Importance": [],  # 3 runs: too few for fANOVA, said instead of drawn
        "What differs": [],
    }.items():
        at.session_state["view"] = view
        at.run()
        assert not at.exception, (view, at.exception)
        drawn[view] = sorted(c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart"))
        assert all(any(key in d for d in drawn[view]) for key in chart_keys), (view, drawn[view])
        if view == "Importance":
            assert "needs at least 10 runs" in texts(at.info), texts(at.info)
    diff = table(at, "ours-0", "ours-1", "ours-2")
    assert {"loss", "learning_rate"} <= set(diff.index) and "factors" not in diff.index
    assert list(diff.columns) == ["ours-0", "ours-1", "ours-2"]

    at.session_state["view"] = "Learning curves"
    at.run()
    at.radio(key="history_x").set_value("relative_time").run()
    at.slider(key="smoothing").set_value(0.6).run()
    at.selectbox(key="history_metric").set_value("epoch_seconds").run()
    assert not at.exception


def test_compare_foreign_runs_with_odd_data_and_lineage_warning(use_store: dict[str, object]) -> None:
    runs = [*use_store["foreign"], use_store["ours"][0]]
    at = app("pages/compare.py", runs=",".join(runs))
    assert not at.exception
    assert table(at, "run", "experiment", "started", "run_id")["run"].tolist()[0] == "foreign [0](http://x)"
    assert at.get("plotly_chart")


def test_compare_without_selection_shows_the_top_runs(use_store: dict[str, object]) -> None:
    at = app("pages/compare.py")
    assert "No runs selected" in texts(at.info)
    # the top runs of one dataset and split (ours: 3 scored runs), never ranked against the foreign experiment's
    shown = table(at, "run", "experiment", "started", "run_id")
    assert shown["run_id"].tolist() and set(shown["run_id"]) == set(use_store["ours"])
    options = at.selectbox(key="top_data").options
    at.selectbox(key="top_data").select_index(next(i for i, o in enumerate(options) if "foreign" in o)).run()
    assert table(at, "run", "experiment", "started", "run_id")["run"].tolist() == ["foreign [0](http://x)"]  # inf out
    at.selectbox(key="top_data").select_index(0).run()
    at.number_input(key="top_n").set_value(2).run()
    assert not at.exception
    assert len(table(at, "run", "experiment", "started", "run_id")) == 2
    assert at.get("plotly_chart")
