"""Runs read straight from an MLflow SQL store's tables (SQLite, PostgreSQL, MySQL, or a server's own database
named by ``RECDASH_BACKEND_DB_URL``, opened read-only).

``mlflow.search_runs`` builds a Python entity per run, param, metric and tag (~0.5 ms/run on SQLite); here a
handful of bulk SELECTs through the raw DBAPI cursor give the same runs in a fraction of that. Change detection
is cheap too: one SELECT over the runs table (status, end time, stage, name) and a hash of the finished runs' tags
per refresh, skipped altogether on SQLite when no other connection committed (``PRAGMA data_version``).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recdash import settings
from recdash.contract import MLFLOW_LOG_MODEL_HISTORY
from recdash.tracking.client import FilterError, TrackingError, history_model_paths, in_chunks, short_reason
from recdash.tracking.filters import filter_message
from recdash.tracking.frame import ACTIVE_STATUSES, BASE_PART_COLUMNS, DS, KV, Parts, assemble, empty_parts
from recdash.tracking.source import RunsCache, RunSource

_log = logging.getLogger(__name__)


def sql_rows(conn: Any, sql: str, params: dict[str, Any], expanding: Sequence[str] = ()) -> list[tuple]:
    """Run one SELECT through the raw DBAPI cursor: SQLAlchemy's Row objects cost more than the query itself at
    100k+ rows (and pandas probing them is slower still). Expanding params are lists for ``IN :name``."""
    from sqlalchemy import bindparam, text

    stmt = text(sql).bindparams(*(bindparam(name, value=params[name], expanding=name in expanding) for name in params))
    try:
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        values = compiled.params
        if compiled.positional:
            values = tuple(values[name] for name in compiled.positiontup)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(str(compiled), values)
            return cursor.fetchall()
        finally:
            cursor.close()
    except Exception as exc:  # an unusual driver: the ordinary SQLAlchemy way
        _log.debug("raw cursor read failed (%s); using SQLAlchemy rows", exc)
        return [tuple(r) for r in conn.execute(stmt).fetchall()]


def sql_select(conn: Any, sql: str, params: dict[str, Any], expanding: Sequence[str], columns: list[str]):
    rows = sql_rows(conn, sql, params, expanding)
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return pd.DataFrame.from_records(rows, columns=columns)


def _parts(store: Any, experiment_ids: Sequence[int], run_ids: Sequence[str] | None) -> Parts:
    """A few bulk SELECTs: all runs of the experiments, or just run_ids (chunked)."""
    if run_ids is not None and not run_ids:
        return empty_parts()
    queries = {
        "base": (
            "SELECT run_uuid, name, experiment_id, status, user_id, start_time, end_time, lifecycle_stage "
            "FROM runs WHERE {scope}",
            BASE_PART_COLUMNS,
        ),
        "params": ("SELECT run_uuid, key, value FROM params WHERE {scope}", KV),
        "metrics": ("SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE {scope}", [*KV, "is_nan"]),
        "tags": ("SELECT run_uuid, key, value FROM tags WHERE {scope} AND key <> :skip", KV),
        "datasets": (
            "SELECT i.destination_id, d.name, d.digest FROM inputs i JOIN datasets d "
            "ON i.source_id = d.dataset_uuid WHERE i.destination_type = 'RUN' AND i.source_type = 'DATASET' "
            "AND {scope} ORDER BY i.destination_id",
            DS,
        ),
    }
    frames: dict[str, list[pd.DataFrame]] = {k: [] for k in queries}
    with store.engine.connect() as conn:
        if run_ids is None:
            scopes = [({"exps": list(experiment_ids)}, ["exps"])]
        else:
            scopes = [({"ids": chunk}, ["ids"]) for chunk in in_chunks(run_ids)]
        for params, expanding in scopes:
            for name, (sql, columns) in queries.items():
                column = "i.destination_id" if name == "datasets" else "run_uuid"
                if run_ids is None:
                    if name == "base":
                        scope = "experiment_id IN :exps"
                    else:
                        scope = f"{column} IN (SELECT run_uuid FROM runs WHERE experiment_id IN :exps)"
                else:
                    scope = f"{column} IN :ids"
                query_params = dict(params, skip=MLFLOW_LOG_MODEL_HISTORY) if name == "tags" else params
                frames[name].append(sql_select(conn, sql.format(scope=scope), query_params, expanding, columns))
    got = {k: pd.concat(v, ignore_index=True) if len(v) > 1 else v[0] for k, v in frames.items()}
    metrics = got["metrics"]
    values = metrics["value"].astype("float64").where(~metrics["is_nan"].astype(bool), np.nan)
    got["metrics"] = metrics[["run_id", "key"]].assign(value=values)
    base = got["base"]
    base["experiment_id"] = base["experiment_id"].astype(str)
    return Parts(base, got["params"], got["metrics"], got["tags"], got["datasets"])


def _index(store: Any, experiment_ids: Sequence[int]) -> dict[str, tuple]:
    """run_id -> (status, end_time, lifecycle_stage, name, start_time, experiment_id): what tells us a run changed."""
    with store.engine.connect() as conn:
        rows = sql_rows(
            conn,
            "SELECT run_uuid, status, end_time, lifecycle_stage, name, start_time, experiment_id FROM runs "
            "WHERE experiment_id IN :exps",
            {"exps": list(experiment_ids)},
            ["exps"],
        )
    return {r[0]: (r[1], r[2], r[3], r[4], r[5], str(r[6])) for r in rows}


def _tag_hashes(store: Any, experiment_ids: Sequence[int]) -> dict[str, int]:
    """run_id -> an order-independent hash of the tags of each finished run (tag edits, notes and names change it).

    MLflow's tags table has no update time, so an edit on a finished run can only be seen by looking at the tags.
    PostgreSQL sums ``hashtext`` per run in the database (only one row per run crosses the wire); other databases
    send the rows and pandas hashes them (stable across processes, so a snapshot's hashes stay comparable).
    """
    scope = (
        "FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid WHERE r.experiment_id IN :exps "
        "AND r.status NOT IN ('RUNNING', 'SCHEDULED')"
    )
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            rows = sql_rows(
                conn,
                "SELECT t.run_uuid, SUM(hashtext(t.key || chr(31) || COALESCE(t.value, ''))::bigint), COUNT(*) "
                f"{scope} GROUP BY t.run_uuid",
                {"exps": list(experiment_ids)},
                ["exps"],
            )
            return {r[0]: int(r[1]) * 1_000_003 + int(r[2]) for r in rows}
        rows = sql_rows(conn, f"SELECT t.run_uuid, t.key, t.value {scope}", {"exps": list(experiment_ids)}, ["exps"])
    if not rows:
        return {}
    frame = pd.DataFrame.from_records(rows, columns=["run_id", "key", "value"])
    frame["value"] = frame["value"].fillna("")
    frame["h"] = pd.util.hash_pandas_object(frame[["key", "value"]], index=False).to_numpy()
    sums = frame.groupby("run_id", sort=False)["h"].sum()  # uint64, wraps around: order-independent
    return {k: int(v) for k, v in sums.items()}


class ReadOnlyDatabase:
    """The tracking server's backend database, opened read-only (for ``RECDASH_BACKEND_DB_URL``).

    Quacks like the parts of MLflow's SqlAlchemyStore the bulk SQL path uses (``engine``, ``ManagedSessionMaker``,
    ``_get_dialect``) without being one: SqlAlchemyStore would create or migrate tables on an empty database.
    Every connection is made read-only by the database itself (PostgreSQL/MySQL: session transactions READ ONLY;
    SQLite: ``query_only``), so recdash cannot write to the team's store even with a read-write role.
    """

    def __init__(self, url: str) -> None:
        import sqlalchemy
        from mlflow.store.db.utils import _get_managed_session_maker
        from sqlalchemy import event

        self.url = url
        self.engine = sqlalchemy.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)
        dialect = self.engine.dialect.name
        statement = {
            "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            "mysql": "SET SESSION TRANSACTION READ ONLY",
            "sqlite": "PRAGMA query_only = ON",
        }.get(dialect)
        if statement is None:
            raise TrackingError(f"read-only access to a {dialect} database is not supported")

        @event.listens_for(self.engine, "connect")
        def _read_only(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute(statement)
            cursor.close()
            if dialect == "postgresql":
                dbapi_conn.commit()  # psycopg2 opened a transaction for SET; end it so the setting sticks

        session_maker = sqlalchemy.orm.sessionmaker(bind=self.engine)
        self.ManagedSessionMaker = _get_managed_session_maker(session_maker, dialect)

    def _get_dialect(self) -> str:
        return self.engine.dialect.name


def _redact(url: str) -> str:
    """A database URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def backend_database(uri: str, client: Any) -> tuple[Any | None, str]:
    """The read-only backend database named by $RECDASH_BACKEND_DB_URL for a server URI, checked against the
    server (same experiments under the same names); (None, notice) when it cannot be used."""
    url = settings.BACKEND_DB_URL.get().strip()
    if not url:
        return None, ""
    try:
        db = ReadOnlyDatabase(url)
        served = {e.experiment_id: e.name for e in client.search_experiments(max_results=50)}
        with db.engine.connect() as conn:
            rows = sql_rows(conn, "SELECT experiment_id, name FROM experiments", {})
        stored = {str(r[0]): r[1] for r in rows}
        if any(stored.get(k) != v for k, v in served.items()):
            raise TrackingError("its experiments are not the ones the server shows (another database?)")
        return db, ""
    except Exception as exc:
        notice = (
            f"RECDASH_BACKEND_DB_URL ({_redact(url)}) cannot be used ({short_reason(exc)}); "
            f"reading runs through {uri} instead."
        )
        _log.warning(notice)
        return None, notice


def _model_run_ids(store: Any, experiment_ids: Sequence[int]) -> set[str]:
    """Runs with a model by recdash.recommend.model_sources' definition: a READY logged model (status 2) whose
    source is the run, or a model listed in the run's MLflow 2 log-model history tag."""
    from sqlalchemy import bindparam, text

    runs = "SELECT run_uuid FROM runs WHERE experiment_id IN :exps"
    logged = text(
        f"SELECT source_run_id FROM logged_models WHERE lifecycle_stage <> 'deleted' AND status = 2 "
        f"AND source_run_id IN ({runs})"
    ).bindparams(bindparam("exps", expanding=True))
    history = text(f"SELECT run_uuid, value FROM tags WHERE key = :tag AND run_uuid IN ({runs})").bindparams(
        bindparam("exps", expanding=True)
    )
    with store.engine.connect() as conn:
        ids = {r[0] for r in conn.execute(logged, {"exps": list(experiment_ids)}).fetchall()}
        rows = conn.execute(history, {"exps": list(experiment_ids), "tag": MLFLOW_LOG_MODEL_HISTORY}).fetchall()
    return ids | {run_id for run_id, value in rows if history_model_paths(value)}


def _experiment_names(store: Any, experiment_ids: Sequence[int]) -> dict[str, str]:
    from sqlalchemy import bindparam, text

    stmt = text("SELECT experiment_id, name FROM experiments WHERE experiment_id IN :exps").bindparams(
        bindparam("exps", expanding=True)
    )
    with store.engine.connect() as conn:
        return {str(r[0]): r[1] for r in conn.execute(stmt, {"exps": list(experiment_ids)}).fetchall()}


def _filter_ids(store: Any, experiment_ids: Sequence[int], filter_string: str) -> set[str]:
    """Run ids matching the filter, with MLflow's own SQL translation (exact semantics), selecting ids only."""
    from mlflow.store.tracking.dbmodels.models import SqlRun
    from mlflow.store.tracking.sqlalchemy_store import _get_sqlalchemy_filter_clauses
    from mlflow.utils.search_utils import SearchUtils
    from sqlalchemy import select

    parsed = SearchUtils.parse_search_filter(filter_string)
    with store.ManagedSessionMaker() as session:
        attribute_filters, non_attribute_filters, dataset_filters = _get_sqlalchemy_filter_clauses(
            parsed, session, store._get_dialect()
        )
        stmt = select(SqlRun.run_uuid)
        for f in non_attribute_filters:
            stmt = stmt.join(f)
        for f in dataset_filters:
            stmt = stmt.join(f, SqlRun.run_uuid == f.c.destination_id)
        stmt = stmt.distinct().filter(SqlRun.experiment_id.in_(list(experiment_ids)), *attribute_filters)
        return set(session.execute(stmt).scalars().all())


class _SqliteDataVersion:
    """SQLite's ``PRAGMA data_version`` on a private read-only connection: it changes whenever any other connection
    (any process) commits to the database file, so a refresh of an unchanged store skips every per-run check.
    ``current()`` is None for other databases (and in-memory SQLite): they are checked at every refresh."""

    def __init__(self, store: Any) -> None:
        self._conn = None
        self._lock = threading.Lock()
        try:
            url = store.engine.url if store is not None else None
            if url is not None and url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
                import sqlite3

                path = Path(url.database).resolve()
                self._conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
        except Exception as exc:
            _log.debug("no SQLite data_version (%s)", exc)
            self._conn = None

    def current(self) -> int | None:
        if self._conn is None:
            return None
        try:
            with self._lock:
                return int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        except Exception:
            return None


class SqlSource(RunSource):
    """A SQL store (or a server's backend database, read-only): bulk reads, and per-run signatures and tag hashes
    that tell at each refresh which runs are new, active, deleted or restored, renamed or re-tagged."""

    kind = "sql"

    def __init__(self, uri: str, client: Any, store: Any) -> None:
        super().__init__(uri, client)
        self.store = store
        self._data_version = _SqliteDataVersion(store)
        self.forget()

    def forget(self) -> None:
        self._signature: dict[str, tuple] = {}  # run_id -> what _index saw when the run was read
        self._tag_hash: dict[str, int] = {}  # run_id -> _tag_hashes when the run was read (finished runs)
        self._checked: set[str] = set()  # experiments compared with the store at _checked_at_version
        self._checked_at_version: int | None = None

    def force_recheck(self) -> None:
        self._signature.clear()
        self._checked = set()

    @staticmethod
    def _ids(experiment_ids: list[str]) -> list[int]:
        # SQL stores number their experiments; an id that is not a number names none of them
        return [int(e) for e in experiment_ids if e.isdigit()]

    def sync(self, cache: RunsCache, experiment_ids: list[str]) -> None:
        version = self._data_version.current()  # read first: a commit after it shows at the next refresh
        if version is None or version != self._checked_at_version:
            self._checked = set()
        if not set(experiment_ids) <= self._checked:
            self._check(cache, self._ids(experiment_ids), experiment_ids)
            self._checked |= set(experiment_ids)
            self._checked_at_version = version

    def _check(self, cache: RunsCache, exps: list[int], experiment_ids: list[str]) -> None:
        """Compare every run of the experiments with what the store holds now and re-read new, active, changed
        (status, end, stage, name, start, tags) and gone runs."""
        index = _index(self.store, exps)
        hashes = _tag_hashes(self.store, exps)
        wanted = set(experiment_ids)
        gone = [r for r, sig in self._signature.items() if sig[-1] in wanted and r not in index]
        stale = [
            r
            for r, sig in index.items()
            if sig[0] in ACTIVE_STATUSES or self._signature.get(r) != sig or self._tag_hash.get(r) != hashes.get(r)
        ]
        if not stale and not gone:
            return
        if len(stale) > len(index) // 2:
            cache.replace(assemble(_parts(self.store, exps, None)), experiment_ids=experiment_ids, gone=gone)
        else:
            cache.replace(assemble(_parts(self.store, exps, stale)), gone=gone)
        self._signature.update({r: index[r] for r in stale})
        for r in stale:
            if r in hashes:
                self._tag_hash[r] = hashes[r]
            else:
                self._tag_hash.pop(r, None)
        for r in gone:
            self._signature.pop(r, None)
            self._tag_hash.pop(r, None)

    def model_run_ids(self, experiment_ids: list[str]) -> set[str]:
        return _model_run_ids(self.store, self._ids(experiment_ids))

    def experiment_names(self, experiment_ids: list[str]) -> dict[str, str | None]:
        return dict(_experiment_names(self.store, self._ids(experiment_ids)))

    def filter_ids(self, experiment_ids: list[str], filter_string: str) -> set[str]:
        from mlflow.exceptions import MlflowException

        try:
            return _filter_ids(self.store, self._ids(experiment_ids), filter_string)
        except MlflowException as exc:
            if exc.error_code != "INVALID_PARAMETER_VALUE":
                raise
            raise FilterError(filter_message(filter_string, exc)) from None

    def snapshot_columns(self, run_ids: pd.Index) -> dict[str, list[str]]:
        return {
            "__signature": [json.dumps(self._signature[r]) if r in self._signature else "" for r in run_ids],
            "__tag_hash": [str(self._tag_hash.get(r, "")) for r in run_ids],
        }

    def restore(self, meta: dict[str, Any], frame: pd.DataFrame) -> None:
        ids = frame["run_id"].astype(str)
        self._signature = {r: tuple(json.loads(s)) for r, s in zip(ids, frame["__signature"], strict=True) if s}
        self._tag_hash = {r: int(h) for r, h in zip(ids, frame["__tag_hash"], strict=True) if h}
