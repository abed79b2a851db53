"""One training = one MLflow run, for any algorithm of :mod:`recdash.models`: data lineage, params (with
``model``), validation metrics (per epoch with early stopping for iterative models, one step for closed-form ones,
after choosing among candidate hyperparameters on validation when given), test metrics with segments and
beyond-accuracy metrics next to a popularity baseline, and the servable model.

The run never stays RUNNING: an exception ends it FAILED and Ctrl-C/SIGTERM ends it KILLED, with the reason
in the ``recdash.error`` tag (:func:`run_outcome`, shared by sweeps and references).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import IntegrityError

from recdash import __version__, contract, settings, tracking
from recdash.config import ConfigError, TrainConfig
from recdash.data import Dataset, Split, lineage, load_dataset, split_dataset
from recdash.data import profile as data_profile
from recdash.data.features import FeatureError, FeatureTable, feature_dataset, load_features
from recdash.evaluation import per_user
from recdash.evaluation.heldout import HeldOut
from recdash.models import Interactions, Params, Popularity, Recommender, gram
from recdash.process import identity_tags
from recdash.serving import log_model
from recdash.training import stages

EpochCallback = Callable[[int, dict[str, float]], None]


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
    try:
        yield
    except StopRun as stop:
        mlflow.set_tag(contract.TAG_END_REASON, stop.reason)
        mlflow.end_run(stop.status)
        raise
    except KeyboardInterrupt:
        mlflow.set_tag(contract.TAG_ERROR, "interrupted (Ctrl-C or cancel)")
        mlflow.end_run("KILLED")
        raise
    except BaseException as exc:
        mlflow.set_tag(contract.TAG_ERROR, f"{type(exc).__name__}: {exc}"[:5000])
        mlflow.end_run("FAILED")
        raise
    if reason is not None:
        mlflow.set_tag(contract.TAG_END_REASON, reason())
    mlflow.end_run("FINISHED")


@dataclass
class TrainResult:
    run_id: str
    best_epoch: int
    metrics: dict[str, float]
    recommender: Recommender
    model_uri: str | None
    params: Params | None = None  # the hyperparameters the model was fitted with (chosen on validation, if searched)


def load_config_dataset(config: TrainConfig) -> Dataset:
    """The dataset a config trains on, loaded as the job will load it (the Train page checks a feature table's IDs
    against it)."""
    return load_dataset(config.dataset, path=config.data_path, min_rating=config.min_rating, **config.dataset_options)


def load_data(config: TrainConfig) -> tuple[Dataset, Split]:
    """The dataset and split a config asks for (sweeps call this once and share it across trials), each stage said
    with its counts (:mod:`recdash.training.stages`)."""
    t0 = time.perf_counter()
    stages.report(f"reading {_data_label(config)}")
    dataset = load_config_dataset(config)
    stages.report(
        f"coded {dataset.n_interactions:,} interactions: {dataset.n_users:,} users, {dataset.n_items:,} items "
        f"({time.perf_counter() - t0:.1f}s)"
    )
    t0 = time.perf_counter()
    fractions = "/".join(f"{f:g}" for f in config.split_fractions)
    stages.report(f"splitting {dataset.n_interactions:,} interactions ({config.split} {fractions})")
    split = split_dataset(dataset, config.split, config.split_fractions, config.split_seed)
    stages.report(
        f"split: {len(split.train):,} train, {len(split.validation):,} validation, {len(split.test):,} test "
        f"interactions ({time.perf_counter() - t0:.1f}s)"
    )
    return dataset, split


def _data_label(config: TrainConfig) -> str:
    """What load_data reads, as the stage names it."""
    if config.dataset == "synthetic":
        o = config.dataset_options
        return (
            f"synthetic data: generating {o.get('n_interactions', 0):,} interactions "
            f"({o.get('n_users', 0):,} users x {o.get('n_items', 0):,} items)"
        )
    return config.data_path or config.dataset


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


def require_writable() -> None:
    """Refuse to train into a store recdash only reads (a legacy file store), before any data is loaded."""
    try:
        tracking.check_writable(mlflow.get_tracking_uri(), "training")
    except tracking.TrackingError as exc:
        raise ConfigError(str(exc)) from None


def run_tags(kind: str, epochs_total: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The tags every run a recdash process starts carries (a training, a sweep's parent and trials, the references'
    parent and runs): who made it, its owner (``RECDASH_USER``, default the user running it: MLflow takes the
    run's user from ``mlflow.user``, and a dashboard job's process runs with the dashboard's environment), and
    which process owns it (so a later process reusing its PID is never taken for it)."""
    return {
        contract.TAG_CREATED_BY: "recdash",
        contract.MLFLOW_USER: settings.USER.get(),
        contract.TAG_VERSION: __version__,
        contract.TAG_KIND: kind,
        contract.TAG_PID: str(os.getpid()),
        contract.TAG_HOST: socket.gethostname(),
        **identity_tags(),
        contract.TAG_EPOCHS_TOTAL: str(epochs_total),
        **(extra or {}),
    }


def experiment_id_for(name: str) -> str:
    """The id of experiment ``name``, created if missing (safe when several processes race to create it) with
    :data:`recdash.contract.NEW_EXPERIMENT_TAGS`; an existing experiment is left as it is."""
    client = tracking.client()
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise ConfigError(f"experiment {name!r} is deleted; restore it in MLflow or choose another --experiment")
        return found.experiment_id
    try:
        return client.create_experiment(name, tags=contract.NEW_EXPERIMENT_TAGS)
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
    require_writable()
    ready = prepare(config, data, candidates)  # everything refused about the data is refused before any run exists
    dataset, split, interactions, candidates = ready.dataset, ready.split, ready.interactions, ready.candidates
    # Under `mlflow run` (MLFLOW_RUN_ID set) the project's run and experiment are used. Otherwise the experiment is
    # passed explicitly: mlflow.set_experiment would change process-wide state (and MLFLOW_EXPERIMENT_ID) under the
    # feet of a dashboard or a sweep running other code in the same process.
    # A nested run (a sweep trial) lives in its parent's experiment.
    if os.environ.get("MLFLOW_RUN_ID"):
        experiment_id = None
    elif parent_run_id:
        experiment_id = tracking.client().get_run(parent_run_id).info.experiment_id
    else:
        experiment_id = experiment_id_for(config.experiment)
    tags = run_tags(contract.KIND_TRAIN, config.epochs_total, {contract.TAG_MODEL: config.model, **config.tags})
    run = mlflow.start_run(
        experiment_id=experiment_id, run_name=config.run_name, nested=nested, parent_run_id=parent_run_id, tags=tags
    )
    with run_outcome():
        result = _train_in_run(config, dataset, split, interactions, candidates, on_epoch, run.info.run_id)
    return result


@dataclass
class Prepared:
    """What a training needs once every check before its run has passed (:func:`prepare`)."""

    dataset: Dataset
    split: Split
    interactions: Interactions  # the training part, with its side features
    candidates: list[Params]


def prepare(
    config: TrainConfig,
    data: tuple[Dataset, Split] | None = None,
    candidates: list[Params] | None = None,
    *,
    model_check: bool = True,
) -> Prepared:
    """Every check :func:`train` makes before its run exists, in its order: load the data, split it, a non-empty
    train, validation and test part, the side-feature tables, and the model's own check of the training
    interactions (each candidate's; ``model_check=False`` leaves that to each run, for a sweep whose trials change
    the hyperparameters). The one place these checks live: train() calls it, and so does the Train page before it
    queues a job, so what a job would refuse about its data is refused before it is queued. Raises a UserError."""
    dataset, split = data if data is not None else load_data(config)
    check_split(dataset, split)
    user_table, item_table = load_side_features(config, dataset)
    interactions = Interactions.from_frame(split.train, user_table, item_table)
    model_class = config.model_class
    candidates = list(candidates or [config.params_])
    if model_class.iterative and len(candidates) > 1:
        raise ConfigError(f"{model_class.name} trains by epochs; sweep its hyperparameters instead of candidates")
    for params in candidates:
        if not isinstance(params, model_class.Params):
            raise ConfigError(f"candidate {params!r} is not a {model_class.name} hyperparameter set")
        if model_check:
            model_class.check(params, interactions)
    return Prepared(dataset, split, interactions, candidates)


def check_split(dataset: Dataset, split: Split) -> None:
    """Refuse a split with an empty part (too little data for the fractions), saying how it came out."""
    sizes = (len(split.train), len(split.validation), len(split.test))
    if min(sizes) > 0:
        return
    raise ConfigError(
        f"{dataset.name} is too small for a {split.method} split: its {dataset.n_interactions:,} interactions "
        f"({dataset.n_users:,} users, {dataset.n_items:,} items) left {sizes[0]:,} for training, {sizes[1]:,} for "
        f"validation and {sizes[2]:,} for test, and each part needs at least one. Use more data (with the random "
        "split, users with several interactions each) or other split fractions."
    )


def _log_input(dataset: Any, context: str = "training", attempts: int = 3) -> None:
    """``mlflow.log_input`` for the training data, tried again when another run logged the same dataset at the
    same moment: MLflow's SQL store looks the dataset up and then inserts it, so two jobs starting on the same data
    can both insert and one hits the UNIQUE constraint (its transaction is rolled back). On the next try the row is
    there and only the link to this run is written."""

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
    mlflow_dataset, lineage_info = lineage(dataset)
    _log_input(mlflow_dataset)
    data_profile.log(data_profile.profile(dataset.interactions, dataset.items))  # Discover reads it, not the data
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
        mlflow.set_tag(contract.TAG_FEATURE_NOTES, "\n".join(notes)[:5000])
    base_params = {**config.params(), **split.params(), **lineage_info, "dataset": config.dataset, **feature_params}
    baseline = Popularity().fit(interactions)  # the floor, and the ID maps every model fitted here shares
    cold = split.method == "cold-users"
    user_table = interactions.user_features if config.model_class.uses_features else None
    if cold:
        validation = HeldOut.build_cold(baseline, split.validation, user_table)
    else:
        validation = HeldOut.build(baseline, split.validation, [], exclude_seen=True)  # seen: split.train
    # every validation of the run (each epoch, each candidate) on one fixed, seeded sample of the validation users
    available = validation.n_users
    validation = validation.sample(config.validation_users, config.split_seed)
    base_params |= {"validation_users": validation.n_users, "validation_users_seed": config.split_seed}
    if validation.n_users < available:
        stages.report(
            f"validating on {validation.n_users:,} of {available:,} validation users (seed {config.split_seed})"
        )
    started = time.perf_counter()
    if config.model_class.iterative:
        mlflow.log_params(base_params)
        best_val, best_epoch, best_rec = _fit_by_epochs(config, interactions, validation, on_epoch)
        chosen = config.params_
    else:
        best_val, best_rec = _fit_closed_form(config, interactions, validation, candidates, base_params, on_epoch)
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
        test = HeldOut.build(best_rec, split.test, [split.validation], dataset.items, exclude_seen=True)
    progress = partial(stages.report_count, "evaluating test users")
    test_metrics, test_users = test.evaluate_users(best_rec, config.k, segments=True, on_block=progress)
    metrics |= _prefixed("test_", test_metrics)
    progress = partial(stages.report_count, "evaluating the popularity baseline on test users")
    metrics |= _prefixed("baseline_test_", test.evaluate(baseline, config.k, segments=True, on_block=progress))
    # every validation metric at the kept epoch (val_* steps run on past it until early stopping): best_val_*
    kept = {name: value for name, value in best_val.items() if contract.MetricName.parse(name) is not None}
    metrics |= {"best_epoch": float(best_epoch), "train_seconds": train_seconds, **_prefixed("best_", kept)}
    model_uri = model_id = None
    if config.log_model:
        example = str(split.test["user_id"].iloc[0])
        stages.report("logging the model")
        try:  # before the step-0 metrics: log_model links every metric its run has at step 0 to the logged model
            info = log_model(best_rec, registered_model_name=config.registered_model_name, input_example_user=example)
        except BaseException:
            log_final_metrics(run_id, metrics, None)  # the figures stay on the failed run
            raise
        model_uri = f"runs:/{run_id}/model"
        model_id = getattr(info, "model_id", None) or None
        mlflow.set_tag(contract.TAG_MODEL_ID, model_id or "")
    log_final_metrics(run_id, metrics, model_id)
    per_user.log(test_users, run_id)  # what paired comparisons of runs on this data read (the means are metrics)
    return TrainResult(run_id, best_epoch, metrics, best_rec, model_uri, chosen)


def log_final_metrics(run_id: str, metrics: dict[str, float], model_id: str | None) -> None:
    """Log a run's final metrics (step 0), linking to its logged model ``model_id`` only the model's own test
    metrics (:func:`recdash.contract.is_own_test_metric`); the baseline, segments, cold-start figures and training
    facts stay on the run alone. ``MlflowClient.log_batch``, not ``mlflow.log_metrics``: the fluent call links a
    metric logged at the step of a run's logged model to that model."""
    now = int(time.time() * 1000)
    batch = [
        Metric(key, float(v), now, 0, model_id=model_id if contract.is_own_test_metric(key) else None, run_id=run_id)
        for key, v in metrics.items()
    ]
    tracking.client().log_batch(run_id, metrics=batch)


NOT_VALIDATED = "not validated: no cold users in this split (train on the cold-users split to choose)"


BLEND_WEIGHTS = (0.25, 0.5, 0.75)


def _choose_cold_start(rec: Recommender, validation: HeldOut, config: TrainConfig) -> dict[str, float]:
    """Choose how ``rec`` serves users it never saw, on the validation cold users: the popular list, the features
    alone, or a blend of the two. A feature-based strategy must beat popularity on validation to be chosen, so a
    cold user is never served something worse than popularity was there. Logs the choice as params; returns each
    candidate's validation value as metrics (``cold_start_val_<strategy>_<monitor>``)."""
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
) -> tuple[dict[str, float], int, Recommender]:
    """Iterative models: one epoch at a time, validated and logged after each, early stopping on the monitor.
    On cold validation users a model with user features is validated on its features alone (what the epochs
    change); the cold-start strategy is chosen after training."""
    model = config.model_class(config.params_, seed=config.seed)
    model.fit(interactions, epochs=0)  # sets the ID maps; the epochs follow
    strategy = (
        "features" if validation.cold and model.user_encoding is not None and validation.user_x is not None else None
    )
    best: tuple[float, int, Recommender, dict[str, float]] | None = None
    stale = 0
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        stages.report(f"epoch {epoch}/{config.epochs}: training")
        model.fit_epoch(interactions)
        fit_seconds = time.perf_counter() - t0
        stages.report(f"epoch {epoch}/{config.epochs}: validating on {validation.n_users:,} users")
        val = _prefixed("val_", validation.evaluate(model, config.k, strategy=strategy))
        val["epoch_seconds"] = time.perf_counter() - t0
        val["epoch_fit_seconds"] = fit_seconds
        mlflow.log_metrics(val, step=epoch)
        value = val[config.monitor]
        if best is None or value > best[0]:
            best, stale = (value, epoch, model.snapshot(), val), 0
        else:
            stale += 1
        if on_epoch is not None:
            on_epoch(epoch, val)
        if config.patience and stale >= config.patience:
            mlflow.set_tag(
                contract.TAG_END_REASON,
                f"early stopping after epoch {epoch}: {config.monitor} did not improve for {config.patience} epochs",
            )
            break
    assert best is not None  # epochs >= 1 is validated
    return best[3], best[1], best[2]


def _fit_closed_form(
    config: TrainConfig,
    interactions: Interactions,
    validation: HeldOut,
    candidates: list[Params],
    base_params: dict[str, Any],
    on_epoch: EpochCallback | None,
) -> tuple[dict[str, float], Recommender]:
    """Closed-form models: fit each candidate on train, keep the best on validation, log it as the run's one
    validation step (and every candidate's value as ``search_<monitor>`` by candidate number); returns the kept
    candidate's validation metrics and model."""
    # the candidates share what they are all built from (the item-item Gram matrix of EASE and ItemKNN): built once
    with gram.shared(interactions) if len(candidates) > 1 else contextlib.nullcontext():
        _, model, val = _best_candidate(config, interactions, validation, candidates)
    params = {**base_params, **model.params.as_dict()}
    if len(candidates) > 1:
        params["search_space"] = json.dumps([c.as_dict() for c in candidates])
        params["selected_on"] = config.monitor
    mlflow.log_params(params)
    mlflow.log_metrics(val, step=1)
    if on_epoch is not None:
        on_epoch(1, val)
    return val, model


def _best_candidate(
    config: TrainConfig, interactions: Interactions, validation: HeldOut, candidates: list[Params]
) -> tuple[float, Recommender, dict[str, float]]:
    """Fit each candidate on train and validate it: the best by the monitored metric (value, model, metrics)."""
    best: tuple[float, Recommender, dict[str, float]] | None = None
    for number, params in enumerate(candidates, start=1):
        t0 = time.perf_counter()
        of = f" (candidate {number}/{len(candidates)})" if len(candidates) > 1 else ""
        stages.report(f"fitting {config.model}{of}")
        model = config.model_class(params, seed=config.seed).fit(interactions)
        fit_seconds = time.perf_counter() - t0
        stages.report(f"validating {config.model}{of} on {validation.n_users:,} users")
        val = _prefixed("val_", validation.evaluate(model, config.k))
        val["epoch_seconds"] = time.perf_counter() - t0
        val["epoch_fit_seconds"] = fit_seconds
        if len(candidates) > 1:
            mlflow.log_metric(f"search_{config.monitor}", val[config.monitor], step=number)
        if best is None or val[config.monitor] > best[0]:
            best = (val[config.monitor], model, val)
    assert best is not None
    return best
