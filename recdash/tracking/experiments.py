"""The experiments of a store, with their run counts and last activity (the Home and Runs pages' list)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from mlflow.entities import ViewType

from recdash.tracking.client import API_PAGE_SIZE, all_pages, client, resolve, search_runs, sql_store
from recdash.tracking.frame import ms_to_datetime

_log = logging.getLogger(__name__)


def list_experiments(uri: str | None = None) -> pd.DataFrame:
    """All experiments (active and deleted) with their number of active runs and last activity (the latest start
    or end of their runs; for an experiment without runs, its own last update), newest first; ``tags`` is each
    experiment's tag dict (its description is the ``mlflow.note.content`` tag, as in the MLflow UI)."""
    mlflow_client = client(resolve(uri))
    experiments = all_pages(
        lambda token: mlflow_client.search_experiments(
            view_type=ViewType.ALL, max_results=API_PAGE_SIZE, page_token=token
        )
    )
    ids = [e.experiment_id for e in experiments]
    counts, last_run = _run_counts(mlflow_client, ids)
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
    df["last_update"] = ms_to_datetime(df["last_update"])
    return df.sort_values("last_update", ascending=False, kind="stable").reset_index(drop=True)


def _run_counts(mlflow_client: Any, experiment_ids: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Active run count and latest run start/end (ms) per experiment: one GROUP BY on SQL, else paged search."""
    if not experiment_ids:
        return {}, {}
    store = sql_store(mlflow_client)
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
        for run in search_runs(mlflow_client, [exp_id]):
            counts[exp_id] = counts.get(exp_id, 0) + 1
            stamp = run.info.end_time or run.info.start_time
            if stamp is not None:
                last[exp_id] = max(last.get(exp_id, 0), stamp)
    return counts, last


def recent_runs(uri: str | None = None, max_results: int = 200) -> pd.DataFrame:
    """The newest runs that logged params, across active experiments: ``run_id``, ``run_name`` and ``params`` (a
    dict) per row (the Train page's "start from run")."""
    mlflow_client = client(resolve(uri))
    ids = [e.experiment_id for e in mlflow_client.search_experiments()]
    runs = (
        mlflow_client.search_runs(ids, "", max_results=max_results, order_by=["attributes.start_time DESC"])
        if ids
        else []
    )
    rows = [(r.info.run_id, r.info.run_name, dict(r.data.params)) for r in runs if r.data.params]
    return pd.DataFrame(rows, columns=["run_id", "run_name", "params"])
