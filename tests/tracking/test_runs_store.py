"""The Runs data load at team scale: concurrent REST first load (same frame as the sequential path) against a real
``mlflow server`` on a SQLite backend, direct read-only backend-database access, the on-disk snapshot across "app
starts" (fresh RunsLoaders over the same store and snapshot folder), and edits of finished runs seen on refresh.
Nothing is mocked: real SQLite stores, a real server process on loopback."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from pg_helpers import MlflowServer, start_mlflow_server

from recdash.tracking import RunsLoader, snapshot
from recdash.tracking.client import sql_store

T0 = 1_700_000_000_000


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["duration_s"])


def _awkward_runs(uri: str, exp: str) -> dict[str, str]:
    """A few runs through the real client: NaN/inf metrics, a note, a parent, a running and a deleted run."""
    client = MlflowClient(uri)
    ids = {}
    for i, role in enumerate(["parent", "child", "running", "deleted", "noted"]):
        run = client.create_run(exp, run_name=role, start_time=T0 + 10_000_000 + i)
        ids[role] = run.info.run_id
    client.log_batch(
        ids["child"],
        metrics=[Metric("loss", float("nan"), T0, 0), Metric("big", float("inf"), T0, 0)],
        params=[Param("lr", "007")],
        tags=[
            RunTag("mlflow.parentRunId", ids["parent"]),
            RunTag("mlflow.log-model.history", '[{"artifact_path": "m"}]'),
        ],
    )
    client.set_tag(ids["noted"], "mlflow.note.content", "first note")
    for role in ("parent", "child", "deleted", "noted"):
        client.set_terminated(ids[role], "FINISHED", end_time=T0 + 10_000_100)
    client.delete_run(ids["deleted"])
    return ids


def _bulk_runs(uri: str, exp: str, n: int, *, same_start: int = 0) -> list[str]:
    """n finished runs in one transaction through MLflow's own tables; the first same_start share one start time
    (a page of runs started in one millisecond cannot be split by time: the loader must follow the page token)."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from sqlalchemy import insert

    store = sql_store(MlflowClient(uri))
    runs, params, metrics, tags = [], [], [], []
    for i in range(n):
        rid = uuid.uuid4().hex
        start = T0 if i < same_start else T0 + (i * 7919) % 5_000_000  # uneven spread over time
        runs.append(
            dict(run_uuid=rid, name=f"b{i}" if i % 50 else "", source_type="LOCAL", source_name="", entry_point_name="",
                 user_id="u", status="FINISHED" if i % 9 else "FAILED", start_time=start, end_time=start + 5,
                 source_version="", lifecycle_stage="active", artifact_uri="", experiment_id=int(exp))
        )  # fmt: skip
        params += [{"run_uuid": rid, "key": "i", "value": str(i)}, {"run_uuid": rid, "key": f"p{i % 3}", "value": "x"}]
        metric = dict(run_uuid=rid, key="score", value=i / 7, timestamp=start, step=0, is_nan=False)
        metrics.append(metric)
        tags.append({"run_uuid": rid, "key": "group", "value": str(i % 4)})
        if i % 50 == 0:  # MLflow <= 1.29 runs: the name only in the tag
            tags.append({"run_uuid": rid, "key": "mlflow.runName", "value": f"tagged{i}"})
    with store.engine.begin() as conn:
        conn.execute(insert(SqlRun.__table__), runs)
        conn.execute(insert(SqlParam.__table__), params)
        conn.execute(insert(SqlMetric.__table__), metrics)
        conn.execute(insert(SqlLatestMetric.__table__), metrics)
        conn.execute(insert(SqlTag.__table__), tags)
    return [r["run_uuid"] for r in runs]


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated SQLite store: copying it is much faster than migrating a new one per store."""
    path = tmp_path_factory.mktemp("empty") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, empty_db: Path) -> Iterator[tuple[MlflowServer, str, list[str]]]:
    """A real ``mlflow server`` on a SQLite store of 400+ runs in two experiments."""
    root = tmp_path_factory.mktemp("served")
    shutil.copyfile(empty_db, root / "mlflow.db")
    db = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(db)
    exps = [client.create_experiment("big"), client.create_experiment("small")]
    _awkward_runs(db, exps[0])
    _bulk_runs(db, exps[0], 400, same_start=70)
    _bulk_runs(db, exps[1], 30)
    server = start_mlflow_server(db, root / "server", workers=1)  # its threads answer concurrently
    try:
        yield server, db, exps
    finally:
        server.stop()


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 25 runs: a few hundred runs then take many pages and several rounds of range splitting."""
    monkeypatch.setenv("RECDASH_REST_PAGE_SIZE", "25")


def test_concurrent_rest_first_load_equals_sequential(served, small_pages, caplog: pytest.LogCaptureFixture) -> None:
    server, db, exps = served
    caplog.set_level(logging.WARNING, logger="recdash.tracking")
    concurrent = RunsLoader(server.url, snapshot=False)
    sequential = RunsLoader(server.url, fast_path=False, snapshot=False)
    direct = RunsLoader(db, snapshot=False)  # and what the database itself holds
    first = concurrent.load(exps)
    assert len(first) == 400 + 30 + 4
    for kwargs in ({}, {"include_deleted": True}, {"filter_string": "metrics.score > 20"}):
        got = _comparable(concurrent.load(exps, **kwargs))
        pd.testing.assert_frame_equal(got, _comparable(sequential.load(exps, **kwargs)))
        pd.testing.assert_frame_equal(got, _comparable(direct.load(exps, **kwargs)))
    assert not [r for r in caplog.records if "failed" in r.getMessage()], caplog.text  # no silent fallback


def test_backend_database_read_only_and_fallback(served, monkeypatch: pytest.MonkeyPatch) -> None:
    server, db, exps = served
    expected = _comparable(RunsLoader(server.url, fast_path=False, snapshot=False).load(exps))
    monkeypatch.setenv("RECDASH_BACKEND_DB_URL", db)
    loader = RunsLoader(server.url, snapshot=False)
    assert loader.uses_sql and not loader.notice
    pd.testing.assert_frame_equal(_comparable(loader.load(exps)), expected)
    from sqlalchemy import text

    with pytest.raises(Exception, match=r"readonly|read-only|read only"), loader._source.store.engine.begin() as conn:
        conn.execute(text("UPDATE runs SET name = 'hacked'"))
    # a database that is not the server's: one-line notice, and the server is used instead
    other = Path(db.removeprefix("sqlite:///")).with_name("other.db")
    MlflowClient(f"sqlite:///{other}").create_experiment("unrelated")
    monkeypatch.setenv("RECDASH_BACKEND_DB_URL", f"sqlite:///{other}")
    loader = RunsLoader(server.url, snapshot=False)
    assert not loader.uses_sql and "RECDASH_BACKEND_DB_URL" in loader.notice and "\n" not in loader.notice
    pd.testing.assert_frame_equal(_comparable(loader.load(exps)), expected)


def test_rest_restart_uses_snapshot_and_sees_changes(served, small_pages, monkeypatch: pytest.MonkeyPatch) -> None:
    server, _db, exps = served
    first = RunsLoader(server.url)
    first.load(exps)
    first.save_snapshot()
    assert snapshot.snapshot_path(server.url).is_file()
    client = MlflowClient(server.url)
    added = client.create_run(exps[1], run_name="added-while-down")
    client.set_terminated(added.info.run_id)
    victim = RunsLoader(server.url, snapshot=False).load([exps[1]])["run_id"].iloc[-1]
    client.delete_run(victim)
    try:
        restarted = RunsLoader(server.url)
        assert restarted._restored
        got = restarted.load(exps)
        assert "added-while-down" in set(got["run_name"]) and victim not in set(got["run_id"])
        truth = RunsLoader(server.url, fast_path=False, snapshot=False).load(exps)
        pd.testing.assert_frame_equal(_comparable(got), _comparable(truth))
        # a tag edit of a finished run is caught by the recheck (periodic; immediate with RECDASH_REST_RECHECK_S=0)
        edited = truth["run_id"].iloc[3]
        client.set_tag(edited, "group", "edited")
        monkeypatch.setenv("RECDASH_REST_RECHECK_S", "0")
        rechecking = RunsLoader(server.url)
        assert rechecking._restored
        rechecking.load(exps)
        rechecking.flush()
        after = rechecking.load(exps).set_index("run_id")
        assert after.loc[edited, "tags.group"] == "edited"
        # the explicit check (Refresh on the Runs page) does not wait for the period
        monkeypatch.setenv("RECDASH_REST_RECHECK_S", "300")
        explicit = RunsLoader(server.url, snapshot=False)
        explicit.load(exps)
        client.set_tag(edited, "group", "edited again")
        assert explicit.load(exps).set_index("run_id").loc[edited, "tags.group"] == "edited"  # within the period
        assert explicit.check_finished_runs()
        explicit.flush()
        assert not explicit.checking
        assert explicit.load(exps).set_index("run_id").loc[edited, "tags.group"] == "edited again"
    finally:
        client.restore_run(victim)
        client.delete_run(added.info.run_id)


# ---- SQL store: changes between two app starts, and on refresh


@pytest.fixture(scope="module")
def finished_template(tmp_path_factory: pytest.TempPathFactory, empty_db: Path) -> tuple[Path, list[str], dict]:
    """A store of finished runs, built once; each test copies the file."""
    path = tmp_path_factory.mktemp("finished") / "store.db"
    shutil.copyfile(empty_db, path)
    uri = f"sqlite:///{path}"
    client = MlflowClient(uri)
    exps = [client.create_experiment("one"), client.create_experiment("two")]
    ids = _awkward_runs(uri, exps[0])
    client.set_terminated(ids["running"], "FINISHED")
    _bulk_runs(uri, exps[0], 60)
    _bulk_runs(uri, exps[1], 20)
    return path, exps, ids


@pytest.fixture
def finished_store(finished_template, tmp_path: Path) -> tuple[str, list[str], dict[str, str]]:
    template, exps, ids = finished_template
    shutil.copyfile(template, tmp_path / "store.db")
    return f"sqlite:///{tmp_path / 'store.db'}", exps, ids


def _change(client: MlflowClient, exps: list[str], ids: dict[str, str], what: str) -> str:
    """Apply one change to the store; returns a run id whose row must show it."""
    if what == "tag":
        client.set_tag(ids["child"], "group", "retagged")
    elif what == "name":
        client.update_run(ids["parent"], name="renamed")
    elif what == "note":
        client.set_tag(ids["noted"], "mlflow.note.content", "second note")
    elif what == "added":
        run = client.create_run(exps[1], run_name="added")
        client.set_terminated(run.info.run_id)
        return run.info.run_id
    elif what == "deleted":
        client.delete_run(ids["child"])
    elif what == "restored":
        client.restore_run(ids["deleted"])
        return ids["deleted"]
    return {"tag": ids["child"], "name": ids["parent"], "note": ids["noted"], "deleted": ids["child"]}[what]


CHANGES = ["tag", "name", "note", "added", "deleted", "restored"]


def _check_change(df: pd.DataFrame, what: str, run_id: str) -> None:
    rows = df.set_index("run_id")
    if what == "deleted":
        assert run_id not in rows.index
        return
    row = rows.loc[run_id]
    expected = {"tag": ("tags.group", "retagged"), "name": ("run_name", "renamed"),
                "note": ("tags.mlflow.note.content", "second note"), "added": ("run_name", "added"),
                "restored": ("run_name", "deleted")}[what]  # fmt: skip
    assert row[expected[0]] == expected[1], what


def test_sql_restart_with_snapshot_sees_every_kind_of_change(finished_store) -> None:
    uri, exps, ids = finished_store
    client = MlflowClient(uri)
    loader = RunsLoader(uri)
    loader.load(exps)
    loader.save_snapshot()
    nothing_changed = RunsLoader(uri)
    assert nothing_changed._restored
    pd.testing.assert_frame_equal(_comparable(nothing_changed.load(exps)), _comparable(loader.load(exps)))
    assert nothing_changed._cache.version == 1  # every run checked against the store, none re-read
    for what in CHANGES:
        run_id = _change(client, exps, ids, what)
        restarted = RunsLoader(uri)  # a new "app start" on the last snapshot
        assert restarted._restored, what
        got = restarted.load(exps)
        _check_change(got, what, run_id)
        truth = RunsLoader(uri, snapshot=False).load(exps)
        pd.testing.assert_frame_equal(_comparable(got), _comparable(truth), obj=what)
        restarted.save_snapshot()


def test_sql_refresh_sees_edits_of_finished_runs(finished_store) -> None:
    uri, exps, ids = finished_store
    client = MlflowClient(uri)
    loader = RunsLoader(uri, snapshot=False)
    loader.load(exps)
    for what in CHANGES:
        run_id = _change(client, exps, ids, what)
        _check_change(loader.load(exps), what, run_id)
    pd.testing.assert_frame_equal(
        _comparable(loader.load(exps)), _comparable(RunsLoader(uri, snapshot=False).load(exps))
    )


def test_truncated_or_foreign_snapshot_is_discarded(finished_store, tmp_path: Path) -> None:
    shared_uri, exps, _ = finished_store
    # a store of its own: a loader of an earlier test on the shared store may still be writing that store's snapshot
    own = tmp_path / "own.db"
    shutil.copyfile(shared_uri.removeprefix("sqlite:///"), own)
    uri = f"sqlite:///{own}"
    loader = RunsLoader(uri)
    expected = _comparable(loader.load(exps))
    loader.save_snapshot()
    path = snapshot.snapshot_path(uri)
    assert path.parent == tmp_path / "snapshots"  # the cache folder (RECDASH_SNAPSHOT_DIR), not the store
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    again = RunsLoader(uri)
    assert not again._restored and not path.exists()
    pd.testing.assert_frame_equal(_comparable(again.load(exps)), expected)
    again.flush()  # its own snapshot write must not land over the files written below
    # another format version, or a file made for another store under this name: discarded too
    frame = pd.DataFrame({"run_id": ["x"]})
    for meta in ({"uri": uri, "format": snapshot.FORMAT_VERSION + 1}, {"uri": uri + "-other"}):
        snapshot.save(path, frame, meta)
        assert not RunsLoader(uri)._restored and not path.exists()
    # the snapshot of another store is never read for this one
    copy = tmp_path / "copy.db"
    shutil.copyfile(own, copy)
    assert snapshot.snapshot_path(f"sqlite:///{copy}") != snapshot.snapshot_path(uri)
