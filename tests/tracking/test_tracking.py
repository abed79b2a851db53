"""recdash.tracking against real MLflow stores: the SQL fast path, the public-API fallback, refresh, filters,
store checks and metric histories. Runs are made with the real MlflowClient; nothing is mocked."""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from stores import sqlite_store

from recdash.tracking import (
    BASE_COLUMNS,
    FilterError,
    RunsLoader,
    TrackingError,
    check_store,
    list_experiments,
    metric_histories,
    runs_with_models,
    tracking_uri,
)
from recdash.tracking.client import sql_store
from recdash.tracking.histories import _api_histories, _sql_histories


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


def _build_store(uri: str, *, with_model: bool = True) -> dict:
    """Two experiments of deliberately awkward, recdash-independent runs; returns their ids by role."""
    client = MlflowClient(uri)
    exp_a = client.create_experiment("alpha")
    exp_b = client.create_experiment("beta")
    now = int(time.time() * 1000)
    ids: dict[str, str] = {}

    def run(role: str, exp: str, *, metrics=(), params=(), tags=(), finish: str | None = "FINISHED") -> str:
        r = client.create_run(exp, run_name=role, start_time=now + len(ids) * 10)
        client.log_batch(
            r.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics],
            params=[Param(k, v) for k, v in params],
            tags=[RunTag(k, v) for k, v in tags],
        )
        if finish:
            client.set_terminated(r.info.run_id, finish, end_time=now + len(ids) * 10 + 2500)
        ids[role] = r.info.run_id
        return r.info.run_id

    parent = run("parent", exp_a, metrics=[("loss", 0.5), ("odd name-1/x:y", 3.0)], params=[("lr", "0.10")])
    run(
        "child",
        exp_a,
        metrics=[("loss", float("nan")), ("big", float("inf")), ("small", float("-inf"))],
        params=[("lr", "007"), ("code", "1e3")],
        tags=[("mlflow.parentRunId", parent), ("team", "x")],
    )
    run("bare", exp_a)  # no metrics, no params
    run("failed", exp_a, metrics=[("loss", 2.0)], params=[("only_failed", "yes")], finish="FAILED")
    run("running", exp_b, metrics=[("loss", 1.0)], params=[("lr", "1")], finish=None)
    run("legacy_model", exp_b, tags=[("mlflow.log-model.history", '[{"artifact_path": "model"}]')])
    gone = run("deleted", exp_a, metrics=[("loss", 9.0)], params=[("only_deleted", "1")])
    client.delete_run(gone)

    if not with_model:
        return {"a": exp_a, "b": exp_b, "ids": ids}
    # dataset lineage and an MLflow 3 logged model, through the fluent API like real training code
    mlflow.set_tracking_uri(uri)
    frame = pd.DataFrame({"user_id": ["1", "2"], "item_id": ["a", "b"]})
    dataset = mlflow.data.from_pandas(frame, name="toy-ratings", source="toy.csv")
    with mlflow.start_run(experiment_id=exp_b, run_name="with_model") as active:
        mlflow.log_input(dataset, context="training")
        mlflow.log_metric("loss", 0.25)
        mlflow.pyfunc.log_model(name="model", python_model=_Echo(), pip_requirements=["mlflow"])
    ids["with_model"] = active.info.run_id
    return {"a": exp_a, "b": exp_b, "ids": ids, "dataset_digest": dataset.digest}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One store for the read-only tests (building it logs a model, which takes a few seconds)."""
    root = tmp_path_factory.mktemp("shared")
    with sqlite_store(root) as uri:
        built = _build_store(uri)
    return {**built, "uri": uri}


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated SQLite store: copying it is much faster than creating a new one (migrations)."""
    path = tmp_path_factory.mktemp("empty") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def fresh_uri(empty_db: Path, tmp_path: Path) -> str:
    """A private, writable store for tests that change runs."""
    path = tmp_path / "fresh.db"
    shutil.copyfile(empty_db, path)
    return f"sqlite:///{path}"


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["duration_s"])


def test_flat_runs_table(shared: dict) -> None:
    store = shared
    ids = store["ids"]
    loader = RunsLoader(store["uri"])
    assert loader.uses_sql
    df = loader.load([store["a"], store["b"]])

    assert list(df.columns[: len(BASE_COLUMNS)]) == BASE_COLUMNS
    assert set(df["run_id"]) == set(ids.values()) - {ids["deleted"]}
    assert df["start_time"].is_monotonic_decreasing
    assert str(df["start_time"].dtype).startswith("datetime64") and str(df["start_time"].dt.tz) == "UTC"
    row = df.set_index("run_name")
    assert row.loc["child", "parent_run_id"] == ids["parent"]
    assert row.loc["parent", "parent_run_id"] is None
    assert row.loc["child", "params.lr"] == "007" and row.loc["child", "params.code"] == "1e3"
    assert row.loc["parent", "params.lr"] == "0.10"
    assert math.isnan(row.loc["child", "metrics.loss"])
    assert row.loc["child", "metrics.big"] == math.inf and row.loc["child", "metrics.small"] == -math.inf
    assert row.loc["parent", "metrics.odd name-1/x:y"] == 3.0
    assert row.loc["bare"][[c for c in df.columns if c.startswith(("params.", "metrics."))]].isna().all()
    assert row.loc["failed", "status"] == "FAILED" and row.loc["running", "status"] == "RUNNING"
    assert pd.isna(row.loc["running", "end_time"]) and row.loc["running", "duration_s"] >= 0
    assert row.loc["parent", "duration_s"] == pytest.approx(2.5)
    assert row.loc["child", "experiment"] == "alpha" and row.loc["running", "experiment"] == "beta"
    assert row.loc["with_model", "dataset_name"] == "toy-ratings"
    assert row.loc["with_model", "dataset_digest"] == store["dataset_digest"]
    assert row.loc["parent", "dataset_name"] is None
    assert row.loc["with_model", "has_model"] and row.loc["legacy_model", "has_model"]
    assert not row.loc["parent", "has_model"]
    assert set(runs_with_models(df)["run_name"]) == {"with_model", "legacy_model"}
    assert "tags.mlflow.log-model.history" not in df.columns and row.loc["child", "tags.team"] == "x"
    # keys logged only by the deleted run are not columns unless deleted runs are asked for
    assert "params.only_deleted" not in df.columns
    with_deleted = loader.load([store["a"], store["b"]], include_deleted=True)
    assert ids["deleted"] in set(with_deleted["run_id"]) and "params.only_deleted" in with_deleted.columns
    assert set(loader.load([store["b"]])["run_name"]) == {"running", "legacy_model", "with_model"}
    assert set(loader.load([store["a"], store["b"]], statuses=["RUNNING", "FAILED"])["run_name"]) == {
        "running",
        "failed",
    }


def test_fast_path_and_api_fallback_agree(shared: dict) -> None:
    store, tracking_store = shared, shared["uri"]
    exps = [store["a"], store["b"]]
    for kwargs in ({}, {"include_deleted": True}, {"filter_string": "metrics.loss < 1"}):
        fast = RunsLoader(tracking_store).load(exps, **kwargs)
        slow_loader = RunsLoader(tracking_store, fast_path=False)
        assert not slow_loader.uses_sql
        slow = slow_loader.load(exps, **kwargs)
        pd.testing.assert_frame_equal(_comparable(fast), _comparable(slow))
        np.testing.assert_allclose(fast["duration_s"], slow["duration_s"], atol=5)
    for fast_path in (True, False):  # "0" is the Default experiment, which has no runs
        empty = RunsLoader(tracking_store, fast_path=fast_path).load(["0"])
        assert empty.empty and list(empty.columns) == BASE_COLUMNS


def _bulk_runs(uri: str, experiment_id: str, n: int) -> None:
    """n cheap runs in one transaction through MLflow's own table definitions: create_run costs one SQLite commit
    (5-20 ms) per run, and the point here is reading, which goes through the real MLflow API below."""
    import uuid

    from mlflow.store.tracking.dbmodels.models import SqlParam, SqlRun
    from sqlalchemy import insert

    store = sql_store(MlflowClient(uri))
    t0 = int(time.time() * 1000)
    runs = [
        {
            "run_uuid": uuid.uuid4().hex,
            "name": f"r{i}",
            "source_type": "LOCAL",
            "source_name": "",
            "entry_point_name": "",
            "user_id": "u",
            "status": "FINISHED",
            "start_time": t0 + i,
            "end_time": t0 + i + 1,
            "source_version": "",
            "lifecycle_stage": "active",
            "artifact_uri": "",
            "experiment_id": int(experiment_id),
        }
        for i in range(n)
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(SqlRun.__table__), runs)
        conn.execute(
            insert(SqlParam.__table__), [{"run_uuid": r["run_uuid"], "key": "i", "value": r["name"]} for r in runs]
        )


def test_api_path_pages_past_1000_runs(fresh_uri: str) -> None:
    tracking_store = fresh_uri
    client = MlflowClient(tracking_store)
    exp = client.create_experiment("many")
    for i in range(5):
        client.create_run(exp, run_name=f"api{i}")
    _bulk_runs(tracking_store, exp, 1100)
    assert len(client.search_runs([exp])) == 1000  # the trap: one page only
    df = RunsLoader(tracking_store, fast_path=False).load([exp])
    assert len(df) == 1105 and df["run_id"].is_unique
    assert set(df["params.i"].dropna()) == {f"r{i}" for i in range(1100)}
    pd.testing.assert_frame_equal(_comparable(df), _comparable(RunsLoader(tracking_store).load([exp])))


@pytest.mark.parametrize("fast_path", [True, False])
def test_refresh_sees_new_finished_and_deleted_runs(fresh_uri: str, fast_path: bool) -> None:
    tracking_store = fresh_uri
    store = _build_store(tracking_store, with_model=False)
    client = MlflowClient(tracking_store)
    ids = store["ids"]
    exps = [store["a"], store["b"]]
    loader = RunsLoader(tracking_store, fast_path=fast_path)
    before = loader.load(exps)
    assert loader.load(exps).equals(before) or _comparable(loader.load(exps)).equals(_comparable(before))

    new = client.create_run(store["a"], run_name="new")
    client.log_metric(new.info.run_id, "loss", 0.01)
    client.log_metric(ids["running"], "loss", 0.75)
    client.set_terminated(ids["running"], "FINISHED")
    client.delete_run(ids["bare"])

    after = loader.load(exps).set_index("run_name")
    assert after.loc["new", "metrics.loss"] == 0.01 and after.loc["new", "status"] == "RUNNING"
    assert after.index[0] == "new"  # newest first
    assert after.loc["running", "status"] == "FINISHED" and after.loc["running", "metrics.loss"] == 0.75
    assert not pd.isna(after.loc["running", "end_time"])
    assert "bare" not in after.index
    assert len(after) == len(before)
    fresh = RunsLoader(tracking_store, fast_path=fast_path).load(exps)
    pd.testing.assert_frame_equal(_comparable(loader.load(exps)), _comparable(fresh))
    client.restore_run(ids["bare"])
    assert "bare" in set(loader.load(exps)["run_name"])


@pytest.mark.parametrize("fast_path", [True, False])
def test_filters_match_mlflow_search_runs(shared: dict, fast_path: bool) -> None:
    store, tracking_store = shared, shared["uri"]
    mlflow.set_tracking_uri(tracking_store)  # for mlflow.search_runs; the autouse fixture resets it
    exps = [store["a"], store["b"]]
    loader = RunsLoader(tracking_store, fast_path=fast_path)
    for filter_string in (
        "metrics.loss > 0.4",
        "metrics.loss != 0.5",  # NaN counts as != like in MLflow
        "params.lr = '007'",
        "tags.team = 'x' and metrics.big > 1",
        "attributes.status = 'RUNNING'",
        "run_name LIKE 'with%'",
        "dataset.name = 'toy-ratings'",
        "params.lr != '1'",
    ):
        expected = set(mlflow.search_runs(experiment_ids=exps, filter_string=filter_string)["run_id"])
        got = set(loader.load(exps, filter_string=filter_string)["run_id"])
        assert got == expected, filter_string
        assert expected, filter_string
    for bad in ("metrics.loss >> 1", "nonsense = 1", "params.lr = "):
        with pytest.raises(FilterError) as info:
            loader.load(exps, filter_string=bad)
        message = str(info.value)
        assert bad.strip() in message and "Traceback" not in message and len(message) < 600


def test_list_experiments(shared: dict) -> None:
    df = list_experiments(shared["uri"])
    assert list(df.columns) == ["experiment_id", "name", "lifecycle_stage", "run_count", "last_update", "tags"]
    assert all(isinstance(tags, dict) for tags in df["tags"])
    counts = df.set_index("name")["run_count"]
    assert counts["alpha"] == 4 and counts["beta"] == 3 and counts["Default"] == 0
    assert str(df["last_update"].dt.tz) == "UTC"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_store_unreachable_server_fails_fast() -> None:
    uri = f"http://127.0.0.1:{_free_port()}"
    t = time.perf_counter()
    with pytest.raises(TrackingError) as info:
        check_store(uri)
    assert time.perf_counter() - t < 10
    assert uri in str(info.value) and "connection refused" in str(info.value)


def test_check_store_legacy_file_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "legacy" / "mlruns"
    uri = root.as_uri()
    script = (
        "import mlflow\n"
        f"mlflow.set_tracking_uri({uri!r})\n"
        "with mlflow.start_run(run_name='old'):\n"
        "    mlflow.log_param('lr', '0.1'); mlflow.log_metric('loss', 0.5)\n"
    )
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=tmp_path, timeout=120)

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    for candidate in (uri, str(root)):
        with pytest.raises(TrackingError) as info:
            check_store(candidate)
        message = str(info.value)
        assert "MLFLOW_ALLOW_FILE_STORE=true" in message and "mlflow migrate-filestore --source" in message

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    check_store(uri)
    df = RunsLoader(uri).load(["0"])
    assert list(df["run_name"]) == ["old"] and df.loc[0, "params.lr"] == "0.1" and df.loc[0, "metrics.loss"] == 0.5


def test_check_store_ok_for_sqlite(tracking_store: str, fresh_uri: str) -> None:
    assert tracking_uri() == tracking_store
    check_store(fresh_uri)


def test_metric_histories_downsample(fresh_uri: str) -> None:
    tracking_store = fresh_uri
    client = MlflowClient(tracking_store)
    exp = client.create_experiment("curves")
    long_run = client.create_run(exp).info.run_id
    short_run = client.create_run(exp).info.run_id
    values = np.sin(np.arange(2000) / 50.0)
    values[777] = 5.0  # a spike that even downsampling must keep
    values[1234] = -5.0
    for start in range(0, 2000, 1000):
        client.log_batch(
            long_run, metrics=[Metric("loss", float(values[i]), 1000 + i, i) for i in range(start, start + 1000)]
        )
    client.log_batch(short_run, metrics=[Metric("loss", float(i), 1000 + i, i) for i in range(10)])
    client.log_batch(short_run, metrics=[Metric("acc", 0.5, 1000, 0), Metric("acc", float("nan"), 1001, 1)])
    for run_id in (long_run, short_run):
        client.set_terminated(run_id)

    df = metric_histories([long_run, short_run], ["loss", "acc"], max_points=100, uri=tracking_store)
    assert list(df.columns) == ["run_id", "key", "step", "timestamp", "value"]
    long = df[(df["run_id"] == long_run) & (df["key"] == "loss")]
    assert 90 <= len(long) <= 100 and long["step"].is_monotonic_increasing
    assert {0, 1999, 777, 1234} <= set(long["step"])
    short = df[(df["run_id"] == short_run) & (df["key"] == "loss")]
    assert list(short["step"]) == list(range(10)) and list(short["value"]) == [float(i) for i in range(10)]
    acc = df[(df["run_id"] == short_run) & (df["key"] == "acc")]
    assert len(acc) == 2 and math.isnan(acc["value"].iloc[1])
    assert set(df.loc[df["run_id"] == long_run, "key"]) == {"loss"}

    # the SQL read and the concurrent API read see the same raw points
    store = sql_store(client)
    key_cols = ["run_id", "key", "step", "timestamp"]
    sql = _sql_histories(store, [long_run, short_run], ["loss", "acc"]).sort_values(key_cols).reset_index(drop=True)
    api = _api_histories(client, [long_run, short_run], ["loss", "acc"]).sort_values(key_cols).reset_index(drop=True)
    assert len(sql) == len(api) == 2012
    np.testing.assert_array_equal(sql["step"].astype(int), api["step"].astype(int))
    np.testing.assert_allclose(sql["value"].astype(float), api["value"].astype(float), equal_nan=True)
    assert metric_histories([], ["loss"]).empty
