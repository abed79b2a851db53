"""Where a logged model's files belong in a tracking store, which of them are not there, and reading a run's small
extra files (per-user results, the data profile).

MLflow loads a model by copying its files into a temporary folder, so its not-found errors name that folder
(``/tmp/tmpab12/model/python_model.pkl``). A reader needs the place the store records instead: the logged model's
or the run's artifact location, which for a store moved from another machine may not exist here at all (issue 21,
finding 3). Read-only; the Recommend page turns these answers into notes.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from recdash.tracking.client import all_pages, client
from recdash.tracking.filestore import local_path

_log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ModelPlace:
    """Where a model's files belong: its own artifact location and its experiment's artifact root (URIs as the
    store records them, after a moved file store's travelled artifacts are found)."""

    location: str
    experiment_root: str | None


def model_place(model_uri: str, tracking_uri: str | None = None) -> ModelPlace | None:
    """The artifact location of a ``runs:/``, ``models:/<model_id>`` or ``models:/<name>/<version>`` URI, read
    from the store; None when the store cannot say (an unknown run or model: the caller reports the original error)."""
    store = client(tracking_uri)
    uri = model_uri.strip()
    try:
        for _ in range(3):  # a registered version points at a logged model or a run: follow it
            rest = uri.removeprefix("runs:/").removeprefix("models:/")
            if uri.startswith("runs:/"):
                run_id, _, path = rest.partition("/")
                info = store.get_run(run_id).info
                name, _, inner = path.strip("/").partition("/")
                model = _run_model(store, run_id, info.experiment_id, name) if name else None
                if model is not None:  # MLflow 3: runs:/<run>/<name> is the run's logged model of that name
                    location = model.artifact_location.rstrip("/") + (f"/{inner}" if inner else "")
                else:  # MLflow 2: the files under the run's own artifacts
                    location = info.artifact_uri.rstrip("/") + (f"/{path.strip('/')}" if path.strip("/") else "")
                experiment_id = info.experiment_id
                break
            if uri.startswith("models:/") and "/" not in rest and "@" not in rest:
                model = store.get_logged_model(rest)
                location, experiment_id = model.artifact_location, model.experiment_id
                break
            if uri.startswith("models:/") and "/" in rest:
                name, _, version = rest.rpartition("/")
                uri = store.get_model_version(name, version).source
                continue
            return ModelPlace(uri, None) if uri != model_uri.strip() and "://" in uri else None  # a version's path
        else:
            return None
        root = store.get_experiment(experiment_id).artifact_location
    except Exception:  # the store cannot say: the caller reports the original error
        return None
    return ModelPlace(location, root)


def _run_model(store: Any, run_id: str, experiment_id: str, name: str) -> Any:
    """The run's logged model called ``name``, found the way MLflow resolves ``runs:/<run>/<name>``; None if none."""
    try:
        models = all_pages(
            lambda t: store.search_logged_models(
                experiment_ids=[experiment_id], filter_string=f"name = '{name}'", page_token=t
            )
        )
    except Exception:  # a store without logged models (MLflow 2's file store): the run's own artifacts
        return None
    return next((m for m in models if m.source_run_id == run_id), None)


_QUOTED_PATH = re.compile(r"""["'](/[^"']+)["']""")


def _missing_file(folder: Path, exc: BaseException) -> str | None:
    """Which file of the model, relative to its own ``folder``, a not-found error was about: MLflow names its
    temporary copy (``/tmp/tmpab12/model/python_model.pkl``), so the longest tail of that path whose folder exists
    in ``folder`` but whose file does not is the one that is missing there."""
    named = getattr(exc, "filename", None)
    candidates = [str(named)] if named else _QUOTED_PATH.findall(str(exc))
    for candidate in candidates:
        parts = Path(candidate).parts[1:]
        for i in range(len(parts)):
            tail = Path(*parts[i:])
            if (folder / tail).parent.is_dir() and not (folder / tail).exists():
                return tail.as_posix()
    return None


def _not_found(exc: BaseException) -> bool:
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return True
    message = str(exc).lower()
    return any(s in message for s in ("no such file", "no such artifact", "could not find", "failed to download"))


def missing_files(uri: str, exc: BaseException, tracking_uri: str | None = None) -> str | None:
    """Why loading ``uri`` failed, when it failed because its files are not there: what is missing where, named by
    the model's own artifact location; None when the files are not local or the error is about something else."""
    place = model_place(uri, tracking_uri)
    path = local_path(place.location) if place is not None else None
    if place is None or path is None:
        return None
    root = local_path(place.experiment_root)
    if not path.exists() and not path.parent.exists() and (root is None or not root.exists()):
        return (
            f"The files of {uri} are not on this machine: its artifact location {path} does not exist here. The "
            "tracking store was probably moved or copied from another machine; its runs, params and metrics can "
            "still be read, but this model cannot be loaded until its artifacts are at that path."
        )
    if not _not_found(exc):
        return None
    if not path.exists():
        return (
            f"The files of {uri} are missing: nothing is at its artifact location {path}. The run's params and "
            "metrics can still be read, but this model cannot be loaded."
        )
    missing = _missing_file(path, exc) if path.is_dir() else None
    what = f"{missing} is missing from" if missing else "some of them are missing from"
    return f"The files of {uri} are incomplete: {what} its artifact location {path}, so this model cannot be loaded."


def read_run_file(run_id: str, artifact_path: str, read: Callable[[Path], T], uri: str | None = None) -> T | None:
    """``read(path)`` of one small artifact of a run, or None when the run has no such file.

    A run whose artifacts are on this machine (a local artifact root) is read in place; others are downloaded into
    a temporary folder the way MLflow downloads any artifact (a server's proxied artifacts, S3...). Errors of the
    download (absent file, unreachable artifact store) read as None: these files are optional extras of a run
    (per-user results, the data profile), and older or other tools' runs lack them."""
    import mlflow

    try:
        location = local_path(client(uri).get_run(run_id).info.artifact_uri)
        if location is not None and location.is_dir():
            path = location / artifact_path
            return read(path) if path.is_file() else None
        with tempfile.TemporaryDirectory(prefix="recdash-artifact-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=artifact_path, dst_path=tmp, tracking_uri=uri
            )
            return read(Path(local))
    except Exception as exc:  # absent (older runs, other tools'), or an artifact store this machine cannot reach
        _log.debug("no %s for run %s (%s)", artifact_path, run_id, exc)
        return None
