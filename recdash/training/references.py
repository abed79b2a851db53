"""Reference runs: popularity, EASE and ItemKNN fitted on the same data and split as the runs they are compared with.

A team asks "is the factorization machine worth it against a simple model on the same data?". This answers it with
ordinary training runs (:func:`recdash.training.run.train`), each fitted on train only with its regularisation chosen on
validation from a small grid, tagged ``recdash.reference=true`` and nested under one parent run of kind
``references``. They log the same dataset digest and split params as every other run on that data, so
:func:`recdash.comparison.data_groups` puts them in the same group.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import mlflow

from recdash import contract
from recdash.config import ConfigError, TrainConfig, add_data_flags, add_run_flags, parse_flags
from recdash.data import Dataset, Split
from recdash.models import DEFAULT_MODEL, UnknownModelError, get_model, reference_candidates, reference_models
from recdash.training.run import (
    TrainResult,
    experiment_id_for,
    load_data,
    prepare,
    require_writable,
    run_outcome,
    run_tags,
    train,
)


@dataclass(frozen=True)
class ReferencesSpec:
    """A references job: the data, split, k and tracking options of ``config`` (its model and hyperparameters are
    not used) and the reference models to fit (empty: every model with a reference grid)."""

    config: TrainConfig
    models: tuple[str, ...] = ()

    kind = contract.KIND_REFERENCES
    slots = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(get_model(m).name for m in self.models))  # refuses unknown names

    @property
    def model_names(self) -> tuple[str, ...]:
        return self.models or reference_models()

    def to_argv(self) -> list[str]:
        """The flags of ``python -m recdash references`` that give this spec back (:meth:`from_argv`)."""
        return [*self.config.to_argv(model_flags=False), "--models", ",".join(self.model_names)]

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> ReferencesSpec:
        return cls.from_args(parse_flags("references", add_references_flags, argv))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ReferencesSpec:
        args.model = DEFAULT_MODEL  # the data and run flags only; each reference model brings its own grid
        models = tuple(m.strip() for m in str(args.models or "").split(",") if m.strip())
        try:
            return cls(TrainConfig.from_args(args), models)
        except UnknownModelError as exc:
            raise ConfigError(str(exc)) from None


def add_references_flags(parser: argparse.ArgumentParser) -> None:
    """The ``references`` subcommand's flags: the data and run flags, and which reference models to fit."""
    add_data_flags(parser)
    add_run_flags(parser)
    parser.add_argument(
        "--models",
        default=",".join(reference_models()),
        help=f"Comma-separated reference models to fit (default {','.join(reference_models())}).",
    )


def prepare_references(config: TrainConfig, data: tuple[Dataset, Split], models: Sequence[str]) -> None:
    """Every reference run's checks before training (:func:`recdash.training.run.prepare`, with its candidates)."""
    for name in models:
        prepare(replace(config, model=name, hparams=None), data, reference_candidates(name))


@dataclass
class ReferencesResult:
    parent_run_id: str
    runs: dict[str, TrainResult] = field(default_factory=dict)  # model name -> its reference run


def train_references(
    config: TrainConfig,
    data: tuple[Dataset, Split] | None = None,
    *,
    models: Sequence[str] | None = None,
    on_model: Callable[[str, TrainResult], None] | None = None,
) -> ReferencesResult:
    """Fit every reference model on ``config``'s data and split; one parent run, one nested run per model.

    ``config`` gives the data, split, k, monitored metric, experiment and tracking options; its model and
    hyperparameters are ignored; ``models`` default to every model with a reference grid. The parent ends FINISHED,
    or FAILED/KILLED with the reason, like any run.
    """
    require_writable()
    names = [get_model(m).name for m in (models or reference_models())]
    data = data if data is not None else load_data(config)
    prepare_references(config, data, names)  # as train() refuses before its run: nothing before the parent exists
    experiment_id = None if os.environ.get("MLFLOW_RUN_ID") else experiment_id_for(config.experiment)
    tags = run_tags(contract.KIND_REFERENCES, len(names), config.tags)
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
                tags={**config.tags, contract.TAG_REFERENCE: "true"},
                registered_model_name=None,
            )
            run = train(
                child, data, nested=True, parent_run_id=result.parent_run_id, candidates=reference_candidates(name)
            )
            result.runs[name] = run
            mlflow.set_tag(f"{contract.TAG_REFERENCE_RUN_PREFIX}{name}", run.run_id)
            if on_model is not None:
                on_model(name, run)
    return result
