"""Command line: ``python -m recdash train ...`` (and the other subcommands registered below).

Every rankfm hyperparameter and split option is a flag. Bad values are refused before any MLflow run exists,
with a message naming the flag and exit code 2; a failing or interrupted run exits non-zero after it is ended
FAILED or KILLED.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from recdash.model import HYPERPARAMS, HyperparameterError, Hyperparams

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Handler] = {}


def add_hyperparameter_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per rankfm hyperparameter; values are parsed as text and validated by :class:`Hyperparams`."""
    group = parser.add_argument_group("rankfm hyperparameters")
    for spec in HYPERPARAMS.values():
        bounds = f" One of: {', '.join(spec.choices)}." if spec.choices else f" Range {spec.low:g}..{spec.high:g}."
        group.add_argument(
            f"--{spec.name.replace('_', '-')}",
            dest=spec.name,
            default=spec.default,
            metavar=spec.name.upper(),
            help=f"{spec.help}{bounds} Default: {spec.default}.",
        )


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """Dataset, split and seed flags shared by ``train`` and ``sweep``."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        default="movielens-100k",
        help="movielens-100k (default), synthetic, csv or parquet (the last two need --data-path).",
    )
    group.add_argument(
        "--data-path",
        default=None,
        help="movielens-100k: a local GroupLens folder or zip; csv/parquet: the file to read.",
    )
    group.add_argument("--user-col", default="user_id", help="csv/parquet: column holding user IDs.")
    group.add_argument("--item-col", default="item_id", help="csv/parquet: column holding item IDs.")
    group.add_argument("--weight-col", default=None, help="csv/parquet: optional rating/weight column.")
    group.add_argument("--timestamp-col", default=None, help="csv/parquet: optional timestamp column.")
    group.add_argument("--synthetic-users", type=int, default=500, help="synthetic: number of users.")
    group.add_argument("--synthetic-items", type=int, default=400, help="synthetic: number of items.")
    group.add_argument("--synthetic-interactions", type=int, default=20_000, help="synthetic: interactions.")
    group.add_argument(
        "--min-rating",
        type=float,
        default=None,
        help="Keep only interactions with rating >= this (default: every rating is a positive).",
    )
    group.add_argument(
        "--split",
        default="random",
        choices=("random", "temporal"),
        help="random: per-user 80/10/10 shuffle (RecBole's protocol); temporal: each user's latest "
        "interactions are held out.",
    )
    group.add_argument(
        "--split-fractions", default="0.8,0.1,0.1", help="train,validation,test fractions (default 0.8,0.1,0.1)."
    )
    group.add_argument("--seed", type=int, default=42, help="Seed for the split, initialisation and sampling.")


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training and tracking")
    group.add_argument("--epochs", type=int, default=30, help="Maximum training epochs (default 30).")
    group.add_argument("--k", type=int, default=10, help="Cut-off of the ranking metrics (default 10).")
    group.add_argument(
        "--early-stopping-metric",
        default="ndcg",
        help="Validation metric to watch: precision, recall, ndcg, mrr, map, hit_rate (default ndcg).",
    )
    group.add_argument(
        "--patience",
        type=int,
        default=5,
        help="Stop after this many epochs without improvement; 0 turns early stopping off.",
    )
    group.add_argument("--experiment", default="recdash", help="MLflow experiment name (created if missing).")
    group.add_argument("--run-name", default=None, help="MLflow run name.")
    group.add_argument("--register-as", default=None, help="Also register the model under this registry name.")
    group.add_argument("--no-model", action="store_true", help="Do not log the model (metrics only).")
    group.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="Extra run tag (repeatable).")


def train_config_from_args(args: argparse.Namespace) -> Any:
    """Build and validate a TrainConfig from parsed flags (raises ConfigError/HyperparameterError)."""
    from recdash.train import ConfigError, TrainConfig

    try:
        fractions = tuple(float(x) for x in str(args.split_fractions).split(","))
    except ValueError:
        raise ConfigError("--split-fractions must look like 0.8,0.1,0.1") from None
    tags = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--tag must be KEY=VALUE; got {item!r}")
        tags[key] = value
    dataset = args.dataset
    options: dict[str, Any] = {}
    if dataset == "synthetic":
        options = {
            "n_users": args.synthetic_users,
            "n_items": args.synthetic_items,
            "n_interactions": args.synthetic_interactions,
            "seed": args.seed,
        }
    elif dataset in ("csv", "parquet"):
        if not args.data_path:
            raise ConfigError(f"--dataset {dataset} needs --data-path")
        options = {
            "user_col": args.user_col,
            "item_col": args.item_col,
            "weight_col": args.weight_col,
            "timestamp_col": args.timestamp_col,
        }
    return TrainConfig(
        dataset=dataset,
        data_path=args.data_path,
        dataset_options=options,
        min_rating=args.min_rating,
        split=args.split,
        split_fractions=fractions,
        seed=args.seed,
        epochs=args.epochs,
        k=args.k,
        early_stopping_metric=args.early_stopping_metric,
        patience=args.patience,
        hparams=Hyperparams.from_mapping({name: getattr(args, name) for name in HYPERPARAMS}),
        experiment=args.experiment,
        run_name=args.run_name,
        log_model=not args.no_model,
        registered_model_name=args.register_as,
        tags=tags,
    )


def _cmd_train(args: argparse.Namespace) -> int:
    from recdash.train import train

    config = train_config_from_args(args)

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

    from recdash.sweep import add_sweep_flags

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


_STOP = {"requested": False}


def _request_stop(signum: int, frame: Any) -> None:
    """SIGTERM (a dashboard cancel) stops at the next epoch or trial boundary: raising at an arbitrary point could
    interrupt an open SQLite transaction and leave the tracking store locked. A second SIGTERM stops at once."""
    if _STOP["requested"]:
        raise KeyboardInterrupt(f"signal {signum}")
    _STOP["requested"] = True


def check_stop() -> None:
    """Raise KeyboardInterrupt (the run then ends KILLED) if a stop was requested by SIGTERM."""
    if _STOP["requested"]:
        raise KeyboardInterrupt("cancelled")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    from recdash.datasets import DatasetError
    from recdash.train import ConfigError

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keeps job logs readable
    # A cancel from the dashboard sends SIGTERM: end the MLflow run KILLED, like Ctrl-C.
    signal.signal(signal.SIGTERM, _request_stop)
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
