"""Legacy MLflow file stores (``./mlruns``), opened strictly read-only.

MLflow's own ``FileStore`` writes when it is merely opened (it creates ``.trash``, the default experiment and the
registry's ``models`` folder) and refuses to read a run whose empty ``metrics/``, ``params/`` or ``artifacts/``
folder is missing -- which is how every store exported from git looks, since git keeps no empty folders. So a store
that "recdash only looks at" was changed by looking, and half of it could not be read.

:func:`install` makes this process open ``file:`` and plain-path stores with the two subclasses below instead:
they never create a folder, read runs whatever empty folders are missing, find artifacts that travelled with the
store when the location recorded in ``meta.yaml`` no longer exists, and refuse every call that would write with
:class:`ReadOnlyStoreError`, whose message says what to do instead (migrate to SQLite, to a file that cannot clash
with an existing database). The dashboard installs it; a script that really wants to write a file store does not
import this module.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mlflow.exceptions import MlflowException
from mlflow.store.model_registry.abstract_store import AbstractStore as _AbstractRegistryStore
from mlflow.store.model_registry.file_store import FileStore as _RegistryFileStore
from mlflow.store.tracking.abstract_store import AbstractStore as _AbstractTrackingStore
from mlflow.store.tracking.file_store import FileStore as _TrackingFileStore
from mlflow.utils.file_utils import local_file_uri_to_path, path_to_local_file_uri

# Public store methods that only read. Everything else a FileStore offers writes (create_, log_, set_, delete_,
# update_, record_, finalize_, ...) and is refused; an allow-list, so methods added by a later MLflow are refused
# until someone checks them, instead of silently writing.
_READ_PREFIXES = ("get_", "search_", "list_", "find_", "filter_", "batch_get_", "query_", "calculate_", "sum_")
# Async-logging housekeeping MLflow calls on every store at exit: nothing was queued, so nothing to do.
_NO_OPS = ("end_async_logging", "flush_async_logging", "shut_down_async_logging")

_install_lock = threading.Lock()
_installed = False


class ReadOnlyStoreError(MlflowException):
    """A write to a legacy file store that recdash opened read-only; the message says why and what to do."""

    def __init__(self, root: str | os.PathLike[str], action: str) -> None:
        super().__init__(write_refused_message(root, action), error_code="INVALID_STATE")


def migration_target(store_dir: str | os.PathLike[str]) -> Path:
    """A new SQLite file next to the legacy store, named after it, that does not exist yet.

    Never ``mlflow.db``: ``make run`` keeps recdash's own store under that name, and ``mlflow migrate-filestore``
    deletes an existing target file after one "y".
    """
    store = Path(store_dir).resolve()
    base = store.parent / f"{store.name}-migrated"
    candidate = base.with_name(base.name + ".db")
    n = 2
    while candidate.exists() or candidate.name == "mlflow.db":
        candidate = store.parent / f"{base.name}-{n}.db"
        n += 1
    return candidate


def migration_advice(store_dir: str | os.PathLike[str]) -> str:
    """The migration command for a legacy store, with a target that cannot overwrite anything. Each command is a
    code span of its own, ending a sentence, so a page can show it as a block to copy and the prose as prose."""
    store = Path(store_dir).resolve()
    target = migration_target(store)
    return (
        "migrate it once into a new SQLite file next to it (a new file: it cannot overwrite recdash's mlflow.db or "
        f"any other database): `mlflow migrate-filestore --source {store} --target sqlite:///{target}` Then start "
        f"recdash on that file: `MLFLOW_TRACKING_URI=sqlite:///{target} make run`"
    )


def write_refused_message(root: str | os.PathLike[str], action: str) -> str:
    return (
        f"{action[:1].upper()}{action[1:]} is not possible here: {root} is a legacy MLflow file store, which "
        "recdash opens read-only so that looking at it never changes it. To train, register or set aliases, "
        f"{migration_advice(root)}."
    )


def _refuse(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise ReadOnlyStoreError(self.root_directory, f"Writing to it ({name})")

    method.__name__ = name
    method.__doc__ = "Refused: this store is read-only."
    return method


def _no_op(self: Any, *args: Any, **kwargs: Any) -> None:
    return None


def _guard(cls: type, base: type) -> type:
    """Replace every public method of ``base`` that is not a read with one that refuses."""
    for name in dir(base):
        if name.startswith("_") or not callable(getattr(base, name, None)) or isinstance(getattr(base, name), type):
            continue
        if name in _NO_OPS:
            setattr(cls, name, _no_op)
        elif not name.startswith(_READ_PREFIXES):
            setattr(cls, name, _refuse(name))
    return cls


class ReadOnlyTrackingStore(_TrackingFileStore):
    """MLflow's tracking FileStore without a single write, tolerant of what a git export leaves out."""

    def __init__(self, root_directory: str | None = None, artifact_root_uri: str | None = None) -> None:
        # FileStore.__init__ creates the root, the default experiment and .trash: set its fields without it.
        _AbstractTrackingStore.__init__(self)
        self.root_directory = local_file_uri_to_path(root_directory or "mlruns")
        self.artifact_root_uri = artifact_root_uri or path_to_local_file_uri(self.root_directory)
        self.trash_folder = os.path.join(self.root_directory, _TrackingFileStore.TRASH_FOLDER_NAME)

    def _get_deleted_experiments(self, full_path: bool = False) -> list[str]:
        if not os.path.isdir(self.trash_folder):
            return []
        return super()._get_deleted_experiments(full_path)

    def _is_valid_run_directory(self, run_dir: str) -> bool:
        """A run folder is one with ``meta.yaml``, outside any artifacts folder (MLflow's path-traversal guard);
        its ``metrics/``, ``params/`` and ``artifacts/`` folders may be missing: they were empty."""
        parts = os.path.normpath(run_dir).split(os.sep)
        if _TrackingFileStore.ARTIFACTS_FOLDER_NAME in parts[:-1]:
            return False
        return os.path.isfile(os.path.join(run_dir, _TrackingFileStore.META_DATA_FILE_NAME))

    def _get_run_info_from_dir(self, run_dir: str) -> Any:
        info = super()._get_run_info_from_dir(run_dir)
        moved = travelled_artifacts(info.artifact_uri, run_dir)
        return info if moved is None else _with_artifact_uri(info, moved)


def travelled_artifacts(artifact_uri: str | None, run_dir: str) -> str | None:
    """The run's own ``artifacts/`` folder when the recorded local location is gone but the folder came along
    with the store (a store copied or cloned to another path); None when the recorded location is fine."""
    path = local_path(artifact_uri)
    if path is None or path.exists():
        return None
    here = Path(run_dir) / _TrackingFileStore.ARTIFACTS_FOLDER_NAME
    return path_to_local_file_uri(str(here)) if here.is_dir() else None


def local_path(uri: str | None) -> Path | None:
    """The local path of a ``file:`` URI or plain path, None for remote artifact stores."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or len(parsed.scheme) == 1:
        return Path(uri)
    return None


def _with_artifact_uri(info: Any, artifact_uri: str) -> Any:
    from mlflow.entities import RunInfo

    return RunInfo(
        run_id=info.run_id,
        experiment_id=info.experiment_id,
        user_id=info.user_id,
        status=info.status,
        start_time=info.start_time,
        end_time=info.end_time,
        lifecycle_stage=info.lifecycle_stage,
        artifact_uri=artifact_uri,
        run_name=info.run_name,
    )


class ReadOnlyRegistryStore(_RegistryFileStore):
    """MLflow's registry FileStore without creating ``models/``: a store without it simply has no models."""

    def __init__(self, root_directory: str | None = None) -> None:
        _AbstractRegistryStore.__init__(self)
        self.root_directory = local_file_uri_to_path(root_directory or "mlruns")

    def search_registered_models(self, *args: Any, **kwargs: Any) -> Any:
        if not os.path.isdir(self.models_directory):
            from mlflow.store.entities.paged_list import PagedList

            return PagedList([], None)
        return super().search_registered_models(*args, **kwargs)

    def search_model_versions(self, *args: Any, **kwargs: Any) -> Any:
        if not os.path.isdir(self.models_directory):
            from mlflow.store.entities.paged_list import PagedList

            return PagedList([], None)
        return super().search_model_versions(*args, **kwargs)


_guard(ReadOnlyTrackingStore, _TrackingFileStore)
_guard(ReadOnlyRegistryStore, _RegistryFileStore)


def _tracking_builder(store_uri: str, artifact_uri: str | None = None, **_: Any) -> ReadOnlyTrackingStore:
    return ReadOnlyTrackingStore(store_uri, artifact_uri)


def _registry_builder(store_uri: str, **_: Any) -> ReadOnlyRegistryStore:
    return ReadOnlyRegistryStore(store_uri)


def install() -> None:
    """From now on this process opens ``file:`` and plain-path MLflow stores read-only (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        registries = (tracking_utils._tracking_store_registry, registry_utils._get_store_registry())
        for registry, builder in zip(registries, (_tracking_builder, _registry_builder), strict=True):
            for scheme in ("", "file"):
                registry.register(scheme, builder)
            # stores are cached per URI: drop any FileStore built before (it would write)
            registry._get_store_with_resolved_uri.cache_clear()
        _installed = True


def is_installed() -> bool:
    return _installed
