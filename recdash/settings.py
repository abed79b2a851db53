"""Every ``RECDASH_*`` environment variable, one typed entry each, with its default and what it is for.

Modelled on MLflow's ``mlflow/environment_variables.py``: code reads a setting with ``settings.MAX_JOBS.get()``
(at call time, so a test or a job's environment can change it), never with ``os.environ`` directly. The README's
settings table is generated from (and checked by a test against) :data:`ALL`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: ``get()`` parses it, and falls back to the default when unset or unparsable."""

    name: str
    parse: Callable[[str], T]
    default: Callable[[], T]
    doc: str
    default_text: str  # the default as the README states it

    def is_set(self) -> bool:
        return bool(os.environ.get(self.name, "").strip())

    def get(self) -> T:
        raw = os.environ.get(self.name, "").strip()
        if raw:
            try:
                return self.parse(raw)
            except ValueError:
                pass  # a malformed value behaves as if it were unset (the default is always usable)
        return self.default()


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # 0: at every refresh
        raise ValueError(text)
    return value


def _path(text: str) -> Path:
    return Path(text).expanduser()


CACHE_DIR: Setting[Path] = Setting(
    "RECDASH_CACHE_DIR",
    _path,
    lambda: Path("~/.cache/recdash").expanduser(),
    "Folder for downloaded datasets, job logs, uploads, run snapshots and the default Optuna storage of a "
    "non-SQLite tracking store.",
    "`~/.cache/recdash`",
)
SNAPSHOT_DIR: Setting[Path] = Setting(
    "RECDASH_SNAPSHOT_DIR",
    _path,
    lambda: CACHE_DIR.get() / "runs-snapshots",
    "Where the Runs page keeps its on-disk snapshot of each store's runs (one Parquet file per store).",
    "`$RECDASH_CACHE_DIR/runs-snapshots`",
)
JOBS_DIR: Setting[Path] = Setting(
    "RECDASH_JOBS_DIR",
    _path,
    lambda: CACHE_DIR.get() / "jobs",
    "Where background jobs write their logs and uploaded tables are kept.",
    "`$RECDASH_CACHE_DIR/jobs`",
)
MAX_JOBS: Setting[int] = Setting(
    "RECDASH_MAX_JOBS",
    _positive_int,
    lambda: max(1, os.cpu_count() or 1),
    "How many background jobs (trainings, sweep workers) run at once; the rest wait in the queue.",
    "the number of cores",
)
USER: Setting[str] = Setting(
    "RECDASH_USER",
    str,
    lambda: _login_name(),
    "The owner recorded on every run a dashboard job makes (MLflow's user and `mlflow.user` tag).",
    "the user running the dashboard",
)
MLFLOW_UI_URL: Setting[str] = Setting(
    "RECDASH_MLFLOW_UI_URL",
    str,
    lambda: "",
    "Base URL of an MLflow UI (e.g. http://localhost:5000); the Runs page then links each run to it.",
    "unset (no links)",
)
BACKEND_DB_URL: Setting[str] = Setting(
    "RECDASH_BACKEND_DB_URL",
    str,
    lambda: "",
    "The MLflow server's own backend database (SQLAlchemy URL, read-only role): the Runs page then reads runs from "
    "it in bulk instead of over REST (see docs/deploy.md).",
    "unset (REST)",
)
REST_RECHECK_S: Setting[float] = Setting(
    "RECDASH_REST_RECHECK_S",
    _seconds,
    lambda: 300.0,
    "Over an MLflow server: seconds between background re-reads that catch edits of finished runs (0: at every "
    "refresh).",
    "`300`",
)
REST_WORKERS: Setting[int] = Setting(
    "RECDASH_REST_WORKERS",
    _positive_int,
    lambda: 8,
    "Over an MLflow server: threads that fetch pages of runs at once on a first load (about twice the server's "
    "workers is best).",
    "`8`",
)
REST_PAGE_SIZE: Setting[int] = Setting(
    "RECDASH_REST_PAGE_SIZE",
    _positive_int,
    lambda: 1000,
    "Over an MLflow server: runs per page of a first load (tests lower it to exercise range splitting).",
    "`1000`",
)
OPTUNA_STORAGE: Setting[str] = Setting(
    "RECDASH_OPTUNA_STORAGE",
    str,
    lambda: "",
    "Optuna storage (SQLAlchemy URL, e.g. postgresql://...) of sweeps started without --storage, the Train page's "
    "included: a shared database lets `sweep --worker` on other hosts join them (see docs/deploy.md).",
    "unset (`optuna.db` beside a SQLite tracking store, else in the cache folder)",
)

ALL: tuple[Setting, ...] = (
    CACHE_DIR,
    SNAPSHOT_DIR,
    JOBS_DIR,
    MAX_JOBS,
    USER,
    MLFLOW_UI_URL,
    BACKEND_DB_URL,
    REST_RECHECK_S,
    REST_WORKERS,
    REST_PAGE_SIZE,
    OPTUNA_STORAGE,
)


def _login_name() -> str:
    """The user running this process, as MLflow itself finds it (``getpass.getuser``, else "unknown")."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return "unknown"


def cache_dir(*parts: str, create: bool = True) -> Path:
    """A folder under :data:`CACHE_DIR` (created unless ``create`` is False)."""
    path = CACHE_DIR.get().joinpath(*parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def markdown_table() -> str:
    """The README's settings table, from :data:`ALL`."""
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    rows += [f"| `{s.name}` | {s.default_text} | {s.doc} |" for s in ALL]
    return "\n".join(rows)


__all__ = ["ALL", "Setting", "cache_dir", "markdown_table"] + [s.name.removeprefix("RECDASH_") for s in ALL]
