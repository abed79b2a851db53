"""One training = one MLflow run, for any algorithm of :mod:`recdash.models`: data lineage, params (with
``model``), validation metrics (per epoch with early stopping for iterative models, one step for closed-form ones,
after choosing among candidate hyperparameters on validation when given), test metrics with segments and
beyond-accuracy metrics next to a popularity baseline, and the servable model.

The run never stays RUNNING: an exception ends it FAILED and Ctrl-C/SIGTERM ends it KILLED, with the reason
in the ``recdash.error`` tag.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recdash import __version__
from recdash.datasets import SPLIT_METHODS, Dataset, Split, lineage, load_dataset, split_dataset
from recdash.features import FeatureError, FeatureTable, feature_dataset, load_features
from recdash.flags import identity_tags
from recdash.metrics import METRICS, evaluate, interaction_matrix
from recdash.models import (
    DEFAULT_MODEL,
    MODELS,
    Interactions,
    Params,
    Popularity,
    Recommender,
    UnknownModelError,
    get_model,
)
from recdash.tracking import TrackingError, check_writable

DEFAULT_EXPERIMENT = "recdash"
TAG_CREATED_BY = "recdash.created_by"
TAG_KIND = "recdash.kind"
TAG_ERROR = "recdash.error"
TAG_END_REASON = "recdash.end_reason"
TAG_PID = "recdash.pid"
TAG_HOST = "recdash.host"
TAG_MODEL = "recdash.model"
TAG_REFERENCE = "recdash.reference"
# An experiment's kind, MLflow's tag: "custom_model_development" is what MLflow's UI writes for "Machine learning"
# (ExperimentKind.CUSTOM_MODEL_DEVELOPMENT in mlflow/server/js). MLflow 3.4-3.8's UIs take the kind, its tabs and
# landing page from it; 3.17's decides by a per-browser switch instead (recdash.charts.MLFLOW_UI_TRAINING_MODE).
# Set only on the experiments recdash creates.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_EXPERIMENT_KIND = "custom_model_development"
NEW_EXPERIMENT_TAGS = {EXPERIMENT_KIND_TAG: TRAINING_EXPERIMENT_KIND}

EpochCallback = Callable[[int, dict[str, float]], None]


class ConfigError(ValueError):
    """A training option that cannot work; the message names the CLI flag."""


class StopRun(Exception):
    """Raised by an epoch callback to end the run early with an MLflow status (e.g. a pruned sweep trial)."""

    def __init__(self, status: str = "KILLED", reason: str = "stopped") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@contextmanager
def run_outcome(reason: Callable[[], str] | None = None) -> Iterator[None]:
    """End the active MLflow run the way every recdash run ends (a training, a sweep's or the references' parent).

    FINISHED when the body returns (with ``reason()`` as its end-reason tag, if given); a :class:`StopRun` with its
    status and reason; KILLED on Ctrl-C or a cancel; FAILED with the error as a tag on anything else. The exception
    goes on to the caller."""
    import mlflow

    try:
        yield
    except StopRun as stop:
        mlflow.set_tag(TAG_END_REASON, stop.reason)
        mlflow.end_run(stop.status)
        raise
    except KeyboardInterrupt:
        mlflow.set_tag(TAG_ERROR, "interrupted (Ctrl-C or cancel)")
        mlflow.end_run("KILLED")
        raise
    except BaseException as exc:
        mlflow.set_tag(TAG_ERROR, f"{type(exc).__name__}: {exc}"[:5000])
        mlflow.end_run("FAILED")
        raise
    if reason is not None:
        mlflow.set_tag(TAG_END_REASON, reason())
    mlflow.end_run("FINISHED")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the hyperparameters; validated before a run is created."""

    dataset: str = "movielens-100k"
    data_path: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    min_rating: float | None = None
    split: str = "random"
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 42  # the model's initialisation and sampling
    split_seed: int = 42  # the split (and synthetic data): fixed while seeds repeat, so repeats share their data
    epochs: int = 30
    k: int = 10
    early_stopping_metric: str = "ndcg"
    patience: int = 5
    hparams: Params | None = None  # the model's Params; None: its defaults (a dict is validated into them)
    experiment: str = DEFAULT_EXPERIMENT
    run_name: str | None = None
    log_model: bool = True
    registered_model_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    model: str = DEFAULT_MODEL
    user_features: str = "none"  # none | builtin | path of a CSV/Parquet table (recdash.features)
    item_features: str = "none"

    def __post_init__(self) -> None:
        try:
            cls = get_model(self.model)
        except UnknownModelError as exc:
            raise ConfigError(str(exc)) from None
        object.__setattr__(self, "model", cls.name)
        if self.hparams is None or isinstance(self.hparams, dict):
            object.__setattr__(self, "hparams", cls.Params.from_mapping(self.hparams or {}))
        elif not isinstance(self.hparams, cls.Params):
            raise ConfigError(
                f"--model {cls.name} takes {cls.Params.__name__} hyperparameters, not {type(self.hparams).__name__}"
            )
        checks = [
            (isinstance(self.epochs, int) and 1 <= self.epochs <= 10_000, "--epochs must be between 1 and 10000"),
            (isinstance(self.k, int) and 1 <= self.k <= 1000, "--k must be between 1 and 1000"),
            (isinstance(self.patience, int) and self.patience >= 0, "--patience must be 0 (off) or a positive integer"),
            (self.early_stopping_metric in METRICS, f"--early-stopping-metric must be one of {', '.join(METRICS)}"),
            (self.split in SPLIT_METHODS, f"--split must be one of {', '.join(SPLIT_METHODS)}"),
            (
                len(self.split_fractions) == 3
                and all(f > 0 for f in self.split_fractions)
                and abs(sum(self.split_fractions) - 1) < 1e-6,
                "--split-fractions must be three positive numbers summing to 1",
            ),
            (bool(self.experiment and self.experiment.strip()), "--experiment must not be empty"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        for kind in ("user", "item"):
            spec = str(getattr(self, f"{kind}_features") or "none").strip() or "none"
            object.__setattr__(self, f"{kind}_features", "none" if spec.lower() == "none" else spec)
            if spec.lower() != "none" and not cls.uses_features:
                users = ", ".join(m for m in MODELS if get_model(m).uses_features)
                raise ConfigError(
                    f"--{kind}-features needs a model that uses side features ({users}); {cls.name} does not"
                )

    @property
    def uses_features(self) -> bool:
        return self.user_features != "none" or self.item_features != "none"

    @property
    def monitor(self) -> str:
        """Name of the validation metric early stopping (and sweeps) watch."""
        return f"val_{self.early_stopping_metric}_at_{self.k}"

    @property
    def model_class(self) -> type[Recommender]:
        return get_model(self.model)

    @property
    def params_(self) -> Params:
        """The hyperparameters, typed (``hparams`` is always set after validation)."""
        assert self.hparams is not None
        return self.hparams

    @property
    def epochs_total(self) -> int:
        """Validation steps the run will log at most: ``epochs`` for iterative models, 1 for closed-form ones."""
        return self.epochs if self.model_class.iterative else 1

    def params(self) -> dict[str, Any]:
        """Run params besides the dataset lineage ones (epochs and patience only where the model has epochs)."""
        iterative = {"epochs": self.epochs, "patience": self.patience} if self.model_class.iterative else {}
        # models that can use side features record whether they did (Compare: "with vs without features")
        features = {"user_features": "none", "item_features": "none"} if self.model_class.uses_features else {}
        return {
            "model": self.model,
            **features,
            **self.params_.as_dict(),
            **iterative,
            "k": self.k,
            "seed": self.seed,
            "early_stopping_metric": self.monitor,
            "min_rating": self.min_rating,
            "data_path": self.data_path,
            # how the data was made or read (synthetic sizes, CSV column mapping), so the run can be reproduced
            **{f"dataset_{key}": value for key, value in self.dataset_options.items()},
        }


@dataclass
class TrainResult:
    run_id: str
    best_epoch: int
    metrics: dict[str, float]
    recommender: Recommender
    model_uri: str | None
    params: Params | None = None  # the hyperparameters the model was fitted with (chosen on validation, if searched)


def load_data(config: TrainConfig) -> tuple[Dataset, Split]:
    """The dataset and split a config asks for (sweeps call this once and share it across trials)."""
    dataset = load_dataset(
        config.dataset, path=config.data_path, min_rating=config.min_rating, **config.dataset_options
    )
    return dataset, split_dataset(dataset, config.split, config.split_fractions, config.split_seed)


def load_side_features(config: TrainConfig, dataset: Dataset) -> tuple[FeatureTable | None, FeatureTable | None]:
    """The user and item feature tables a config asks for (ConfigError naming the flag when one is unusable)."""
    tables = []
    for kind in ("user", "item"):
        try:
            tables.append(load_features(getattr(config, f"{kind}_features"), kind, dataset))
        except FeatureError as exc:
            message = str(exc)
            raise ConfigError(message if message.startswith("--") else f"--{kind}-features: {message}") from None
    return tables[0], tables[1]


@dataclass(frozen=True)
class HeldOut:
    """A held-out set mapped onto a model's ID maps once, then evaluated every epoch (or every candidate).

    Held-out items the model never saw stay in the catalogue (scored -inf), so recall's denominator counts them
    as RecBole does; held-out users the model never saw are skipped. Every model fitted on the same
    :class:`~recdash.models.Interactions` shares the ID maps, so one HeldOut serves them all.
    """

    truth: Any  # csr users x catalogue
    exclude: Any  # csr users x catalogue, or None
    popularity: np.ndarray
    n_extra_items: int
    activity: np.ndarray  # training items per user (the segments' quartiles)
    genres: np.ndarray | None  # bool catalogue x genres, when the items have genres
    tiebreak: np.ndarray | None = None  # order of users of equal activity (user_order), see user_order()
    # cold users (the cold-users split): rows are users the model never saw, scored by rec.cold_scores on these
    # encoded features (None: no user features, only the popular list can serve them)
    cold: bool = False
    user_x: np.ndarray | None = None

    @classmethod
    def build(
        cls, rec: Recommender, truth: pd.DataFrame, exclude: list[pd.DataFrame], items: pd.DataFrame | None = None
    ) -> HeldOut:
        catalogue, n_extra, popularity = _catalogue(rec, truth)

        def matrix(frame: pd.DataFrame) -> Any:
            u = rec.user_index(frame["user_id"])
            i = catalogue.get_indexer(pd.Index(frame["item_id"], dtype=object).astype(str))
            keep = (u >= 0) & (i >= 0)
            return interaction_matrix(u[keep], i[keep], rec.n_users, len(catalogue))

        masks = [matrix(f) for f in exclude]
        activity = np.diff(rec.seen_indptr)
        return cls(
            matrix(truth),
            sum(masks[1:], masks[0]) if masks else None,
            popularity,
            n_extra,
            activity,
            genre_matrix(items, catalogue),
            user_order(rec.user_ids),
        )

    @classmethod
    def build_cold(
        cls,
        rec: Recommender,
        truth: pd.DataFrame,
        user_features: FeatureTable | None,
        items: pd.DataFrame | None = None,
    ) -> HeldOut:
        """Held-out users the model never saw (the cold-users split), with their encoded features when the model
        was trained with user features; nothing to exclude (they have no training items)."""
        catalogue, n_extra, popularity = _catalogue(rec, truth)
        users = pd.Index(pd.unique(truth["user_id"].astype(str)))
        u = users.get_indexer(truth["user_id"].astype(str))
        i = catalogue.get_indexer(pd.Index(truth["item_id"], dtype=object).astype(str))
        user_x = None
        if user_features is not None:
            user_x = user_features.matrix(users.to_numpy(dtype=str))
        return cls(
            interaction_matrix(u, i, len(users), len(catalogue)),
            None,
            popularity,
            n_extra,
            np.zeros(len(users), dtype=np.int64),
            genre_matrix(items, catalogue),
            None,
            cold=True,
            user_x=user_x,
        )

    def strategies(self) -> list[str]:
        """The cold-start strategies this held-out set can measure (``popular`` always)."""
        return ["popular", "features", "blend"] if self.user_x is not None else ["popular"]

    def evaluate(
        self,
        rec: Recommender,
        k: int,
        segments: bool = False,
        strategy: str | None = None,
        blend_weight: float | None = None,
    ) -> dict[str, float]:
        """Full-ranking metrics of ``rec`` (same ID maps as the one this was built with); ``segments`` adds the
        per-quartile and beyond-accuracy metrics (cold users have no training activity: no quartiles).
        Cold users are served by ``strategy`` (default: the model's cold start; ``features`` when it has user
        features and has none chosen yet is the caller's to ask)."""

        def score(users: np.ndarray) -> np.ndarray:
            if self.cold:
                x = self.user_x[users] if self.user_x is not None else np.zeros((len(users), 0), np.float32)
                s = rec.cold_scores(x, strategy, blend_weight)
            else:
                s = rec.scores(users)
            if self.n_extra_items:
                s = np.hstack([s, np.full((len(users), self.n_extra_items), -np.inf, dtype=s.dtype)])
            return s

        extended: dict[str, Any] = {}
        if segments:
            extended = {"segments": True, "user_activity": self.activity, "item_genres": self.genres}
            extended["user_order"] = self.tiebreak
        # coverage over the model's catalogue (its training items), not the held-out-only items appended after it
        n_catalogue = self.truth.shape[1] - self.n_extra_items
        out = evaluate(
            score, self.truth, self.exclude, k=k, item_popularity=self.popularity, n_catalogue=n_catalogue, **extended
        )
        if self.cold:
            out = {name: v for name, v in out.items() if not re.search(r"_q[1-4]$", name)}
        return out


def user_order(user_ids: Any) -> np.ndarray:
    """The order of users of equal training activity in the segment quartiles: the first 8 bytes of the BLAKE2b
    hash of each user ID (UTF-8), as an unsigned integer. A fixed pseudo-random order, the same in every process
    and for every model on the same data, that does not follow how the IDs are numbered or spelled (string order
    would put "10" before "9")."""
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(str(u).encode(), digest_size=8).digest(), "big") for u in user_ids),
        dtype=np.uint64,
        count=len(user_ids),
    )


def _catalogue(rec: Recommender, truth: pd.DataFrame) -> tuple[pd.Index, int, np.ndarray]:
    """The model's items plus held-out items it never saw (kept, scored -inf, so recall counts them as RecBole
    does), and the popularity of that catalogue."""
    truth_items = truth["item_id"]
    extra = pd.Index(truth_items[rec.item_index(truth_items) < 0].astype(str).unique())
    popularity = np.concatenate([rec.item_popularity, np.zeros(len(extra), dtype=np.int64)])
    return pd.Index(rec.item_ids).append(extra), len(extra), popularity


def genre_matrix(items: pd.DataFrame | None, catalogue: pd.Index) -> np.ndarray | None:
    """Bool [catalogue, genres] from the items' ``genres`` column ("a|b|c"), None when there are no genres."""
    if items is None or "genres" not in items.columns or "item_id" not in items.columns:
        return None
    meta = items.drop_duplicates("item_id").set_index(items["item_id"].drop_duplicates().astype(str))["genres"]
    text = meta.reindex(catalogue).fillna("").astype(str)
    dummies = text.str.get_dummies(sep="|")
    dummies = dummies.loc[:, [c for c in dummies.columns if c.strip()]]
    if dummies.shape[1] == 0:
        return None
    return dummies.to_numpy(dtype=bool)


def evaluate_recommender(
    rec: Recommender,
    truth: pd.DataFrame,
    exclude: list[pd.DataFrame],
    k: int,
    *,
    segments: bool = False,
    items: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Full-ranking metrics of ``rec`` against ``truth`` interactions, masking ``exclude`` interactions."""
    return HeldOut.build(rec, truth, exclude, items).evaluate(rec, k, segments)


def experiment_id_for(name: str) -> str:
    """The id of experiment ``name``, created if missing (safe when several processes race to create it) with
    :data:`NEW_EXPERIMENT_TAGS`; an existing experiment is left as it is."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise ConfigError(f"experiment {name!r} is deleted; restore it in MLflow or choose another --experiment")
        return found.experiment_id
    try:
        return client.create_experiment(name, tags=NEW_EXPERIMENT_TAGS)
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _prefixed(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{name}": float(v) for name, v in values.items() if name != "n_users_evaluated"}


def train(
    config: TrainConfig,
    data: tuple[Dataset, Split] | None = None,
    *,
    on_epoch: EpochCallback | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    candidates: list[Params] | None = None,
) -> TrainResult:
    """Train, evaluate and log one model as one MLflow run; returns the run id and best-epoch metrics.

    ``on_epoch(epoch, val_metrics)`` runs after each epoch (or the one validation step of a closed-form model) is
    logged; it may raise :class:`StopRun`. ``candidates`` (closed-form models): hyperparameters to try, each fitted
    on train and scored on validation; the run keeps the best by the monitored metric and logs its params.
    """
    import os

    import mlflow

    try:  # a legacy file store is only ever read (recdash.filestore): refuse before any data is loaded
        check_writable(mlflow.get_tracking_uri(), "training")
    except TrackingError as exc:
        raise ConfigError(str(exc)) from None
    dataset, split = data if data is not None else load_data(config)
    if len(split.train) == 0 or len(split.validation) == 0 or len(split.test) == 0:
        raise ConfigError("the split left an empty train, validation or test set; use more data or other fractions")
    user_table, item_table = load_side_features(config, dataset)  # refused before any run exists
    interactions = Interactions.from_frame(split.train, user_table, item_table)
    model_class = config.model_class
    candidates = list(candidates or [config.params_])
    if model_class.iterative and len(candidates) > 1:
        raise ConfigError(f"{model_class.name} trains by epochs; sweep its hyperparameters instead of candidates")
    for params in candidates:
        if not isinstance(params, model_class.Params):
            raise ConfigError(f"candidate {params!r} is not a {model_class.name} hyperparameter set")
        model_class.check(params, interactions)  # refused before any run exists
    # Under `mlflow run` (MLFLOW_RUN_ID set) the project's run and experiment are used. Otherwise the experiment is
    # passed explicitly: mlflow.set_experiment would change process-wide state (and MLFLOW_EXPERIMENT_ID) under the
    # feet of a dashboard or a sweep running other code in the same process.
    # A nested run (a sweep trial) lives in its parent's experiment.
    if os.environ.get("MLFLOW_RUN_ID"):
        experiment_id = None
    elif parent_run_id:
        experiment_id = mlflow.MlflowClient().get_run(parent_run_id).info.experiment_id
    else:
        experiment_id = experiment_id_for(config.experiment)
    tags = {
        TAG_CREATED_BY: "recdash",
        "recdash.version": __version__,
        TAG_KIND: "train",
        TAG_MODEL: config.model,
        TAG_PID: str(os.getpid()),
        TAG_HOST: socket.gethostname(),
        **identity_tags(),  # so a later process reusing this PID is never taken for this run's
        "recdash.epochs_total": str(config.epochs_total),
        **config.tags,
    }
    run = mlflow.start_run(
        experiment_id=experiment_id, run_name=config.run_name, nested=nested, parent_run_id=parent_run_id, tags=tags
    )
    with run_outcome():
        result = _train_in_run(config, dataset, split, interactions, candidates, on_epoch, run.info.run_id)
    return result


def _log_input(dataset: Any, context: str = "training", attempts: int = 3) -> None:
    """``mlflow.log_input`` for the training data, tried again when another run logged the same dataset at the
    same moment: MLflow's SQL store looks the dataset up and then inserts it, so two jobs starting on the same data
    can both insert and one hits the UNIQUE constraint (its transaction is rolled back). On the next try the row is
    there and only the link to this run is written."""
    import mlflow
    from sqlalchemy.exc import IntegrityError

    for attempt in range(attempts):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except mlflow.exceptions.MlflowException as exc:
            if attempt == attempts - 1 or not isinstance(exc.__cause__, IntegrityError):
                raise
            time.sleep(0.2 * (attempt + 1))


def _train_in_run(
    config: TrainConfig,
    dataset: Dataset,
    split: Split,
    interactions: Interactions,
    candidates: list[Params],
    on_epoch: EpochCallback | None,
    run_id: str,
) -> TrainResult:
    import mlflow

    mlflow_dataset, lineage_info = lineage(dataset)
    _log_input(mlflow_dataset)
    feature_params: dict[str, str] = {}
    notes: list[str] = []
    for table, spec in (
        (interactions.user_features, config.user_features),
        (interactions.item_features, config.item_features),
    ):
        if table is not None:
            _log_input(feature_dataset(table, dataset.name), context="features")
            feature_params |= table.params(spec)
            notes += table.warnings
    for note in notes:
        print(f"note: {note}", flush=True)
    if notes:
        mlflow.set_tag("recdash.feature_notes", "\n".join(notes)[:5000])
    base_params = {**config.params(), **split.params(), **lineage_info, "dataset": config.dataset, **feature_params}
    baseline = Popularity().fit(interactions)  # the floor, and the ID maps every model fitted here shares
    cold = split.method == "cold-users"
    user_table = interactions.user_features if config.model_class.uses_features else None
    if cold:
        validation = HeldOut.build_cold(baseline, split.validation, user_table)
    else:
        validation = HeldOut.build(baseline, split.validation, [split.train])
    started = time.perf_counter()
    if config.model_class.iterative:
        mlflow.log_params(base_params)
        best_value, best_epoch, best_rec = _fit_by_epochs(config, interactions, validation, on_epoch)
        chosen = config.params_
    else:
        best_value, best_rec = _fit_closed_form(config, interactions, validation, candidates, base_params, on_epoch)
        best_epoch, chosen = 1, best_rec.params
    train_seconds = time.perf_counter() - started

    metrics: dict[str, float] = {}
    if cold:
        metrics |= _choose_cold_start(best_rec, validation, config)
        test = HeldOut.build_cold(best_rec, split.test, user_table, dataset.items)
        if "features" in test.strategies() and best_rec.user_encoding is not None:
            metrics |= _prefixed("features_test_", test.evaluate(best_rec, config.k, strategy="features"))
    else:
        if best_rec.user_encoding is not None:
            best_rec.set_cold_start("popular", chosen_on=NOT_VALIDATED)
            mlflow.log_params({"cold_start_strategy": "popular"})
        test = HeldOut.build(best_rec, split.test, [split.train, split.validation], dataset.items)
    metrics |= _prefixed("test_", test.evaluate(best_rec, config.k, segments=True))
    metrics |= _prefixed("baseline_test_", test.evaluate(baseline, config.k, segments=True))
    metrics |= {"best_epoch": float(best_epoch), "train_seconds": train_seconds, f"best_{config.monitor}": best_value}
    model_uri = model_id = None
    if config.log_model:
        from recdash.serving import log_model

        example = str(split.test["user_id"].iloc[0])
        try:  # before the step-0 metrics: log_model links every metric its run has at step 0 to the logged model
            info = log_model(best_rec, registered_model_name=config.registered_model_name, input_example_user=example)
        except BaseException:
            log_final_metrics(run_id, metrics, None)  # the figures stay on the failed run
            raise
        model_uri = f"runs:/{run_id}/model"
        model_id = getattr(info, "model_id", None) or None
        mlflow.set_tag("recdash.model_id", model_id or "")
    log_final_metrics(run_id, metrics, model_id)
    return TrainResult(run_id, best_epoch, metrics, best_rec, model_uri, chosen)


def log_final_metrics(run_id: str, metrics: dict[str, float], model_id: str | None) -> None:
    """Log a run's final metrics (step 0), linking to its logged model ``model_id`` only the model's own test
    metrics (:data:`recdash.registry.MODEL_METRIC`); the baseline, segments, cold-start figures and training facts
    stay on the run alone. ``MlflowClient.log_batch``, not ``mlflow.log_metrics``: the fluent call links a metric
    logged at the step of a run's logged model to that model."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from recdash.registry import MODEL_METRIC

    now = int(time.time() * 1000)
    batch = [
        Metric(key, float(value), now, 0, model_id=model_id if MODEL_METRIC.match(key) else None, run_id=run_id)
        for key, value in metrics.items()
    ]
    MlflowClient().log_batch(run_id, metrics=batch)


NOT_VALIDATED = "not validated: no cold users in this split (train on the cold-users split to choose)"
BLEND_WEIGHTS = (0.25, 0.5, 0.75)


def _choose_cold_start(rec: Recommender, validation: HeldOut, config: TrainConfig) -> dict[str, float]:
    """Choose how ``rec`` serves users it never saw, on the validation cold users: the popular list, the features
    alone, or a blend of the two. A feature-based strategy must beat popularity on validation to be chosen, so a
    cold user is never served something worse than popularity was there. Logs the choice as params; returns each
    candidate's validation value as metrics (``cold_start_val_<strategy>_<monitor>``)."""
    import mlflow

    name = f"{config.early_stopping_metric}_at_{config.k}"
    candidates: list[tuple[str, float | None]] = [("popular", None)]
    if rec.user_encoding is not None and "features" in validation.strategies():
        candidates += [("features", None)] + [("blend", w) for w in BLEND_WEIGHTS]
    values = [validation.evaluate(rec, config.k, strategy=s, blend_weight=w)[name] for s, w in candidates]
    best = int(np.argmax(values))  # the first maximum: popular on a tie
    strategy, weight = candidates[best]
    rec.set_cold_start(strategy, weight, chosen_on=f"validation cold users, {name}", value=float(values[best]))
    params: dict[str, Any] = {"cold_start_strategy": strategy}
    if weight is not None:
        params["cold_start_blend_weight"] = weight
    mlflow.log_params(params)
    label = {("blend", w): f"blend_{w:g}" for w in BLEND_WEIGHTS}
    return {
        f"cold_start_val_{label.get((s, w), s)}_{name}": float(v) for (s, w), v in zip(candidates, values, strict=True)
    }


def _fit_by_epochs(
    config: TrainConfig, interactions: Interactions, validation: HeldOut, on_epoch: EpochCallback | None
) -> tuple[float, int, Recommender]:
    """Iterative models: one epoch at a time, validated and logged after each, early stopping on the monitor.
    On cold validation users a model with user features is validated on its features alone (what the epochs
    change); the cold-start strategy is chosen after training."""
    import mlflow

    model = config.model_class(config.params_, seed=config.seed)
    model.fit(interactions, epochs=0)  # sets the ID maps; the epochs follow
    strategy = (
        "features" if validation.cold and model.user_encoding is not None and validation.user_x is not None else None
    )
    best: tuple[float, int, Recommender] | None = None
    stale = 0
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.fit_epoch(interactions)
        fit_seconds = time.perf_counter() - t0
        val = _prefixed("val_", validation.evaluate(model, config.k, strategy=strategy))
        val["epoch_seconds"] = time.perf_counter() - t0
        val["epoch_fit_seconds"] = fit_seconds
        mlflow.log_metrics(val, step=epoch)
        value = val[config.monitor]
        if best is None or value > best[0]:
            best, stale = (value, epoch, model.snapshot()), 0
        else:
            stale += 1
        if on_epoch is not None:
            on_epoch(epoch, val)
        if config.patience and stale >= config.patience:
            mlflow.set_tag(
                TAG_END_REASON,
                f"early stopping after epoch {epoch}: {config.monitor} did not improve for {config.patience} epochs",
            )
            break
    assert best is not None  # epochs >= 1 is validated
    return best


def _fit_closed_form(
    config: TrainConfig,
    interactions: Interactions,
    validation: HeldOut,
    candidates: list[Params],
    base_params: dict[str, Any],
    on_epoch: EpochCallback | None,
) -> tuple[float, Recommender]:
    """Closed-form models: fit each candidate on train, keep the best on validation, log it as the run's one
    validation step (and every candidate's value as ``search_<monitor>`` by candidate number)."""
    import mlflow

    best: tuple[float, Recommender, dict[str, float]] | None = None
    for number, params in enumerate(candidates, start=1):
        t0 = time.perf_counter()
        model = config.model_class(params, seed=config.seed).fit(interactions)
        fit_seconds = time.perf_counter() - t0
        val = _prefixed("val_", validation.evaluate(model, config.k))
        val["epoch_seconds"] = time.perf_counter() - t0
        val["epoch_fit_seconds"] = fit_seconds
        if len(candidates) > 1:
            mlflow.log_metric(f"search_{config.monitor}", val[config.monitor], step=number)
        if best is None or val[config.monitor] > best[0]:
            best = (val[config.monitor], model, val)
    assert best is not None
    value, model, val = best
    params = {**base_params, **model.params.as_dict()}
    if len(candidates) > 1:
        params["search_space"] = json.dumps([c.as_dict() for c in candidates])
        params["selected_on"] = config.monitor
    mlflow.log_params(params)
    mlflow.log_metrics(val, step=1)
    if on_epoch is not None:
        on_epoch(1, val)
    return value, model


def config_dict(config: TrainConfig) -> dict[str, Any]:
    """A JSON-friendly view of a config (jobs and the Train page pass configs around as dicts)."""
    out = asdict(config)
    out["hparams"] = config.params_.as_dict()
    return out
