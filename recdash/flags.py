"""What every ``python -m recdash train|sweep`` process shares: its flags, how it stops, and how it is recognised.

``recdash.cli`` (the ``train`` command and the parser) and ``recdash.sweep`` (the ``sweep`` command and its
workers) both import this module and never each other. ``recdash.jobs`` (the dashboard side) reads the same
identity tag to tell a job's process from an unrelated one that reuses its PID.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from recdash.datasets import SPLIT_METHODS
from recdash.models import DEFAULT_MODEL, MODELS, HyperparameterError, Params, get_model, model_of_param

# ---------------------------------------------------------------------------------------------------- flags


def add_model_flag(parser: argparse.ArgumentParser) -> None:
    """``--model``: which algorithm of :mod:`recdash.models` to train."""
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        choices=tuple(MODELS),
        help="Algorithm: "
        + "; ".join(f"{name}: {cls.description}" for name, cls in MODELS.items())
        + f" (default {DEFAULT_MODEL}).",
    )


def add_hyperparameter_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per hyperparameter of every model, grouped by model; values are parsed as text and validated by
    the model's Params. A flag left out keeps the model's default (flags default to None so a flag given for
    another model than ``--model`` can be refused)."""
    for model in MODELS.values():
        specs = model.hyperparameters()
        if not specs:
            continue
        group = parser.add_argument_group(f"{model.name} hyperparameters (--model {model.name})")
        for spec in specs.values():
            group.add_argument(
                spec.flag,
                dest=spec.name,
                default=None,
                metavar=spec.name.upper(),
                help=f"{spec.help} {spec.describe()} Default: {spec.default}.",
            )


def hyperparameters_from_args(args: argparse.Namespace, model: str) -> Params:
    """The chosen model's Params from the flags; a flag of another model is refused (it would be ignored)."""
    cls = get_model(model)
    given = {name: getattr(args, name) for name in _all_flag_names() if getattr(args, name, None) is not None}
    foreign = sorted(name for name in given if name not in cls.hyperparameters())
    if foreign:
        flags = ", ".join("--" + name.replace("_", "-") + f" ({model_of_param(name)})" for name in foreign)
        own = ", ".join(spec.flag for spec in cls.hyperparameters().values()) or "no hyperparameters"
        raise HyperparameterError(f"--model {cls.name} does not take {flags}; it takes {own}")
    return cls.Params.from_mapping(given)


def _all_flag_names() -> list[str]:
    return [name for model in MODELS.values() for name in model.hyperparameters()]


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
        choices=SPLIT_METHODS,
        help="random: per-user 80/10/10 shuffle (RecBole's protocol); temporal: each user's latest "
        "interactions are held out; cold-users: 10%% of the users (all their interactions) are the test set and "
        "another 10%% the validation set, never seen in training (the fractions apply to users).",
    )
    for kind, what in (("user", "age (bucketed), gender, occupation"), ("item", "genres, release decade")):
        group.add_argument(
            f"--{kind}-features",
            default="none",
            metavar="none|builtin|PATH",
            help=f"{kind.capitalize()} side features (--model rankfm): none (default); builtin: the dataset's own "
            f"({what}; movielens-100k and synthetic); or a CSV/Parquet table with a {kind}_id column and attribute "
            "columns (text: one-hot, 'a|b' lists: multi-hot, numbers: standardised).",
        )
    group.add_argument(
        "--split-fractions",
        default="0.8,0.1,0.1",
        help="Train, validation and test fractions, comma-separated (default 0.8,0.1,0.1).",
    )
    group.add_argument(
        "--seed",
        type=int,
        default=42,
        help="Seed of the model's initialisation and sampling (default 42). Repeat a configuration with other seeds "
        "to see how much of a result is luck: the split keeps its own --split-seed.",
    )
    group.add_argument(
        "--split-seed",
        type=int,
        default=42,
        help="Seed of the train/validation/test split and of synthetic data (default 42). Runs compared together "
        "must share it.",
    )


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """Training length, early stopping and MLflow tracking flags shared by ``train`` and ``sweep``."""
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

    model = getattr(args, "model", DEFAULT_MODEL)

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
            "seed": args.split_seed,
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
        split_seed=args.split_seed,
        epochs=args.epochs,
        k=args.k,
        early_stopping_metric=args.early_stopping_metric,
        patience=args.patience,
        hparams=hyperparameters_from_args(args, model),
        model=model,
        experiment=args.experiment,
        run_name=args.run_name,
        log_model=not args.no_model,
        registered_model_name=args.register_as,
        tags=tags,
        user_features=args.user_features,
        item_features=args.item_features,
    )


# ---------------------------------------------------------------------------------------------------- stopping

_STOP = {"requested": False}


def request_stop(signum: int, frame: Any) -> None:
    """SIGTERM handler (a dashboard cancel): stop at the next epoch or trial boundary. Raising at an arbitrary
    point could interrupt an open SQLite transaction and leave the tracking store locked. A second SIGTERM stops
    at once."""
    if _STOP["requested"]:
        raise KeyboardInterrupt(f"signal {signum}")
    _STOP["requested"] = True


def check_stop() -> None:
    """Raise KeyboardInterrupt (the run then ends KILLED) if a stop was requested by SIGTERM."""
    if _STOP["requested"]:
        raise KeyboardInterrupt("cancelled")


# ---------------------------------------------------------------------------------------------------- identity

# Which process owns a run: "<boot id>:<start time in clock ticks since boot>" from /proc. A PID alone is not
# enough: after the job's process ends, the PID can be handed to any later process.
TAG_PROCESS_START = "recdash.process_start"


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (``[0]`` the state, ``[19]`` the start time in
    clock ticks since boot), or None when there is no such process or no procfs. The name is in parentheses and
    may hold spaces and parentheses itself, hence the split after the last ")"."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
    except (OSError, ValueError):
        return None
    return fields if len(fields) > 19 else None


def process_start(pid: int | None = None) -> str | None:
    """The identity of process ``pid`` (default: this one) as stored in :data:`TAG_PROCESS_START`.

    Clock ticks since boot never change for a process's lifetime (unlike wall-clock start times, which move
    when the clock is stepped), and the boot id tells a reboot apart. None where there is no procfs.
    """
    fields = proc_stat(pid or os.getpid())
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return f"{boot}:{fields[19]}" if fields is not None else None


def identity_tags() -> dict[str, str]:
    """Tags a recdash process puts on the runs it owns, so a later process that reuses its PID is not taken
    for it (:func:`recdash.jobs.pid_alive`)."""
    token = process_start()
    return {TAG_PROCESS_START: token} if token else {}
