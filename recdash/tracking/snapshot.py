"""On-disk snapshot of a RunsLoader's runs, so a dashboard restart reads only what changed in the store.

One Parquet file per store under ``$RECDASH_SNAPSHOT_DIR`` (default ``<cache>/runs-snapshots``, the cache being
``$RECDASH_CACHE_DIR`` or ~/.cache/recdash), named by a hash of the store URI: never inside the store, and never
holding anything the store does not. The file carries its format version and the URI it was made from. It is only
ever a starting point: the loader checks every run in it against the store before showing it (see
``RunsLoader``), and a file that cannot be read, is truncated, or was written by another format version or for
another URI is deleted and ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from recdash import settings

_log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: per-run columns come from the source (recdash.tracking.source)
_META_KEY = b"recdash.snapshot"


def snapshot_path(uri: str, folder: Path | None = None) -> Path:
    """The snapshot file of a store: a hash of its URI, so credentials in the URI never become a file name."""
    digest = hashlib.sha256(uri.encode()).hexdigest()[:24]
    return (folder or settings.SNAPSHOT_DIR.get()) / f"runs-{digest}.parquet"


def save(path: Path, frame: pd.DataFrame, meta: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): a crash mid-write leaves the previous snapshot or none."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    info = {"format": FORMAT_VERSION, **meta}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: json.dumps(info).encode()})
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load(path: Path, uri: str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The frame and metadata of a valid snapshot for ``uri``, else None (an invalid file is deleted)."""
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        info = json.loads((table.schema.metadata or {})[_META_KEY])
        if info.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {info.get('format')} is not {FORMAT_VERSION}")
        if info.get("uri") != uri:
            raise ValueError("made for another store")
        frame = table.to_pandas()
    except Exception as exc:  # truncated, corrupt, foreign: never trusted
        _log.warning("Discarding the runs snapshot %s (%s)", path, str(exc).splitlines()[0][:200] if str(exc) else exc)
        discard(path)
        return None
    return frame, info


def discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
