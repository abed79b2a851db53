"""Read access to any MLflow tracking store, laid out like MLflow's own ``mlflow/store/tracking/``.

* :mod:`~recdash.tracking.uri`: which store a URI names and whether it can be used (``check_store``);
* :mod:`~recdash.tracking.client`: the one client factory, the paging helper and the store errors;
* :mod:`~recdash.tracking.frame`: the runs table every source produces;
* one source per backend behind :class:`~recdash.tracking.source.RunSource`: :mod:`~recdash.tracking.sql` (bulk SQL),
  :mod:`~recdash.tracking.api` (MLflow's paged API), :mod:`~recdash.tracking.rest` (concurrent REST to a server);
* :mod:`~recdash.tracking.loader`: the cached, snapshotted, incrementally refreshed runs of a store;
* :mod:`~recdash.tracking.experiments`, :mod:`~recdash.tracking.histories`, :mod:`~recdash.tracking.filters`,
  :mod:`~recdash.tracking.snapshot`, :mod:`~recdash.tracking.filestore` (legacy file stores, read-only) and
  :mod:`~recdash.tracking.artifacts` (where a run's model files belong, and which are missing).

This package is the public face: pages and the rest of recdash import from here.
"""

from recdash.tracking.client import FilterError, TrackingError, all_pages, client, resolve, tracking_uri
from recdash.tracking.experiments import list_experiments, recent_runs
from recdash.tracking.filters import NUMERIC_FILTER_HELP, split_numeric_filter
from recdash.tracking.frame import BASE_COLUMNS, runs_with_models
from recdash.tracking.histories import metric_histories
from recdash.tracking.loader import RunsLoader
from recdash.tracking.uri import check_store, check_writable, is_file_store, is_server

__all__ = [
    "BASE_COLUMNS",
    "NUMERIC_FILTER_HELP",
    "FilterError",
    "RunsLoader",
    "TrackingError",
    "all_pages",
    "check_store",
    "check_writable",
    "client",
    "is_file_store",
    "is_server",
    "list_experiments",
    "metric_histories",
    "recent_runs",
    "resolve",
    "runs_with_models",
    "split_numeric_filter",
    "tracking_uri",
]
