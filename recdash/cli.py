"""Command line: ``python -m recdash train|references|sweep|fetch-data``.

Each subcommand's flags are defined next to the object they describe (:mod:`recdash.config` for a training,
:mod:`recdash.training.sweep` and :mod:`recdash.training.references` for the others) and parsed back into that
object, so the command line a dashboard job runs is exactly what the Train page built. Bad values are refused
before any MLflow run exists, with a message naming the flag and exit code 2; a failing or interrupted run exits
non-zero after it is ended FAILED or KILLED.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence

from mlflow.exceptions import MlflowException

from recdash.config import TrainConfig, add_train_flags
from recdash.data import load_dataset
from recdash.errors import UserError
from recdash.process import check_stop, identity_tags, request_stop
from recdash.training import jobs
from recdash.training.references import ReferencesSpec, add_references_flags, train_references
from recdash.training.run import TrainResult, train
from recdash.training.sweep import run_sweep, run_worker
from recdash.training.sweep_spec import SweepSpec, add_sweep_flags

Handler = Callable[[argparse.Namespace], int]


def _cmd_train(args: argparse.Namespace) -> int:
    config = TrainConfig.from_args(args)
    # this process's identity on its run, so a later process that gets its PID is never taken for it
    config = config.replace(tags={**identity_tags(), **config.tags})

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        print(
            f"epoch {epoch}/{config.epochs_total}  {config.monitor}={metrics[config.monitor]:.4f}  "
            f"({metrics['epoch_seconds']:.2f}s)",
            flush=True,
        )
        check_stop()

    result = train(config, on_epoch=on_epoch)
    print(json.dumps(_summary(result, config.model)))
    return 0


def _summary(result: TrainResult, model: str) -> dict[str, object]:
    """The one-line JSON a finished run prints: ids, chosen hyperparameters and its test metrics."""
    cold = result.recommender.user_encoding is not None or any(k.startswith("features_test_") for k in result.metrics)
    return {
        "run_id": result.run_id,
        "model": model,
        "best_epoch": result.best_epoch,
        "model_uri": result.model_uri,
        **({"params": result.params.as_dict()} if result.params is not None else {}),
        **({"cold_start": result.recommender.cold_start} if cold else {}),
        **{
            k: round(v, 4)
            for k, v in result.metrics.items()
            if k.startswith(("test_", "baseline_test_", "features_test_", "cold_start_val_"))
        },
    }


def _cmd_references(args: argparse.Namespace) -> int:
    spec = ReferencesSpec.from_args(args)
    config = spec.config.replace(tags={**identity_tags(), **spec.config.tags})

    def on_model(name: str, result: TrainResult) -> None:
        print(json.dumps(_summary(result, name)), flush=True)
        check_stop()

    result = train_references(config, models=spec.model_names, on_model=on_model)
    print(json.dumps({"parent_run_id": result.parent_run_id, **{m: r.run_id for m, r in result.runs.items()}}))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    if args.worker:
        done = run_worker(args.storage, args.study_name, args.worker_index, wait=args.wait)
        print(json.dumps({"study_name": args.study_name, "trials_run": done}))
        return 0
    spec = SweepSpec.from_args(args)
    print(f"sweep: {spec.n_trials} trials, {spec.n_workers} worker(s), sampler {spec.sampler}", flush=True)
    result = run_sweep(spec)
    print(
        json.dumps(
            {
                "parent_run_id": result.parent_run_id,
                "study_name": result.study_name,
                "best_trial": result.best_trial_number,
                "best_value": result.best_value,
                "best_run_id": result.best_run_id,
                "complete": result.n_complete,
                "pruned": result.n_pruned,
                "failed": result.n_failed,
                **{k: round(v, 4) for k, v in result.best_metrics.items()},
            }
        )
    )
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    ds = load_dataset(args.dataset, path=args.data_path)
    print(f"{ds.name}: {ds.n_interactions} interactions, {ds.n_users} users, {ds.n_items} items from {ds.source}")
    return 0


def _add_fetch_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="movielens-100k")
    parser.add_argument("--data-path", default=None)


# sub-command: (help, description or None, its flags, its handler)
COMMANDS: dict[str, tuple[str, str | None, Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = {
    "train": (
        "Train one model as one MLflow run.",
        "Train one model as one MLflow run (tracking store: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in this "
        "folder). Give only the hyperparameter flags of the chosen --model.",
        add_train_flags,
        _cmd_train,
    ),
    "references": (
        "Fit the reference models (popularity, EASE, ItemKNN) on a dataset and split.",
        "Fit the reference models on the given data and split, each as an ordinary run tagged "
        "recdash.reference=true (nested under one 'references' run), fitted on train only with its "
        "regularisation chosen on validation.",
        add_references_flags,
        _cmd_references,
    ),
    "sweep": (
        "Optuna hyperparameter sweep: one parent MLflow run, one nested run per trial.",
        "Optuna sweep over a model's hyperparameters; --n-trials is the study's exact total, shared by "
        "--n-workers local processes and any `sweep --worker` joining the same --storage and --study-name.",
        add_sweep_flags,
        _cmd_sweep,
    ),
    "fetch-data": ("Download/verify a dataset into the cache and describe it.", None, _add_fetch_flags, _cmd_fetch),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recdash", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, description, add_flags, handler) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=description or help_text)
        add_flags(command)
        command.set_defaults(handler=handler)
    return parser


def _mark_refused(reason: str) -> None:
    """A dashboard job (or ``mlflow run``) hands this process its run in MLFLOW_RUN_ID: when the process refused
    before that run started, end it FAILED as refused (:func:`recdash.training.jobs.refuse`), so it is never taken
    for a result. A run that did start ended itself already and is left as it is."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return
    try:
        if jobs.refuse(run_id, reason):
            print(f"run {run_id} ended FAILED as refused", file=sys.stderr)
    except (UserError, MlflowException) as exc:  # the store is gone too: the queue ends the run when it sees
        print(f"note: could not mark run {run_id} as refused: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keeps job logs readable
    # A cancel from the dashboard sends SIGTERM: end the MLflow run KILLED, like Ctrl-C.
    signal.signal(signal.SIGTERM, request_stop)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        _mark_refused(str(exc))
        return 2
    except KeyboardInterrupt:
        print("interrupted: the run was ended KILLED", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
