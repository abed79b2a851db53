"""The training configuration: one typed object, and one conversion each way for every form it takes.

A training is described by a :class:`TrainConfig`. The Train page builds one from its form (:meth:`~TrainConfig.
from_form`), the job queue stores it as the command line of the job's process (:meth:`~TrainConfig.to_argv`), the
process reads it back (:meth:`~TrainConfig.from_args`), the run records it as params (:meth:`~TrainConfig.params`),
and "start from run" turns a run's params back into a config (:meth:`~TrainConfig.from_run_params`) and the config
into form values (:meth:`~TrainConfig.to_form`). A round trip through any of these gives the same config back (a
test holds it), so no caller writes or parses flags by hand.

Validation happens on construction (:class:`ConfigError`, naming the flag), so a bad value never starts a run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from recdash import contract
from recdash.data.split import SPLIT_METHODS
from recdash.errors import UserError
from recdash.models import (
    DEFAULT_MODEL,
    MODELS,
    HyperparameterError,
    Params,
    Recommender,
    UnknownModelError,
    coerce_param,
    get_model,
    models_of_param,
)

DEFAULT_EXPERIMENT = "recdash"
STOPPING_METRICS = contract.RANKING
DATASETS = ("movielens-100k", "synthetic", "csv", "parquet")
SYNTHETIC_DEFAULTS = {"n_users": 500, "n_items": 400, "n_interactions": 20_000}
FILE_COLUMNS = ("user_col", "item_col", "weight_col", "timestamp_col")
FEATURE_KINDS = ("user", "item")


class ConfigError(UserError, ValueError):
    """A training option that cannot work; the message names the CLI flag."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; validated before a run is created."""

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
    user_features: str = "none"  # none | builtin | path of a CSV/Parquet table (recdash.data.features)
    item_features: str = "none"
    # validation users scored per epoch: a fixed, seeded sample when the validation set has more (0: all of them)
    validation_users: int = 10_000

    kind: ClassVar[str] = contract.KIND_TRAIN  # a job of the dashboard's queue (recdash.training.jobs)
    slots: ClassVar[int] = 1

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
        object.__setattr__(self, "split_fractions", tuple(float(f) for f in self.split_fractions))
        if not cls.iterative:  # fitted once: no epochs to count, nothing to stop early (one config, one spelling)
            object.__setattr__(self, "epochs", TrainConfig.epochs)
            object.__setattr__(self, "patience", TrainConfig.patience)
        checks = [
            (isinstance(self.epochs, int) and 1 <= self.epochs <= 10_000, "--epochs must be between 1 and 10000"),
            (isinstance(self.k, int) and 1 <= self.k <= 1000, "--k must be between 1 and 1000"),
            (isinstance(self.patience, int) and self.patience >= 0, "--patience must be 0 (off) or a positive integer"),
            (isinstance(self.seed, int) and 0 <= self.seed < 2**31, "--seed must be between 0 and 2147483647"),
            (
                isinstance(self.split_seed, int) and 0 <= self.split_seed < 2**31,
                "--split-seed must be between 0 and 2147483647",
            ),
            (
                self.early_stopping_metric in STOPPING_METRICS,
                f"--early-stopping-metric must be one of {', '.join(STOPPING_METRICS)}",
            ),
            (self.split in SPLIT_METHODS, f"--split must be one of {', '.join(SPLIT_METHODS)}"),
            (
                len(self.split_fractions) == 3
                and all(f > 0 for f in self.split_fractions)
                and abs(sum(self.split_fractions) - 1) < 1e-6,
                "--split-fractions must be three positive numbers summing to 1",
            ),
            (bool(self.experiment and self.experiment.strip()), "--experiment must not be empty"),
            (
                isinstance(self.validation_users, int) and self.validation_users >= 0,
                "--validation-users must be 0 (all) or a positive integer",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        for kind in FEATURE_KINDS:
            spec = str(getattr(self, f"{kind}_features") or "none").strip() or "none"
            object.__setattr__(self, f"{kind}_features", "none" if spec.lower() == "none" else spec)
            if spec.lower() != "none" and not cls.uses_features:
                users = ", ".join(m for m in MODELS if get_model(m).uses_features)
                raise ConfigError(
                    f"--{kind}-features needs a model that uses side features ({users}); {cls.name} does not"
                )

    # ---- what the run is ---------------------------------------------------------------------------------------
    @property
    def uses_features(self) -> bool:
        return self.user_features != "none" or self.item_features != "none"

    @property
    def monitor(self) -> str:
        """Name of the validation metric early stopping (and sweeps) watch."""
        return contract.metric_name("val", self.early_stopping_metric, self.k)

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

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes``; another model starts from its own default hyperparameters unless given some."""
        if "model" in changes and "hparams" not in changes and changes["model"] != self.model:
            changes["hparams"] = None
        return dataclasses.replace(self, **changes)

    def with_seed(self, seed: int) -> TrainConfig:
        """The same configuration with another model seed (a repeat): the run name gets ``-s<seed>``."""
        name = f"{self.run_name}-s{seed}" if self.run_name else f"repeat-s{seed}"
        return self.replace(seed=int(seed), run_name=name)

    def params(self) -> dict[str, Any]:
        """Run params besides the dataset lineage ones (epochs and patience only where the model has epochs)."""
        iterative = {"epochs": self.epochs, "patience": self.patience} if self.model_class.iterative else {}
        # models that can use side features record whether they did (Compare: "with vs without features")
        features = {"user_features": "none", "item_features": "none"} if self.model_class.uses_features else {}
        return {
            contract.MODEL_PARAM: self.model,
            **features,
            **self.params_.as_dict(),
            **iterative,
            contract.K_PARAM: self.k,
            "seed": self.seed,
            "early_stopping_metric": self.monitor,
            "min_rating": self.min_rating,
            "data_path": self.data_path,
            # how the data was made or read (synthetic sizes, CSV column mapping), so the run can be reproduced
            **{f"dataset_{key}": value for key, value in self.dataset_options.items()},
        }

    # ---- JSON (a sweep's study keeps its config) ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hparams"] = self.params_.as_dict()
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        values = dict(values)
        values["split_fractions"] = tuple(values.get("split_fractions", (0.8, 0.1, 0.1)))
        return cls(**values)

    # ---- the command line --------------------------------------------------------------------------------------
    def to_argv(self, *, model_flags: bool = True) -> list[str]:
        """The flags of ``python -m recdash train`` that give this config back (:meth:`from_argv`), in a fixed
        order, so equal configs give equal command lines; hyperparameters only where they differ from the model's
        defaults. ``model_flags=False`` leaves out the model and its hyperparameters (``references`` takes none)."""
        default = TrainConfig(model=self.model)
        argv: list[str] = ["--model", self.model] if model_flags else []
        argv += ["--dataset", self.dataset]
        if self.data_path:
            argv += ["--data-path", self.data_path]
        if self.dataset == "synthetic":
            for key in SYNTHETIC_DEFAULTS:
                argv += [f"--synthetic-{key.removeprefix('n_')}", str(self.dataset_options[key])]
        elif self.dataset in ("csv", "parquet"):
            for key in FILE_COLUMNS:
                if self.dataset_options.get(key):
                    argv += [f"--{key.replace('_', '-')}", str(self.dataset_options[key])]
        if self.min_rating is not None:
            argv += ["--min-rating", f"{self.min_rating:g}"]
        argv += ["--split", self.split, "--split-fractions", ",".join(f"{f:g}" for f in self.split_fractions)]
        argv += ["--seed", str(self.seed), "--split-seed", str(self.split_seed)]
        if self.model_class.iterative:
            argv += ["--epochs", str(self.epochs), "--patience", str(self.patience)]
        argv += ["--k", str(self.k), "--early-stopping-metric", self.early_stopping_metric]
        if self.validation_users != TrainConfig.validation_users:
            argv += ["--validation-users", str(self.validation_users)]
        argv += ["--experiment", self.experiment]
        if self.run_name:
            argv += ["--run-name", self.run_name]
        if self.registered_model_name:
            argv += ["--register-as", self.registered_model_name]
        if not self.log_model:
            argv.append("--no-model")
        for key, value in sorted(self.tags.items()):
            argv += ["--tag", f"{key}={value}"]
        if not model_flags:
            return argv
        for kind in FEATURE_KINDS:
            if getattr(self, f"{kind}_features") != "none":
                argv += [f"--{kind}-features", getattr(self, f"{kind}_features")]
        for name, value in self.params_.as_dict().items():
            if value != default.params_.as_dict()[name]:
                argv += [self.model_class.hyperparameters()[name].flag, _text(value)]
        return argv

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> TrainConfig:
        """The config ``python -m recdash train <argv>`` trains (ConfigError/HyperparameterError when invalid)."""
        return cls.from_args(parse_flags("train", add_train_flags, argv))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainConfig:
        """Build and validate a config from flags parsed by a parser with :func:`add_train_flags`."""
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
        options: dict[str, Any] = {}
        if args.dataset == "synthetic":
            options = {
                "n_users": args.synthetic_users,
                "n_items": args.synthetic_items,
                "n_interactions": args.synthetic_interactions,
                "seed": args.split_seed,
            }
        elif args.dataset in ("csv", "parquet"):
            if not args.data_path:
                raise ConfigError(f"--dataset {args.dataset} needs --data-path")
            options = {key: getattr(args, key) or None for key in FILE_COLUMNS}  # "": not given (MLproject)
        return cls(
            dataset=args.dataset,
            data_path=args.data_path or None,  # "" (an MLproject's empty default) is no path
            dataset_options=options,
            min_rating=args.min_rating,
            split=args.split,
            split_fractions=fractions,  # type: ignore[arg-type]
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
            validation_users=args.validation_users,
        )

    # ---- a run's params ("start from run") ---------------------------------------------------------------------
    @classmethod
    def from_run_params(cls, params: Mapping[str, str]) -> tuple[TrainConfig, list[str]]:
        """The config a recdash run was trained with, from its params, and notes on what could not be restored
        (a value out of range, a feature table that is gone, an uploaded file): those keep their defaults."""
        notes: list[str] = []
        model = params.get(contract.MODEL_PARAM, DEFAULT_MODEL)
        if model not in MODELS:
            notes.append(f"model {model!r} is not available here; using {DEFAULT_MODEL}")
            model = DEFAULT_MODEL
        specs = get_model(model).hyperparameters()
        hparams: dict[str, Any] = {}
        for name, spec in specs.items():
            if name in params:
                try:
                    hparams[name] = coerce_param(spec, params[name])
                except HyperparameterError:
                    notes.append(f"{name}={params[name]!r} is out of range here; using {spec.default}")
        candidates: dict[str, Any] = {}
        for key in ("epochs", "k", "seed", "patience", "split_seed", "validation_users"):
            with contextlib.suppress(KeyError, ValueError):
                candidates[key] = int(float(params[key]))
        parsed = contract.MetricName.parse(params.get("early_stopping_metric", ""))
        metric = parsed.metric if parsed is not None else params.get("early_stopping_metric", "")
        if metric in STOPPING_METRICS:
            candidates["early_stopping_metric"] = metric
        if params.get("split_method") in SPLIT_METHODS:
            candidates["split"] = params["split_method"]
        with contextlib.suppress(KeyError, ValueError):
            candidates["split_fractions"] = tuple(float(params[f"split_{p}"]) for p in ("train", "validation", "test"))
        with contextlib.suppress(KeyError, ValueError):
            candidates["min_rating"] = float(params["min_rating"])
        dataset = params.get("dataset")
        if dataset == "synthetic":
            options = dict(SYNTHETIC_DEFAULTS)
            for key in SYNTHETIC_DEFAULTS:
                with contextlib.suppress(KeyError, ValueError):
                    options[key] = int(float(params[f"dataset_{key}"]))
            candidates["dataset"] = dataset
            candidates["dataset_options"] = {**options, "seed": candidates.get("split_seed", 42)}
        elif dataset == "movielens-100k":
            candidates["dataset"] = dataset
        elif dataset:
            notes.append(f"the run's data ({dataset}) must be chosen again")
        for kind in FEATURE_KINDS:  # side features: none, builtin, or a table file still there
            spec = params.get(f"{kind}_features", "")
            if not spec or spec == "none" or not get_model(model).uses_features:
                continue
            if spec == "builtin" or Path(spec).is_file():
                candidates[f"{kind}_features"] = spec
            else:
                notes.append(f"the run's {kind} feature table {spec} no longer exists here: set to none")
        # each value on its own: one out of range (a run logged by another tool) keeps its default, not the rest
        values: dict[str, Any] = {"model": model, "hparams": hparams}
        for key, value in candidates.items():
            try:
                cls(**{**values, key: value})
            except ConfigError as exc:
                notes.append(f"{key}={value!r}: {exc}")
            else:
                values[key] = value
        return cls(**values), notes

    # ---- the Train page's form ---------------------------------------------------------------------------------
    def to_form(self) -> dict[str, Any]:
        """The Train form's values for this config (the page keeps them in its widgets' session state)."""
        options = {**SYNTHETIC_DEFAULTS, **self.dataset_options} if self.dataset == "synthetic" else SYNTHETIC_DEFAULTS
        return {
            "model": self.model,
            "dataset": self.dataset if self.dataset in ("movielens-100k", "synthetic") else "csv upload",
            **{f"synthetic_{key}": int(options[key]) for key in SYNTHETIC_DEFAULTS},
            "split": self.split,
            "split_fractions": ",".join(f"{f:g}" for f in self.split_fractions),
            "seed": self.seed,
            "split_seed": self.split_seed,
            "epochs": self.epochs,
            "patience": self.patience,
            "validation_users": self.validation_users,
            "k": self.k,
            "early_stopping_metric": self.early_stopping_metric,
            "experiment": self.experiment,
            "run_name": self.run_name or "",
            "user_features": self.user_features,
            "item_features": self.item_features,
            "hparams": self.params_.as_dict(),
        }

    @classmethod
    def from_form(cls, values: Mapping[str, Any], upload: Mapping[str, Any] | None = None) -> TrainConfig:
        """The config the Train form describes; ``upload`` is the uploaded table and its column mapping when the
        dataset is "csv upload" (``path``, ``user_col``, ``item_col``, ``weight_col``, ``timestamp_col``)."""
        model = get_model(values["model"])
        try:
            fractions = tuple(float(x) for x in str(values["split_fractions"]).replace(" ", "").split(","))
        except ValueError:
            raise ConfigError("--split-fractions must look like 0.8,0.1,0.1") from None
        dataset, path, options = str(values["dataset"]), None, {}
        if dataset == "csv upload":
            if not upload:
                raise ConfigError("upload a file first")
            dataset, path = "csv", str(upload["path"])
            options = {key: upload.get(key) for key in FILE_COLUMNS}
        elif dataset == "synthetic":
            options = {key: int(values[f"synthetic_{key}"]) for key in SYNTHETIC_DEFAULTS}
            options["seed"] = int(values["split_seed"])
        defaults = cls(model=model.name)
        return cls(
            model=model.name,
            dataset=dataset,
            data_path=path,
            dataset_options=options,
            split=str(values["split"]),
            split_fractions=fractions,  # type: ignore[arg-type]
            seed=int(values["seed"]),
            split_seed=int(values["split_seed"]),
            epochs=int(values.get("epochs", defaults.epochs)) if model.iterative else defaults.epochs,
            patience=int(values.get("patience", defaults.patience)) if model.iterative else defaults.patience,
            k=int(values["k"]),
            validation_users=int(values.get("validation_users", defaults.validation_users)),
            early_stopping_metric=str(values["early_stopping_metric"]),
            experiment=str(values["experiment"]).strip(),
            run_name=str(values.get("run_name") or "").strip() or None,
            hparams=dict(values.get("hparams") or {}),
            user_features=str(values.get("user_features") or "none"),
            item_features=str(values.get("item_features") or "none"),
        )

    def same_training_params(self) -> dict[str, str]:
        """The params (as MLflow keeps them: text) that a run of this config logs and that say what was trained on
        which data: :meth:`params` but the seed, and the dataset and split of :meth:`data_key`. A finished run
        with all of them is this training with its own seed ("Repeat with seeds" skips the seeds it has)."""
        dataset, _, _, _, method, fractions, split_seed = self.data_key()
        split = {"split_method": method, "split_seed": split_seed}
        split |= {f"split_{part}": float(f) for part, f in zip(("train", "validation", "test"), fractions, strict=True)}
        values = {**self.params(), "dataset": dataset, **split}
        return {key: str(value) for key, value in values.items() if key not in contract.SEED_PARAMS}

    def data_key(self) -> tuple[Any, ...]:
        """What the data and split are made of: runs with equal keys saw the same data (repeats of a seed are
        compared on this)."""
        return (self.dataset, self.data_path, tuple(sorted(self.dataset_options.items())), self.min_rating,
                self.split, self.split_fractions, self.split_seed)  # fmt: skip


def parse_flags(
    command: str, add_flags: Callable[[argparse.ArgumentParser], Any], argv: Sequence[str]
) -> argparse.Namespace:
    """``argv`` parsed by a parser of ``recdash <command>`` with ``add_flags``'s flags, argparse's complaint raised
    as a :class:`ConfigError` instead of an exit: how a job's stored arguments are read back."""
    parser = argparse.ArgumentParser(prog=f"recdash {command}", add_help=False)
    add_flags(parser)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return parser.parse_args(list(argv))
    except SystemExit:
        lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
        raise ConfigError(lines[-1].split(": error: ", 1)[-1] if lines else "invalid options") from None


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------------------------------- flags


def add_model_flag(parser: argparse.ArgumentParser) -> None:
    """``--model``: which algorithm of :mod:`recdash.models` to train (choices read at call time, so a model
    registered by a plugin or a test is offered)."""
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        choices=tuple(MODELS),
        help="Algorithm: "
        + "; ".join(f"{name}: {cls.description}" for name, cls in MODELS.items())
        + f" (default {DEFAULT_MODEL}).",
    )


def add_hyperparameter_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per hyperparameter name of any model; values are parsed as text and validated by the chosen model's
    Params, so two models may share a name (each with its own range). A flag left out keeps the model's default
    (flags default to None so a flag of another model than ``--model`` can be refused)."""
    group = parser.add_argument_group("hyperparameters (each applies to the models named)")
    names: dict[str, list[type[Recommender]]] = {}
    for model in MODELS.values():
        for name in model.hyperparameters():
            names.setdefault(name, []).append(model)
    for name, models in names.items():
        helps = "; ".join(
            f"{m.name}: {m.hyperparameters()[name].help} {m.hyperparameters()[name].describe()} "
            f"Default: {m.hyperparameters()[name].default}."
            for m in models
        )
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, metavar=name.upper(), help=helps)


def hyperparameters_from_args(args: argparse.Namespace, model: str) -> Params:
    """The chosen model's Params from the flags; a flag of another model is refused (it would be ignored)."""
    cls = get_model(model)
    names = {name for m in MODELS.values() for name in m.hyperparameters()}
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    foreign = sorted(name for name in given if name not in cls.hyperparameters())
    if foreign:
        flags = ", ".join("--" + n.replace("_", "-") + f" ({', '.join(models_of_param(n))})" for n in foreign)
        own = ", ".join(spec.flag for spec in cls.hyperparameters().values()) or "no hyperparameters"
        raise HyperparameterError(f"--model {cls.name} does not take {flags}; it takes {own}")
    return cls.Params.from_mapping(given)


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """Dataset, split and seed flags shared by ``train``, ``sweep`` and ``references``."""
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
    for key, value in SYNTHETIC_DEFAULTS.items():
        flag = key.removeprefix("n_")
        group.add_argument(f"--synthetic-{flag}", type=int, default=value, help=f"synthetic: number of {flag}.")
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
            help=f"{kind.capitalize()} side features (models that use them): none (default); builtin: the dataset's "
            f"own ({what}; movielens-100k and synthetic); or a CSV/Parquet table with a {kind}_id column and "
            "attribute columns (text: one-hot, 'a|b' lists: multi-hot, numbers: standardised).",
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
    """Training length, early stopping and MLflow tracking flags shared by ``train``, ``sweep`` and ``references``."""
    group = parser.add_argument_group("training and tracking")
    group.add_argument("--epochs", type=int, default=30, help="Maximum training epochs (default 30).")
    group.add_argument("--k", type=int, default=10, help="Cut-off of the ranking metrics (default 10).")
    group.add_argument(
        "--early-stopping-metric",
        default="ndcg",
        help=f"Validation metric to watch: {', '.join(STOPPING_METRICS)} (default ndcg).",
    )
    group.add_argument(
        "--patience",
        type=int,
        default=5,
        help="Stop after this many epochs without improvement; 0 turns early stopping off.",
    )
    group.add_argument(
        "--validation-users",
        type=int,
        default=TrainConfig.validation_users,
        help="Validation users scored after each epoch: a fixed sample (seeded by --split-seed) when the validation "
        f"set has more; 0 scores all of them (default {TrainConfig.validation_users:,}). The test set is always "
        "scored in full.",
    )
    group.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name (created if missing).")
    group.add_argument("--run-name", default=None, help="MLflow run name.")
    group.add_argument("--register-as", default=None, help="Also register the model under this registry name.")
    group.add_argument("--no-model", action="store_true", help="Do not log the model (metrics only).")
    group.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="Extra run tag (repeatable).")


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """Every flag of ``python -m recdash train``: what :meth:`TrainConfig.from_args` reads."""
    add_model_flag(parser)
    add_data_flags(parser)
    add_run_flags(parser)
    add_hyperparameter_flags(parser)


__all__ = [
    "DEFAULT_EXPERIMENT",
    "SPLIT_METHODS",
    "ConfigError",
    "TrainConfig",
    "add_data_flags",
    "add_hyperparameter_flags",
    "add_model_flag",
    "add_run_flags",
    "add_train_flags",
    "hyperparameters_from_args",
]
