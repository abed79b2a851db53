"""Read access to any MLflow tracking store, fast enough for 10,000 runs.

``mlflow.search_runs`` builds a Python entity per run, param, metric and tag (~0.5 ms/run on SQLite). For SQL
stores we read MLflow's tables directly with a handful of bulk SELECTs and pivot them with pandas; every other
store (http, file) and any error on the SQL path falls back to the public ``MlflowClient`` API, paged properly.
``RunsLoader`` caches runs between calls and on refresh re-reads only runs that are new, still active or changed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

_log = logging.getLogger(__name__)

BASE_COLUMNS = [
    "run_id",
    "run_name",
    "experiment_id",
    "experiment",
    "status",
    "user",
    "start_time",
    "end_time",
    "duration_s",
    "lifecycle_stage",
    "parent_run_id",
    "dataset_name",
    "dataset_digest",
    "has_model",
]
ACTIVE_STATUSES = frozenset({"RUNNING", "SCHEDULED"})
LOG_MODEL_HISTORY_TAG = "mlflow.log-model.history"
PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_API_PAGE_SIZE = 1000  # MLflow's default page; we always follow page_token, so this never truncates
_MAX_FLOAT = sys.float_info.max  # MLflow stores +/-inf as +/-max float; we give the user's inf back
_IN_CHUNK = 500  # bound parameters per IN (...) list; far below every database's limit
_HEALTH_TIMEOUT_S = 3.0


class TrackingError(RuntimeError):
    """The tracking store cannot be used: the message names the URI, the reason and what to do."""


class FilterError(ValueError):
    """A malformed MLflow search filter; the message is MLflow's, without the noise."""


# --------------------------------------------------------------------------------------------------------------
# store resolution and health


def tracking_uri() -> str:
    """The URI MLflow itself resolves (set_tracking_uri, MLFLOW_TRACKING_URI, else its default)."""
    import mlflow

    return mlflow.get_tracking_uri()


def _resolve(uri: str | None) -> str:
    return uri or tracking_uri()


def _scheme(uri: str) -> str:
    scheme = urlparse(uri).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter, i.e. a plain path
        return ""
    return scheme.split("+", 1)[0]  # postgresql+psycopg2 -> postgresql


def _file_store_path(uri: str) -> Path | None:
    """The directory of a file-store URI (file: or a plain path), else None."""
    scheme = _scheme(uri)
    if scheme == "file":
        from mlflow.utils.file_utils import local_file_uri_to_path

        return Path(local_file_uri_to_path(uri))
    if scheme == "":
        return Path(unquote(uri))
    return None


def _looks_like_mlruns(path: Path) -> bool:
    """True for a FileStore layout: experiment folders with meta.yaml (or a trash/models folder)."""
    if not path.is_dir():
        return False
    if (path / "mlruns").is_dir() and _looks_like_mlruns(path / "mlruns"):
        return True
    for child in path.iterdir():
        if child.is_dir() and (
            child.name in {".trash", "models"} or (child.name.isdigit() and (child / "meta.yaml").is_file())
        ):
            return True
    return False


def _file_store_message(uri: str, path: Path) -> str:
    from recdash.filestore import migration_advice

    source = path if not (path / "mlruns").is_dir() else path / "mlruns"
    return (
        f"The tracking store {uri} is a legacy MLflow file store ({source}), which this MLflow version refuses "
        "to open by default. Either set MLFLOW_ALLOW_FILE_STORE=true to let recdash open it read-only (it then "
        f"shows the runs but cannot train or register into it), or {migration_advice(source)}."
    )


def is_file_store(uri: str | None = None) -> bool:
    """True for a legacy MLflow file store (``file:`` URI or a plain path), which recdash only reads."""
    return _file_store_path(_resolve(uri)) is not None


def check_writable(uri: str | None = None, action: str = "this") -> None:
    """Refuse a writing action (train, register, alias, demo runs) on a store recdash opens read-only."""
    uri = _resolve(uri)
    path = _file_store_path(uri)
    if path is not None:
        from recdash.filestore import write_refused_message

        raise TrackingError(write_refused_message(path, action))


def history_model_paths(tag: str | None) -> list[str]:
    """Artifact paths of the models an MLflow 2 run lists in its ``mlflow.log-model.history`` tag."""
    if not tag:
        return []
    try:
        entries = json.loads(tag)
    except ValueError:
        return []
    if not isinstance(entries, list):
        return []
    paths = [e.get("artifact_path") for e in entries if isinstance(e, dict)]
    return list(dict.fromkeys(p for p in paths if isinstance(p, str) and p))


def logged_model_ready(status: object) -> bool:
    """An MLflow 3 logged model whose files finished uploading (READY; stored as 2 in SQL stores)."""
    text = str(getattr(status, "name", status)).upper()
    return text.endswith("READY") or text == "2"


def run_label(name: object, run_id: object) -> str:
    """What a run is called everywhere: its name if it has one, else the first 8 characters of its ID."""
    text = name.strip() if isinstance(name, str) else ""
    return text or str(run_id)[:8]


def _allow_file_store() -> bool:
    return os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in {"true", "1"}


def _short_reason(exc: BaseException) -> str:
    """A one-line reason from a requests/urllib3 error chain instead of its nested repr."""
    text = str(exc)
    for pattern, reason in (
        (r"Connection refused|Errno 111|actively refused", "connection refused"),
        (r"Name or service not known|nodename nor servname|getaddrinfo failed|Failed to resolve", "unknown host"),
        (r"timed out|Timeout", f"no answer within {_HEALTH_TIMEOUT_S:g} s"),
        (r"No route to host", "no route to host"),
        (r"CERTIFICATE_VERIFY_FAILED|SSLError", "TLS certificate verification failed"),
    ):
        if re.search(pattern, text):
            return reason
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _check_http(uri: str) -> None:
    import requests

    base = uri.rstrip("/")
    try:
        response = requests.get(f"{base}/health", timeout=_HEALTH_TIMEOUT_S)
    except requests.RequestException as exc:
        raise TrackingError(
            f"Cannot reach the MLflow tracking server at {uri}: {_short_reason(exc)}. Start it (e.g. "
            "`mlflow server --backend-store-uri sqlite:///mlflow.db --port 5000`) or set MLFLOW_TRACKING_URI "
            "to a server or database that is up."
        ) from exc
    if response.status_code in (401, 403):
        raise TrackingError(_auth_message(uri, response.status_code))
    # /health may be absent behind a proxy: the API call below is the real test, with no retries and a short timeout.
    try:
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        resp = http_request(
            get_default_host_creds(uri),
            "/api/2.0/mlflow/experiments/search",
            "GET",
            max_retries=0,
            backoff_factor=0,
            timeout=_HEALTH_TIMEOUT_S,
            params={"max_results": 1},
        )
    except Exception as exc:
        raise TrackingError(f"The MLflow tracking server at {uri} did not answer: {_short_reason(exc)}.") from exc
    if resp.status_code in (401, 403):
        raise TrackingError(_auth_message(uri, resp.status_code))
    if resp.status_code != 200:
        raise TrackingError(
            f"{uri} answered HTTP {resp.status_code} to an MLflow API call: is it an MLflow tracking server "
            "(check the URI, including any path prefix)?"
        )


def _auth_message(uri: str, code: int) -> str:
    return (
        f"The MLflow tracking server at {uri} refused access (HTTP {code}). Set MLFLOW_TRACKING_USERNAME and "
        "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN, for this server."
    )


def check_store(uri: str | None = None) -> None:
    """Fail fast with a useful message instead of MLflow's slow retries and stack traces."""
    uri = _resolve(uri)
    scheme = _scheme(uri)
    if scheme in ("http", "https"):
        _check_http(uri)
        return
    path = _file_store_path(uri)
    if path is not None:
        if not _allow_file_store():
            if _looks_like_mlruns(path):
                raise TrackingError(_file_store_message(uri, path))
            raise TrackingError(
                f"The tracking URI {uri} points to a file store directory ({path}), which this MLflow version "
                "refuses to use. Set MLFLOW_TRACKING_URI to a database, e.g. sqlite:///mlflow.db, or set "
                "MLFLOW_ALLOW_FILE_STORE=true to use the legacy file store."
            )
        if not path.is_dir():
            raise TrackingError(f"The file store {uri} does not exist ({path} is not a directory).")
    try:
        _client(uri).search_experiments(max_results=1)
    except TrackingError:
        raise
    except Exception as exc:
        text = _mlflow_message(exc)
        hint = ""
        if "out-of-date database schema" in text or "alembic" in text.lower():
            hint = f" Upgrade the database with `mlflow db upgrade {uri}` (back it up first)."
        raise TrackingError(f"Cannot open the tracking store {uri}: {text}{hint}") from exc


def _mlflow_message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    text = re.sub(r"^[A-Z_]+: ", "", str(text).strip())
    return text.splitlines()[0] if text else type(exc).__name__


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _sql_store(client: Any) -> Any | None:
    """The client's SqlAlchemyStore (MLflow caches it per URI), or None for other stores."""
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = client._tracking_client.store
    except Exception:
        return None
    return store if isinstance(store, SqlAlchemyStore) else None


# --------------------------------------------------------------------------------------------------------------
# experiments


def _ms_to_datetime(values: Any) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype="float64"), unit="ms", utc=True)


def list_experiments(uri: str | None = None) -> pd.DataFrame:
    """All experiments (active and deleted) with their number of active runs and last activity (the latest start
    or end of their runs; for an experiment without runs, its own last update), newest first; ``tags`` is each
    experiment's tag dict (its description is the ``mlflow.note.content`` tag, as in the MLflow UI)."""
    from mlflow.entities import ViewType

    uri = _resolve(uri)
    client = _client(uri)
    experiments = []
    token = None
    while True:
        page = client.search_experiments(view_type=ViewType.ALL, max_results=_API_PAGE_SIZE, page_token=token)
        experiments.extend(page)
        token = page.token
        if not token:
            break
    ids = [e.experiment_id for e in experiments]
    counts, last_run = _run_counts(client, ids)
    rows = []
    for e in experiments:
        # the runs' own times when there are runs: an experiment's timestamps move when it is migrated or renamed
        last = last_run.get(e.experiment_id)
        if last is None:
            last = max((x for x in (e.last_update_time, e.creation_time) if x is not None), default=None)
        tags = dict(e.tags or {})
        rows.append((e.experiment_id, e.name, e.lifecycle_stage, counts.get(e.experiment_id, 0), last, tags))
    columns = ["experiment_id", "name", "lifecycle_stage", "run_count", "last_update", "tags"]
    df = pd.DataFrame(rows, columns=columns)
    df["run_count"] = df["run_count"].astype("int64")
    df["last_update"] = _ms_to_datetime(df["last_update"])
    return df.sort_values("last_update", ascending=False, kind="stable").reset_index(drop=True)


def _run_counts(client: Any, experiment_ids: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Active run count and latest run start/end (ms) per experiment: one GROUP BY on SQL, else paged search."""
    if not experiment_ids:
        return {}, {}
    store = _sql_store(client)
    if store is not None:
        try:
            from sqlalchemy import bindparam, text

            stmt = text(
                "SELECT experiment_id, SUM(CASE WHEN lifecycle_stage = 'active' THEN 1 ELSE 0 END), "
                "MAX(COALESCE(end_time, start_time)), MAX(start_time) FROM runs "
                "WHERE experiment_id IN :exps GROUP BY experiment_id"
            ).bindparams(bindparam("exps", expanding=True))
            with store.engine.connect() as conn:
                rows = conn.execute(stmt, {"exps": [int(x) for x in experiment_ids]}).fetchall()
            counts = {str(r[0]): int(r[1] or 0) for r in rows}
            last = {str(r[0]): max(int(v) for v in (r[2], r[3]) if v is not None) for r in rows if r[3] is not None}
            return counts, last
        except Exception as exc:  # fall through to the public API
            _log.warning("SQL run count failed (%s); using the MLflow API", exc)
    counts: dict[str, int] = {}
    last: dict[str, int] = {}
    for exp_id in experiment_ids:
        for run in _search_all(client, [exp_id]):
            counts[exp_id] = counts.get(exp_id, 0) + 1
            stamp = run.info.end_time or run.info.start_time
            if stamp is not None:
                last[exp_id] = max(last.get(exp_id, 0), stamp)
    return counts, last


def _search_all(client: Any, experiment_ids: Sequence[str], filter_string: str = "", view_type: int | None = None):
    """Every matching run, following page_token: MLflow silently stops at one page (1,000 runs) otherwise."""
    from mlflow.entities import ViewType

    token = None
    while True:
        page = client.search_runs(
            experiment_ids=list(experiment_ids),
            filter_string=filter_string,
            run_view_type=ViewType.ACTIVE_ONLY if view_type is None else view_type,
            max_results=_API_PAGE_SIZE,
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


# --------------------------------------------------------------------------------------------------------------
# the runs table: parts (one row per run + long key/value tables) -> one wide frame


class _Parts:
    """What both paths produce before pivoting, so the SQL and API paths cannot drift apart."""

    def __init__(
        self,
        base: pd.DataFrame,
        params: pd.DataFrame,
        metrics: pd.DataFrame,
        tags: pd.DataFrame,
        datasets: pd.DataFrame,
    ) -> None:
        self.base = base  # run_id, run_name, experiment_id, status, user, start_ms, end_ms, lifecycle_stage
        self.params = params  # run_id, key, value (str)
        self.metrics = metrics  # run_id, key, value (float)
        self.tags = tags  # run_id, key, value (str)
        self.datasets = datasets  # run_id, dataset_name, dataset_digest (first dataset of a run)


_BASE_PART_COLUMNS = ["run_id", "run_name", "experiment_id", "status", "user", "start_ms", "end_ms", "lifecycle_stage"]
_KV = ["run_id", "key", "value"]
_DS = ["run_id", "dataset_name", "dataset_digest"]


def _fix_metric_values(values: pd.Series) -> pd.Series:
    """MLflow stores +/-inf as +/-max float; give back the infinity the user logged."""
    out = values.astype("float64")
    arr = out.to_numpy(copy=True)
    arr[arr >= _MAX_FLOAT] = np.inf
    arr[arr <= -_MAX_FLOAT] = -np.inf
    return pd.Series(arr, index=out.index, name=out.name)


def _pivot(long: pd.DataFrame, prefix: str, index: pd.Index, dtype: str) -> pd.DataFrame:
    if long.empty:
        return pd.DataFrame(index=index)
    wide = long.pivot(index="run_id", columns="key", values="value")
    wide = wide.reindex(index=index, columns=sorted(wide.columns))
    wide.columns = [f"{prefix}{c}" for c in wide.columns]
    wide.columns.name = None
    return wide.astype(dtype)


def _assemble(parts: _Parts) -> pd.DataFrame:
    """Wide, cacheable frame indexed by run_id (everything but the per-load columns)."""
    base = parts.base.drop_duplicates("run_id").set_index("run_id", drop=False)
    base.index.name = None
    idx = base.index
    tags = parts.tags[parts.tags["key"] != LOG_MODEL_HISTORY_TAG]
    # runs logged by MLflow <= 1.29 have no name column, only the mlflow.runName tag
    names = base["run_name"].astype(object).where(base["run_name"].notna() & (base["run_name"] != ""), None)
    if names.isna().any():
        tag_names = tags.loc[tags["key"] == RUN_NAME_TAG].set_index("run_id")["value"]
        names = names.fillna(tag_names.reindex(idx).astype(object))
    out = pd.DataFrame(
        {
            "run_id": base["run_id"].astype(str),
            "run_name": names.astype(object).where(names.notna(), None),
            "experiment_id": base["experiment_id"].astype(str),
            "status": base["status"].astype(str),
            "user": base["user"].astype(object).where(base["user"].notna(), None),
            "start_time": _ms_to_datetime(base["start_ms"].to_numpy(dtype="float64")).set_axis(idx),
            "end_time": _ms_to_datetime(base["end_ms"].to_numpy(dtype="float64")).set_axis(idx),
            "lifecycle_stage": base["lifecycle_stage"].astype(str),
        },
        index=idx,
    )
    parents = tags.loc[tags["key"] == PARENT_RUN_TAG].drop_duplicates("run_id").set_index("run_id")["value"]
    out["parent_run_id"] = _optional(parents.reindex(idx))
    ds = parts.datasets.drop_duplicates("run_id").set_index("run_id")
    out["dataset_name"] = _optional(ds["dataset_name"].reindex(idx))
    out["dataset_digest"] = _optional(ds["dataset_digest"].reindex(idx))
    metrics = parts.metrics.assign(value=_fix_metric_values(parts.metrics["value"]))
    return pd.concat(
        [
            out,
            _pivot(parts.params, "params.", idx, "str"),
            _pivot(metrics, "metrics.", idx, "float64"),
            _pivot(tags, "tags.", idx, "str"),
        ],
        axis=1,
    )


def _optional(values: pd.Series) -> pd.Series:
    """Object column with None (not NaN) where missing, as the API contract says."""
    values = values.astype(object)
    return values.where(values.notna(), None)


def _order_columns(columns: Iterable[str]) -> list[str]:
    cols = list(columns)
    fixed = [c for c in BASE_COLUMNS if c in cols]
    rest = [c for c in cols if c not in BASE_COLUMNS]
    prefix_rank = {"params.": 0, "metrics.": 1, "tags.": 2}
    rest.sort(key=lambda c: (prefix_rank.get(c.split(".", 1)[0] + ".", 3), c))
    return fixed + rest


def _empty_parts() -> _Parts:
    return _Parts(
        pd.DataFrame(columns=_BASE_PART_COLUMNS),
        pd.DataFrame(columns=_KV),
        pd.DataFrame({"run_id": [], "key": [], "value": []}).astype({"value": "float64"}),
        pd.DataFrame(columns=_KV),
        pd.DataFrame(columns=_DS),
    )


# ---- public-API path


def _parts_from_runs(runs: Sequence[Any]) -> _Parts:
    if not runs:
        return _empty_parts()
    base = pd.DataFrame(
        [
            (
                r.info.run_id,
                r.info.run_name,
                r.info.experiment_id,
                r.info.status,
                r.info.user_id,
                r.info.start_time,
                r.info.end_time,
                r.info.lifecycle_stage,
            )
            for r in runs
        ],
        columns=_BASE_PART_COLUMNS,
    )
    params = [(r.info.run_id, k, v) for r in runs for k, v in r.data.params.items()]
    metrics = [(r.info.run_id, k, v) for r in runs for k, v in r.data.metrics.items()]
    tags = [(r.info.run_id, k, v) for r in runs for k, v in r.data.tags.items()]
    datasets = []
    for r in runs:
        inputs = getattr(r, "inputs", None)
        dataset_inputs = getattr(inputs, "dataset_inputs", None) or []
        if dataset_inputs:
            d = dataset_inputs[0].dataset
            datasets.append((r.info.run_id, d.name, d.digest))
    return _Parts(
        base,
        pd.DataFrame(params, columns=_KV),
        pd.DataFrame(metrics, columns=_KV).astype({"value": "float64"}),
        pd.DataFrame(tags, columns=_KV),
        pd.DataFrame(datasets, columns=_DS),
    )


def _json_float(value: Any) -> float:
    """A metric value from MLflow's JSON: a number, or "NaN"/"Infinity"/"-Infinity" as protobuf writes them."""
    return float(value)


def _parts_from_json(runs: Sequence[dict[str, Any]]) -> _Parts:
    """The same parts as _parts_from_runs, from the server's JSON (what MlflowClient would turn into entities):
    proto2 defaults are applied the way RunInfo.from_proto does (absent strings are "", an end time of 0 is None)."""
    if not runs:
        return _empty_parts()
    from recdash.rest_runs import run_id as json_run_id

    base, params, metrics, tags, datasets = [], [], [], [], []
    for run in runs:
        info, data = run["info"], run.get("data") or {}
        rid = json_run_id(run)
        base.append(
            (
                rid,
                info.get("run_name", ""),
                str(info.get("experiment_id", "")),
                info.get("status", "RUNNING"),
                info.get("user_id", ""),
                int(info.get("start_time", 0)),
                int(info["end_time"]) if info.get("end_time") else None,
                info.get("lifecycle_stage", ""),
            )
        )
        params.extend((rid, p["key"], p.get("value", "")) for p in data.get("params", ()))
        # the client keeps the last value per key (dict); latest_metrics has one per key anyway
        seen = {m["key"]: m.get("value", 0.0) for m in data.get("metrics", ())}
        metrics.extend((rid, k, _json_float(v)) for k, v in seen.items())
        tags.extend((rid, t["key"], t.get("value", "")) for t in data.get("tags", ()))
        inputs = (run.get("inputs") or {}).get("dataset_inputs") or []
        if inputs:
            d = inputs[0].get("dataset") or {}
            datasets.append((rid, d.get("name", ""), d.get("digest", "")))
    return _Parts(
        pd.DataFrame(base, columns=_BASE_PART_COLUMNS),
        pd.DataFrame(params, columns=_KV),
        pd.DataFrame(metrics, columns=_KV).astype({"value": "float64"}),
        pd.DataFrame(tags, columns=_KV),
        pd.DataFrame(datasets, columns=_DS),
    )


def _json_has_model_marker(run: dict[str, Any]) -> bool:
    tags = (run.get("data") or {}).get("tags", ())
    return any(t["key"] == LOG_MODEL_HISTORY_TAG and history_model_paths(t.get("value")) for t in tags)


def _api_model_run_ids(client: Any, experiment_ids: Sequence[str]) -> set[str]:
    """Runs with a READY logged model (MLflow 3); see recdash.recommend.model_sources for the whole definition."""
    ids: set[str] = set()
    token = None
    try:
        while True:
            page = client.search_logged_models(experiment_ids=list(experiment_ids), page_token=token)
            ids.update(m.source_run_id for m in page if m.source_run_id and logged_model_ready(m.status))
            token = page.token
            if not token:
                break
    except Exception as exc:  # stores without logged models (MLflow 2 servers)
        _log.info("search_logged_models unavailable (%s); using run tags only", exc)
    return ids


# ---- SQL path


def _in_chunks(values: Sequence[Any]) -> Iterable[list[Any]]:
    values = list(values)
    for i in range(0, len(values), _IN_CHUNK):
        yield values[i : i + _IN_CHUNK]


def _sql_rows(conn: Any, sql: str, params: dict[str, Any], expanding: Sequence[str] = ()) -> list[tuple]:
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


def _sql_select(conn: Any, sql: str, params: dict[str, Any], expanding: Sequence[str], columns: list[str]):
    rows = _sql_rows(conn, sql, params, expanding)
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return pd.DataFrame.from_records(rows, columns=columns)


def _sql_parts(store: Any, experiment_ids: Sequence[int], run_ids: Sequence[str] | None) -> _Parts:
    """A few bulk SELECTs: all runs of the experiments, or just run_ids (chunked)."""
    if run_ids is not None and not run_ids:
        return _empty_parts()
    queries = {
        "base": (
            "SELECT run_uuid, name, experiment_id, status, user_id, start_time, end_time, lifecycle_stage "
            "FROM runs WHERE {scope}",
            _BASE_PART_COLUMNS,
        ),
        "params": ("SELECT run_uuid, key, value FROM params WHERE {scope}", _KV),
        "metrics": ("SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE {scope}", [*_KV, "is_nan"]),
        "tags": ("SELECT run_uuid, key, value FROM tags WHERE {scope} AND key <> :skip", _KV),
        "datasets": (
            "SELECT i.destination_id, d.name, d.digest FROM inputs i JOIN datasets d "
            "ON i.source_id = d.dataset_uuid WHERE i.destination_type = 'RUN' AND i.source_type = 'DATASET' "
            "AND {scope} ORDER BY i.destination_id",
            _DS,
        ),
    }
    frames: dict[str, list[pd.DataFrame]] = {k: [] for k in queries}
    with store.engine.connect() as conn:
        if run_ids is None:
            scopes = [({"exps": list(experiment_ids)}, ["exps"])]
        else:
            scopes = [({"ids": chunk}, ["ids"]) for chunk in _in_chunks(run_ids)]
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
                query_params = dict(params, skip=LOG_MODEL_HISTORY_TAG) if name == "tags" else params
                frames[name].append(_sql_select(conn, sql.format(scope=scope), query_params, expanding, columns))
    got = {k: pd.concat(v, ignore_index=True) if len(v) > 1 else v[0] for k, v in frames.items()}
    metrics = got["metrics"]
    values = metrics["value"].astype("float64").where(~metrics["is_nan"].astype(bool), np.nan)
    got["metrics"] = metrics[["run_id", "key"]].assign(value=values)
    base = got["base"]
    base["experiment_id"] = base["experiment_id"].astype(str)
    return _Parts(base, got["params"], got["metrics"], got["tags"], got["datasets"])


def _sql_index(store: Any, experiment_ids: Sequence[int]) -> dict[str, tuple]:
    """run_id -> (status, end_time, lifecycle_stage, name, start_time, experiment_id): what tells us a run changed."""
    with store.engine.connect() as conn:
        rows = _sql_rows(
            conn,
            "SELECT run_uuid, status, end_time, lifecycle_stage, name, start_time, experiment_id FROM runs "
            "WHERE experiment_id IN :exps",
            {"exps": list(experiment_ids)},
            ["exps"],
        )
    return {r[0]: (r[1], r[2], r[3], r[4], r[5], str(r[6])) for r in rows}


def _sql_tag_hashes(store: Any, experiment_ids: Sequence[int]) -> dict[str, int]:
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
            rows = _sql_rows(
                conn,
                "SELECT t.run_uuid, SUM(hashtext(t.key || chr(31) || COALESCE(t.value, ''))::bigint), COUNT(*) "
                f"{scope} GROUP BY t.run_uuid",
                {"exps": list(experiment_ids)},
                ["exps"],
            )
            return {r[0]: int(r[1]) * 1_000_003 + int(r[2]) for r in rows}
        rows = _sql_rows(conn, f"SELECT t.run_uuid, t.key, t.value {scope}", {"exps": list(experiment_ids)}, ["exps"])
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


def _backend_database(uri: str, client: Any) -> tuple[Any | None, str]:
    """The read-only backend database named by $RECDASH_BACKEND_DB_URL for a server URI, checked against the
    server (same experiments under the same names); (None, notice) when it cannot be used."""
    url = os.environ.get("RECDASH_BACKEND_DB_URL", "").strip()
    if not url:
        return None, ""
    try:
        db = ReadOnlyDatabase(url)
        served = {e.experiment_id: e.name for e in client.search_experiments(max_results=50)}
        with db.engine.connect() as conn:
            rows = _sql_rows(conn, "SELECT experiment_id, name FROM experiments", {})
        stored = {str(r[0]): r[1] for r in rows}
        if any(stored.get(k) != v for k, v in served.items()):
            raise TrackingError("its experiments are not the ones the server shows (another database?)")
        return db, ""
    except Exception as exc:
        notice = (
            f"RECDASH_BACKEND_DB_URL ({_redact(url)}) cannot be used ({_short_reason(exc)}); "
            f"reading runs through {uri} instead."
        )
        _log.warning(notice)
        return None, notice


def _sql_model_run_ids(store: Any, experiment_ids: Sequence[int]) -> set[str]:
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
        rows = conn.execute(history, {"exps": list(experiment_ids), "tag": LOG_MODEL_HISTORY_TAG}).fetchall()
    return ids | {run_id for run_id, value in rows if history_model_paths(value)}


def _sql_experiment_names(store: Any, experiment_ids: Sequence[int]) -> dict[str, str]:
    from sqlalchemy import bindparam, text

    stmt = text("SELECT experiment_id, name FROM experiments WHERE experiment_id IN :exps").bindparams(
        bindparam("exps", expanding=True)
    )
    with store.engine.connect() as conn:
        return {str(r[0]): r[1] for r in conn.execute(stmt, {"exps": list(experiment_ids)}).fetchall()}


def _sql_filter_ids(store: Any, experiment_ids: Sequence[int], filter_string: str) -> set[str]:
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


NUMERIC_FILTER_HELP = (
    "A param compared with an unquoted number (params.factors > 50, params.learning_rate <= 0.1) is compared as a "
    "number by recdash, and runs whose param is not a number do not match; a quoted value (params.loss = 'warp') "
    "is compared as text, as MLflow does."
)
_NUMERIC_PARAM = re.compile(
    r"^\s*(?:params|param|parameters|parameter)\.(`[^`]+`|\"[^\"]+\"|[\w.\-]+)\s*(<=|>=|!=|<|>|=)\s*"
    r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$",
    re.IGNORECASE,
)


def _split_and(filter_string: str) -> list[str]:
    """Clauses of an MLflow filter (they are joined by AND only), leaving quoted text alone."""
    clauses, start, quote = [], 0, None
    for match in re.finditer(r"[`'\"]|\s+and\s+", filter_string, re.IGNORECASE):
        token = match.group(0)
        if token in "`'\"":
            quote = None if quote == token else (quote or token)
        elif quote is None:
            clauses.append(filter_string[start : match.start()])
            start = match.end()
    clauses.append(filter_string[start:])
    return [c.strip() for c in clauses if c.strip()]


def split_numeric_filter(filter_string: str) -> tuple[str, list[tuple[str, str, float]]]:
    """The part of a filter MLflow evaluates, and the numeric param comparisons recdash evaluates itself
    (MLflow compares params as strings and refuses ``params.factors > 50``); see NUMERIC_FILTER_HELP."""
    kept, numeric = [], []
    for clause in _split_and(filter_string):
        match = _NUMERIC_PARAM.match(clause)
        if match:
            name = match.group(1).strip('`"')
            numeric.append((name, match.group(2), float(match.group(3))))
        else:
            kept.append(clause)
    return " and ".join(kept), numeric


def _numeric_mask(frame: pd.DataFrame, clauses: Sequence[tuple[str, str, float]]) -> np.ndarray:
    import operator

    ops = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq,
           "!=": operator.ne}  # fmt: skip
    mask = np.ones(len(frame), dtype=bool)
    for name, op, value in clauses:
        col = f"params.{name}"
        if col not in frame.columns:
            return np.zeros(len(frame), dtype=bool)
        numbers = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            mask &= ~np.isnan(numbers) & ops[op](numbers, value)
    return mask


def _validate_filter(filter_string: str) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.utils.search_utils import SearchUtils

    try:
        SearchUtils.parse_search_filter(filter_string)
    except MlflowException as exc:
        raise FilterError(_filter_message(filter_string, exc)) from None


def _filter_message(filter_string: str, exc: BaseException) -> str:
    text = " ".join(_mlflow_message(exc).split())
    text = re.sub(r"\s*(Tokens|Parsed|Statement):.*$", "", text).rstrip(" .")
    return (
        f"Invalid filter {filter_string!r}: {text}. Example of a valid filter: "
        "metrics.val_ndcg_at_10 > 0.1 and params.loss = 'warp' and tags.`recdash.kind` = 'train'"
    )


# --------------------------------------------------------------------------------------------------------------
# the loader


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


def _seconds_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class RunsLoader:
    """Loads runs of one or several experiments into one flat DataFrame; keeps finished runs in memory and on
    disk (a snapshot per store) and on refresh fetches only runs that are new, still active or changed.

    SQL stores (and a server whose backend database is named by ``RECDASH_BACKEND_DB_URL``): a refresh costs one
    SELECT over the runs table (ids, status, end time, name, stage), one hash of the finished runs' tags and one
    over logged models; new, active, deleted/restored, renamed or re-tagged runs are re-read at the next refresh.
    MLflow servers (http/https): the first load fetches pages concurrently; a refresh reads new and active runs and
    the list of deleted runs, and every ``RECDASH_REST_RECHECK_S`` seconds (default 300) a full re-read in the
    background catches tag, note and name edits of finished runs (``check_finished_runs()`` starts it at once,
    ``recheck()`` does it in the caller's thread).
    Thread-safe (one lock), so it can live in st.cache_resource.
    """

    def __init__(self, uri: str | None = None, *, fast_path: bool = True, snapshot: bool = True) -> None:
        self.uri = _resolve(uri)
        self._client = _client(self.uri)
        self._store = _sql_store(self._client) if fast_path else None
        self._rest = None
        self.notice = ""  # one line for the page when a configured fast path could not be used
        if fast_path and _scheme(self.uri) in ("http", "https"):
            from recdash.rest_runs import RestSearch

            self._rest = RestSearch(self.uri)
            self._store, self.notice = _backend_database(self.uri, self._client)
        self._lock = threading.Lock()
        self._recheck_s = _seconds_env("RECDASH_REST_RECHECK_S", 300.0)
        self._rechecking: threading.Thread | None = None
        self._sqlite_version = _SqliteDataVersion(self._store)
        self._saving: threading.Thread | None = None
        self._snapshot_path = None
        if snapshot:
            from recdash import snapshot as snap

            self._snapshot_path = snap.snapshot_path(self.uri)
        self.clear()
        self._restored = self._restore()

    @property
    def uses_sql(self) -> bool:
        """True while the direct-SQL fast path is in use (False after a fallback)."""
        return self._store is not None

    def clear(self) -> None:
        """Forget every cached run: the next load reads everything again."""
        self._wide = _assemble(_empty_parts())
        self._signature: dict[str, tuple] = {}  # run_id -> what _sql_index saw when the run was read
        self._tag_hash: dict[str, int] = {}  # run_id -> _sql_tag_hashes when the run was read (finished runs)
        self._api_experiments: set[str] = set()  # experiments read in full over the API
        self._api_model_runs: set[str] = set()
        self._full_read_at = 0.0  # time.time() of the last full API read (the REST recheck clock)
        self._version = 0  # bumped whenever _wide changes
        self._saved_version = 0
        self._saved_at = 0.0
        self._results: dict[tuple, tuple] = {}  # load() arguments -> (state, result)
        self._checked: set[str] = set()  # experiments compared with the store at _checked_at_version
        self._checked_at_version: int | None = None

    # ---- snapshot

    def _kind(self) -> str:
        return "sql" if self._store is not None else "api"

    def _restore(self) -> bool:
        """Start from the store's snapshot, if there is a valid one: every run in it is still checked against the
        store by the next load (SQL: per-run signature and tag hash; API: new/active/deleted runs and the recheck
        clock the snapshot carries), so it saves reading, never correctness."""
        if self._snapshot_path is None:
            return False
        from recdash import snapshot as snap

        got = snap.load(self._snapshot_path, self.uri)
        if got is None:
            return False
        frame, info = got
        try:
            if info.get("kind") != self._kind():
                raise ValueError(f"made by the {info.get('kind')} path")
            wide = _restore_dtypes(frame.drop(columns=["__signature", "__tag_hash"]), info["dtypes"])
            signature = {
                r: tuple(json.loads(s)) for r, s in zip(frame["run_id"], frame["__signature"], strict=True) if s
            }
            tag_hash = {r: int(h) for r, h in zip(frame["run_id"], frame["__tag_hash"], strict=True) if h}
        except Exception as exc:
            _log.warning("Discarding the runs snapshot %s (%s)", self._snapshot_path, exc)
            snap.discard(self._snapshot_path)
            return False
        self._wide = wide[_order_columns(wide.columns)]
        self._signature, self._tag_hash = signature, tag_hash
        self._api_experiments = set(info.get("api_experiments", []))
        self._api_model_runs = set(info.get("api_model_runs", []))
        self._full_read_at = float(info.get("full_read_at", 0.0))
        self._version = self._saved_version = 1
        self._saved_at = time.time()
        return True

    def _maybe_save(self) -> None:
        """Write the snapshot in the background when the runs changed (at most every 60 s; a restart re-checks
        every run anyway, so a missed last write costs reading, not correctness)."""
        if self._snapshot_path is None or self._version == self._saved_version:
            return
        if self._saved_version and time.time() - self._saved_at < 60:
            return
        if self._saving is not None and self._saving.is_alive():
            return
        wide = self._wide.copy()
        frame = wide.reset_index(drop=True)
        frame["__signature"] = [json.dumps(self._signature[r]) if r in self._signature else "" for r in wide.index]
        frame["__tag_hash"] = [str(self._tag_hash.get(r, "")) for r in wide.index]
        meta = {
            "uri": self.uri,
            "kind": self._kind(),
            "dtypes": {c: str(t) for c, t in wide.dtypes.items()},
            "api_experiments": sorted(self._api_experiments),
            "api_model_runs": sorted(self._api_model_runs),
            "full_read_at": self._full_read_at,
        }
        self._saved_version, self._saved_at = self._version, time.time()
        path = self._snapshot_path

        def write() -> None:
            from recdash import snapshot as snap

            try:
                snap.save(path, frame, meta)
            except Exception as exc:  # a full disk must not break the page
                _log.warning("Could not write the runs snapshot %s (%s)", path, exc)

        self._saving = threading.Thread(target=write, name="recdash-snapshot", daemon=True)
        self._saving.start()

    def flush(self) -> None:
        """Wait for a snapshot being written and a background recheck (tests, benchmarks, shutdown)."""
        for thread in (self._rechecking, self._saving):
            if thread is not None:
                thread.join()

    def save_snapshot(self) -> None:
        """Write the snapshot now (whatever changed), and wait for it."""
        with self._lock:
            self._saved_version = -1  # differs from every version: write whatever is cached
            self._saved_at = 0.0
            self._maybe_save()
        self.flush()

    # ---- load

    def load(
        self,
        experiment_ids: Sequence[str],
        *,
        filter_string: str = "",
        statuses: Sequence[str] | None = None,
        include_deleted: bool = False,
    ) -> pd.DataFrame:
        """The flat runs table (one row per run, newest first); see BASE_COLUMNS plus params./metrics./tags.*."""
        experiment_ids = [str(e) for e in experiment_ids]
        filter_string, numeric = split_numeric_filter((filter_string or "").strip())
        if filter_string:
            _validate_filter(filter_string)
        if not experiment_ids:
            return self._finalize(self._wide.iloc[0:0], set(), {})
        with self._lock:
            try:
                if self._store is not None and all(e.isdigit() for e in experiment_ids):  # SQL ids are integers
                    try:
                        return self._load_sql(experiment_ids, filter_string, statuses, include_deleted, numeric)
                    except FilterError:
                        raise
                    except Exception as exc:
                        how = "the MLflow server" if self._rest is not None else "the MLflow API"
                        message = f"Direct SQL read of {self.uri} failed ({_short_reason(exc)}); using {how}"
                        _log.warning(message)
                        if self._rest is not None:
                            self.notice = message + "."
                        self._store = None
                        self.clear()
                return self._load_api(experiment_ids, filter_string, statuses, include_deleted, numeric)
            finally:
                self._maybe_save()

    # ---- SQL

    def _load_sql(
        self,
        experiment_ids: list[str],
        filter_string: str,
        statuses: Sequence[str] | None,
        include_deleted: bool,
        numeric: Sequence[tuple[str, str, float]] = (),
    ) -> pd.DataFrame:
        store = self._store
        exps = [int(e) for e in experiment_ids]
        version = self._sqlite_version.current()  # read first: a commit after it shows at the next refresh
        if version is None or version != self._checked_at_version:
            self._checked = set()
        if not set(experiment_ids) <= self._checked:
            self._check_sql(store, exps, experiment_ids)
            self._checked |= set(experiment_ids)
            self._checked_at_version = version
        filtered = None
        if filter_string:
            from mlflow.exceptions import MlflowException

            try:
                filtered = _sql_filter_ids(store, exps, filter_string)
            except MlflowException as exc:
                if exc.error_code != "INVALID_PARAMETER_VALUE":
                    raise
                raise FilterError(_filter_message(filter_string, exc)) from None
        model_runs = _sql_model_run_ids(store, exps)
        names = _sql_experiment_names(store, exps)
        # nothing changed since the same call last time: reuse its result, only the running clocks move on
        key = (tuple(experiment_ids), filter_string, tuple(numeric), tuple(statuses or ()), include_deleted)
        state = (self._version, model_runs, names, filtered)
        hit = self._results.get(key)
        if hit is not None and hit[0] == state:
            return _tick_durations(hit[1].copy())
        frame = self._wide[self._wide["experiment_id"].isin(experiment_ids)]
        result = self._finalize(
            frame, model_runs, names, statuses=statuses, include_deleted=include_deleted, run_ids=filtered,
            numeric=numeric,
        )  # fmt: skip
        if len(self._results) > 16:
            self._results.clear()
        self._results[key] = (state, result)
        return result.copy()

    def _check_sql(self, store: Any, exps: list[int], experiment_ids: list[str]) -> None:
        """Compare every run of the experiments with what the store holds now and re-read new, active, changed
        (status, end, stage, name, start, tags) and gone runs."""
        index = _sql_index(store, exps)
        hashes = _sql_tag_hashes(store, exps)
        wanted = set(experiment_ids)
        gone = [r for r, sig in self._signature.items() if sig[-1] in wanted and r not in index]
        stale = [
            r
            for r, sig in index.items()
            if sig[0] in ACTIVE_STATUSES or self._signature.get(r) != sig or self._tag_hash.get(r) != hashes.get(r)
        ]
        if stale or gone:
            self._version += 1
            if len(stale) > len(index) // 2:
                self._replace(_assemble(_sql_parts(store, exps, None)), experiment_ids=experiment_ids, gone=gone)
            else:
                self._replace(_assemble(_sql_parts(store, exps, stale)), gone=gone)
            self._signature.update({r: index[r] for r in stale})
            for r in stale:
                if r in hashes:
                    self._tag_hash[r] = hashes[r]
                else:
                    self._tag_hash.pop(r, None)
            for r in gone:
                self._signature.pop(r, None)
                self._tag_hash.pop(r, None)

    def _replace(self, fresh: pd.DataFrame, *, experiment_ids: list[str] | None = None, gone: Sequence[str]) -> None:
        """Swap fresh rows into the cache (all rows of experiment_ids when given), dropping gone runs."""
        old = self._wide
        if experiment_ids is not None:
            old = old[~old["experiment_id"].isin(experiment_ids)]
        drop = set(gone) | set(fresh.index)
        old = old[~old.index.isin(list(drop))] if drop else old
        if old.empty:
            merged = fresh
        elif fresh.empty:
            merged = old
        else:
            merged = pd.concat([old, fresh], axis=0)
        self._wide = merged[_order_columns(merged.columns)]

    # ---- public API

    def _load_api(
        self,
        experiment_ids: list[str],
        filter_string: str,
        statuses: Sequence[str] | None,
        include_deleted: bool,
        numeric: Sequence[tuple[str, str, float]] = (),
    ) -> pd.DataFrame:
        from mlflow.entities import ViewType

        client = self._client
        cached = self._wide[self._wide["experiment_id"].isin(experiment_ids)]
        have_all = set(experiment_ids) <= self._api_experiments
        if cached.empty or not have_all:
            started = time.time()
            fresh, markers = self._read_all(experiment_ids)
            self._version += 1
            self._replace(fresh, experiment_ids=experiment_ids, gone=())
            if not self._api_experiments:
                self._full_read_at = started
            self._api_experiments |= set(experiment_ids)
            self._api_model_runs |= markers
        else:
            # new runs (started at or after the newest we know), plus re-reads of runs we saw active
            newest = int(cached["start_time"].max().value // 1_000_000) if cached["start_time"].notna().any() else 0
            fresh = list(_search_all(client, experiment_ids, f"attributes.start_time >= {newest}", ViewType.ALL))
            active = cached.index[cached["status"].isin(ACTIVE_STATUSES)].tolist()
            for chunk in _in_chunks(active):
                quoted = ", ".join(f"'{r}'" for r in chunk)
                fresh.extend(_search_all(client, experiment_ids, f"attributes.run_id IN ({quoted})", ViewType.ALL))
            if fresh:
                fresh = list({r.info.run_id: r for r in fresh}.values())  # a run can match both searches
                self._version += 1
                self._replace(_assemble(_parts_from_runs(fresh)), gone=())
                self._api_model_runs |= {r.info.run_id for r in fresh if _run_has_model_marker(r)}
            # deletions: the (usually short) list of deleted runs tells which cached runs changed stage
            deleted = {r.info.run_id for r in _search_all(client, experiment_ids, view_type=ViewType.DELETED_ONLY)}
            in_scope = self._wide["experiment_id"].isin(experiment_ids).to_numpy()
            stage = np.where(self._wide.index.isin(list(deleted)), "deleted", "active")[in_scope]
            if (self._wide.loc[in_scope, "lifecycle_stage"].to_numpy() != stage).any():
                self._version += 1
                self._wide.loc[in_scope, "lifecycle_stage"] = stage
            self._start_recheck()
        frame = self._wide[self._wide["experiment_id"].isin(experiment_ids)]
        model_runs = _api_model_run_ids(client, experiment_ids) | self._api_model_runs
        names = {}
        for exp_id in experiment_ids:
            try:
                names[exp_id] = client.get_experiment(exp_id).name
            except Exception:
                names[exp_id] = None
        filtered = None
        if filter_string:
            try:
                filtered = {r.info.run_id for r in _search_all(client, experiment_ids, filter_string, ViewType.ALL)}
            except Exception as exc:
                raise FilterError(_filter_message(filter_string, exc)) from None
        return self._finalize(
            frame, model_runs, names, statuses=statuses, include_deleted=include_deleted, run_ids=filtered,
            numeric=numeric,
        )  # fmt: skip

    def _read_all(self, experiment_ids: Sequence[str]) -> tuple[pd.DataFrame, set[str]]:
        """Every run of the experiments through the API: concurrent pages from a server, else page by page."""
        from mlflow.entities import ViewType

        if self._rest is not None:
            from recdash.rest_runs import run_id, search_concurrent

            try:
                raw = search_concurrent(self._rest, experiment_ids)
                return _assemble(_parts_from_json(raw)), {run_id(r) for r in raw if _json_has_model_marker(r)}
            except Exception as exc:
                _log.warning("Concurrent read of %s failed (%s); reading page by page", self.uri, _short_reason(exc))
        runs = list(_search_all(self._client, experiment_ids, view_type=ViewType.ALL))
        return _assemble(_parts_from_runs(runs)), {r.info.run_id for r in runs if _run_has_model_marker(r)}

    def _start_recheck(self, *, now: bool = False) -> bool:
        """Over REST nothing tells that a finished run's tags, note or name changed, or that it was purged: every
        RECDASH_REST_RECHECK_S seconds (or ``now``) re-read everything in the background and swap it in (caller
        holds the lock). True while such a re-read runs."""
        if self._rest is None or not self._api_experiments:
            return False
        if self.checking:
            return True
        if not now and time.time() - self._full_read_at < self._recheck_s:
            return False
        self._rechecking = threading.Thread(target=self.recheck, name="recdash-recheck", daemon=True)
        self._rechecking.start()
        return True

    def check_finished_runs(self) -> bool:
        """The explicit check (the Runs page's Refresh): over an MLflow server, start the background re-read of
        every loaded run now instead of at the next RECDASH_REST_RECHECK_S, so edits of finished runs show at a
        refresh after it ends. True when one is running; False on SQL stores, whose every refresh checks them."""
        with self._lock:
            return self._start_recheck(now=True)

    @property
    def checking(self) -> bool:
        """True while a background re-read of finished runs is running."""
        return self._rechecking is not None and self._rechecking.is_alive()

    def recheck(self) -> None:
        """Re-read every run already loaded, replacing what is cached (tag/name/note edits, purged runs)."""
        with self._lock:
            if self._store is not None:  # SQL: the next load compares every run anyway; make it re-read all
                self._signature.clear()
                self._checked = set()
                return
            experiment_ids = sorted(self._api_experiments)
        if not experiment_ids:
            return
        started = time.time()
        fresh, markers = self._read_all(experiment_ids)
        with self._lock:
            self._version += 1
            self._replace(fresh, experiment_ids=experiment_ids, gone=())
            self._api_model_runs = (self._api_model_runs - set(fresh.index)) | markers
            self._full_read_at = started
            self._results.clear()

    # ---- shared

    def _finalize(
        self,
        frame: pd.DataFrame,
        model_runs: set[str],
        names: dict[str, str],
        *,
        statuses: Sequence[str] | None = None,
        include_deleted: bool = False,
        run_ids: set[str] | None = None,
        numeric: Sequence[tuple[str, str, float]] = (),
    ) -> pd.DataFrame:
        n_all = len(frame)
        mask = np.ones(n_all, dtype=bool)
        if not include_deleted:
            mask &= (frame["lifecycle_stage"] == "active").to_numpy()
        if statuses:
            mask &= frame["status"].isin([s.upper() for s in statuses]).to_numpy()
        if run_ids is not None:
            mask &= frame.index.isin(list(run_ids))
        if numeric:
            mask &= _numeric_mask(frame, numeric)
        df = frame[mask] if not mask.all() else frame
        if len(df) < n_all or len(frame) < len(self._wide):  # keys only of runs not shown are not columns either
            extra = [c for c in df.columns if c not in BASE_COLUMNS]
            present = df[extra].notna().any(axis=0)
            df = df.drop(columns=present.index[~present.to_numpy()])
        df = df.copy()
        df["experiment"] = df["experiment_id"].map(names).astype(object)
        df["has_model"] = df.index.isin(list(model_runs)) if model_runs else np.zeros(len(df), dtype=bool)
        now = pd.Timestamp.now(tz="UTC")
        end = df["end_time"].where(~df["status"].isin(ACTIVE_STATUSES), now)
        df["duration_s"] = (end - df["start_time"]).dt.total_seconds().astype("float64")
        df = df.sort_values(["start_time", "run_id"], ascending=[False, True], na_position="last", kind="stable")
        df = df[_order_columns(df.columns)]
        return df.reset_index(drop=True)


def _restore_dtypes(frame: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    """A snapshot frame with the loader's dtypes: Parquet has no "object column of str and None"."""
    frame = frame.set_index(frame["run_id"].astype(str).to_numpy())
    if list(frame.columns) != list(dtypes):
        raise ValueError("columns differ from the snapshot's own list")
    for column, dtype in dtypes.items():
        if dtype == "object":
            frame[column] = _optional(frame[column])
        elif str(frame[column].dtype) != dtype:
            frame[column] = frame[column].astype(dtype)
    return frame


def _run_has_model_marker(run: Any) -> bool:
    """An MLflow 2 model listed in the run's history tag (MLflow 3 models are found by _api_model_run_ids)."""
    return bool(history_model_paths(run.data.tags.get(LOG_MODEL_HISTORY_TAG)))


def _tick_durations(df: pd.DataFrame) -> pd.DataFrame:
    """duration_s of RUNNING/SCHEDULED runs is now - start: refresh it on a cached result."""
    active = df["status"].isin(ACTIVE_STATUSES).to_numpy()
    if active.any():
        now = pd.Timestamp.now(tz="UTC")
        df.loc[active, "duration_s"] = (now - df.loc[active, "start_time"]).dt.total_seconds().to_numpy()
    return df


def runs_with_models(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose run has a logged model (the Models page and model pickers only offer these)."""
    if "has_model" not in df.columns:
        return df.iloc[0:0]
    return df[df["has_model"].astype(bool)].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------------
# metric histories


def _downsample(values: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of an even subsample that always keeps the first, last, min and max points."""
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    if max_points <= 2:
        return np.unique(np.linspace(0, n - 1, max(max_points, 1)).round().astype(int))
    keep = set(np.linspace(0, n - 1, max_points - 2).round().astype(int).tolist())
    finite = np.where(np.isnan(values), np.nan, values)
    if not np.all(np.isnan(finite)):
        keep.add(int(np.nanargmin(finite)))
        keep.add(int(np.nanargmax(finite)))
    return np.array(sorted(keep))


_HIST_COLUMNS = ["run_id", "key", "step", "timestamp", "value"]


def metric_histories(
    run_ids: Sequence[str], keys: Sequence[str], *, max_points: int = 500, uri: str | None = None
) -> pd.DataFrame:
    """Histories of keys for runs (run_id, key, step, timestamp ms, value), each series at most max_points long;
    ``attrs["unreadable"]`` lists runs whose history the store could not give (they are left out)."""
    run_ids, keys = list(dict.fromkeys(run_ids)), list(dict.fromkeys(keys))
    if not run_ids or not keys:
        return _empty_histories()
    uri = _resolve(uri)
    client = _client(uri)
    store = _sql_store(client)
    raw = None
    if store is not None:
        try:
            raw = _sql_histories(store, run_ids, keys)
        except Exception as exc:
            _log.warning("Direct SQL read of metric histories failed (%s); using the MLflow API", exc)
    if raw is None:
        raw = _api_histories(client, run_ids, keys)
    unreadable = raw.attrs.get("unreadable", [])
    if raw.empty:
        empty = _empty_histories()
        empty.attrs["unreadable"] = unreadable
        return empty
    raw["value"] = _fix_metric_values(raw["value"])
    raw = raw.sort_values(["run_id", "key", "step", "timestamp"], kind="stable")
    pieces = []
    for _, group in raw.groupby(["run_id", "key"], sort=False):
        if len(group) > max_points:
            group = group.iloc[_downsample(group["value"].to_numpy(dtype="float64"), max_points)]
        pieces.append(group)
    out = pd.concat(pieces, ignore_index=True)
    out["step"] = out["step"].astype("int64")
    out["timestamp"] = out["timestamp"].astype("int64")
    out = out[_HIST_COLUMNS]
    out.attrs["unreadable"] = unreadable
    return out


def _empty_histories() -> pd.DataFrame:
    return pd.DataFrame({"run_id": [], "key": [], "step": [], "timestamp": [], "value": []}).astype(
        {"run_id": "str", "key": "str", "step": "int64", "timestamp": "int64", "value": "float64"}
    )


def _sql_histories(store: Any, run_ids: list[str], keys: list[str]) -> pd.DataFrame:
    frames = []
    with store.engine.connect() as conn:
        for chunk in _in_chunks(run_ids):
            frames.append(
                _sql_select(
                    conn,
                    "SELECT run_uuid, key, step, timestamp, value, is_nan FROM metrics "
                    "WHERE run_uuid IN :ids AND key IN :keys",
                    {"ids": chunk, "keys": keys},
                    ["ids", "keys"],
                    [*_HIST_COLUMNS, "is_nan"],
                )
            )
    raw = pd.concat(frames, ignore_index=True)
    raw["value"] = raw["value"].astype("float64").where(~raw["is_nan"].astype(bool), np.nan)
    return raw.drop(columns="is_nan")


def _api_histories(client: Any, run_ids: list[str], keys: list[str]) -> pd.DataFrame:
    """Histories through the public API; a run the store cannot read is skipped and named in
    ``attrs["unreadable"]`` (a page says so and draws the others) instead of failing the whole chart."""
    unreadable: set[str] = set()

    def one(pair: tuple[str, str]) -> list[tuple]:
        run_id, key = pair
        try:
            history = client.get_metric_history(run_id, key)
        except Exception as exc:
            _log.warning("metric history of run %s cannot be read (%s)", run_id, _mlflow_message(exc))
            unreadable.add(run_id)
            return []
        return [(run_id, key, m.step, m.timestamp, m.value) for m in history]

    pairs = [(r, k) for r in run_ids for k in keys]
    with ThreadPoolExecutor(max_workers=min(8, len(pairs))) as pool:
        rows = [row for chunk in pool.map(one, pairs) for row in chunk]
    frame = pd.DataFrame(rows, columns=_HIST_COLUMNS)
    frame.attrs["unreadable"] = sorted(unreadable)
    return frame


__all__ = [
    "FilterError",
    "RunsLoader",
    "TrackingError",
    "check_store",
    "check_writable",
    "is_file_store",
    "list_experiments",
    "metric_histories",
    "run_label",
    "runs_with_models",
    "tracking_uri",
]
