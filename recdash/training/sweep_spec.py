"""What a sweep searches and how: the search space (``name=low:high[:log]`` or ``name=a,b,c`` per hyperparameter,
checked against the model's bounds), the sampler, the trial count and workers, as one :class:`SweepSpec` with its
command line both ways (:meth:`SweepSpec.to_argv`, :meth:`SweepSpec.from_args`). Running it is
:mod:`recdash.training.sweep`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import optuna
from sqlalchemy.engine import make_url

from recdash import contract, settings
from recdash.config import ConfigError, TrainConfig, add_train_flags, parse_flags
from recdash.models import DEFAULT_MODEL, MODELS, HyperparameterError, coerce_param, get_model

SAMPLERS = ("tpe", "random", "grid")


STORAGE_FILE = "optuna.db"


SWEEP_DEFAULTS = {"epochs": 30, "patience": 3}


class SweepError(ConfigError):
    """A sweep option that cannot work; the message names the flag (the CLI prints it and exits 2)."""


def default_storage(tracking_uri: str | None = None) -> str:
    """The Optuna storage used when ``--storage`` is not given: ``optuna.db`` beside a SQLite tracking store
    (the studies belong with the runs they made), else in the recdash cache folder ($RECDASH_CACHE_DIR, default
    ~/.cache/recdash). Never the working directory, where it would land in whatever folder the app started in.
    ``RECDASH_OPTUNA_STORAGE`` replaces it (a team's shared database: workers on other hosts join the sweeps)."""
    if settings.OPTUNA_STORAGE.is_set():
        return settings.OPTUNA_STORAGE.get()
    uri = tracking_uri or mlflow.get_tracking_uri()
    if uri.startswith("sqlite:"):
        try:
            database = make_url(uri).database
        except Exception:  # an unparsable URI: MLflow itself reports it; the cache folder still works
            database = None
        if database and database != ":memory:" and not database.startswith("file:"):
            return f"sqlite:///{Path(database).expanduser().resolve().parent / STORAGE_FILE}"
    return f"sqlite:///{settings.cache_dir().resolve() / STORAGE_FILE}"


@dataclass(frozen=True)
class Dimension:
    """How one hyperparameter is searched: a range (optionally log scale) or a list of choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    integer: bool = False

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)  # type: ignore[arg-type]
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)  # type: ignore[arg-type]

    def text(self) -> str:
        if self.choices is not None:
            return ",".join(str(c) for c in self.choices)
        return f"{self.low:g}:{self.high:g}" + (":log" if self.log else "")


FEATURE_DIMENSIONS = ("user_features", "item_features")  # searchable data choices: none, builtin or a table path


def parse_dimension(text: str, model: str = DEFAULT_MODEL) -> Dimension:
    """Parse ``name=low:high[:log]`` or ``name=a,b,c`` and check it against ``model``'s hyperparameter bounds.
    For models that use side features, ``user_features=none,builtin`` (or ``item_features``) searches features on
    and off (each choice is what ``--user-features`` takes)."""
    model_class = get_model(model)
    specs = model_class.hyperparameters()
    name, sep, spec_text = text.partition("=")
    name = name.strip().replace("-", "_")
    if sep and name in FEATURE_DIMENSIONS and model_class.uses_features:
        choices = tuple(dict.fromkeys(c.strip() for c in spec_text.split(",") if c.strip()))
        if len(choices) < 2:
            raise SweepError(f"--space {name}: give two or more choices, e.g. {name}=none,builtin")
        missing = [c for c in choices if c.lower() not in ("none", "builtin") and not Path(c).expanduser().is_file()]
        if missing:
            raise SweepError(f"--space {name}: each choice is none, builtin or a table file; not found: {missing[0]}")
        return Dimension(name, choices=choices)
    if not sep or name not in specs:
        names = ", ".join(specs) or "(none: it has no hyperparameters)"
        raise SweepError(
            f"--space must be NAME=LOW:HIGH[:log] or NAME=A,B,C with NAME one of {names} (the hyperparameters of "
            f"--model {model}); got {text!r}"
        )
    spec = specs[name]
    spec_text = spec_text.strip()
    try:
        if ":" in spec_text and spec.choices is None:
            parts = spec_text.split(":")
            log = len(parts) == 3 and parts[2].strip().lower() == "log"
            if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
                raise SweepError(f"--space {name}: a range is LOW:HIGH or LOW:HIGH:log; got {spec_text!r}")
            low, high = coerce_param(spec, parts[0]), coerce_param(spec, parts[1])
            if low >= high:
                raise SweepError(f"--space {name}: LOW must be below HIGH; got {spec_text!r}")
            if log and low <= 0:
                raise SweepError(f"--space {name}: a log range needs LOW > 0")
            return Dimension(name, low, high, log, integer=spec.kind is int)
        choices = tuple(dict.fromkeys(coerce_param(spec, c) for c in spec_text.split(",") if c.strip()))
    except HyperparameterError as exc:
        raise SweepError(f"--space {name}: {exc}") from None
    if not choices:
        raise SweepError(f"--space {name}: give a range LOW:HIGH or choices A,B,C")
    return Dimension(name, choices=choices)


def parse_space(items: Sequence[str] | None, model: str = DEFAULT_MODEL) -> dict[str, Dimension]:
    """The search space from ``--space`` items (``model``'s default space when there are none)."""
    name = get_model(model).name
    space: dict[str, Dimension] = {}
    for item in items or get_model(name).default_space:
        dim = parse_dimension(item, name)
        space[dim.name] = dim
    if not space:
        raise SweepError(f"--model {name} has no hyperparameters to sweep; train it once instead")
    return space


def space_to_json(space: dict[str, Dimension]) -> dict[str, str]:
    return {name: dim.text() for name, dim in space.items()}


def grid_points(space: dict[str, Dimension]) -> list[dict[str, Any]]:
    """Every combination of the choices (the grid sampler needs choices for every searched hyperparameter)."""
    ranged = [d.name for d in space.values() if d.choices is None]
    if ranged:
        names = ", ".join(ranged)
        raise SweepError(f"--sampler grid needs choices (A,B,C) for every --space; ranges given for {names}")
    points: list[dict[str, Any]] = [{}]
    for dim in space.values():
        points = [{**p, dim.name: c} for p in points for c in dim.choices or ()]
    return points


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep request: the base training config plus what Optuna searches."""

    config: TrainConfig
    space: dict[str, Dimension]
    n_trials: int = 20
    n_workers: int = 1
    sampler: str = "tpe"
    prune: bool = True
    storage: str = field(default_factory=default_storage)
    study_name: str | None = None

    kind = contract.KIND_SWEEP

    @property
    def slots(self) -> int:
        """Job slots the sweep takes on this machine: one per local worker."""
        return self.n_workers

    def to_argv(self) -> list[str]:
        """The flags of ``python -m recdash sweep`` that give this spec back (:meth:`from_argv`)."""
        argv = self.config.to_argv()
        for dim in self.space.values():
            argv += ["--space", f"{dim.name}={dim.text()}"]
        argv += ["--n-trials", str(self.n_trials), "--n-workers", str(self.n_workers), "--sampler", self.sampler]
        if not self.prune:
            argv.append("--no-prune")
        if self.storage != default_storage():
            argv += ["--storage", self.storage]
        if self.study_name:
            argv += ["--study-name", self.study_name]
        return argv

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> SweepSpec:
        return cls.from_args(parse_flags("sweep", add_sweep_flags, argv))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SweepSpec:
        """Validate flags into a SweepSpec (raises SweepError/ConfigError/HyperparameterError)."""
        if args.objective:
            args.early_stopping_metric = args.objective
        config = TrainConfig.from_args(args)
        return cls(
            config=config,
            space=parse_space(args.space, config.model),
            n_trials=args.n_trials,
            n_workers=args.n_workers,
            sampler=args.sampler,
            prune=not args.no_prune,
            storage=args.storage or default_storage(),
            study_name=args.study_name,
        )

    def __post_init__(self) -> None:
        if not 1 <= self.n_trials <= 10_000:
            raise SweepError("--n-trials must be between 1 and 10000")
        if not 1 <= self.n_workers <= 64:
            raise SweepError("--n-workers must be between 1 and 64")
        if self.sampler not in SAMPLERS:
            raise SweepError(f"--sampler must be one of {', '.join(SAMPLERS)}")
        if not self.space:
            raise SweepError("--space: the search space is empty")
        searchable = [*self.config.model_class.hyperparameters()]
        if self.config.model_class.uses_features:
            searchable += FEATURE_DIMENSIONS
        foreign = [name for name in self.space if name not in searchable]
        if foreign:
            raise SweepError(f"--space {', '.join(foreign)}: not a hyperparameter of --model {self.config.model}")
        if self.sampler == "grid":
            grid_points(self.space)


def add_sweep_flags(parser: argparse.ArgumentParser) -> None:
    """The ``sweep`` subcommand's flags: data/run/hyperparameter flags (fixed values) plus the search options."""

    add_train_flags(parser)
    parser.set_defaults(**SWEEP_DEFAULTS)
    group = parser.add_argument_group("sweep")
    group.add_argument(
        "--space",
        action="append",
        default=None,
        metavar="NAME=SPEC",
        help="Searched hyperparameter (repeatable): NAME=LOW:HIGH, NAME=LOW:HIGH:log or NAME=A,B,C. Hyperparameters "
        "not searched keep their flag value. Default per --model: "
        + "; ".join(f"{m}: {' '.join(cls.default_space)}" for m, cls in MODELS.items() if cls.default_space)
        + ".",
    )
    group.add_argument("--n-trials", type=int, default=20, help="Total trials of the study (default 20).")
    group.add_argument(
        "--n-workers", type=int, default=1, help="Worker processes on this machine sharing the study (default 1)."
    )
    group.add_argument("--sampler", default="tpe", choices=SAMPLERS, help="Optuna sampler (default tpe).")
    group.add_argument(
        "--objective",
        default=None,
        help="Validation metric to maximise: precision, recall, ndcg, mrr, map, hit_rate (default: "
        "--early-stopping-metric, ndcg). Also drives early stopping and pruning.",
    )
    group.add_argument("--no-prune", action="store_true", help="Do not prune poor trials (median pruner).")
    group.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL (any SQLAlchemy database Optuna supports); share it to spread one study over "
        f"processes or machines (default: {STORAGE_FILE} beside a SQLite tracking store, else in the recdash "
        "cache folder $RECDASH_CACHE_DIR, default ~/.cache/recdash).",
    )
    group.add_argument("--study-name", default=None, help="Optuna study name (default recdash-<parent run id>).")
    group.add_argument(
        "--worker",
        action="store_true",
        help="Join the existing study --study-name in --storage and run its queued trials (other flags are "
        "taken from the study).",
    )
    group.add_argument(
        "--wait", type=float, default=60.0, help="--worker: seconds to wait for the study to appear (default 60)."
    )
    group.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
