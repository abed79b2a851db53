"""Top-k recommendations from any logged or registered model, next to what the user actually did.

The Recommend page is a thin layer over this module: it lists the models in the tracking store, loads one
(turning every way that can fail into a :class:`ModelLoadError` with a readable message), asks it for a user's
top-k through the pyfunc ``predict`` contract, and rebuilds the run's exact train/test split so the user's
history and the held-out hits can be shown. No Streamlit here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from recdash import contract, tracking
from recdash.contract import MLFLOW_LOG_MODEL_HISTORY
from recdash.datasets import Dataset, DatasetError, Split, load_dataset, split_dataset
from recdash.features import FeatureEncoding
from recdash.models import OUTPUT_COLUMNS, Recommender, validate_k
from recdash.tracking.client import history_model_paths, logged_model_ready

CONTRACT = (
    "The Recommend page needs a pyfunc model that follows the recdash predict contract: input a DataFrame with a "
    "'user_id' column; params 'k' (and optionally 'exclude_seen'); output columns user_id, rank, item_id, score "
    "(and optionally source = model/popular). Models logged with recdash.serving.log_model(...) follow it."
)
# Metrics shown next to a model in the picker, first match wins.
KEY_METRIC_PREFIXES = ("test_ndcg_at_", "test_", "val_ndcg_at_", "val_", "best_val_")
# Lineage params logged by recdash.train that describe the data but are not options of load_dataset.
_LINEAGE_PARAMS = {"dataset_name", "dataset_digest", "dataset_source", "dataset_rows", "dataset_users", "dataset_items"}


class ModelLoadError(RuntimeError):
    """A model that cannot be used on the page; the message says why in words a user can act on."""


class PredictionError(RuntimeError):
    """The model loaded but its ``predict`` failed or returned something outside the contract."""


class ContextError(RuntimeError):
    """The run's training data cannot be rebuilt, so history and hits are unavailable (recommendations still work)."""


# ---- model sources ---------------------------------------------------------------------------------------------


def _client(tracking_uri: str | None = None) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


def _all_pages(fetch: Callable[[str | None], Any]) -> list[Any]:
    """Every item of a paged MLflow search (a store may hold more runs or models than one page)."""
    out: list[Any] = []
    token: str | None = None
    while True:
        page = fetch(token)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def key_metric(metrics: dict[str, float]) -> tuple[str | None, float | None]:
    """The metric that best summarises a run for picking a model (test nDCG when there is one)."""
    for prefix in KEY_METRIC_PREFIXES:
        names = sorted(n for n in metrics if n.startswith(prefix))
        if names:
            return names[0], float(metrics[names[0]])
    return None, None


def _label(*parts: Any, metric: str | None = None, value: float | None = None) -> str:
    text = " / ".join(str(p) for p in parts if p not in (None, ""))
    if metric is not None and value is not None and math.isfinite(value):
        text += f" — {metric} {value:.4f}"
    return text


def model_sources(tracking_uri: str | None = None) -> pd.DataFrame:
    """Every loadable model in the store, newest first, with its run, experiment and key metric.

    recdash's one definition of "a run has a model", shared by the Recommend and Models pages and the Runs table's
    ``has_model`` column (:mod:`recdash.tracking`): a READY MLflow 3 logged model whose source is the run (URI
    ``models:/<model_id>``), or an entry in the run's ``mlflow.log-model.history`` tag, where MLflow 2 listed its
    models (URI ``runs:/<run_id>/<artifact_path>``). Runs without one are not listed, so pages offer only what
    they can load.
    """
    client = _client(tracking_uri)
    experiments = _all_pages(lambda t: client.search_experiments(max_results=1000, page_token=t))
    names = {e.experiment_id: e.name for e in experiments}
    columns = [
        "label", "experiment", "run_name", "run_id", "start_time", "model_name", "model_id",
        "key_metric", "key_metric_value", "created", "model_uri",
    ]  # fmt: skip
    if not names:
        return pd.DataFrame(columns=columns)
    ids = list(names)
    models = _all_pages(lambda t: client.search_logged_models(experiment_ids=ids, max_results=1000, page_token=t))
    runs = {r.info.run_id: r for r in _all_pages(lambda t: client.search_runs(ids, max_results=5000, page_token=t))}
    rows: list[dict[str, Any]] = []
    covered: set[tuple[str, str]] = set()
    for m in models:
        if not logged_model_ready(m.status):
            continue  # a model whose upload never finished has no files to load
        run = runs.get(m.source_run_id or "")
        rows.append(_source_row(names, run, m.experiment_id, m.name, m.model_id, m.creation_timestamp, m.model_uri))
        if m.source_run_id:
            covered.add((m.source_run_id, m.name))
    for run in runs.values():
        for path in history_model_paths(run.data.tags.get(MLFLOW_LOG_MODEL_HISTORY)):
            if (run.info.run_id, path) in covered:
                continue
            covered.add((run.info.run_id, path))
            uri = f"runs:/{run.info.run_id}/{path}"
            rows.append(_source_row(names, run, run.info.experiment_id, path, None, run.info.start_time, uri))
    frame = pd.DataFrame(rows, columns=columns)
    if frame.empty:
        return frame
    frame["created"] = pd.to_datetime(frame["created"], unit="ms")
    frame["start_time"] = pd.to_datetime(frame["start_time"], unit="ms")
    return frame.sort_values("created", ascending=False, kind="stable").reset_index(drop=True)


def _source_row(
    names: dict[str, str], run: Any, experiment_id: str, model_name: str, model_id: str | None, created: Any, uri: str
) -> dict[str, Any]:
    metrics = run.data.metrics if run is not None else {}
    metric, value = key_metric(metrics)
    run_name = run.info.run_name if run is not None else None
    run_id = run.info.run_id if run is not None else None
    start = run.info.start_time if run is not None else None
    experiment = names.get(experiment_id, experiment_id)
    if run is not None:  # run names repeat (sweeps, reruns): the short id and start time tell them apart
        started = pd.to_datetime(start, unit="ms").strftime("%Y-%m-%d %H:%M") if start else "not started"
        who = f"{contract.run_label(run_name, run_id)} ({run_id[:8]}, {started})"
    else:
        who = f"no run ({(model_id or '')[:12]})"
    return {
        "label": _label(experiment, who, model_name, metric=metric, value=value),
        "experiment": experiment,
        "run_name": run_name,
        "run_id": run_id,
        "start_time": start,
        "model_name": model_name,
        "model_id": model_id,
        "key_metric": metric,
        "key_metric_value": value,
        "created": created,
        "model_uri": uri,
    }


def registered_sources(tracking_uri: str | None = None) -> pd.DataFrame:
    """Registered model versions and aliases as loadable URIs (``models:/name/version``, ``models:/name@alias``)."""
    client = _client(tracking_uri)
    columns = ["label", "name", "version", "alias", "run_id", "model_uri"]
    registered = _all_pages(lambda t: client.search_registered_models(max_results=1000, page_token=t))
    versions = _all_pages(lambda t: client.search_model_versions(max_results=10_000, page_token=t))
    run_of = {(v.name, str(v.version)): v.run_id for v in versions}
    rows: list[dict[str, Any]] = []
    for rm in sorted(registered, key=lambda r: r.name):
        for alias, version in sorted((rm.aliases or {}).items()):
            run_id = run_of.get((rm.name, str(version)))
            rows.append(
                {
                    "label": f"{rm.name}@{alias} (version {version})",
                    "name": rm.name,
                    "version": str(version),
                    "alias": alias,
                    "run_id": run_id,
                    "model_uri": f"models:/{rm.name}@{alias}",
                }
            )
        mine = sorted((v for v in versions if v.name == rm.name), key=lambda v: -int(v.version))
        for v in mine:
            rows.append(
                {
                    "label": f"{rm.name} version {v.version}",
                    "name": rm.name,
                    "version": str(v.version),
                    "alias": None,
                    "run_id": v.run_id,
                    "model_uri": f"models:/{rm.name}/{v.version}",
                }
            )
    return pd.DataFrame(rows, columns=columns)


def model_label(model_uri: str, tracking_uri: str | None = None) -> str:
    """What a model is called on the page: its run (label, short ID) and experiment, and for a registered model
    also its name, version and aliases -- ``models:/m-a6002…`` alone does not tell two models apart.

    ``"recs v3 (challenger) · run ml-warp (186019b9) · experiment shots"``; the URI itself when the store cannot
    say more (a foreign URI, a deleted run, a store that refuses the read).
    """
    uri = (model_uri or "").strip()
    client = _client(tracking_uri)
    parts: list[str] = []
    run_id: str | None = None
    artifact: str | None = None
    try:
        rest = uri.removeprefix("models:/")
        if uri.startswith("runs:/"):
            run_id, _, artifact = uri.removeprefix("runs:/").partition("/")
        elif uri.startswith("models:/") and "@" in rest:
            name, _, alias = rest.rpartition("@")
            mv = client.get_model_version_by_alias(name, alias)
            parts.append(f"{name}@{alias} (v{mv.version})")
            run_id = mv.run_id
        elif uri.startswith("models:/") and "/" in rest:
            name, _, version = rest.rpartition("/")
            mv = client.get_model_version(name, version)
            aliases = sorted(getattr(mv, "aliases", None) or [])
            parts.append(f"{name} v{mv.version}" + (f" ({', '.join(aliases)})" if aliases else ""))
            run_id = mv.run_id
        elif uri.startswith("models:/"):
            logged = client.get_logged_model(rest)
            run_id, artifact = logged.source_run_id, logged.name
        else:
            return uri
    except Exception:  # the label is a courtesy: loading reports real problems
        return uri
    if run_id:
        try:
            run = client.get_run(run_id)
            experiment = client.get_experiment(run.info.experiment_id).name
        except Exception:  # a registered version whose run is gone still has a name; a bare run URI does not
            if not parts:
                return uri
            parts.append(f"run {run_id[:8]}")
        else:
            label = contract.run_label(run.info.run_name, run_id)
            parts.append(f"run {label}" + (f" ({run_id[:8]})" if label != run_id[:8] else ""))
            parts.append(f"experiment {experiment}")
    if artifact and artifact != "model":
        parts.append(f"model {artifact}")
    return " · ".join(parts) or uri


# ---- loading ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A loaded pyfunc plus what the page needs to know about it."""

    uri: str
    pyfunc: Any
    recommender: Recommender | None
    run_id: str | None
    model_id: str | None
    params: frozenset[str] = field(default_factory=frozenset)
    supports_contract: bool = True

    @property
    def is_recdash(self) -> bool:
        return self.recommender is not None

    @cached_property
    def user_ids(self) -> np.ndarray:
        """Users the model knows (empty when a foreign contract model does not expose them)."""
        return self.recommender.user_ids if self.recommender is not None else np.array([], dtype=str)


def _short(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_recommender(python_model: Any) -> Recommender | None:
    rec = getattr(python_model, "recommender", None)
    if isinstance(rec, Recommender):
        return rec
    # The model's own copy of the recdash package may have been imported (same classes, other module objects):
    # any recdash algorithm (RankFM, EASE, ...) or the single Recommender class of older recdash versions.
    if (
        rec is not None
        and any(c.__name__ == "Recommender" for c in type(rec).__mro__)
        and all(hasattr(rec, a) for a in ("recommend", "similar_items", "user_ids", "item_ids", "item_popularity"))
    ):
        return rec  # type: ignore[no-any-return]
    return None


def contract_problem(metadata: Any) -> str | None:
    """Why a pyfunc's signature does not follow the predict contract, or None when it does."""
    signature = getattr(metadata, "signature", None)
    if signature is None or signature.inputs is None:
        return "it has no signature, so its input and output columns are unknown"
    inputs = set(signature.inputs.input_names()) if signature.inputs.has_input_names() else set()
    if "user_id" not in inputs:
        return f"its input columns are {sorted(map(str, inputs)) or 'unnamed'}, with no 'user_id'"
    outputs = signature.outputs
    names = set(outputs.input_names()) if outputs is not None and outputs.has_input_names() else set()
    missing = [c for c in ("item_id", "rank") if c not in names]
    if missing:
        return f"its output lacks column(s) {', '.join(missing)}"
    return None


def resolve_alias(model_uri: str, tracking_uri: str | None = None) -> str:
    """``models:/name@alias`` -> ``models:/name/<version>`` (aliases move; a cache keyed by version stays right).

    Anything else, or an alias that cannot be resolved, comes back unchanged for :func:`load` to report on."""
    uri = (model_uri or "").strip()
    if not uri.startswith("models:/") or "@" not in uri:
        return uri
    name, _, alias = uri.removeprefix("models:/").rpartition("@")
    try:
        version = _client(tracking_uri).get_model_version_by_alias(name, alias).version
    except Exception:  # unknown model or alias: load() gives the user-facing message
        return uri
    return f"models:/{name}/{version}"


def missing_artifact_location(model_uri: str, tracking_uri: str | None = None) -> str | None:
    """The local folder a ``runs:/``, ``models:/<model_id>`` or ``models:/<name>/<version>`` URI's files should be
    in, when the store's artifact root for it is not on this machine (a store moved or copied from elsewhere);
    None otherwise, including for files missing from a root that exists (the caller reports those)."""
    from recdash.tracking.filestore import local_path

    client = _client(tracking_uri)
    uri = model_uri.strip()
    try:
        for _ in range(3):  # a registered version points at a logged model or a run: follow it
            rest = uri.removeprefix("runs:/").removeprefix("models:/")
            if uri.startswith("runs:/"):
                info = client.get_run(rest.split("/", 1)[0]).info
                location, experiment_id = info.artifact_uri, info.experiment_id
                break
            if uri.startswith("models:/") and "/" not in rest and "@" not in rest:
                model = client.get_logged_model(rest)
                location, experiment_id = model.artifact_location, model.experiment_id
                break
            if uri.startswith("models:/") and "/" in rest:
                name, _, version = rest.rpartition("/")
                uri = client.get_model_version(name, version).source
                continue
            return None
        else:
            return None
        root = local_path(client.get_experiment(experiment_id).artifact_location)
    except Exception:  # the store cannot say: the caller reports the original error
        return None
    path = local_path(location)
    if path is None or root is None or root.exists() or path.exists():
        return None
    return str(path)


def _load_error(uri: str, exc: BaseException) -> ModelLoadError:
    """What went wrong loading ``uri``, in words a user can act on."""
    from mlflow.exceptions import MlflowException

    missing = missing_artifact_location(uri)
    if missing is not None:
        return ModelLoadError(
            f"The files of {uri} are not on this machine: the artifact location {missing} does not exist here. "
            "The tracking store was probably moved or copied from another machine; its runs, params and metrics "
            "can still be read, but this model cannot be loaded until its artifacts are at that path."
        )
    message = str(exc)
    if isinstance(exc, MlflowException):
        if "python_function" in message and "flavor" in message:
            return ModelLoadError(f"{uri} is not a pyfunc model (it has no python_function flavor). {CONTRACT}")
        if "no such artifact" in message.lower() or "no such file" in message.lower():
            return ModelLoadError(f"The files of {uri} are missing from the artifact store ({_short(exc)}).")
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in message.lower():
            return ModelLoadError(f"No model at {uri}: {_short(exc)}")
        return ModelLoadError(f"Could not load {uri}: {_short(exc)}")
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return ModelLoadError(f"The files of {uri} are missing from the artifact store ({_short(exc)}).")
    if isinstance(exc, ImportError):
        return ModelLoadError(f"{uri} needs a library that is not installed here ({_short(exc)}). {CONTRACT}")
    # a broken file can fail in any loader; the page must show a message, not a trace
    return ModelLoadError(f"Could not load {uri}: the model files are broken ({type(exc).__name__}: {_short(exc)}).")


# Loading a pyfunc runs its code (models-from-code executes a Python file), so the page loads models only from the
# configured tracking store and registry, never from a path, a file:// URI or an arbitrary web server.
STORE_SCHEMES = ("runs:/", "models:/")


def load(model_uri: str, *, allow_local_paths: bool = False) -> LoadedModel:
    """Load a ``runs:/`` or ``models:/`` URI of the configured store for the page; every failure is a ModelLoadError.

    ``allow_local_paths`` also accepts a local model directory (tests and trusted callers only, never user input)."""
    import mlflow

    uri = (model_uri or "").strip()
    if not uri:
        raise ModelLoadError("Enter or pick a model URI, e.g. runs:/<run_id>/model or models:/<name>@champion.")
    if not uri.startswith(STORE_SCHEMES) and not (allow_local_paths and "://" not in uri):
        raise ModelLoadError(
            f"{uri} is not a model of this tracking store: only runs:/<run_id>/<path> and models:/<name>/<version> "
            "(or models:/<name>@<alias>) URIs are loaded, because loading a model runs its code."
        )
    try:
        with warnings.catch_warnings():  # MLflow nags about type hints on every models-from-code load
            warnings.simplefilter("ignore")
            pyfunc = mlflow.pyfunc.load_model(uri)
    except Exception as exc:
        raise _load_error(uri, exc) from None

    metadata = pyfunc.metadata
    try:
        python_model = pyfunc.unwrap_python_model()
    except Exception:  # not a PythonModel (e.g. a sklearn pyfunc): only the signature can tell
        python_model = None
    recommender = _as_recommender(python_model)
    params_schema = metadata.get_params_schema() if metadata.signature is not None else None
    params = frozenset(p.name for p in params_schema.params) if params_schema is not None else frozenset()
    if recommender is None:
        problem = contract_problem(metadata)
        if problem is not None:
            raise ModelLoadError(f"{uri} loaded, but the page cannot use it: {problem}. {CONTRACT}")
    return LoadedModel(
        uri=uri,
        pyfunc=pyfunc,
        recommender=recommender,
        run_id=getattr(metadata, "run_id", None),
        model_id=getattr(metadata, "model_id", None),
        params=params if recommender is None else frozenset({"k", "exclude_seen"}),
    )


# ---- recommending ----------------------------------------------------------------------------------------------


def recommend(loaded: LoadedModel, user_id: Any, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
    """The user's top-k through the model's own ``predict`` (the path serving uses), as ``OUTPUT_COLUMNS``.

    Unknown users come back with ``source == "popular"`` from recdash models; see :func:`is_fallback`.
    """
    k = validate_k(k)
    user = str(user_id).strip() if user_id is not None else ""
    if not user:
        raise ValueError("Enter a user ID.")
    params: dict[str, Any] = {}
    if "k" in loaded.params:
        params["k"] = k
    if "exclude_seen" in loaded.params:
        params["exclude_seen"] = bool(exclude_seen)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = loaded.pyfunc.predict(pd.DataFrame({"user_id": [user]}), params=params or None)
    except Exception as exc:
        raise PredictionError(f"The model could not recommend for user {user!r}: {_short(exc)}") from None
    return _normalise(out, user, k)


def _normalise(out: Any, user: str, k: int) -> pd.DataFrame:
    """Coerce a contract model's output to ``OUTPUT_COLUMNS`` for one user, best first."""
    frame = out if isinstance(out, pd.DataFrame) else pd.DataFrame(out)
    if "item_id" not in frame.columns:
        raise PredictionError(
            f"The model's output has no 'item_id' column (got {list(map(str, frame.columns))}). {CONTRACT}"
        )
    if "user_id" in frame.columns:
        frame = frame[frame["user_id"].astype(str) == user]
    frame = frame.copy()
    if "rank" not in frame.columns:
        frame["rank"] = np.arange(1, len(frame) + 1)
    frame = frame.sort_values("rank", kind="stable").head(k)
    return pd.DataFrame(
        {
            "user_id": user,
            "rank": frame["rank"].astype(np.int64).to_numpy(),
            "item_id": frame["item_id"].astype(str).to_numpy(),
            "score": pd.to_numeric(frame["score"], errors="coerce").to_numpy(dtype=np.float64)
            if "score" in frame.columns
            else np.nan,
            "source": frame["source"].astype(str).to_numpy() if "source" in frame.columns else "model",
        },
        columns=OUTPUT_COLUMNS,
    )


def is_fallback(recs: pd.DataFrame) -> bool:
    """True when the model answered with its popularity fallback (the user is not in its training data)."""
    return bool(len(recs)) and bool((recs["source"] == "popular").all())


def known_users(loaded: LoadedModel, context: RunContext | None = None) -> np.ndarray:
    """User IDs to offer in the picker: the model's own map, else the run's training users."""
    if loaded.recommender is not None:
        return loaded.recommender.user_ids
    if context is not None:
        return np.sort(context.split.train["user_id"].astype(str).unique())
    return np.array([], dtype=str)


# ---- users the model never saw (side features) -----------------------------------------------------------------


def new_user_id(loaded: LoadedModel) -> str:
    """An ID the model does not know, so its ``predict`` serves the request as a new user's."""
    known = set(map(str, loaded.user_ids))
    candidate, n = "(new user)", 1
    while candidate in known:
        candidate, n = f"(new user {n})", n + 1
    return candidate


def attribute_frame(encoding: FeatureEncoding, user_id: str, values: dict[str, Any]) -> pd.DataFrame:
    """A one-row request: ``user_id`` plus each attribute given, typed as the model's signature declares them
    (numbers and ages as floats, categories and ``a|b`` lists as text). Attributes left empty are left out: the
    model then knows nothing about them (zeros), as for a table row without them."""
    row: dict[str, Any] = {"user_id": [user_id]}
    for column in encoding.columns:
        value = values.get(column.name)
        if isinstance(value, list | tuple | set):
            value = "|".join(map(str, value)) if value else None
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
            continue
        row[column.name] = [float(value) if column.kind in ("number", "bucket") else str(value)]
    return pd.DataFrame(row)


def recommend_new_user(loaded: LoadedModel, values: dict[str, Any], k: int = 10) -> pd.DataFrame:
    """Top-k for a user the model never saw, described by ``values`` (attribute name -> value), through the model's
    own ``predict`` with attribute columns next to ``user_id`` (what a serving client sends). ``source`` says how
    they were served: ``features``, ``blend`` or ``popular``."""
    k = validate_k(k)
    user = new_user_id(loaded)
    encoding = loaded.recommender.user_encoding if loaded.recommender is not None else None
    frame = attribute_frame(encoding, user, values) if encoding is not None else pd.DataFrame({"user_id": [user]})
    params: dict[str, Any] = {"k": k} if "k" in loaded.params else {}
    if "exclude_seen" in loaded.params:
        params["exclude_seen"] = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = loaded.pyfunc.predict(frame, params=params or None)
    except Exception as exc:
        raise PredictionError(f"The model could not recommend for a new user: {_short(exc)}") from None
    return _normalise(out, user, k)


def cold_start_note(rec: Recommender | None) -> tuple[str, bool]:
    """How the model serves a new user, in a sentence, and whether their attributes change the list: the
    cold-start strategy and what it was chosen on (a popular list chosen on no cold users says so, and how to get
    a validated choice)."""
    if rec is None:
        return "Only recdash models say which user attributes they take; this one can be asked for known users.", False
    if rec.user_encoding is None:
        return (
            "This model was trained without user features, so a new user gets the popular list whatever their "
            "attributes (train rankfm with user features for attribute-based recommendations).",
            False,
        )
    info = rec.cold_start or {}
    strategy = str(info.get("strategy", "popular"))
    chosen_on = str(info.get("chosen_on") or "nothing recorded")
    value = info.get("value")
    if isinstance(value, int | float) and math.isfinite(value):
        chosen_on += f" = {value:.4f}"
    if strategy == "features":
        return (
            f"Cold-start strategy features: a new user is ranked by their attributes alone (chosen on {chosen_on}).",
            True,
        )
    if strategy == "blend":
        weight = info.get("blend_weight")
        share = f", {float(weight):.0%} popularity" if isinstance(weight, int | float) else ""
        return (
            f"Cold-start strategy blend: a new user's attribute scores mixed with popularity{share} (chosen on "
            f"{chosen_on}).",
            True,
        )
    if chosen_on.startswith("not validated"):
        return (
            "Cold-start strategy popular: the attributes below do not change the list. It was not validated: the "
            "model was trained on a split without cold users, so nothing chose between its features and popularity. "
            "Train it on the cold-users split to let validation choose.",
            False,
        )
    return (
        f"Cold-start strategy popular (chosen on {chosen_on}): the attributes did no better than popularity for "
        "the validation's new users, so the attributes below do not change the list.",
        False,
    )


def decode_features(encoding: FeatureEncoding, x: np.ndarray) -> dict[str, str]:
    """An encoded row back to readable values (one-hot -> the value, multi-hot -> ``a|b``, bucket -> its label,
    standardised number -> the number); "unknown" where the row encodes nothing."""
    out: dict[str, str] = {}
    at = 0
    for column in encoding.columns:
        block = np.asarray(x[at : at + column.width], dtype=np.float64)
        at += column.width
        if column.kind == "number":
            out[column.name] = f"{block[0] * column.std + column.mean:.4g}"
            continue
        on = [column.values[j] for j in np.flatnonzero(block > 0.5)]
        out[column.name] = "|".join(on) if on else "unknown"
    return out


def user_attributes(rec: Recommender | None, user_id: Any, users: pd.DataFrame | None = None) -> dict[str, str]:
    """A known user's attribute values as the model was trained on them ({} for a model without user features).

    The raw values from the dataset's users table (age in years) when it has the model's attribute columns and
    they encode to the row the model holds; otherwise the model's encoded row decoded (what an uploaded table
    said, e.g.)."""
    encoding = rec.user_encoding if rec is not None else None
    if rec is None or encoding is None:
        return {}
    idx = int(rec.user_index([str(user_id)])[0])
    stored = getattr(rec, "user_x", None)
    x = np.asarray(stored[idx]) if stored is not None and idx >= 0 else None
    names = encoding.column_names
    if users is not None and "user_id" in users.columns and all(c in users.columns for c in names):
        rows = users[users["user_id"].astype(str) == str(user_id)]
        if len(rows):
            raw = rows.iloc[:1][names].reset_index(drop=True)
            try:
                same = x is None or np.allclose(encoding.encode(raw)[0], x)
            except ValueError:  # FeatureError: a value the encoding does not know, so not what the model saw
                same = False
            if same:
                return {c.name: _raw_value(c, raw[c.name].iat[0]) for c in encoding.columns}
    return decode_features(encoding, x) if x is not None else {}


def _raw_value(column: Any, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return "unknown"
    if column.kind == "bucket":
        label = column.values[int(np.searchsorted(np.asarray(column.edges), float(value), side="right"))]
        return f"{float(value):g} ({label})"
    return str(value)


def overlap(a: pd.DataFrame | Iterable[Any], b: pd.DataFrame | Iterable[Any]) -> tuple[int, float]:
    """Items two lists share: (count, Jaccard = shared / union); 0.0 when both are empty."""
    sa, sb = _item_set(a), _item_set(b)
    union = len(sa | sb)
    shared = len(sa & sb)
    return shared, (shared / union if union else 0.0)


def _item_set(x: pd.DataFrame | Iterable[Any]) -> set[str]:
    values = x["item_id"] if isinstance(x, pd.DataFrame) else x
    return {str(v) for v in values}


def similar_items(loaded: LoadedModel, item_id: Any, k: int = 10, items: pd.DataFrame | None = None) -> pd.DataFrame:
    """The model's nearest items (cosine of rankfm's item factors, EASE's item weights, ItemKNN's neighbours); needs
    a recdash model, which exposes them. ValueError with a readable message otherwise (popularity has none)."""
    if loaded.recommender is None:
        raise ValueError("Similar items need the model's item similarities; only recdash models expose them.")
    try:
        out = loaded.recommender.similar_items(str(item_id), k)
    except KeyError:
        raise ValueError(f"Item {item_id!r} is not in this model's catalogue.") from None
    return with_metadata(out, items)


# ---- run context: the data the model was trained on --------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RunContext:
    """The run's dataset and its exact train/validation/test split, rebuilt from the run's params."""

    run_id: str
    dataset: Dataset
    split: Split
    warnings: tuple[str, ...] = ()

    @property
    def items(self) -> pd.DataFrame | None:
        return self.dataset.items

    @cached_property
    def popularity(self) -> pd.Series:
        """Training interactions per item (what "popular" means for this model)."""
        return self.split.train["item_id"].astype(str).value_counts()

    @cached_property
    def _test_by_user(self) -> dict[str, set[str]]:
        test = self.split.test
        return {str(u): set(g.astype(str)) for u, g in test["item_id"].groupby(test["user_id"].astype(str), sort=False)}

    def test_items(self, user_id: Any) -> set[str]:
        """Items the user interacted with in the held-out test split (the "hits" to look for)."""
        return self._test_by_user.get(str(user_id), set())

    def history(self, user_id: Any) -> pd.DataFrame:
        return user_history(self.split.train, self.items, user_id)


def _param_value(key: str, text: str) -> Any:
    """MLflow params are strings; turn them back into what ``load_dataset`` was called with."""
    if text == "None":
        return None
    if key.endswith("_col"):
        return text  # column names stay strings even when they look like numbers
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def dataset_arguments(params: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """``load_dataset`` name and keyword arguments from a recdash training run's params."""
    name = params.get("dataset") or params.get("dataset_name")
    if not name:
        raise ContextError("the run has no 'dataset' param, so its training data is unknown")
    kwargs: dict[str, Any] = {
        key[len("dataset_") :]: _param_value(key, value)
        for key, value in params.items()
        if key.startswith("dataset_") and key not in _LINEAGE_PARAMS
    }
    data_path = params.get("data_path")
    if data_path not in (None, "None", ""):
        kwargs["path"] = data_path
    min_rating = params.get("min_rating")
    if min_rating not in (None, "None", ""):
        kwargs["min_rating"] = float(min_rating)
    return name, kwargs


def run_context(run_id: str, tracking_uri: str | None = None) -> RunContext:
    """Rebuild the run's data and split from its params; raises ContextError when that is not possible.

    A different ``dataset_digest`` (the file changed since training) is a warning, not an error.
    """
    from mlflow.exceptions import MlflowException

    try:
        params = _client(tracking_uri).get_run(run_id).data.params
    except MlflowException as exc:
        raise ContextError(f"run {run_id} cannot be read: {_short(exc)}") from None
    name, kwargs = dataset_arguments(params)
    try:
        method = params.get("split_method", "random")
        fractions = tuple(
            float(params.get(f"split_{p}", d)) for p, d in (("train", 0.8), ("validation", 0.1), ("test", 0.1))
        )
        seed = int(params.get("split_seed", params.get("seed", 42)))
    except ValueError as exc:
        raise ContextError(f"the run's split params are unreadable: {exc}") from None
    try:
        dataset = load_dataset(name, **kwargs)
        split = split_dataset(dataset, method, fractions, seed)  # type: ignore[arg-type]
    except (DatasetError, OSError, ValueError) as exc:
        raise ContextError(f"the training data of run {run_id} cannot be rebuilt: {_short(exc)}") from None
    notes: list[str] = []
    logged = params.get("dataset_digest")
    if logged and logged != dataset.digest:
        notes.append(
            f"The data has changed since this run was trained (digest {dataset.digest}, the run logged {logged}); "
            "history and hits may not match what the model saw."
        )
    return RunContext(run_id, dataset, split, tuple(notes))


# ---- tables for display ------------------------------------------------------------------------------------------


def with_metadata(frame: pd.DataFrame, items: pd.DataFrame | None) -> pd.DataFrame:
    """Add title, genres and year (where the dataset has them) right after ``item_id``."""
    if items is None or "item_id" not in frame.columns:
        return frame
    meta_cols = [c for c in ("title", "genres", "year") if c in items.columns and c not in frame.columns]
    if not meta_cols:
        return frame
    meta = items[["item_id", *meta_cols]].copy()
    meta["item_id"] = meta["item_id"].astype(str)
    meta = meta.drop_duplicates("item_id")
    keys = frame["item_id"].astype(str)
    merged = meta.set_index("item_id").reindex(pd.Index(keys))
    out = frame.copy()
    at = list(out.columns).index("item_id") + 1
    for offset, col in enumerate(meta_cols):
        out.insert(at + offset, col, merged[col].to_numpy())
    return out


def user_history(train: pd.DataFrame, items: pd.DataFrame | None, user_id: Any) -> pd.DataFrame:
    """The user's training interactions, most recent first when there are timestamps, with item metadata."""
    rows = train[train["user_id"].astype(str) == str(user_id)]
    cols = ["item_id", "weight"] + (["timestamp"] if "timestamp" in rows.columns else [])
    out = rows[cols].copy()
    out["item_id"] = out["item_id"].astype(str)
    if "timestamp" in out.columns:
        out = out.sort_values("timestamp", ascending=False, kind="stable")
        out["time"] = pd.to_datetime(out.pop("timestamp"), unit="s", errors="coerce")
    return with_metadata(out.reset_index(drop=True), items)


def decorate(
    recs: pd.DataFrame,
    items: pd.DataFrame | None = None,
    popularity: pd.Series | None = None,
    test_items: set[str] | None = None,
) -> pd.DataFrame:
    """Recommendations for display: rank, item, metadata, score, item popularity and whether it is a test hit."""
    out = recs.drop(columns=[c for c in ("user_id",) if c in recs.columns]).copy()
    out["item_id"] = out["item_id"].astype(str)
    out = with_metadata(out, items)
    if popularity is not None:
        out["popularity"] = popularity.reindex(pd.Index(out["item_id"])).fillna(0).astype(np.int64).to_numpy()
    if test_items is not None:
        out["hit"] = out["item_id"].isin({str(i) for i in test_items}).to_numpy()
    return out


def model_popularity(loaded: LoadedModel, context: RunContext | None = None) -> pd.Series | None:
    """Training interactions per item: from the run's data when available, else from the model itself."""
    if context is not None:
        return context.popularity
    if loaded.recommender is not None:
        rec = loaded.recommender
        return pd.Series(rec.item_popularity, index=pd.Index(rec.item_ids))
    return None


def item_labels(item_ids: Iterable[Any], items: pd.DataFrame | None) -> dict[str, str]:
    """'Title (id)' for pickers, the bare ID where there is no title."""
    ids = [str(i) for i in item_ids]
    titles: dict[str, str] = {}
    if items is not None and "title" in items.columns:
        titles = dict(zip(items["item_id"].astype(str), items["title"].astype(str), strict=False))
    return {i: f"{titles[i]} ({i})" if i in titles else i for i in ids}


# What the popularity fallback ranks by: recdash's pyfunc puts this count in ``score`` (the predict contract stays as
# it is), which next to model scores near 2 reads like a score of 486; the page names it for what it is.
FALLBACK_SCORE = "training interactions"
CHECK = "✓"


def compact(frame: pd.DataFrame, keep_id: bool = False) -> pd.DataFrame:
    """A table for half the page width: title and ID in one ``item`` column ("Title (id)", the ID alone where there
    is no title) and no genres (the widest column; the full-width Similar items table keeps them). ``keep_id``
    keeps ``item_id`` too, right before ``item``, for callers that look items up by ID."""
    out = frame.drop(columns=[c for c in ("genres",) if c in frame.columns])
    if "item_id" not in out.columns:
        return out
    ids = out["item_id"].astype(str)
    item = ids
    if "title" in out.columns:
        titles = out.pop("title")
        known = titles.notna() & (titles.astype(str).str.strip() != "")
        item = ids.where(~known, titles.astype(str) + " (" + ids + ")")
    at = list(out.columns).index("item_id")
    if not keep_id:
        out = out.drop(columns="item_id")
    else:
        at += 1
    out.insert(at, "item", item.to_numpy())
    return out


def display_recs(table: pd.DataFrame, shared: set[str] | None = None, *, popularity: bool = True) -> pd.DataFrame:
    """A :func:`decorate` table as shown: compact, hits and shared items as ✓, the fallback's count named.

    The frame keeps ``item_id`` and ``score`` under their contract names (what callers look items up by);
    ``attrs["shown"]`` lists the columns to show, in order (``item`` stands for ``item_id``), and ``attrs["labels"]``
    renames some for the reader: for the popularity fallback ``score`` holds the raw training-interaction count
    (the popularity column, which would repeat it, goes) and is labelled :data:`FALLBACK_SCORE`. ``shared`` (items
    the other model also recommends) adds an ``in both`` column; ``popularity=False`` leaves popularity out
    (side-by-side tables are narrow).
    """
    fallback = "source" in table.columns and is_fallback(table)
    out = table.drop(columns=[c for c in ("source", "user_id") if c in table.columns])
    if "hit" in out.columns:
        out["hit"] = np.where(out["hit"].to_numpy(dtype=bool), CHECK, "")
    if shared is not None:
        out["in both"] = np.where(out["item_id"].astype(str).isin(shared), CHECK, "")
    labels: dict[str, str] = {}
    if fallback and "popularity" in out.columns:
        out["score"] = out.pop("popularity").to_numpy()  # the same count the pyfunc put there, as an integer
        labels["score"] = FALLBACK_SCORE
    elif not popularity:
        out = out.drop(columns=[c for c in ("popularity",) if c in out.columns])
    out = compact(out, keep_id=True)
    out.attrs["shown"] = [c for c in out.columns if c != "item_id"]
    out.attrs["labels"] = labels
    return out
