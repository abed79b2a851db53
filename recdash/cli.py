"""Command line: ``python -m recdash train ...`` (and the other subcommands registered below).

The flags ``train`` and ``sweep`` share live in :mod:`recdash.flags`; ``sweep`` is defined in :mod:`recdash.sweep`,
which never imports this module. Every rankfm hyperparameter and split option is a flag. Bad values are refused
before any MLflow run exists, with a message naming the flag and exit code 2; a failing or interrupted run exits
non-zero after it is ended FAILED or KILLED."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace

from recdash.flags import (
    add_data_flags,
    add_hyperparameter_flags,
    add_run_flags,
    check_stop,
    identity_tags,
    request_stop,
    train_config_from_args,
)
from recdash.model import HyperparameterError
from recdash.sweep import add_sweep_flags

Handler = Callable[[argparse.Namespace], int]


def _cmd_train(args: argparse.Namespace) -> int:
    from recdash.train import train

    config = train_config_from_args(args)
    # this process's identity on its run, so a later process that gets its PID is never taken for it
    config = replace(config, tags={**identity_tags(), **config.tags})

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        print(
            f"epoch {epoch}/{config.epochs}  {config.monitor}={metrics[config.monitor]:.4f}  "
            f"({metrics['epoch_seconds']:.2f}s)",
            flush=True,
        )
        check_stop()

    result = train(config, on_epoch=on_epoch)
    summary = {
        "run_id": result.run_id,
        "best_epoch": result.best_epoch,
        "model_uri": result.model_uri,
        **{k: round(v, 4) for k, v in result.metrics.items() if k.startswith(("test_", "baseline_test_"))},
    }
    print(json.dumps(summary))
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from recdash.datasets import load_dataset

    ds = load_dataset(args.dataset, path=args.data_path)
    print(f"{ds.name}: {ds.n_interactions} interactions, {ds.n_users} users, {ds.n_items} items from {ds.source}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recdash", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p_train = sub.add_parser(
        "train",
        help="Train one rankfm model as one MLflow run.",
        description="Train one rankfm model as one MLflow run (tracking store: "
        "MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in this folder).",
    )
    add_data_flags(p_train)
    add_run_flags(p_train)
    add_hyperparameter_flags(p_train)
    p_train.set_defaults(handler=_cmd_train)

    p_sweep = sub.add_parser(
        "sweep",
        help="Optuna hyperparameter sweep: one parent MLflow run, one nested run per trial.",
        description="Optuna sweep over rankfm hyperparameters; --n-trials is the study's exact total, shared by "
        "--n-workers local processes and any `sweep --worker` joining the same --storage and --study-name.",
    )
    add_sweep_flags(p_sweep)

    p_fetch = sub.add_parser("fetch-data", help="Download/verify a dataset into the cache and describe it.")
    p_fetch.add_argument("--dataset", default="movielens-100k")
    p_fetch.add_argument("--data-path", default=None)
    p_fetch.set_defaults(handler=_cmd_fetch)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    from recdash.datasets import DatasetError
    from recdash.train import ConfigError

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keeps job logs readable
    # A cancel from the dashboard sends SIGTERM: end the MLflow run KILLED, like Ctrl-C.
    signal.signal(signal.SIGTERM, request_stop)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ConfigError, HyperparameterError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the run was ended KILLED", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
