"""Runs read through MLflow's public API (file stores, servers without a usable database, and the fallback of
every other source): the first load reads whole experiments page by page; a refresh reads only runs started since
the newest one known, re-reads runs that were active, and asks for the (usually short) list of deleted runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from mlflow.entities import ViewType

from recdash.tracking.client import FilterError, in_chunks, logged_model_ready, run_has_model_marker, search_runs
from recdash.tracking.filters import filter_message
from recdash.tracking.frame import ACTIVE_STATUSES, assemble, parts_from_runs
from recdash.tracking.source import RunsCache, RunSource

_log = logging.getLogger(__name__)


class ApiSource(RunSource):
    """MLflow's paged API. Tag, note and name edits of finished runs are not seen by a refresh here (nothing tells
    them apart); :class:`~recdash.tracking.rest.RestSource` re-reads everything periodically to catch them."""

    kind = "api"

    def __init__(self, uri: str, client: Any) -> None:
        super().__init__(uri, client)
        self.forget()

    def forget(self) -> None:
        self._experiments: set[str] = set()  # experiments read in full
        self._markers: set[str] = set()  # runs whose tags list an MLflow 2 model
        self.full_read_at = 0.0  # time.time() of the last full read (the recheck clock)

    def read_all(self, experiment_ids: Sequence[str]) -> tuple[pd.DataFrame, set[str]]:
        runs = list(search_runs(self.client, experiment_ids, view_type=ViewType.ALL))
        return assemble(parts_from_runs(runs)), {r.info.run_id for r in runs if run_has_model_marker(r.data.tags)}

    def sync(self, cache: RunsCache, experiment_ids: list[str]) -> None:
        cached = cache.of(experiment_ids)
        if cached.empty or not set(experiment_ids) <= self._experiments:
            started = time.time()
            fresh, markers = self.read_all(experiment_ids)
            cache.replace(fresh, experiment_ids=experiment_ids)
            if not self._experiments:
                self.full_read_at = started
            self._experiments |= set(experiment_ids)
            self._markers |= markers
            return
        # new runs (started at or after the newest we know), plus re-reads of runs we saw active
        newest = int(cached["start_time"].max().value // 1_000_000) if cached["start_time"].notna().any() else 0
        fresh = list(search_runs(self.client, experiment_ids, f"attributes.start_time >= {newest}", ViewType.ALL))
        active = cached.index[cached["status"].isin(ACTIVE_STATUSES)].tolist()
        for chunk in in_chunks(active):
            quoted = ", ".join(f"'{r}'" for r in chunk)
            fresh.extend(search_runs(self.client, experiment_ids, f"attributes.run_id IN ({quoted})", ViewType.ALL))
        if fresh:
            fresh = list({r.info.run_id: r for r in fresh}.values())  # a run can match both searches
            cache.replace(assemble(parts_from_runs(fresh)))
            self._markers |= {r.info.run_id for r in fresh if run_has_model_marker(r.data.tags)}
        # deletions: the list of deleted runs tells which cached runs changed stage
        deleted = {r.info.run_id for r in search_runs(self.client, experiment_ids, view_type=ViewType.DELETED_ONLY)}
        wide = cache.wide
        in_scope = wide["experiment_id"].isin(experiment_ids).to_numpy()
        stage = np.where(wide.index.isin(list(deleted)), "deleted", "active")[in_scope]
        if (wide.loc[in_scope, "lifecycle_stage"].to_numpy() != stage).any():
            cache.version += 1
            wide.loc[in_scope, "lifecycle_stage"] = stage

    def model_run_ids(self, experiment_ids: list[str]) -> set[str]:
        """Runs with a READY logged model (MLflow 3), and runs whose tags list an MLflow 2 model."""
        ids: set[str] = set()
        token = None
        try:
            while True:
                page = self.client.search_logged_models(experiment_ids=list(experiment_ids), page_token=token)
                ids.update(m.source_run_id for m in page if m.source_run_id and logged_model_ready(m.status))
                token = page.token
                if not token:
                    break
        except Exception as exc:  # stores without logged models (MLflow 2 servers)
            _log.info("search_logged_models unavailable (%s); using run tags only", exc)
        return ids | self._markers

    def experiment_names(self, experiment_ids: list[str]) -> dict[str, str | None]:
        names: dict[str, str | None] = {}
        for exp_id in experiment_ids:
            try:
                names[exp_id] = self.client.get_experiment(exp_id).name
            except Exception:
                names[exp_id] = None
        return names

    def filter_ids(self, experiment_ids: list[str], filter_string: str) -> set[str]:
        try:
            return {r.info.run_id for r in search_runs(self.client, experiment_ids, filter_string, ViewType.ALL)}
        except Exception as exc:
            raise FilterError(filter_message(filter_string, exc)) from None

    def snapshot_meta(self) -> dict[str, Any]:
        return {
            "api_experiments": sorted(self._experiments),
            "api_model_runs": sorted(self._markers),
            "full_read_at": self.full_read_at,
        }

    def restore(self, meta: dict[str, Any], frame: pd.DataFrame) -> None:
        self._experiments = set(meta.get("api_experiments", []))
        self._markers = set(meta.get("api_model_runs", []))
        self.full_read_at = float(meta.get("full_read_at", 0.0))

    def recheck_experiments(self) -> list[str]:
        return sorted(self._experiments)

    def after_full_read(self, started: float, run_ids: pd.Index, markers: set[str]) -> None:
        self._markers = (self._markers - set(run_ids)) | markers
        self.full_read_at = started
