"""A run evaluated at another cut-off (``--k 20``) shows on every page what a ``--k 10`` run shows: its key metrics,
segment bars, beyond-accuracy table, the references on its data and its ratio to them. The views read k from the
runs (the metric-name grammar of recdash.contract), never assume 10. Real trainings on a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import pytest
from apps import figures, open_tab, page, table, texts
from stores import sqlite_store

from recdash.config import TrainConfig
from recdash.training.references import train_references
from recdash.training.run import load_data, train

SMALL = {"n_users": 120, "n_items": 80, "n_interactions": 3000}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("cutoff_store")
    with sqlite_store(root) as uri:
        config = TrainConfig(
            dataset="synthetic", dataset_options=SMALL, epochs=2, patience=0, k=20, experiment="k20",
            hparams={"factors": 8, "max_samples": 10}, run_name="rankfm-k20",
        )  # fmt: skip
        data = load_data(config)
        run = train(config, data).run_id
        refs = train_references(config.replace(run_name="references"), data)
    return {"uri": uri, "run": run, "refs": [r.run_id for r in refs.runs.values()], "parent": refs.parent_run_id}


@pytest.fixture
def use_store(store: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(store["uri"]))
    mlflow.set_tracking_uri(str(store["uri"]))
    yield store


def test_the_runs_logged_metrics_at_k_20_only(use_store: dict[str, object]) -> None:
    metrics = mlflow.MlflowClient().get_run(str(use_store["run"])).data.metrics
    assert "test_ndcg_at_20" in metrics and "test_recall_at_20_q1" in metrics and "test_gini_at_20" in metrics
    assert not [m for m in metrics if m.endswith("_at_10") or "_at_10_" in m]


def test_runs_page_measures_the_run_against_the_references_at_its_own_k(use_store: dict[str, object]) -> None:
    at = page("runs")
    shown = table(at, "run_name", "vs_best_reference")
    ours = shown[shown["run_name"] == "rankfm-k20"]
    assert len(ours) == 1 and ours["vs_best_reference"].notna().all() and ours["vs_best_reference"].iloc[0] > 0
    assert "metrics.test_ndcg_at_20" in (at.session_state["columns"] or []) or any(
        "_at_20" in c for c in at.session_state["columns"]
    )


def test_compare_shows_k_20_bars_references_segments_and_beyond_accuracy(use_store: dict[str, object]) -> None:
    ids = [str(use_store["run"]), *use_store["refs"]]  # type: ignore[misc]
    at = page("compare", runs=",".join(ids))
    assert set(at.multiselect(key="bar_metrics").value) == {"test_ndcg_at_20", "test_recall_at_20"}
    bars = figures(at)["bars_chart"]
    assert {t["name"] for t in bars["data"] if t.get("type") == "bar"} >= {"rankfm-k20"}
    refs = table(at, "× best reference (test_ndcg_at_20)")
    assert refs["× best reference (test_ndcg_at_20)"].notna().any()
    open_tab(at, "Segments")
    assert "logged no per-segment metrics" not in texts(at, "info")
    assert at.selectbox(key="segment_metric").options == ["test_recall_at_20", "test_ndcg_at_20"]
    segments = figures(at)["segment_chart"]
    assert any(t.get("type") == "bar" and t["name"] == "rankfm-k20" for t in segments["data"])
    beyond = table(at, "test_gini_at_20")
    assert beyond["test_novelty_at_20"].notna().all()


def test_discover_ranks_and_shows_the_run_by_its_key_metric_at_20(use_store: dict[str, object]) -> None:
    digest = mlflow.MlflowClient().get_run(str(use_store["run"])).data.params["dataset_digest"]
    at = page("discover", dataset=digest)
    assert at.selectbox(key="board_metric").value == "test_ndcg_at_20"
    board = table(at, "rank", "test_ndcg_at_20")
    assert "rankfm-k20" in set(board["run"])
    at = page("discover", experiment=mlflow.get_experiment_by_name("k20").experiment_id)
    runs = table(at, "key metric", "value")
    ours = runs[runs["run"] == "rankfm-k20"]
    assert ours["key metric"].tolist() == ["test_ndcg_at_20"] and ours["value"].notna().all()
