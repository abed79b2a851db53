"""Concurrent run search over an MLflow server's REST API, for the Runs page's first load.

``MlflowClient.search_runs`` reads one 1,000-run page at a time and turns every run into protobuf messages and then
MLflow entities: on a 10,000-run experiment that is ~40 s, half in the server and half in the client. Here pages are
fetched by several threads at once (split by experiment and by start-time range, so a server started with
``--workers N`` builds N pages at a time) and their JSON is kept as plain dicts (``json`` is C; protobuf parsing and
entity building are not). Ranges are found cheaply first (the oldest and newest start time of each experiment,
two one-run searches), and a range that still has more than a page left is split again, so uneven histories
(bursts of sweeps) keep every thread busy.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import pandas as pd

from recdash import settings
from recdash.tracking.api import ApiSource
from recdash.tracking.client import short_reason
from recdash.tracking.frame import assemble, json_has_model_marker, json_run_id, parts_from_json

_log = logging.getLogger(__name__)

_ORDER_DESC = ["attributes.start_time DESC"]


_ORDER_ASC = ["attributes.start_time ASC"]


class RestSearch:
    """``POST /api/2.0/mlflow/runs/search`` with MLflow's own credentials, TLS and retry settings."""

    def __init__(self, uri: str) -> None:
        from mlflow.utils.credentials import get_default_host_creds

        self.uri = uri
        self._creds = get_default_host_creds(uri)
        self.page_size = settings.REST_PAGE_SIZE.get()

    def page(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        view: str = "ALL",
        max_results: int | None = None,
        order_by: Sequence[str] = _ORDER_DESC,
        token: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of runs as the server's JSON dicts, and the next page token (None at the end)."""
        from mlflow.utils.rest_utils import http_request

        body: dict[str, Any] = {
            "experiment_ids": list(experiment_ids),
            "filter": filter_string,
            "run_view_type": view,
            "max_results": max_results or self.page_size,
            "order_by": list(order_by),
        }
        if token:
            body["page_token"] = token
        resp = http_request(self._creds, "/api/2.0/mlflow/runs/search", "POST", json=body)
        if resp.status_code != 200:
            raise RuntimeError(f"runs/search answered HTTP {resp.status_code}: {resp.text[:300]}")
        data = json.loads(resp.text)
        return data.get("runs", []), data.get("next_page_token") or None

    def bounds(self, experiment_id: str, view: str = "ALL") -> tuple[int, int] | None:
        """Oldest and newest start time (ms) of an experiment's runs, None without runs or without start times."""
        oldest, _ = self.page([experiment_id], view=view, max_results=1, order_by=_ORDER_ASC)
        newest, _ = self.page([experiment_id], view=view, max_results=1, order_by=_ORDER_DESC)
        if not oldest or not newest:
            return None
        lo, hi = oldest[0]["info"].get("start_time"), newest[0]["info"].get("start_time")
        if lo is None or hi is None:
            return None
        return int(lo), int(hi)


def _start(run: dict[str, Any]) -> int:
    return int(run["info"].get("start_time", 0))


def _split(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    """[lo, hi) cut into at most ``parts`` non-empty, adjacent ranges."""
    parts = max(1, min(parts, hi - lo))
    edges = [lo + (hi - lo) * i // parts for i in range(parts)] + [hi]
    return [(a, b) for a, b in itertools.pairwise(edges) if a < b]


def search_concurrent(
    rest: RestSearch, experiment_ids: Sequence[str], view: str = "ALL", workers: int | None = None
) -> list[dict[str, Any]]:
    """Every run of the experiments (deduplicated, in no particular order), fetched by ``workers`` threads.

    A range task reads the newest page of [lo, hi). If more remain, the rest lies in [lo, t] where t is the oldest
    start time on that page (runs sharing t may straddle the page edge, hence the closed end and deduplication),
    and it is split in two for other threads; a range that cannot shrink (a page of runs all started in the same
    millisecond) follows the page token instead. Runs without a start time (MLflow always sets one) are not found
    by ranges: an experiment whose oldest run has none is read with plain paging.
    """
    workers = workers or settings.REST_WORKERS.get()
    found: dict[str, dict[str, Any]] = {}

    def paged(exp: str) -> tuple[list[dict[str, Any]], list[tuple[str, int, int]]]:
        runs, token = rest.page([exp], view=view)
        while token:
            more, token = rest.page([exp], view=view, token=token)
            runs.extend(more)
        return runs, []

    def ranged(exp: str, lo: int, hi: int) -> tuple[list[dict[str, Any]], list[tuple[str, int, int]]]:
        where = f"attributes.start_time >= {lo} AND attributes.start_time < {hi}"
        runs, token = rest.page([exp], where, view)
        while token:
            oldest = min(_start(r) for r in runs)
            if oldest + 1 < hi and oldest + 1 - lo >= 2:
                return runs, [(exp, a, b) for a, b in _split(lo, oldest + 1, 2)]
            more, token = rest.page([exp], where, view, token=token)
            runs.extend(more)
        return runs, []

    def first(exp: str) -> tuple[list[dict[str, Any]], list[tuple[str, int, int]]]:
        span = rest.bounds(exp, view)
        if span is None:
            return paged(exp)
        lo, hi = span
        return [], [(exp, a, b) for a, b in _split(lo, hi + 1, workers)]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: set[Future] = {pool.submit(first, str(e)) for e in experiment_ids}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    runs, more = future.result()  # an error ends the search: the caller falls back to paging
                    for run in runs:
                        found[json_run_id(run)] = run
                    pending |= {pool.submit(ranged, *task) for task in more}
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return list(found.values())


class RestSource(ApiSource):
    """An MLflow server: the first load fetches pages concurrently (:func:`search_concurrent`), a refresh is the API
    source's, and every ``RECDASH_REST_RECHECK_S`` seconds a full re-read in the background catches tag, note and
    name edits of finished runs and purged runs (nothing in the REST API tells them apart)."""

    rechecks = True

    def __init__(self, uri: str, client: Any) -> None:
        super().__init__(uri, client)
        self.rest = RestSearch(uri)

    def read_all(self, experiment_ids: Sequence[str]) -> tuple[pd.DataFrame, set[str]]:
        try:
            raw = search_concurrent(self.rest, experiment_ids)
            return assemble(parts_from_json(raw)), {json_run_id(r) for r in raw if json_has_model_marker(r)}
        except Exception as exc:
            _log.warning("Concurrent read of %s failed (%s); reading page by page", self.uri, short_reason(exc))
        return super().read_all(experiment_ids)

    def recheck_due(self, now: float) -> bool:
        return bool(self._experiments) and now - self.full_read_at >= settings.REST_RECHECK_S.get()
