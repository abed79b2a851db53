"""Each run's per-user test results, kept as one small Parquet artifact next to its logged metrics.

Runs of one data group are evaluated on the same test users, so comparing two of them user by user (a paired test,
:mod:`recdash.evaluation.significance`) says whether a difference is real. The artifact holds, for every evaluated
test user: ``user_id`` (text), ``quartile`` (the user's training-activity quartile, 0 = the least active; -1 for cold
users, who have none) and one column per ranking metric under its logged name (``test_ndcg_at_10``...). The logged
metric is the mean of its column (``np.mean``, the same computation): reading the artifact gives the logged numbers
back exactly.

Runs without it (older runs, other tools' runs, legacy stores) read as None: the pages then say "per-user results not
logged; retrain to get intervals".
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from recdash import contract, tracking
from recdash.tracking.artifacts import read_run_file

FORMAT_VERSION = 1
_META_KEY = b"recdash.per_user"
NOT_LOGGED = "per-user results not logged; retrain to get intervals"


def log(frame: pd.DataFrame, run_id: str, prefix: str = "test_") -> None:
    """Write ``frame`` (:meth:`recdash.evaluation.heldout.HeldOut.evaluate_users`' per-user results) as the run's
    per-user artifact, its metric columns named as the run logs them (``prefix`` + ``ndcg_at_10``...).

    Built from the columns' arrays (not ``Table.from_pandas``, which adds pandas metadata and a third of the cost):
    every run pays this once, so it is kept to a few milliseconds (``bench/significance.py``)."""
    columns = {(c if c in ("user_id", "quartile") else prefix + c): frame[c].to_numpy() for c in frame.columns}
    meta = {"format": FORMAT_VERSION, "metrics": [c for c in columns if c not in ("user_id", "quartile")]}
    table = pa.table(columns, metadata={_META_KEY: json.dumps(meta).encode()})
    folder, name = contract.PER_USER_ARTIFACT.rsplit("/", 1)
    with tempfile.TemporaryDirectory(prefix="recdash-per-user-") as tmp:
        path = Path(tmp) / name
        pq.write_table(table, path, compression="zstd")
        _log_file(run_id, path, folder)


def _log_file(run_id: str, path: Path, folder: str) -> None:
    """Log ``path`` under ``folder`` of ``run_id``. Inside that run (training), straight to the active run's artifact
    URI: MLflow's ``log_artifact`` first reads the run back from the store to learn it, a query as slow as the
    write itself."""
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        repository = get_artifact_repository(active.info.artifact_uri, tracking_uri=mlflow.get_tracking_uri())
        repository.log_artifact(str(path), folder)
    else:
        tracking.client().log_artifact(run_id, str(path), folder)


def read(run_id: str, uri: str | None = None) -> pd.DataFrame | None:
    """The run's per-user results (see the module doc), or None when the run has none (or they cannot be read).

    A run whose artifacts are on this machine (a local artifact root) is read in place; others are downloaded the
    way MLflow downloads any artifact (a server's proxied artifacts, S3...)."""
    return read_run_file(run_id, contract.PER_USER_ARTIFACT, lambda path: _frame(pq.read_table(path)), uri)


def _frame(table: pa.Table) -> pd.DataFrame | None:
    meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}") or b"{}")
    if meta.get("format") != FORMAT_VERSION:
        return None
    frame = table.to_pandas()
    frame["user_id"] = frame["user_id"].astype(str)
    return frame


def read_many(run_ids: Sequence[str], uri: str | None = None, workers: int = 8) -> dict[str, pd.DataFrame | None]:
    """:func:`read` for several runs at once (artifact reads are I/O: a few threads overlap them)."""
    ids = list(dict.fromkeys(run_ids))
    if not ids:
        return {}
    with ThreadPoolExecutor(max_workers=min(workers, len(ids))) as pool:
        return dict(zip(ids, pool.map(lambda r: read(r, uri), ids), strict=True))
