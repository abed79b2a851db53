"""A real SQLite tracking store in a folder, for module-scoped fixtures that build their runs once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow


@contextmanager
def sqlite_store(root: Path) -> Iterator[str]:
    """Make ``root/mlflow.db`` the tracking store and ``root`` the working directory (the default artifact root
    ./mlruns is resolved against it), yield the store's URI, and put both back afterwards."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    old_uri, old_cwd = mlflow.get_tracking_uri(), os.getcwd()
    os.chdir(root)
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        os.chdir(old_cwd)
        mlflow.set_tracking_uri(old_uri)
