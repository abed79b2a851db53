"""MLflow Model Registry access for the Models page: list, register, alias, describe, tag, compare.

Everything goes through one :class:`~mlflow.tracking.MlflowClient` (the caller's, or one for the current tracking
URI). MLflow failures come back as two kinds of errors so the page can say something useful:
:class:`RegistryError` when the registry itself is missing or refuses the call (a ``./mlruns`` file store, a server
without the registry, no permission), and :class:`RegistryInputError` for bad input (a bad alias, an unknown model or
version) with MLflow's own explanation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from recdash import contract
from recdash.errors import UserError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

T = TypeVar("T")

DEFAULT_ARTIFACT_PATH = "model"  # where recdash.training.run logs the model (runs:/<id>/model)
CHAMPION = "champion"
CHALLENGER = "challenger"
LINEAGE_PARAMS = ("dataset_name", "dataset_digest")
_ALIAS = re.compile(r"^[\w\-]+$")
_VERSION_LIKE = re.compile(r"^[vV]\d+$")
_MAX_ALIAS = 255
# MLflow error codes that mean "this store has no registry" or "this server will not let you use it"
_UNAVAILABLE_CODES = {
    "FEATURE_DISABLED",
    "ENDPOINT_NOT_FOUND",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "NOT_IMPLEMENTED",
    "TEMPORARILY_UNAVAILABLE",
}
_USER_ERROR_CODES = {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS", "NOT_FOUND"}


class RegistryError(UserError, RuntimeError):
    """The model registry is not available here (unsupported store, or the server refused the call)."""


class RegistryInputError(UserError, ValueError):
    """A bad name, alias or version, or one the registry does not have; the message says which (MLflow's own
    explanation where it gave one)."""


def _client(client: MlflowClient | None) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return client if client is not None else MlflowClient()


def _registry_uri(client: MlflowClient) -> str:
    return str(getattr(client, "_registry_uri", "") or "")


@contextmanager
def _translated(client: MlflowClient, action: str) -> Iterator[None]:
    """Turn MlflowException into RegistryError (registry unavailable) or RegistryInputError (bad input), with
    context."""
    from mlflow.exceptions import MlflowException

    from recdash.tracking.filestore import ReadOnlyStoreError

    try:
        yield
    except ReadOnlyStoreError as exc:  # a legacy file store: its own message says why and what to do
        raise RegistryError(exc.message) from None
    except MlflowException as exc:
        code = str(getattr(exc, "error_code", "") or "")
        message = str(getattr(exc, "message", "") or exc).strip()
        unsupported = "maintenance mode" in message or "not supported by the store" in message
        if code in _UNAVAILABLE_CODES or unsupported:
            raise RegistryError(
                f"The model registry is not available for {_registry_uri(client) or 'this tracking store'} "
                f"(could not {action}): {message.splitlines()[0] if message else code}. "
                "Use a database-backed store (e.g. sqlite:///mlflow.db) or an MLflow server with the registry."
            ) from None
        if code in _USER_ERROR_CODES:
            raise RegistryInputError(f"Could not {action}: {message}") from None
        raise RegistryError(f"Could not {action}: {message or code}") from None


def _call(client: MlflowClient, action: str, fn: Callable[[], T]) -> T:
    with _translated(client, action):
        return fn()


def validate_model_name(name: str) -> str:
    """A registered model name usable in ``models:/<name>@<alias>`` URIs (so no '/', ':' or '@')."""
    name = (name or "").strip()
    if not name:
        raise RegistryInputError("model name must not be empty")
    bad = sorted({c for c in name if c in "/:@"})
    if bad:
        raise RegistryInputError(f"model name {name!r} must not contain {', '.join(repr(c) for c in bad)}")
    return name


def validate_alias(alias: str) -> str:
    """MLflow's alias rules, checked up front so the message names the rule: letters, digits, '_' and '-';
    not 'latest' and not 'v<number>' (both would clash with version URIs)."""
    alias = (alias or "").strip()
    if not alias:
        raise RegistryInputError("alias must not be empty")
    if not _ALIAS.match(alias):
        raise RegistryInputError(f"alias {alias!r} may only contain letters, digits, underscores (_) and dashes (-)")
    if alias.lower() == "latest":
        raise RegistryInputError("alias 'latest' is reserved by MLflow (models:/<name>/latest); choose another")
    if _VERSION_LIKE.match(alias):
        raise RegistryInputError(f"alias {alias!r} looks like a version (v<number>) and is reserved by MLflow")
    if len(alias) > _MAX_ALIAS:
        raise RegistryInputError(f"alias must be at most {_MAX_ALIAS} characters")
    return alias


def _version(version: int | str) -> str:
    text = str(version).strip().lstrip("vV")
    if not text.isdigit() or int(text) < 1:
        raise RegistryInputError(f"version must be a positive integer; got {version!r}")
    return str(int(text))


def _ms(ts: int | None) -> pd.Timestamp | None:
    return pd.to_datetime(ts, unit="ms", utc=True) if ts else None


def _format_tags(tags: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))


def _format_aliases(aliases: dict[str, Any]) -> str:
    return ", ".join(f"{alias}→v{version}" for alias, version in sorted(aliases.items()))


def list_registered_models(client: MlflowClient | None = None) -> pd.DataFrame:
    """One row per registered model: name, description, tags, latest version, aliases, last update."""
    client = _client(client)

    def fetch() -> list[Any]:
        models, token = [], None
        while True:
            page = client.search_registered_models(order_by=["name ASC"], page_token=token)
            models.extend(page)
            token = page.token
            if not token:
                return models

    models = _call(client, "list registered models", fetch)
    rows = [
        {
            "name": m.name,
            "description": m.description or "",
            "tags": _format_tags(m.tags or {}),
            "latest_version": max((int(v.version) for v in m.latest_versions or []), default=None),
            "aliases": _format_aliases(m.aliases or {}),
            "updated": _ms(m.last_updated_timestamp),
        }
        for m in models
    ]
    columns = ["name", "description", "tags", "latest_version", "aliases", "updated"]
    return pd.DataFrame(rows, columns=columns)


def get_model(name: str, client: MlflowClient | None = None) -> dict[str, Any]:
    """Name, description, tags (dict) and aliases (alias -> version int) of one registered model."""
    client = _client(client)
    model = _call(client, f"read registered model {name!r}", lambda: client.get_registered_model(name))
    return {
        "name": model.name,
        "description": model.description or "",
        "tags": dict(model.tags or {}),
        "aliases": {alias: int(v) for alias, v in (model.aliases or {}).items()},
    }


def _all_versions(client: MlflowClient, name: str) -> list[Any]:
    """Every version of ``name``, page after page (MLflow returns them in pages)."""

    def fetch() -> list[Any]:
        versions, token = [], None
        while True:
            page = client.search_model_versions(f"name = '{_quote(name)}'", page_token=token)
            versions.extend(page)
            token = page.token
            if not token:
                return versions

    return _call(client, f"list versions of {name!r}", fetch)


def model_versions(name: str, client: MlflowClient | None = None) -> pd.DataFrame:
    """Every version of ``name``, newest first, with its aliases, source run, test metrics and dataset lineage.

    The metrics and lineage come from the source run, so the table answers "which run made this, on what data,
    and how good was it" without leaving the page.
    """
    client = _client(client)
    aliases = get_model(name, client)["aliases"]
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)

    versions = _all_versions(client, name)
    rows = []
    for mv in sorted(versions, key=lambda v: int(v.version), reverse=True):
        run = _source_run(client, mv.run_id)
        row: dict[str, Any] = {
            "version": int(mv.version),
            "aliases": ", ".join(sorted(by_version.get(int(mv.version), []))),
            "created": _ms(mv.creation_timestamp),
            "status": mv.status,
            "run_id": mv.run_id or "",
            "run_name": run.info.run_name if run else "",
            "description": mv.description or "",
        }
        metrics = run.data.metrics if run else {}
        row.update({key: metrics[key] for key in sorted(metrics) if contract.is_own_test_metric(key)})
        params = run.data.params if run else {}
        row.update({key: params.get(key, "") for key in LINEAGE_PARAMS})
        row["model_uri"] = f"models:/{name}/{mv.version}"
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(
            columns=["version", "aliases", "created", "status", "run_id", "run_name", "description", *LINEAGE_PARAMS]
        )
    # lineage and the URI go last, after however many metric columns the runs had
    tail = [c for c in (*LINEAGE_PARAMS, "model_uri") if c in frame.columns]
    return frame[[c for c in frame.columns if c not in tail] + tail]


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def _source_run(client: MlflowClient, run_id: str | None) -> Any:
    """The run a version came from, or None when it is gone (deleted store row, other store)."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def run_versions(run_id: str, client: MlflowClient | None = None) -> list[tuple[str, int]]:
    """(registered model, version) pairs already made from ``run_id``, so registering twice is a visible choice."""
    client = _client(client)
    found = _call(
        client,
        f"list versions of run {run_id!r}",
        lambda: client.search_model_versions(f"run_id = '{_quote(run_id)}'"),
    )
    return sorted((mv.name, int(mv.version)) for mv in found)


def _model_source(client: MlflowClient, run_id: str, artifact_path: str) -> tuple[str, str | None]:
    """The source URI and model id to register for the model ``run_id`` logged as ``artifact_path``: its MLflow 3
    logged model, else the ``runs:/`` URI of a model listed in its MLflow 2 history tag (what MLflow itself does)."""
    from recdash.contract import MLFLOW_LOG_MODEL_HISTORY as LOG_MODEL_HISTORY_TAG
    from recdash.tracking.client import history_model_paths, logged_model_ready

    run = _call(client, f"read run {run_id!r}", lambda: client.get_run(run_id))
    found = _call(
        client,
        f"find the model logged by run {run_id!r}",
        lambda: client.search_logged_models(
            [run.info.experiment_id], filter_string=f"source_run_id = '{_quote(run_id)}'"
        ),
    )
    matches = [m for m in found if m.name == artifact_path and logged_model_ready(m.status)]
    if matches:
        model = max(matches, key=lambda m: m.creation_timestamp or 0)
        return model.model_uri, model.model_id
    legacy = history_model_paths(run.data.tags.get(LOG_MODEL_HISTORY_TAG))
    if artifact_path in legacy:
        return f"runs:/{run_id}/{artifact_path}", None
    names = sorted({m.name for m in found if logged_model_ready(m.status)} | set(legacy))
    hint = f"; it logged {', '.join(map(repr, names))}" if names else "; it logged no model"
    raise RegistryInputError(f"run {run_id!r} has no logged model named {artifact_path!r}{hint}")


def register_run_model(
    run_id: str, name: str, artifact_path: str = DEFAULT_ARTIFACT_PATH, client: MlflowClient | None = None
) -> int:
    """Register the model run ``run_id`` logged as ``artifact_path`` under ``name``; returns the new version.

    Does what ``mlflow.register_model`` does, on ``client``'s store only: creates the registered model on first
    use, creates the version from the logged model (source ``models:/m-...``, its run id and model id; for a model
    logged by MLflow 2, its ``runs:/`` URI) and appends ``{"name", "version"}`` to the logged model's
    ``mlflow.modelVersions`` tag, which MLflow's UI reads to show the logged model as registered. A registration
    that fails leaves the store as it was: a registered model this call created is deleted again, with the version.
    """
    client = _client(client)
    name = validate_model_name(name)
    run_id = (run_id or "").strip()
    if not run_id:
        raise RegistryInputError("choose a run to register")
    source, model_id = _model_source(client, run_id, artifact_path)
    from mlflow.exceptions import MlflowException

    with _translated(client, f"create registered model {name!r}"):
        try:
            client.create_registered_model(name)
            created = True
        except MlflowException as exc:
            if str(exc.error_code) not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
            created = False
    version = None
    try:
        version = _call(
            client,
            f"register run {run_id!r} as {name!r}",
            lambda: client.create_model_version(
                name, source=_version_source(client, source, model_id), run_id=run_id, model_id=model_id
            ),
        )
        if model_id:
            _call(
                client,
                f"link logged model {model_id!r} to {name!r} v{version.version}",
                lambda: _link_logged_model(client, model_id, name, version.version),
            )
    except BaseException:
        _undo_registration(client, name, version, created)
        raise
    return int(version.version)


MODEL_VERSIONS_TAG = "mlflow.modelVersions"  # on a logged model: JSON [{"name", "version"}], what MLflow's UI reads


def _version_source(client: MlflowClient, source: str, model_id: str | None) -> str:
    """The source to create the version with. MLflow's SQL registry resolves a ``models:/m-...`` source with the
    process-wide tracking URI (``MlflowClient()`` inside ``SqlAlchemyStore.create_model_version``), not with this
    client's: when that is another store (or unset: ``./mlflow.db``, created on the spot) the logged model is "not
    found". Then the source is the logged model's artifact location, which is what MLflow stores as the version's
    storage location anyway. A server (``http(s)://``) resolves the URI against its own store."""
    import mlflow

    registry_scheme = _registry_uri(client).partition(":")[0].lower()
    if not model_id or registry_scheme in ("http", "https") or mlflow.get_tracking_uri() == client.tracking_uri:
        return source
    return client.get_logged_model(model_id).artifact_location


def _link_logged_model(client: MlflowClient, model_id: str, name: str, version: Any) -> None:
    """Append ``{"name", "version"}`` to the logged model's ``mlflow.modelVersions`` tag, exactly as
    ``mlflow.register_model`` does (``mlflow/tracking/_model_registry/fluent.py``)."""
    import json

    entries = [{"name": name, "version": version}]
    existing = client.get_logged_model(model_id).tags.get(MODEL_VERSIONS_TAG)
    if existing:
        entries = json.loads(existing) + entries
    client.set_logged_model_tags(model_id, {MODEL_VERSIONS_TAG: json.dumps(entries)})


def _undo_registration(client: MlflowClient, name: str, version: Any, created: bool) -> None:
    """Remove what a failed registration made: its version, and the registered model if this call created it and
    no other version has appeared in it meanwhile. Best effort: the original error is the one raised."""
    from mlflow.exceptions import MlflowException

    try:
        if version is not None:
            client.delete_model_version(name, version.version)
        if created and not client.search_model_versions(f"name = '{_quote(name)}'"):
            client.delete_registered_model(name)
    except MlflowException:
        pass


def set_alias(name: str, alias: str, version: int | str, client: MlflowClient | None = None) -> int | None:
    """Point ``alias`` at ``version`` (moving it if another version had it); returns the previous version or None."""
    client = _client(client)
    alias = validate_alias(alias)
    version = _version(version)
    previous = get_model(name, client)["aliases"].get(alias)
    _call(client, f"find version {version} of {name!r}", lambda: client.get_model_version(name, version))
    _call(
        client,
        f"set alias {alias!r} on {name!r} v{version}",
        lambda: client.set_registered_model_alias(name, alias, version),
    )
    _mirror_aliases(client, name)
    return previous


def delete_alias(name: str, alias: str, client: MlflowClient | None = None) -> int:
    """Remove ``alias`` from ``name``; returns the version it pointed to. Unknown aliases are an error, not a no-op,
    so a typo does not look like success."""
    client = _client(client)
    alias = (alias or "").strip()
    aliases = get_model(name, client)["aliases"]
    if alias not in aliases:
        known = ", ".join(sorted(aliases)) or "none"
        raise RegistryInputError(f"model {name!r} has no alias {alias!r} (aliases: {known})")
    _call(client, f"delete alias {alias!r} of {name!r}", lambda: client.delete_registered_model_alias(name, alias))
    _mirror_aliases(client, name)
    return aliases[alias]


ALIASES_TAG = "recdash.aliases"  # on a model version: the aliases pointing at it, comma-separated


def _mirror_aliases(client: MlflowClient, name: str) -> None:
    """Keep every version's ``recdash.aliases`` tag equal to the aliases pointing at it (removed when none), so
    catalogs see them: MLflow's ``search_model_versions`` returns versions without their aliases, and DataHub's MLflow
    source reads versions only through it (aliases never reach DataHub), while it does read version tags. Every
    alias change recdash makes rewrites the tags of the whole model, so one set by MLflow meanwhile is caught up."""
    pointed: dict[int, list[str]] = {}
    for alias, version in get_model(name, client)["aliases"].items():
        pointed.setdefault(version, []).append(alias)

    for mv in _all_versions(client, name):
        want = ", ".join(sorted(pointed.get(int(mv.version), [])))
        have = (mv.tags or {}).get(ALIASES_TAG)
        if want and want != have:
            _call(
                client,
                f"tag {name!r} v{mv.version} with its aliases",
                lambda mv=mv, want=want: client.set_model_version_tag(name, str(mv.version), ALIASES_TAG, want),
            )
        elif not want and have is not None:
            _call(
                client,
                f"untag {name!r} v{mv.version}",
                lambda mv=mv: client.delete_model_version_tag(name, str(mv.version), ALIASES_TAG),
            )


def update_description(name: str, text: str, client: MlflowClient | None = None) -> None:
    """Replace the registered model's description (empty text clears it)."""
    client = _client(client)
    _call(
        client,
        f"update the description of {name!r}",
        lambda: client.update_registered_model(name, description=text or ""),
    )


def set_model_tag(name: str, key: str, value: str, client: MlflowClient | None = None) -> None:
    """Set (or overwrite) one tag on the registered model."""
    client = _client(client)
    key = (key or "").strip()
    if not key:
        raise RegistryInputError("tag key must not be empty")
    _call(client, f"set tag {key!r} on {name!r}", lambda: client.set_registered_model_tag(name, key, str(value)))


def delete_model_tag(name: str, key: str, client: MlflowClient | None = None) -> None:
    """Remove one tag from the registered model."""
    client = _client(client)
    if key not in get_model(name, client)["tags"]:
        raise RegistryInputError(f"model {name!r} has no tag {key!r}")
    _call(client, f"delete tag {key!r} of {name!r}", lambda: client.delete_registered_model_tag(name, key))


MODEL_COLUMNS = ["name", "description", "tags", "aliases", "created", "updated"]
VERSION_COLUMNS = ["name", "version", "run_id", "model_id", "source", "description", "tags", "aliases", "created",
                   "status"]  # fmt: skip


def snapshot(client: MlflowClient | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every registered model and every version in two paged reads (a catalog needs them all at once, not a
    ``get_run`` per version as :func:`model_versions` does). Tags and aliases stay dicts/lists; a version's
    ``aliases`` are the aliases of its model that point at it."""
    client = _client(client)

    def fetch(search: Callable[..., Any]) -> list[Any]:
        out, token = [], None
        while True:
            page = search(page_token=token)
            out.extend(page)
            token = page.token
            if not token:
                return out

    models = _call(client, "list registered models", lambda: fetch(client.search_registered_models))
    versions = _call(client, "list model versions", lambda: fetch(client.search_model_versions))
    model_rows = [
        (m.name, m.description or "", dict(m.tags or {}), {a: int(v) for a, v in (m.aliases or {}).items()},
         _ms(m.creation_timestamp), _ms(m.last_updated_timestamp))
        for m in models
    ]  # fmt: skip
    pointed: dict[tuple[str, int], list[str]] = {}
    for _name, _d, _t, aliases, _c, _u in model_rows:
        for alias, version in aliases.items():
            pointed.setdefault((_name, version), []).append(alias)
    version_rows = [
        (v.name, int(v.version), v.run_id or None, getattr(v, "model_id", None) or None, v.source or "",
         v.description or "", dict(v.tags or {}), sorted(pointed.get((v.name, int(v.version)), [])),
         _ms(v.creation_timestamp), str(v.status or ""))
        for v in versions
    ]  # fmt: skip
    model_frame = pd.DataFrame(model_rows, columns=MODEL_COLUMNS).sort_values("name", kind="stable")
    version_frame = pd.DataFrame(version_rows, columns=VERSION_COLUMNS).sort_values(
        ["name", "version"], ascending=[True, False], kind="stable"
    )
    return model_frame.reset_index(drop=True), version_frame.reset_index(drop=True)


def update_version_description(name: str, version: int | str, text: str, client: MlflowClient | None = None) -> None:
    """Replace one version's description (MLflow's own field, shown by the MLflow UI)."""
    client = _client(client)
    version = _version(version)
    _call(
        client,
        f"update the description of {name!r} v{version}",
        lambda: client.update_model_version(name, version, description=text or ""),
    )


# ---- promoting ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Promotion:
    """What :func:`promote_challenger` did, so the page can say it exactly."""

    name: str
    version: int
    previous: int | None
    champion: str = CHAMPION
    challenger: str = CHALLENGER

    @property
    def message(self) -> str:
        was = f" (it was version {self.previous})" if self.previous is not None else ""
        text = (
            f"Promoted {self.name} version {self.version} to {self.champion}{was}. The {self.challenger} alias was "
            f"removed, since it pointed to the new {self.champion}; set it on another version to compare again."
        )
        if self.previous is not None:
            text += f" To roll back, set {self.champion} on version {self.previous}."
        return text


def promote_challenger(
    name: str,
    version: int | str,
    champion: str = CHAMPION,
    challenger: str = CHALLENGER,
    client: MlflowClient | None = None,
) -> Promotion:
    """Move ``champion`` to the version ``challenger`` points at, then remove ``challenger``.

    ``version`` is the version the user confirmed: if ``challenger`` moved since (another user, another tab), the
    promotion is refused rather than promoting a version nobody looked at. The challenger alias is removed because
    afterwards it would name the champion itself, and champion vs challenger would compare a version with itself.
    """
    client = _client(client)
    version = _version(version)
    aliases = get_model(name, client)["aliases"]
    current = aliases.get(challenger)
    if current is None:
        raise RegistryInputError(f"model {name!r} has no {challenger!r} alias to promote")
    if current != int(version):
        raise RegistryInputError(
            f"{challenger} of {name!r} now points to version {current}, not version {version} as confirmed; "
            "review the comparison again before promoting"
        )
    previous = aliases.get(champion)
    if previous == current:
        raise RegistryInputError(f"version {version} of {name!r} is already the {champion}")
    _call(
        client,
        f"move alias {champion!r} of {name!r} to v{version}",
        lambda: client.set_registered_model_alias(name, champion, version),
    )
    try:
        _call(
            client,
            f"remove alias {challenger!r} of {name!r}",
            lambda: client.delete_registered_model_alias(name, challenger),
        )
    except UserError as exc:  # half done: say exactly which half
        raise RegistryError(f"{champion} now points to version {version}, but {exc}") from None
    _mirror_aliases(client, name)
    return Promotion(name, int(version), previous, champion, challenger)
