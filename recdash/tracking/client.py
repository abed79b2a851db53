"""How recdash talks to MLflow: one client factory, one paging helper, the errors every store function raises, and
the short reasons shown for them. Every other module of :mod:`recdash.tracking` (and of recdash) builds clients here."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from recdash.contract import MLFLOW_LOG_MODEL_HISTORY
from recdash.errors import UserError

API_PAGE_SIZE = 1000  # MLflow's default page; we always follow page_token, so this never truncates
HEALTH_TIMEOUT_S = 3.0
IN_CHUNK = 500  # bound parameters per IN (...) list or filter; far below every database's limit


class TrackingError(UserError, RuntimeError):
    """The tracking store cannot be used: the message names the URI, the reason and what to do."""


class FilterError(UserError, ValueError):
    """A malformed MLflow search filter; the message is MLflow's, without the noise."""


def tracking_uri() -> str:
    """The URI MLflow itself resolves (set_tracking_uri, MLFLOW_TRACKING_URI, else its default)."""
    import mlflow

    return mlflow.get_tracking_uri()


def resolve(uri: str | None) -> str:
    """``uri``, or the one MLflow resolves when it is None or empty."""
    return uri or tracking_uri()


def client(uri: str | None = None) -> Any:
    """An MlflowClient bound to ``uri`` (default: the URI MLflow resolves), so a function given a store works on
    that store and not on the fluent API's process-wide one. Its registry is MLflow's choice for that store
    (``MLFLOW_REGISTRY_URI``, else the tracking store)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=resolve(uri))


def all_pages(fetch: Callable[[str | None], Any]) -> list[Any]:
    """Every item of a paged MLflow search: ``fetch(token)`` returns one page (a PagedList with ``.token``).
    MLflow silently stops at one page otherwise."""
    out: list[Any] = []
    token = None
    while True:
        page = fetch(token)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def in_chunks(values: Sequence[Any]) -> Iterator[list[Any]]:
    """``values`` in lists of at most :data:`IN_CHUNK` (for ``IN (...)`` clauses and run-id filters)."""
    values = list(values)
    for i in range(0, len(values), IN_CHUNK):
        yield values[i : i + IN_CHUNK]


def search_runs(
    mlflow_client: Any, experiment_ids: Sequence[str], filter_string: str = "", view_type: int | None = None
) -> Iterator[Any]:
    """Every matching run, page after page (a generator: callers may stop early)."""
    from mlflow.entities import ViewType

    token = None
    while True:
        page = mlflow_client.search_runs(
            experiment_ids=list(experiment_ids),
            filter_string=filter_string,
            run_view_type=ViewType.ACTIVE_ONLY if view_type is None else view_type,
            max_results=API_PAGE_SIZE,
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def sql_store(mlflow_client: Any) -> Any | None:
    """The client's SqlAlchemyStore (MLflow caches it per URI), or None for other stores."""
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = mlflow_client._tracking_client.store
    except Exception:
        return None
    return store if isinstance(store, SqlAlchemyStore) else None


def mlflow_message(exc: BaseException) -> str:
    """The first line of an MLflow error's message, without its error-code prefix."""
    text = getattr(exc, "message", None) or str(exc)
    text = re.sub(r"^[A-Z_]+: ", "", str(text).strip())
    return text.splitlines()[0] if text else type(exc).__name__


def short_reason(exc: BaseException) -> str:
    """A one-line reason from a requests/urllib3 error chain instead of its nested repr."""
    text = str(exc)
    for pattern, reason in (
        (r"Connection refused|Errno 111|actively refused", "connection refused"),
        (r"Name or service not known|nodename nor servname|getaddrinfo failed|Failed to resolve", "unknown host"),
        (r"timed out|Timeout", f"no answer within {HEALTH_TIMEOUT_S:g} s"),
        (r"No route to host", "no route to host"),
        (r"CERTIFICATE_VERIFY_FAILED|SSLError", "TLS certificate verification failed"),
    ):
        if re.search(pattern, text):
            return reason
    return text.splitlines()[0][:300] if text else type(exc).__name__


def history_model_paths(tag: str | None) -> list[str]:
    """Artifact paths of the models an MLflow 2 run lists in its ``mlflow.log-model.history`` tag."""
    if not tag:
        return []
    try:
        entries = json.loads(tag)
    except ValueError:
        return []
    if not isinstance(entries, list):
        return []
    paths = [e.get("artifact_path") for e in entries if isinstance(e, dict)]
    return list(dict.fromkeys(p for p in paths if isinstance(p, str) and p))


def logged_model_ready(status: object) -> bool:
    """An MLflow 3 logged model whose files finished uploading (READY; stored as 2 in SQL stores)."""
    text = str(getattr(status, "name", status)).upper()
    return text.endswith("READY") or text == "2"


def run_has_model_marker(tags: dict[str, str]) -> bool:
    """An MLflow 2 model listed in the run's history tag (MLflow 3 models are found through logged models)."""
    return bool(history_model_paths(tags.get(MLFLOW_LOG_MODEL_HISTORY)))
