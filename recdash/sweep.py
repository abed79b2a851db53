"""Optuna hyperparameter sweeps over any model (``--model``): one parent MLflow run per sweep, one nested child
run per trial.

``--n-trials`` is the study's exact total. The process that creates the study puts that many empty trials in
Optuna's trial queue (WAITING); every worker -- the creator, the ``--n-workers`` helpers it spawns, or
``sweep --worker`` processes started on other machines against the same ``--storage`` -- claims queued trials
with Optuna's atomic WAITING->RUNNING update until none are left. So no trial runs twice and none is lost,
however many workers join. Everything a worker needs (training config, search space, parent run) is stored
in the study's user attributes, so a worker only needs ``--storage`` and ``--study-name``.

Each trial is a normal training run (:func:`recdash.train.train`) nested under the parent run; its per-epoch
validation metric feeds Optuna's median pruner, and pruned trials end with ``recdash.trial_state=pruned``
(closed-form models report their one validation step). Each model has its own default search space.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recdash.flags import (
    add_data_flags,
    add_hyperparameter_flags,
    add_model_flag,
    add_run_flags,
    check_stop,
    identity_tags,
    train_config_from_args,
)
from recdash.models import DEFAULT_MODEL, HyperparameterError, all_hyperparameters, coerce_param, get_model, params_for
from recdash.train import (
    TAG_HOST,
    TAG_KIND,
    TAG_PID,
    ConfigError,
    TrainConfig,
    config_dict,
    experiment_id_for,
    run_outcome,
)

if TYPE_CHECKING:  # pragma: no cover
    import optuna

SAMPLERS = ("tpe", "random", "grid")
STORAGE_FILE = "optuna.db"
TAG_TRIAL_STATE = "recdash.trial_state"
TAG_TRIAL_NUMBER = "recdash.trial_number"
TAG_SWEEP_RUN = "recdash.sweep_run_id"
TAG_STUDY = "recdash.study_name"
TAG_TRIALS_TOTAL = "recdash.trials_total"
STUDY_ATTR = "recdash"  # study user attribute holding what workers need
# Searched when the user names no --space, per model. rankfm's is centred on what ML-100K rewarded in our runs:
# WARP (BPR's best validation NDCG@10 in 3 tries was 0.239, WARP's 0.251-0.256), rates around 0.05 (0.1 peaks early
# and lower), light L2 (alpha 0.03 lost 0.01). 20 trials with pruning took 102 s on ML-100K.
DEFAULT_SPACES: dict[str, tuple[str, ...]] = {
    "rankfm": (
        "factors=32:128",
        "learning_rate=0.02:0.1:log",
        "alpha=0.001:0.03:log",
    ),
    "ease": ("l2=10:5000:log",),
    "itemknn": ("neighbours=10:500:log", "shrink=0:200"),
    "popularity": (),
}
DEFAULT_SPACE_SPECS = DEFAULT_SPACES[DEFAULT_MODEL]
SWEEP_DEFAULTS = {"epochs": 30, "patience": 3}


class SweepError(ConfigError):
    """A sweep option that cannot work; the message names the flag (the CLI prints it and exits 2)."""


def default_storage(tracking_uri: str | None = None) -> str:
    """The Optuna storage used when ``--storage`` is not given: ``optuna.db`` beside a SQLite tracking store
    (the studies belong with the runs they made), else in the recdash cache folder ($RECDASH_CACHE_DIR, default
    ~/.cache/recdash). Never the working directory, where it would land in whatever folder the app started in."""
    import mlflow

    uri = tracking_uri or mlflow.get_tracking_uri()
    if uri.startswith("sqlite:"):
        from sqlalchemy.engine import make_url

        try:
            database = make_url(uri).database
        except Exception:  # an unparsable URI: MLflow itself reports it; the cache folder still works
            database = None
        if database and database != ":memory:" and not database.startswith("file:"):
            return f"sqlite:///{Path(database).expanduser().resolve().parent / STORAGE_FILE}"
    folder = Path(os.environ.get("RECDASH_CACHE_DIR", "~/.cache/recdash")).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / STORAGE_FILE}"


@dataclass(frozen=True)
class Dimension:
    """How one hyperparameter is searched: a range (optionally log scale) or a list of choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if all_hyperparameters()[self.name].kind is int:
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
            return Dimension(name, low, high, log)
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
    for item in items or DEFAULT_SPACES.get(name, ()):
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
    argv: tuple[str, ...] = field(default_factory=tuple)

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

    add_model_flag(parser)
    add_data_flags(parser)
    add_run_flags(parser)
    add_hyperparameter_flags(parser)
    parser.set_defaults(**SWEEP_DEFAULTS, handler=_cmd_sweep)
    group = parser.add_argument_group("sweep")
    group.add_argument(
        "--space",
        action="append",
        default=None,
        metavar="NAME=SPEC",
        help="Searched hyperparameter (repeatable): NAME=LOW:HIGH, NAME=LOW:HIGH:log or NAME=A,B,C. Hyperparameters "
        "not searched keep their flag value. Default per --model: "
        + "; ".join(f"{m}: {' '.join(space)}" for m, space in DEFAULT_SPACES.items() if space)
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


def sweep_spec_from_args(args: argparse.Namespace, argv: Sequence[str] = ()) -> SweepSpec:
    """Validate flags into a SweepSpec (raises SweepError/ConfigError/HyperparameterError)."""

    if args.objective:
        args.early_stopping_metric = args.objective
    config = train_config_from_args(args)
    return SweepSpec(
        config=config,
        space=parse_space(args.space, config.model),
        n_trials=args.n_trials,
        n_workers=args.n_workers,
        sampler=args.sampler,
        prune=not args.no_prune,
        storage=args.storage or default_storage(),
        study_name=args.study_name,
        argv=tuple(argv),
    )


def _config_from_dict(values: dict[str, Any]) -> TrainConfig:
    values = dict(values)
    values["hparams"] = params_for(values.get("model", DEFAULT_MODEL), values["hparams"])
    values["split_fractions"] = tuple(values["split_fractions"])
    return TrainConfig(**values)


def _make_storage(url: str) -> optuna.storages.BaseStorage:
    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    # SQLite: wait for the write lock instead of failing when several workers write at once
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(3):
        try:
            rdb = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
            # the caching wrapper Optuna's Study uses; trials we claim must go through the same object
            return optuna.storages.get_storage(rdb)
        except (IntegrityError, ProgrammingError):
            # two workers creating Optuna's tables in an empty database at the same moment collide
            # (PostgreSQL: "type ... already exists"); the loser finds the tables there on the next try
            if attempt == 2:
                raise SweepError(f"--storage {_safe_url(url)!r}: Optuna's tables could not be created") from None
            time.sleep(1.0 + attempt)
        except Exception as exc:  # bad URL, missing driver, unreachable server
            raise SweepError(f"--storage {url!r} cannot be opened: {type(exc).__name__}: {exc}"[:500]) from None
    raise AssertionError("unreachable")


def _make_sampler(name: str, seed: int | None, parallel: bool) -> optuna.samplers.BaseSampler:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=parallel)
    return optuna.samplers.RandomSampler(seed=seed)  # grid points are enqueued as fixed params


def _safe_url(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable>"


@dataclass
class SweepResult:
    parent_run_id: str
    study_name: str
    best_trial_number: int | None
    best_value: float | None
    best_run_id: str | None
    n_complete: int
    n_pruned: int
    n_failed: int
    best_metrics: dict[str, float] = field(default_factory=dict)


class _Worker:
    """Claims queued trials of one study and runs each as a nested training run until none are left."""

    def __init__(self, storage_url: str, study_name: str, worker_index: int | None, wait: float = 0.0) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.storage = _make_storage(storage_url)
        attrs = self._wait_for_study(study_name, wait)
        self.attrs = attrs
        self.config = _config_from_dict(attrs["config"])
        self.space = {
            name: parse_dimension(f"{name}={text}", self.config.model) for name, text in attrs["space"].items()
        }
        self.parent_run_id: str = attrs["parent_run_id"]
        self.n_trials: int = attrs["n_trials"]
        seed = None if worker_index is None else self.config.seed + worker_index
        pruner = (
            optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
            if attrs["prune"]
            else optuna.pruners.NopPruner()
        )
        self.study = optuna.load_study(
            study_name=study_name,
            storage=self.storage,
            sampler=_make_sampler(attrs["sampler"], seed, True),
            pruner=pruner,
        )
        self.data: Any = None

    def _wait_for_study(self, study_name: str, wait: float) -> dict[str, Any]:
        """A worker may start before the sweep that creates the study: wait for it to be ready."""
        deadline = time.monotonic() + wait
        while True:
            try:
                self.study_id = self.storage.get_study_id_from_name(study_name)
                attrs = self.storage.get_study_user_attrs(self.study_id).get(STUDY_ATTR)
            except KeyError:
                attrs = None
            if attrs:
                return attrs
            if time.monotonic() >= deadline:
                raise SweepError(f"--study-name {study_name!r} is not a ready recdash sweep study in that --storage")
            time.sleep(1.0)

    def parent_active(self) -> bool:
        from mlflow import MlflowClient

        return MlflowClient().get_run(self.parent_run_id).info.status == "RUNNING"

    def claim(self) -> optuna.Trial | None:
        """Atomically take one queued trial (None when the queue is empty)."""
        import optuna
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        for frozen in self.storage.get_all_trials(self.study_id, deepcopy=False, states=(TrialState.WAITING,)):
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, frozen.number)
            try:
                if self.storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                    return optuna.Trial(self.study, trial_id)
            except UpdateFinishedTrialError:
                continue
        return None

    def run(self) -> int:
        """Run queued trials until none are left (or the parent run is no longer RUNNING); returns trials run."""
        from recdash.train import load_data

        done = 0
        while self.parent_active():
            check_stop()
            trial = self.claim()
            if trial is None:
                break
            if self.data is None:
                self.data = load_data(self.config)  # once per worker, shared by its trials
            self.run_trial(trial)
            done += 1
        return done

    def child_run_id(self, client: Any, number: int) -> str | None:
        """The trial's MLflow run (found by tags: the trial may have failed before train() returned)."""
        experiment_id = client.get_run(self.parent_run_id).info.experiment_id
        runs = client.search_runs(
            [experiment_id],
            f"tags.`{TAG_SWEEP_RUN}` = '{self.parent_run_id}' and tags.`{TAG_TRIAL_NUMBER}` = '{number}'",
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def run_trial(self, trial: optuna.Trial) -> None:
        from mlflow import MlflowClient
        from optuna.trial import TrialState

        from recdash.train import StopRun, train

        config = self.config
        monitor = config.monitor
        params = {name: dim.suggest(trial) for name, dim in self.space.items()}
        tags = {
            **config.tags,
            **identity_tags(),  # this worker's, not the process's that created the study
            TAG_SWEEP_RUN: self.parent_run_id,
            TAG_TRIAL_NUMBER: str(trial.number),
            TAG_TRIAL_STATE: "running",
        }
        run_name = f"{config.run_name or 'sweep'}-trial-{trial.number}"
        client = MlflowClient()

        def on_epoch(epoch: int, val: dict[str, float]) -> None:
            check_stop()
            trial.report(val[monitor], epoch)
            if trial.should_prune():
                raise StopRun("KILLED", f"pruned by median pruner at epoch {epoch}")

        state, value, error = TrialState.FAIL, None, ""
        try:
            data_choices = {name: params.pop(name) for name in FEATURE_DIMENSIONS if name in params}
            trial_config = _replace_config(
                config,
                hparams=type(config.params_)(**{**config.params_.as_dict(), **params}),
                run_name=run_name,
                tags=tags,
                **data_choices,
            )
            result = train(trial_config, self.data, on_epoch=on_epoch, nested=True, parent_run_id=self.parent_run_id)
            value = result.metrics[f"best_{monitor}"]
            state = TrialState.COMPLETE
        except StopRun:
            state = TrialState.PRUNED
        except KeyboardInterrupt:
            self._finish(trial, client, TrialState.FAIL, None, "interrupted")
            raise
        except Exception as exc:  # one bad trial (e.g. diverging SGD) must not end the sweep
            error = f"{type(exc).__name__}: {exc}"[:500]
            print(f"trial {trial.number} failed: {error}", file=sys.stderr, flush=True)
        self._finish(trial, client, state, value, error)

    def _finish(self, trial: Any, client: Any, state: Any, value: float | None, error: str) -> None:
        from optuna.trial import TrialState

        label = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(state, "failed")
        child = self.child_run_id(client, trial.number)
        if child:
            client.set_tag(child, TAG_TRIAL_STATE, label)
            trial.set_user_attr("mlflow_run_id", child)
        if error:
            trial.set_user_attr("error", error)
        frozen = (
            self.study.tell(trial, value, state=state) if value is not None else self.study.tell(trial, state=state)
        )
        reported = frozen.value
        if reported is not None and math.isfinite(reported):
            client.log_metric(self.parent_run_id, "trial_value", reported, step=trial.number)
        try:
            best = self.study.best_value
        except ValueError:
            best = None
        finished = sum(
            1 for t in self.study.get_trials(deepcopy=False) if t.state not in (TrialState.WAITING, TrialState.RUNNING)
        )
        if best is not None:
            client.log_metric(self.parent_run_id, "best_value_so_far", best, step=finished)
        client.log_metric(self.parent_run_id, "trials_finished", finished, step=finished)
        shown = "-" if reported is None else f"{reported:.4f}"
        best_text = "-" if best is None else f"{best:.4f}"
        print(
            f"trial {trial.number} {label}: {self.config.monitor}={shown}  best={best_text}  "
            f"({finished}/{self.n_trials} finished)",
            flush=True,
        )


def _replace_config(config: TrainConfig, **changes: Any) -> TrainConfig:
    from dataclasses import replace

    return replace(config, **changes)


def run_sweep(spec: SweepSpec, *, worker_index: int = 0) -> SweepResult:
    """Create the study and the parent run, run the trials (here and in ``n_workers - 1`` helper processes) and
    log the best trial on the parent run. The parent ends FINISHED, KILLED (Ctrl-C/SIGTERM) or FAILED."""
    import mlflow
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _make_storage(spec.storage)  # fail on a bad URL before any run exists
    config = spec.config
    if not os.environ.get("MLFLOW_RUN_ID"):  # a dashboard job resumes the run it queued
        mlflow.set_experiment(experiment_id=experiment_id_for(config.experiment))  # created with its kind tag
    tags = {
        "recdash.created_by": "recdash",
        TAG_KIND: "sweep",
        TAG_PID: str(os.getpid()),
        TAG_HOST: socket.gethostname(),
        **identity_tags(),
        TAG_TRIALS_TOTAL: str(spec.n_trials),
        "recdash.epochs_total": str(config.epochs),
        **config.tags,
    }
    parent = mlflow.start_run(run_name=config.run_name, tags=tags)
    parent_id = parent.info.run_id
    study_name = spec.study_name or f"recdash-{parent_id}"
    helpers: list[subprocess.Popen[bytes]] = []
    with run_outcome(lambda: f"{result.n_complete} complete, {result.n_pruned} pruned, {result.n_failed} failed"):
        try:
            mlflow.set_tag(TAG_STUDY, study_name)
            try:
                optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
            except optuna.exceptions.DuplicatedStudyError:
                raise SweepError(
                    f"--study-name {study_name!r} already exists; pick another or join it with --worker"
                ) from None
            study_id = storage.get_study_id_from_name(study_name)
            points = grid_points(spec.space) if spec.sampler == "grid" else []
            if points:
                random.Random(config.seed).shuffle(points)
            n_trials = min(spec.n_trials, len(points)) if points else spec.n_trials
            mlflow.set_tag(TAG_TRIALS_TOTAL, str(n_trials))
            mlflow.log_params(
                {
                    **config.params(),
                    "dataset": config.dataset,
                    "search_space": json.dumps(space_to_json(spec.space)),
                    "sampler": spec.sampler,
                    "n_trials": n_trials,
                    "n_workers": spec.n_workers,
                    # not "objective": `mlflow run` already logged that entry-point parameter with the short name
                    "objective_metric": config.monitor,
                    "pruner": "median" if spec.prune else "none",
                    "storage": _safe_url(spec.storage),
                    "study_name": study_name,
                }
            )
            study = optuna.load_study(study_name=study_name, storage=storage)
            for i in range(n_trials):  # the queue that makes --n-trials exact across workers
                study.enqueue_trial(points[i] if points else {})
            # set last: workers wait for it, so they never see a half-made study
            storage.set_study_user_attr(
                study_id,
                STUDY_ATTR,
                {
                    "config": config_dict(config),
                    "space": space_to_json(spec.space),
                    "parent_run_id": parent_id,
                    "n_trials": n_trials,
                    "sampler": spec.sampler,
                    "prune": spec.prune,
                },
            )
            helpers = [_spawn_worker(spec.storage, study_name, i) for i in range(1, spec.n_workers)]
            worker = _Worker(spec.storage, study_name, worker_index)
            worker.run()
            for proc in helpers:
                while proc.poll() is None:
                    check_stop()
                    time.sleep(0.2)
            check_stop()
            _wait_for_running_trials(storage, study_id)
            result = _summarise(storage, study_name, parent_id)
            if result.best_trial_number is None:
                raise SweepError("no trial completed (see the child runs' recdash.error tags)")
        except BaseException:
            _stop_helpers(helpers)  # before the run ends: no worker keeps logging trials of an ended sweep
            raise
    return result


def _spawn_worker(storage: str, study_name: str, index: int) -> subprocess.Popen[bytes]:
    """A helper worker process in this process group, so a cancel of the sweep reaches it too."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")}
    cmd = [sys.executable, "-m", "recdash", "sweep", "--worker", "--storage", storage, "--study-name", study_name]
    return subprocess.Popen([*cmd, "--worker-index", str(index)], env=env)


def _stop_helpers(helpers: list[subprocess.Popen[bytes]], grace: float = 15.0) -> None:
    for proc in helpers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in helpers:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_running_trials(storage: Any, study_id: int, timeout: float = 3600.0, poll: float = 2.0) -> None:
    """Trials claimed by workers on other machines may still run after the local queue is empty."""
    from optuna.trial import TrialState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_stop()
        if not storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            return
        time.sleep(poll)


def _summarise(storage: Any, study_name: str, parent_id: str) -> SweepResult:
    """Log the best trial (number, value, run id, params, test metrics) on the parent run."""
    import mlflow
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study_name)
    trials = storage.get_all_trials(study_id, deepcopy=False)
    attrs = storage.get_study_user_attrs(study_id)[STUDY_ATTR]
    monitor = _config_from_dict(attrs["config"]).monitor
    counts = {s: sum(1 for t in trials if t.state == s) for s in (TrialState.COMPLETE, TrialState.PRUNED)}
    n_failed = sum(1 for t in trials if t.state == TrialState.FAIL)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    result = SweepResult(
        parent_id, study_name, None, None, None, counts[TrialState.COMPLETE], counts[TrialState.PRUNED], n_failed
    )
    metrics = {
        "n_trials_complete": float(result.n_complete),
        "n_trials_pruned": float(result.n_pruned),
        "n_trials_failed": float(n_failed),
    }
    if complete:
        best = max(complete, key=lambda t: (t.value, -t.number))
        result.best_trial_number, result.best_value = best.number, float(best.value)
        result.best_run_id = best.user_attrs.get("mlflow_run_id")
        metrics |= {f"best_{monitor}": result.best_value, "best_trial_number": float(best.number)}
        if result.best_run_id:
            child = MlflowClient().get_run(result.best_run_id).data.metrics
            result.best_metrics = {k: v for k, v in child.items() if k.startswith("test_")}
            metrics |= {f"best_{k}": v for k, v in result.best_metrics.items()}
            mlflow.set_tag("recdash.best_run_id", result.best_run_id)
        mlflow.log_params({f"best_{k}": v for k, v in best.params.items()})
    mlflow.log_metrics(metrics)
    return result


def _cmd_sweep(args: argparse.Namespace) -> int:
    if args.worker:
        if not args.study_name:
            raise SweepError("--worker needs --study-name (and the --storage that holds it)")
        worker = _Worker(args.storage or default_storage(), args.study_name, args.worker_index, wait=args.wait)
        done = worker.run()
        print(json.dumps({"study_name": args.study_name, "trials_run": done}))
        return 0
    spec = sweep_spec_from_args(args)
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


__all__ = [
    "ConfigError",
    "Dimension",
    "SweepError",
    "SweepResult",
    "SweepSpec",
    "add_sweep_flags",
    "parse_space",
    "run_sweep",
    "sweep_spec_from_args",
]
