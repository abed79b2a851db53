"""One training = one MLflow run: data lineage, params, per-epoch validation metrics, early stopping, final
test metrics next to a popularity baseline, and the servable model.

The run never stays RUNNING: an exception ends it FAILED and Ctrl-C/SIGTERM ends it KILLED, with the reason
in the ``recdash.error`` tag.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recdash import __version__
from recdash.datasets import Dataset, Split, lineage, load_dataset, split_dataset
from recdash.flags import identity_tags
from recdash.metrics import METRICS, evaluate, interaction_matrix
from recdash.model import (
    Hyperparams,
    RankFMTrainer,
    Recommender,
    check_training_data,
    log_model,
    popularity_recommender,
)
from recdash.tracking import TrackingError, check_writable

DEFAULT_EXPERIMENT = "recdash"
TAG_CREATED_BY = "recdash.created_by"
TAG_KIND = "recdash.kind"
TAG_ERROR = "recdash.error"
TAG_END_REASON = "recdash.end_reason"
TAG_PID = "recdash.pid"
TAG_HOST = "recdash.host"

EpochCallback = Callable[[int, dict[str, float]], None]


class ConfigError(ValueError):
    """A training option that cannot work; the message names the CLI flag."""


class StopRun(Exception):
    """Raised by an epoch callback to end the run early with an MLflow status (e.g. a pruned sweep trial)."""

    def __init__(self, status: str = "KILLED", reason: str = "stopped") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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
    hparams: Hyperparams = field(default_factory=Hyperparams)
    experiment: str = DEFAULT_EXPERIMENT
    run_name: str | None = None
    log_model: bool = True
    registered_model_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [
            (isinstance(self.epochs, int) and 1 <= self.epochs <= 10_000, "--epochs must be between 1 and 10000"),
            (isinstance(self.k, int) and 1 <= self.k <= 1000, "--k must be between 1 and 1000"),
            (isinstance(self.patience, int) and self.patience >= 0, "--patience must be 0 (off) or a positive integer"),
            (self.early_stopping_metric in METRICS, f"--early-stopping-metric must be one of {', '.join(METRICS)}"),
            (self.split in ("random", "temporal"), "--split must be random or temporal"),
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

    @property
    def monitor(self) -> str:
        """Name of the validation metric early stopping (and sweeps) watch."""
        return f"val_{self.early_stopping_metric}_at_{self.k}"

    def params(self) -> dict[str, Any]:
        """Run params besides the dataset lineage ones."""
        return {
            **self.hparams.as_dict(),
            "epochs": self.epochs,
            "k": self.k,
            "seed": self.seed,
            "early_stopping_metric": self.monitor,
            "patience": self.patience,
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


def load_data(config: TrainConfig) -> tuple[Dataset, Split]:
    """The dataset and split a config asks for (sweeps call this once and share it across trials)."""
    dataset = load_dataset(
        config.dataset, path=config.data_path, min_rating=config.min_rating, **config.dataset_options
    )
    return dataset, split_dataset(dataset, config.split, config.split_fractions, config.split_seed)


@dataclass(frozen=True)
class HeldOut:
    """A held-out set mapped onto a model's ID maps once, then evaluated every epoch.

    Held-out items the model never saw stay in the catalogue (scored -inf), so recall's denominator counts them
    as RecBole does; held-out users the model never saw are skipped.
    """

    truth: Any  # csr users x catalogue
    exclude: Any  # csr users x catalogue, or None
    popularity: np.ndarray
    n_extra_items: int

    @classmethod
    def build(cls, rec: Recommender, truth: pd.DataFrame, exclude: list[pd.DataFrame]) -> HeldOut:
        truth_items = truth["item_id"]
        extra = pd.Index(truth_items[rec.item_index(truth_items) < 0].astype(str).unique())
        catalogue = pd.Index(rec.item_ids).append(extra)

        def matrix(frame: pd.DataFrame) -> Any:
            u = rec.user_index(frame["user_id"])
            i = catalogue.get_indexer(pd.Index(frame["item_id"], dtype=object).astype(str))
            keep = (u >= 0) & (i >= 0)
            return interaction_matrix(u[keep], i[keep], rec.n_users, len(catalogue))

        masks = [matrix(f) for f in exclude]
        popularity = np.concatenate([rec.item_popularity, np.zeros(len(extra), dtype=np.int64)])
        return cls(matrix(truth), sum(masks[1:], masks[0]) if masks else None, popularity, len(extra))

    def evaluate(self, rec: Recommender, k: int) -> dict[str, float]:
        """Full-ranking metrics of ``rec`` (same ID maps as the one this was built with)."""

        def score(users: np.ndarray) -> np.ndarray:
            s = rec.scores(users)
            if self.n_extra_items:
                s = np.hstack([s, np.full((len(users), self.n_extra_items), -np.inf, dtype=s.dtype)])
            return s

        return evaluate(score, self.truth, self.exclude, k=k, item_popularity=self.popularity)


def evaluate_recommender(
    rec: Recommender, truth: pd.DataFrame, exclude: list[pd.DataFrame], k: int
) -> dict[str, float]:
    """Full-ranking metrics of ``rec`` against ``truth`` interactions, masking ``exclude`` interactions."""
    return HeldOut.build(rec, truth, exclude).evaluate(rec, k)


def experiment_id_for(name: str) -> str:
    """The id of experiment ``name``, created if missing (safe when several processes race to create it)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise ConfigError(f"experiment {name!r} is deleted; restore it in MLflow or choose another --experiment")
        return found.experiment_id
    try:
        return client.create_experiment(name)
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
) -> TrainResult:
    """Train, evaluate and log one model as one MLflow run; returns the run id and best-epoch metrics.

    ``on_epoch(epoch, val_metrics)`` runs after each epoch is logged; it may raise :class:`StopRun`.
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
    check_training_data(config.hparams, split.train)  # refused before any run exists
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
        TAG_PID: str(os.getpid()),
        TAG_HOST: socket.gethostname(),
        **identity_tags(),  # so a later process reusing this PID is never taken for this run's
        "recdash.epochs_total": str(config.epochs),
        **config.tags,
    }
    run = mlflow.start_run(
        experiment_id=experiment_id, run_name=config.run_name, nested=nested, parent_run_id=parent_run_id, tags=tags
    )
    try:
        result = _train_in_run(config, dataset, split, on_epoch, run.info.run_id)
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
    mlflow.end_run("FINISHED")
    return result


def _train_in_run(
    config: TrainConfig, dataset: Dataset, split: Split, on_epoch: EpochCallback | None, run_id: str
) -> TrainResult:
    import mlflow

    mlflow_dataset, lineage_info = lineage(dataset)
    mlflow.log_input(mlflow_dataset, context="training")
    mlflow.log_params({**config.params(), **split.params(), **lineage_info, "dataset": config.dataset})

    started = time.perf_counter()
    trainer = RankFMTrainer(config.hparams, seed=config.seed)
    best: tuple[float, int, Recommender] | None = None
    validation: HeldOut | None = None
    stale = 0
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        trainer.fit_epoch(split.train)
        fit_seconds = time.perf_counter() - t0
        rec = trainer.export(split.train)
        validation = validation or HeldOut.build(rec, split.validation, [split.train])
        val = _prefixed("val_", validation.evaluate(rec, config.k))
        val["epoch_seconds"] = time.perf_counter() - t0
        val["epoch_fit_seconds"] = fit_seconds
        mlflow.log_metrics(val, step=epoch)
        value = val[config.monitor]
        if best is None or value > best[0]:
            best, stale = (value, epoch, rec.copy()), 0
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
    train_seconds = time.perf_counter() - started
    assert best is not None  # epochs >= 1 is validated
    _, best_epoch, best_rec = best

    held_out = [split.train, split.validation]
    metrics = _prefixed("test_", evaluate_recommender(best_rec, split.test, held_out, config.k))
    baseline = popularity_recommender(split.train)
    metrics |= _prefixed("baseline_test_", evaluate_recommender(baseline, split.test, held_out, config.k))
    metrics |= {"best_epoch": float(best_epoch), "train_seconds": train_seconds, f"best_{config.monitor}": best[0]}
    mlflow.log_metrics(metrics)
    model_uri = None
    if config.log_model:
        example = str(split.test["user_id"].iloc[0])
        info = log_model(best_rec, registered_model_name=config.registered_model_name, input_example_user=example)
        model_uri = f"runs:/{run_id}/model"
        mlflow.set_tag("recdash.model_id", getattr(info, "model_id", "") or "")
    return TrainResult(run_id, best_epoch, metrics, best_rec, model_uri)


def config_dict(config: TrainConfig) -> dict[str, Any]:
    """A JSON-friendly view of a config (jobs and the Train page pass configs around as dicts)."""
    out = asdict(config)
    out["hparams"] = config.hparams.as_dict()
    return out
