"""Metric histories (every logged step of a metric), downsampled for charts: bulk SQL on SQL stores, MLflow's API
otherwise; a run whose history cannot be read is named, not fatal."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from recdash.tracking.client import client, in_chunks, mlflow_message, resolve, sql_store
from recdash.tracking.frame import fix_metric_values
from recdash.tracking.sql import sql_select

_log = logging.getLogger(__name__)


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
    mlflow_client = client(resolve(uri))
    store = sql_store(mlflow_client)
    raw = None
    if store is not None:
        try:
            raw = _sql_histories(store, run_ids, keys)
        except Exception as exc:
            _log.warning("Direct SQL read of metric histories failed (%s); using the MLflow API", exc)
    if raw is None:
        raw = _api_histories(mlflow_client, run_ids, keys)
    unreadable = raw.attrs.get("unreadable", [])
    if raw.empty:
        empty = _empty_histories()
        empty.attrs["unreadable"] = unreadable
        return empty
    raw["value"] = fix_metric_values(raw["value"])
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
        for chunk in in_chunks(run_ids):
            frames.append(
                sql_select(
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


def _api_histories(mlflow_client: Any, run_ids: list[str], keys: list[str]) -> pd.DataFrame:
    """Histories through the public API; a run the store cannot read is skipped and named in
    ``attrs["unreadable"]`` (a page says so and draws the others) instead of failing the whole chart."""
    unreadable: set[str] = set()

    def one(pair: tuple[str, str]) -> list[tuple]:
        run_id, key = pair
        try:
            history = mlflow_client.get_metric_history(run_id, key)
        except Exception as exc:
            _log.warning("metric history of run %s cannot be read (%s)", run_id, mlflow_message(exc))
            unreadable.add(run_id)
            return []
        return [(run_id, key, m.step, m.timestamp, m.value) for m in history]

    pairs = [(r, k) for r in run_ids for k in keys]
    with ThreadPoolExecutor(max_workers=min(8, len(pairs))) as pool:
        rows = [row for chunk in pool.map(one, pairs) for row in chunk]
    frame = pd.DataFrame(rows, columns=_HIST_COLUMNS)
    frame.attrs["unreadable"] = sorted(unreadable)
    return frame
