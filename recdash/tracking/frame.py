"""The runs table: one row per run, ``params.*``/``metrics.*``/``tags.*`` columns, built the same way whichever
source read the runs.

Every source (:mod:`recdash.tracking.sql`, :mod:`~recdash.tracking.api`, :mod:`~recdash.tracking.rest`) produces
:class:`Parts` (one row per run and long key/value tables); :func:`assemble` pivots them into the wide frame the
loader caches, and :func:`finalize` turns a cached slice into what a page gets (filters, derived columns, order).
So the sources cannot drift apart in what a run looks like.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recdash.contract import MLFLOW_LOG_MODEL_HISTORY, MLFLOW_PARENT_RUN, MLFLOW_RUN_NAME
from recdash.tracking.client import history_model_paths
from recdash.tracking.filters import numeric_mask

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
_MAX_FLOAT = sys.float_info.max  # MLflow stores +/-inf as +/-max float; we give the user's inf back


def ms_to_datetime(values: Any) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype="float64"), unit="ms", utc=True)


class Parts:
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


BASE_PART_COLUMNS = ["run_id", "run_name", "experiment_id", "status", "user", "start_ms", "end_ms", "lifecycle_stage"]


KV = ["run_id", "key", "value"]


DS = ["run_id", "dataset_name", "dataset_digest"]


def fix_metric_values(values: pd.Series) -> pd.Series:
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


def assemble(parts: Parts) -> pd.DataFrame:
    """Wide, cacheable frame indexed by run_id (everything but the per-load columns)."""
    base = parts.base.drop_duplicates("run_id").set_index("run_id", drop=False)
    base.index.name = None
    idx = base.index
    tags = parts.tags[parts.tags["key"] != MLFLOW_LOG_MODEL_HISTORY]
    # runs logged by MLflow <= 1.29 have no name column, only the mlflow.runName tag
    names = base["run_name"].astype(object).where(base["run_name"].notna() & (base["run_name"] != ""), None)
    if names.isna().any():
        tag_names = tags.loc[tags["key"] == MLFLOW_RUN_NAME].set_index("run_id")["value"]
        names = names.fillna(tag_names.reindex(idx).astype(object))
    out = pd.DataFrame(
        {
            "run_id": base["run_id"].astype(str),
            "run_name": names.astype(object).where(names.notna(), None),
            "experiment_id": base["experiment_id"].astype(str),
            "status": base["status"].astype(str),
            "user": base["user"].astype(object).where(base["user"].notna(), None),
            "start_time": ms_to_datetime(base["start_ms"].to_numpy(dtype="float64")).set_axis(idx),
            "end_time": ms_to_datetime(base["end_ms"].to_numpy(dtype="float64")).set_axis(idx),
            "lifecycle_stage": base["lifecycle_stage"].astype(str),
        },
        index=idx,
    )
    parents = tags.loc[tags["key"] == MLFLOW_PARENT_RUN].drop_duplicates("run_id").set_index("run_id")["value"]
    out["parent_run_id"] = optional(parents.reindex(idx))
    ds = parts.datasets.drop_duplicates("run_id").set_index("run_id")
    out["dataset_name"] = optional(ds["dataset_name"].reindex(idx))
    out["dataset_digest"] = optional(ds["dataset_digest"].reindex(idx))
    metrics = parts.metrics.assign(value=fix_metric_values(parts.metrics["value"]))
    return pd.concat(
        [
            out,
            _pivot(parts.params, "params.", idx, "str"),
            _pivot(metrics, "metrics.", idx, "float64"),
            _pivot(tags, "tags.", idx, "str"),
        ],
        axis=1,
    )


def optional(values: pd.Series) -> pd.Series:
    """Object column with None (not NaN) where missing, as the API contract says."""
    values = values.astype(object)
    return values.where(values.notna(), None)


def order_columns(columns: Iterable[str]) -> list[str]:
    cols = list(columns)
    fixed = [c for c in BASE_COLUMNS if c in cols]
    rest = [c for c in cols if c not in BASE_COLUMNS]
    prefix_rank = {"params.": 0, "metrics.": 1, "tags.": 2}
    rest.sort(key=lambda c: (prefix_rank.get(c.split(".", 1)[0] + ".", 3), c))
    return fixed + rest


def empty_parts() -> Parts:
    return Parts(
        pd.DataFrame(columns=BASE_PART_COLUMNS),
        pd.DataFrame(columns=KV),
        pd.DataFrame({"run_id": [], "key": [], "value": []}).astype({"value": "float64"}),
        pd.DataFrame(columns=KV),
        pd.DataFrame(columns=DS),
    )


def parts_from_runs(runs: Sequence[Any]) -> Parts:
    if not runs:
        return empty_parts()
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
        columns=BASE_PART_COLUMNS,
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
    return Parts(
        base,
        pd.DataFrame(params, columns=KV),
        pd.DataFrame(metrics, columns=KV).astype({"value": "float64"}),
        pd.DataFrame(tags, columns=KV),
        pd.DataFrame(datasets, columns=DS),
    )


def json_run_id(run: dict[str, Any]) -> str:
    """A run's id in the server's JSON (MLflow 1 servers only send run_uuid)."""
    info = run["info"]
    return str(info.get("run_id") or info["run_uuid"])


def _json_float(value: Any) -> float:
    """A metric value from MLflow's JSON: a number, or "NaN"/"Infinity"/"-Infinity" as protobuf writes them."""
    return float(value)


def parts_from_json(runs: Sequence[dict[str, Any]]) -> Parts:
    """The same parts as parts_from_runs, from the server's JSON (what MlflowClient would turn into entities):
    proto2 defaults are applied the way RunInfo.from_proto does (absent strings are "", an end time of 0 is None)."""
    if not runs:
        return empty_parts()
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
    return Parts(
        pd.DataFrame(base, columns=BASE_PART_COLUMNS),
        pd.DataFrame(params, columns=KV),
        pd.DataFrame(metrics, columns=KV).astype({"value": "float64"}),
        pd.DataFrame(tags, columns=KV),
        pd.DataFrame(datasets, columns=DS),
    )


def json_has_model_marker(run: dict[str, Any]) -> bool:
    tags = (run.get("data") or {}).get("tags", ())
    return any(t["key"] == MLFLOW_LOG_MODEL_HISTORY and history_model_paths(t.get("value")) for t in tags)


def restore_dtypes(frame: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    """A snapshot frame with the loader's dtypes: Parquet has no "object column of str and None"."""
    frame = frame.set_index(frame["run_id"].astype(str).to_numpy())
    if list(frame.columns) != list(dtypes):
        raise ValueError("columns differ from the snapshot's own list")
    for column, dtype in dtypes.items():
        if dtype == "object":
            frame[column] = optional(frame[column])
        elif str(frame[column].dtype) != dtype:
            frame[column] = frame[column].astype(dtype)
    return frame


def tick_durations(df: pd.DataFrame) -> pd.DataFrame:
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


def finalize(
    frame: pd.DataFrame,
    model_runs: set[str],
    names: dict[str, str | None],
    *,
    n_cached: int,
    statuses: Sequence[str] | None = None,
    include_deleted: bool = False,
    run_ids: set[str] | None = None,
    numeric: Sequence[tuple[str, str, float]] = (),
) -> pd.DataFrame:
    """What a page gets from a cached slice of ``n_cached`` runs: deleted runs, statuses, a filter's run ids and
    numeric param clauses applied; columns of keys no shown run logged dropped; experiment names, ``has_model`` and
    running durations added; newest first."""
    n_all = len(frame)
    mask = np.ones(n_all, dtype=bool)
    if not include_deleted:
        mask &= (frame["lifecycle_stage"] == "active").to_numpy()
    if statuses:
        mask &= frame["status"].isin([s.upper() for s in statuses]).to_numpy()
    if run_ids is not None:
        mask &= frame.index.isin(list(run_ids))
    if numeric:
        mask &= numeric_mask(frame, numeric)
    df = frame[mask] if not mask.all() else frame
    if len(df) < n_all or len(frame) < n_cached:  # keys only of runs not shown are not columns either
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
    df = df[order_columns(df.columns)]
    return df.reset_index(drop=True)
