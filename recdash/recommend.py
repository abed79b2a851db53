"""Top-k recommendations from any logged or registered model, next to what the user actually did.

The Recommend page is a thin layer over this module: it lists the models in the tracking store, loads one
(turning every way that can fail into a :class:`ModelLoadError` with a readable message), asks it for a user's
top-k through the pyfunc ``predict`` contract, and rebuilds the run's exact train/test split so the user's
history and the held-out hits can be shown. No Streamlit here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from recdash import comparison, contract, tracking
from recdash.contract import MLFLOW_LOG_MODEL_HISTORY
from recdash.data import Dataset, DatasetError, Split, load_dataset, split_dataset
from recdash.data.features import FeatureEncoding
from recdash.errors import UserError
from recdash.models import OUTPUT_COLUMNS, Recommender, validate_k
from recdash.tracking import artifacts
from recdash.tracking.client import history_model_paths, logged_model_ready
from recdash.tracking.frame import assemble, parts_from_runs

CONTRACT = (
    "The Recommend page needs a pyfunc model that follows the recdash predict contract: input a DataFrame with a "
    "'user_id' column; params 'k' (and optionally 'exclude_seen'); output columns user_id, rank, item_id, score "
    "(and optionally source = model/popular). Models logged with recdash.serving.log_model(...) follow it."
)
# Metrics shown next to a model in the picker, first match wins.
KEY_METRIC_PREFIXES = ("test_ndcg_at_", "test_", "val_ndcg_at_", "val_", "best_val_")
# Lineage params logged by recdash.train that describe the data but are not options of load_dataset.
_LINEAGE_PARAMS = {"dataset_name", "dataset_digest", "dataset_source", "dataset_rows", "dataset_users", "dataset_items"}


class ModelLoadError(UserError, RuntimeError):
    """A model that cannot be used on the page; the message says why in words a user can act on."""


class PredictionError(UserError, RuntimeError):
    """The model loaded but its ``predict`` failed or returned something outside the contract."""


class ContextError(UserError, RuntimeError):
    """The run's training data cannot be rebuilt, so history and hits are unavailable (recommendations still work)."""


# ---- model sources ---------------------------------------------------------------------------------------------


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
    they can load. ``data_group`` is the run's :func:`recdash.comparison.data_groups` label: key metrics compare
    only within one.
    """
    client = tracking.client(tracking_uri)
    experiments = tracking.all_pages(lambda t: client.search_experiments(max_results=1000, page_token=t))
    names = {e.experiment_id: e.name for e in experiments}
    columns = [
        "label", "experiment", "run_name", "run_id", "start_time", "model_name", "model_id",
        "key_metric", "key_metric_value", "created", "model_uri", "data_group",
    ]  # fmt: skip
    if not names:
        return pd.DataFrame(columns=columns)
    ids = list(names)
    models = tracking.all_pages(
        lambda t: client.search_logged_models(experiment_ids=ids, max_results=1000, page_token=t)
    )
    runs = {
        r.info.run_id: r for r in tracking.all_pages(lambda t: client.search_runs(ids, max_results=5000, page_token=t))
    }
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
    frame["data_group"] = _data_groups(frame, runs, names)
    frame["created"] = pd.to_datetime(frame["created"], unit="ms")
    frame["start_time"] = pd.to_datetime(frame["start_time"], unit="ms")
    return frame.sort_values("created", ascending=False, kind="stable").reset_index(drop=True)


def _data_groups(sources: pd.DataFrame, runs: dict[str, Any], names: dict[str, str]) -> list[str]:
    """Each listed model's data group (dataset digest and split), from its run; a model without a run has none."""
    with_models = [runs[r] for r in dict.fromkeys(sources["run_id"].dropna()) if r in runs]
    frame = assemble(parts_from_runs(with_models))
    frame["experiment"] = frame["experiment_id"].map(names).astype(object)
    groups = comparison.data_groups(frame) if len(frame) else pd.Series([], dtype=object)
    by_run = dict(zip(frame["run_id"], groups, strict=True))
    return [
        by_run.get(run_id, f"{experiment}: {contract.NO_DATA}") if isinstance(run_id, str) else f"{experiment}: no run"
        for run_id, experiment in zip(sources["run_id"], sources["experiment"], strict=True)
    ]


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


def run_exists(run_id: str, tracking_uri: str | None = None) -> bool:
    """Whether the store has a run with this ID: a shared ``?run=`` link may name one of another store, or none."""
    from mlflow.exceptions import MlflowException

    try:
        tracking.client(tracking_uri).get_run(run_id)
    except MlflowException:
        return False
    return True


def registered_sources(tracking_uri: str | None = None) -> pd.DataFrame:
    """Registered model versions and aliases as loadable URIs (``models:/name/version``, ``models:/name@alias``)."""
    client = tracking.client(tracking_uri)
    columns = ["label", "name", "version", "alias", "run_id", "model_uri"]
    registered = tracking.all_pages(lambda t: client.search_registered_models(max_results=1000, page_token=t))
    versions = tracking.all_pages(lambda t: client.search_model_versions(max_results=10_000, page_token=t))
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
        version = tracking.client(tracking_uri).get_model_version_by_alias(name, alias).version
    except Exception:  # unknown model or alias: load() gives the user-facing message
        return uri
    return f"models:/{name}/{version}"


class ModelFilesMissing(ModelLoadError):
    """The model is listed in the store but its files are not where the store says (never uploaded, not copied
    along, left out of a git export): a fact about the store, shown as a note rather than an error."""


def _load_error(uri: str, exc: BaseException) -> ModelLoadError:
    """What went wrong loading ``uri``, in words a user can act on; files that are not there are named by the
    model's own artifact location, never by the temporary folder MLflow copied them to."""
    from mlflow.exceptions import MlflowException

    missing = artifacts.missing_files(uri, exc)
    if missing is not None:
        return ModelFilesMissing(missing)
    message = str(exc)
    if isinstance(exc, MlflowException):
        if "python_function" in message and "flavor" in message:
            return ModelLoadError(f"{uri} is not a pyfunc model (it has no python_function flavor). {CONTRACT}")
        if "no such artifact" in message.lower() or "no such file" in message.lower():
            return ModelFilesMissing(f"The files of {uri} are missing from the artifact store ({_short(exc)}).")
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in message.lower():
            return ModelLoadError(f"No model at {uri}: {_short(exc)}")
        return ModelLoadError(f"Could not load {uri}: {_short(exc)}")
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return ModelFilesMissing(f"The files of {uri} are missing from the artifact store ({_short(exc)}).")
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
        raise PredictionError("Enter a user ID.")
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


def similar_items(loaded: LoadedModel, item_id: Any, k: int = 10, items: pd.DataFrame | None = None) -> pd.DataFrame:
    """The model's nearest items (cosine of rankfm's item factors, EASE's item weights, ItemKNN's neighbours); needs
    a recdash model, which exposes them. ValueError with a readable message otherwise (popularity has none)."""
    if loaded.recommender is None:
        raise PredictionError("Similar items need the model's item similarities; only recdash models expose them.")
    try:
        out = loaded.recommender.similar_items(str(item_id), k)
    except KeyError:
        raise PredictionError(f"Item {item_id!r} is not in this model's catalogue.") from None
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
        """Training interactions per item (what "popular" means for this model), counted on the integer codes."""
        counts = self.split.train["item_id"].value_counts(sort=True)
        counts = counts[counts > 0]  # coded IDs keep every item of the dataset as a category
        return pd.Series(counts.to_numpy(), index=counts.index.astype(str), name="count")

    def test_items(self, user_id: Any) -> set[str]:
        """Items the user interacted with in the held-out test split (the "hits" to look for)."""
        test = self.split.test
        return set(test.loc[rows_of(test, "user_id", user_id), "item_id"].astype(str))

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
        params = tracking.client(tracking_uri).get_run(run_id).data.params
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


def model_popularity(loaded: LoadedModel, context: RunContext | None = None) -> pd.Series | None:
    """Training interactions per item: from the run's data when available, else from the model itself."""
    if context is not None:
        return context.popularity
    if loaded.recommender is not None:
        rec = loaded.recommender
        return pd.Series(rec.item_popularity, index=pd.Index(rec.item_ids))
    return None


# ---- the run's data for display ------------------------------------------------------------------------------


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


def rows_of(frame: pd.DataFrame, column: str, value: Any) -> np.ndarray:
    """A mask of the rows whose ``column`` is ``value`` (IDs compare as text). On coded IDs (a Categorical of the
    IDs as text) one integer comparison per row: at 16 million training rows a few milliseconds, where turning the
    column into text first took two seconds on every page run."""
    col = frame[column]
    if isinstance(col.dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(col.cat.categories):
        code = col.cat.categories.get_indexer([str(value)])[0]
        return col.cat.codes.to_numpy() == code if code >= 0 else np.zeros(len(frame), dtype=bool)
    return (col.astype(str) == str(value)).to_numpy()


def user_history(train: pd.DataFrame, items: pd.DataFrame | None, user_id: Any) -> pd.DataFrame:
    """The user's training interactions, most recent first when there are timestamps, with item metadata."""
    rows = train[rows_of(train, "user_id", user_id)]
    cols = ["item_id", "weight"] + (["timestamp"] if "timestamp" in rows.columns else [])
    out = rows[cols].copy()
    out["item_id"] = out["item_id"].astype(str)
    if "timestamp" in out.columns:
        out = out.sort_values("timestamp", ascending=False, kind="stable")
        out["time"] = pd.to_datetime(out.pop("timestamp"), unit="s", errors="coerce")
    return with_metadata(out.reset_index(drop=True), items)
