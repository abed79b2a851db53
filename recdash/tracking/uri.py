"""Which store a URI names, and whether recdash can use it: fail fast with a message that says what to do, instead
of MLflow's slow retries and stack traces. Legacy file stores are recognised here and opened read-only
(:mod:`recdash.tracking.filestore`)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from recdash.tracking.client import HEALTH_TIMEOUT_S, TrackingError, client, mlflow_message, resolve, short_reason

SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def scheme(uri: str) -> str:
    """The URI's scheme without its driver (``postgresql+psycopg2`` -> ``postgresql``); "" for a plain path."""
    found = urlparse(uri).scheme.lower()
    if len(found) == 1:  # a Windows drive letter, i.e. a plain path
        return ""
    return found.split("+", 1)[0]


def is_server(uri: str) -> bool:
    """An MLflow tracking server (http/https), read over REST."""
    return scheme(uri) in ("http", "https")


def file_store_path(uri: str) -> Path | None:
    """The directory of a file-store URI (file: or a plain path), else None."""
    kind = scheme(uri)
    if kind == "file":
        from mlflow.utils.file_utils import local_file_uri_to_path

        return Path(local_file_uri_to_path(uri))
    if kind == "":
        return Path(unquote(uri))
    return None


def _looks_like_mlruns(path: Path) -> bool:
    """True for a FileStore layout: experiment folders with meta.yaml (or a trash/models folder)."""
    if not path.is_dir():
        return False
    if (path / "mlruns").is_dir() and _looks_like_mlruns(path / "mlruns"):
        return True
    for child in path.iterdir():
        if child.is_dir() and (
            child.name in {".trash", "models"} or (child.name.isdigit() and (child / "meta.yaml").is_file())
        ):
            return True
    return False


def _file_store_message(uri: str, path: Path) -> str:
    from recdash.tracking.filestore import migration_advice

    source = path if not (path / "mlruns").is_dir() else path / "mlruns"
    return (
        f"The tracking store {uri} is a legacy MLflow file store ({source}), which this MLflow version refuses "
        "to open by default. Either set MLFLOW_ALLOW_FILE_STORE=true to let recdash open it read-only (it then "
        f"shows the runs but cannot train or register into it), or {migration_advice(source)}."
    )


def is_file_store(uri: str | None = None) -> bool:
    """True for a legacy MLflow file store (``file:`` URI or a plain path), which recdash only reads."""
    return file_store_path(resolve(uri)) is not None


def check_writable(uri: str | None = None, action: str = "this") -> None:
    """Refuse a writing action (train, register, alias, demo runs) on a store recdash opens read-only."""
    uri = resolve(uri)
    path = file_store_path(uri)
    if path is not None:
        from recdash.tracking.filestore import write_refused_message

        raise TrackingError(write_refused_message(path, action))


def _allow_file_store() -> bool:
    return os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in {"true", "1"}


def _check_http(uri: str) -> None:
    import requests

    base = uri.rstrip("/")
    try:
        response = requests.get(f"{base}/health", timeout=HEALTH_TIMEOUT_S)
    except requests.RequestException as exc:
        raise TrackingError(
            f"Cannot reach the MLflow tracking server at {uri}: {short_reason(exc)}. Start it (e.g. "
            "`mlflow server --backend-store-uri sqlite:///mlflow.db --port 5000`) or set MLFLOW_TRACKING_URI "
            "to a server or database that is up."
        ) from exc
    if response.status_code in (401, 403):
        raise TrackingError(_auth_message(uri, response.status_code))
    # /health may be absent behind a proxy: the API call below is the real test, with no retries and a short timeout.
    try:
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        resp = http_request(
            get_default_host_creds(uri),
            "/api/2.0/mlflow/experiments/search",
            "GET",
            max_retries=0,
            backoff_factor=0,
            timeout=HEALTH_TIMEOUT_S,
            params={"max_results": 1},
        )
    except Exception as exc:
        raise TrackingError(f"The MLflow tracking server at {uri} did not answer: {short_reason(exc)}.") from exc
    if resp.status_code in (401, 403):
        raise TrackingError(_auth_message(uri, resp.status_code))
    if resp.status_code != 200:
        raise TrackingError(
            f"{uri} answered HTTP {resp.status_code} to an MLflow API call: is it an MLflow tracking server "
            "(check the URI, including any path prefix)?"
        )


def _auth_message(uri: str, code: int) -> str:
    return (
        f"The MLflow tracking server at {uri} refused access (HTTP {code}). Set MLFLOW_TRACKING_USERNAME and "
        "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN, for this server."
    )


def check_store(uri: str | None = None) -> None:
    """Fail fast with a useful message instead of MLflow's slow retries and stack traces."""
    uri = resolve(uri)
    kind = scheme(uri)
    if kind in ("http", "https"):
        _check_http(uri)
        return
    path = file_store_path(uri)
    if path is not None:
        if not _allow_file_store():
            if _looks_like_mlruns(path):
                raise TrackingError(_file_store_message(uri, path))
            raise TrackingError(
                f"The tracking URI {uri} points to a file store directory ({path}), which this MLflow version "
                "refuses to use. Set MLFLOW_TRACKING_URI to a database, e.g. sqlite:///mlflow.db, or set "
                "MLFLOW_ALLOW_FILE_STORE=true to use the legacy file store."
            )
        if not path.is_dir():
            raise TrackingError(f"The file store {uri} does not exist ({path} is not a directory).")
    try:
        client(uri).search_experiments(max_results=1)
    except TrackingError:
        raise
    except Exception as exc:
        text = mlflow_message(exc)
        hint = ""
        if "out-of-date database schema" in text or "alembic" in text.lower():
            hint = f" Upgrade the database with `mlflow db upgrade {uri}` (back it up first)."
        raise TrackingError(f"Cannot open the tracking store {uri}: {text}{hint}") from exc
