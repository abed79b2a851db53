"""Reference runs: popularity, EASE and ItemKNN fitted on the same data and split as the runs they are compared with.

A team asks "is the factorization machine worth it against a simple model on the same data?". This answers it with
ordinary training runs (:func:`recdash.train.train`), each fitted on train only with its regularisation chosen on
validation from a small grid, tagged ``recdash.reference=true`` and nested under one parent run of kind
``references``. They log the same dataset digest and split params as every other run on that data, so
:func:`recdash.comparison.data_groups` puts them in the same group.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from recdash.datasets import Dataset, Split
from recdash.flags import identity_tags
from recdash.models import REFERENCE_MODELS, Params, get_model
from recdash.train import (
    TAG_HOST,
    TAG_KIND,
    TAG_PID,
    TAG_REFERENCE,
    ConfigError,
    TrainConfig,
    TrainResult,
    experiment_id_for,
    load_data,
    run_outcome,
    train,
)

KIND = "references"
# Candidates tried on validation (each fitted on train only); the EASE grid, a small ItemKNN grid.
GRIDS: dict[str, list[dict[str, Any]]] = {
    "popularity": [{}],
    "ease": [{"l2": v} for v in (50.0, 100.0, 200.0, 300.0, 500.0, 800.0, 1200.0)],
    "itemknn": [{"neighbours": n, "shrink": s} for n in (20, 50, 100, 200) for s in (0.0, 10.0, 100.0)],
}


def candidates(model: str) -> list[Params]:
    """The validated hyperparameter grid of reference model ``model``."""
    cls = get_model(model)
    return [cls.Params.from_mapping(values) for values in GRIDS.get(cls.name, [{}])]


@dataclass
class ReferencesResult:
    parent_run_id: str
    runs: dict[str, TrainResult] = field(default_factory=dict)  # model name -> its reference run


def train_references(
    config: TrainConfig,
    data: tuple[Dataset, Split] | None = None,
    *,
    models: Sequence[str] = REFERENCE_MODELS,
    on_model: Callable[[str, TrainResult], None] | None = None,
) -> ReferencesResult:
    """Fit every reference model on ``config``'s data and split; one parent run, one nested run per model.

    ``config`` gives the data, split, k, monitored metric, experiment and tracking options; its model and
    hyperparameters are ignored. The parent ends FINISHED, or FAILED/KILLED with the reason, like any run.
    """
    import mlflow

    from recdash.tracking import TrackingError, check_writable

    try:
        check_writable(mlflow.get_tracking_uri(), "training")
    except TrackingError as exc:
        raise ConfigError(str(exc)) from None
    names = [get_model(m).name for m in models]
    data = data if data is not None else load_data(config)
    experiment_id = None if os.environ.get("MLFLOW_RUN_ID") else experiment_id_for(config.experiment)
    tags = {
        "recdash.created_by": "recdash",
        TAG_KIND: KIND,
        TAG_PID: str(os.getpid()),
        TAG_HOST: socket.gethostname(),
        **identity_tags(),
        "recdash.epochs_total": str(len(names)),
        **config.tags,
    }
    parent = mlflow.start_run(experiment_id=experiment_id, run_name=config.run_name or "references", tags=tags)
    result = ReferencesResult(parent.info.run_id)
    with run_outcome(lambda: f"{len(result.runs)} reference runs"):
        mlflow.log_params(
            {
                "dataset": config.dataset,
                "reference_models": ",".join(names),
                "k": config.k,
                "early_stopping_metric": config.monitor,
            }
        )
        for name in names:
            child = replace(
                config,
                model=name,
                hparams=None,
                run_name=f"reference-{name}",
                tags={**config.tags, TAG_REFERENCE: "true"},
                registered_model_name=None,
            )
            run = train(child, data, nested=True, parent_run_id=result.parent_run_id, candidates=candidates(name))
            result.runs[name] = run
            mlflow.set_tag(f"recdash.reference_run.{name}", run.run_id)
            if on_model is not None:
                on_model(name, run)
    return result
