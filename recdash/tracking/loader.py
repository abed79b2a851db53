"""The runs loader: one per store, so 10,000 runs open quickly and a refresh reads only what changed.

:class:`RunsLoader` keeps what is the same for every store: the cached runs (:class:`~recdash.tracking.source.
RunsCache`), an on-disk snapshot so a restart reads only what changed (:mod:`recdash.tracking.snapshot`), the last
results (a refresh of an unchanged store returns them at once), and a background re-read of finished runs for
sources that need one. How runs are read and how changes are found belongs to the store's :class:`RunSource`,
chosen by :func:`open_source`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from recdash.tracking import snapshot as snap
from recdash.tracking.api import ApiSource
from recdash.tracking.client import FilterError, client, resolve, short_reason, sql_store
from recdash.tracking.filters import split_numeric_filter, validate_filter
from recdash.tracking.frame import finalize, restore_dtypes, tick_durations
from recdash.tracking.rest import RestSource
from recdash.tracking.source import RunsCache, RunSource
from recdash.tracking.sql import SqlSource, backend_database
from recdash.tracking.uri import is_server

_log = logging.getLogger(__name__)
_SNAPSHOT_EVERY_S = 60


def open_source(uri: str, mlflow_client: Any, fast_path: bool = True) -> tuple[RunSource, str]:
    """The source for a store, by URI: SQL tables for a SQL store, the server's own database for a server when
    ``RECDASH_BACKEND_DB_URL`` names a usable one, concurrent REST for a server, MLflow's API otherwise (file stores,
    and every store with ``fast_path=False``). Also a one-line notice when a configured fast path cannot be used."""
    if not fast_path:
        return ApiSource(uri, mlflow_client), ""
    if is_server(uri):
        database, notice = backend_database(uri, mlflow_client)
        if database is not None:
            return SqlSource(uri, mlflow_client, database), ""
        return RestSource(uri, mlflow_client), notice
    store = sql_store(mlflow_client)
    if store is not None:
        return SqlSource(uri, mlflow_client, store), ""
    return ApiSource(uri, mlflow_client), ""


class RunsLoader:
    """Loads runs of one or several experiments into one flat DataFrame; keeps them in memory and on disk and on
    refresh fetches only runs that are new, still active or changed.

    SQL stores (and a server whose backend database is named by ``RECDASH_BACKEND_DB_URL``): new, active,
    deleted/restored, renamed or re-tagged runs are re-read at the next refresh. MLflow servers: a refresh reads new
    and active runs and the list of deleted runs, and every ``RECDASH_REST_RECHECK_S`` seconds (default 300) a full
    re-read in the background catches tag, note and name edits of finished runs (``check_finished_runs()`` starts
    it at once, ``recheck()`` does it in the caller's thread). Thread-safe (one lock), so it can live in
    st.cache_resource.
    """

    def __init__(self, uri: str | None = None, *, fast_path: bool = True, snapshot: bool = True) -> None:
        self.uri = resolve(uri)
        self._client = client(self.uri)
        self._source, self.notice = open_source(self.uri, self._client, fast_path)
        self._lock = threading.Lock()
        self._rechecking: threading.Thread | None = None
        self._saving: threading.Thread | None = None
        self._snapshot_path = snap.snapshot_path(self.uri) if snapshot else None
        self.clear()
        self._restored = self._restore()

    @property
    def uses_sql(self) -> bool:
        """True while the direct-SQL fast path is in use (False after a fallback)."""
        return isinstance(self._source, SqlSource)

    def clear(self) -> None:
        """Forget every cached run: the next load reads everything again."""
        self._cache = RunsCache()
        self._source.forget()
        self._saved_version = 0
        self._saved_at = 0.0
        self._results: dict[tuple, tuple] = {}  # load() arguments -> (state, result)

    # ---- snapshot

    def _restore(self) -> bool:
        """Start from the store's snapshot, if there is a valid one: every run in it is still checked against the
        store by the next load, so it saves reading, never correctness."""
        if self._snapshot_path is None:
            return False
        got = snap.load(self._snapshot_path, self.uri)
        if got is None:
            return False
        frame, info = got
        try:
            if info.get("kind") != self._source.kind:
                raise ValueError(f"made by the {info.get('kind')} source")
            extra = [c for c in frame.columns if str(c).startswith("__")]
            wide = restore_dtypes(frame.drop(columns=extra), info["dtypes"])
            self._source.restore(info, frame)
        except Exception as exc:
            _log.warning("Discarding the runs snapshot %s (%s)", self._snapshot_path, exc)
            snap.discard(self._snapshot_path)
            self._source.forget()
            return False
        self._cache.restore(wide)
        self._saved_version = self._cache.version
        self._saved_at = time.time()
        return True

    def _maybe_save(self) -> None:
        """Write the snapshot in the background when the runs changed (at most every 60 s; a restart re-checks
        every run anyway, so a missed last write costs reading, not correctness)."""
        if self._snapshot_path is None or self._cache.version == self._saved_version:
            return
        if self._saved_version and time.time() - self._saved_at < _SNAPSHOT_EVERY_S:
            return
        if self._saving is not None and self._saving.is_alive():
            return
        wide = self._cache.wide.copy()
        frame = wide.reset_index(drop=True)
        for column, values in self._source.snapshot_columns(wide.index).items():
            frame[column] = values
        meta = {
            "uri": self.uri,
            "kind": self._source.kind,
            "dtypes": {c: str(t) for c, t in wide.dtypes.items()},
            **self._source.snapshot_meta(),
        }
        self._saved_version, self._saved_at = self._cache.version, time.time()
        path = self._snapshot_path

        def write() -> None:
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
            validate_filter(filter_string)
        if not experiment_ids:
            return finalize(self._cache.wide.iloc[0:0], set(), {}, n_cached=len(self._cache.wide))
        with self._lock:
            try:
                try:
                    return self._load(experiment_ids, filter_string, statuses, include_deleted, numeric)
                except FilterError:
                    raise
                except Exception as exc:
                    if not isinstance(self._source, SqlSource):
                        raise
                    self._fall_back(exc)
                    return self._load(experiment_ids, filter_string, statuses, include_deleted, numeric)
            finally:
                self._maybe_save()

    def _fall_back(self, exc: Exception) -> None:
        """The SQL path failed: read through the server or MLflow's API from now on (and say so over a server)."""
        server = is_server(self.uri)
        how = "the MLflow server" if server else "the MLflow API"
        message = f"Direct SQL read of {self.uri} failed ({short_reason(exc)}); using {how}"
        _log.warning(message)
        if server:
            self.notice = message + "."
        self._source = RestSource(self.uri, self._client) if server else ApiSource(self.uri, self._client)
        self.clear()

    def _load(
        self,
        experiment_ids: list[str],
        filter_string: str,
        statuses: Sequence[str] | None,
        include_deleted: bool,
        numeric: Sequence[tuple[str, str, float]],
    ) -> pd.DataFrame:
        source = self._source
        loaded = set(experiment_ids) <= set(source.recheck_experiments())  # not a first read of these
        source.sync(self._cache, experiment_ids)
        if loaded:
            self._start_recheck()
        filtered = source.filter_ids(experiment_ids, filter_string) if filter_string else None
        model_runs = source.model_run_ids(experiment_ids)
        names = source.experiment_names(experiment_ids)
        # nothing changed since the same call last time: reuse its result, only the running clocks move on
        key = (tuple(experiment_ids), filter_string, tuple(numeric), tuple(statuses or ()), include_deleted)
        state = (self._cache.version, model_runs, names, filtered)
        hit = self._results.get(key)
        if hit is not None and hit[0] == state:
            return tick_durations(hit[1].copy())
        result = finalize(
            self._cache.of(experiment_ids), model_runs, names, n_cached=len(self._cache.wide), statuses=statuses,
            include_deleted=include_deleted, run_ids=filtered, numeric=numeric,
        )  # fmt: skip
        if len(self._results) > 16:
            self._results.clear()
        self._results[key] = (state, result)
        return result.copy()

    # ---- background re-read of finished runs

    def _start_recheck(self, *, now: bool = False) -> bool:
        """Start a full re-read in the background when the source needs one to see edits of finished runs and it is
        due (or ``now``); caller holds the lock. True while such a re-read runs."""
        if not self._source.rechecks or not self._source.recheck_experiments():
            return False
        if self.checking:
            return True
        if not now and not self._source.recheck_due(time.time()):
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
            source = self._source
            if not source.rechecks:  # SQL: the next load compares every run anyway; make it re-read them all
                source.force_recheck()
                return
            experiment_ids = source.recheck_experiments()
        if not experiment_ids:
            return
        started = time.time()
        fresh, markers = source.read_all(experiment_ids)
        with self._lock:
            if source is not self._source:
                return  # the loader fell back meanwhile: this read belongs to a source no longer used
            self._cache.replace(fresh, experiment_ids=experiment_ids)
            source.after_full_read(started, fresh.index, markers)
            self._results.clear()
