"""Optuna hyperparameter sweeps over any model (``--model``): one parent MLflow run per sweep, one nested child
run per trial (what is searched: :mod:`recdash.training.sweep_spec`).

``--n-trials`` is the study's exact total. The process that creates the study puts that many empty trials in
Optuna's trial queue (WAITING); every worker -- the creator, the ``--n-workers`` helpers it spawns, or
``sweep --worker`` processes started on other machines against the same ``--storage`` -- claims queued trials
with Optuna's atomic WAITING->RUNNING update until none are left. So no trial runs twice and none is lost,
however many workers join. Everything a worker needs (training config, search space, parent run) is stored
in the study's user attributes, so a worker only needs ``--storage`` and ``--study-name``.

Each trial is a normal training run (:func:`run.train`) nested under the parent run; its per-epoch
validation metric feeds Optuna's median pruner, and pruned trials end with ``recdash.trial_state=pruned``
(closed-form models report their one validation step). Each model has its own default search space.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

import mlflow
import optuna
from mlflow.exceptions import MlflowException
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, ProgrammingError

from recdash import contract, tracking
from recdash.config import TrainConfig
from recdash.process import check_stop, identity_tags
from recdash.training.run import StopRun, experiment_id_for, load_data, prepare, run_outcome, run_tags, train
from recdash.training.sweep_spec import (
    FEATURE_DIMENSIONS,
    SweepError,
    SweepSpec,
    default_storage,
    grid_points,
    parse_dimension,
    space_to_json,
)

STUDY_ATTR = "recdash"  # study user attribute holding what workers need


def _make_storage(url: str) -> optuna.storages.BaseStorage:
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
            said = _without_password(f"{type(exc).__name__}: {exc}", url)
            raise SweepError(f"--storage {_safe_url(url)!r} cannot be opened: {said}"[:500]) from None
    raise AssertionError("unreachable")


def _make_sampler(name: str, seed: int | None, parallel: bool) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=parallel)
    return optuna.samplers.RandomSampler(seed=seed)  # grid points are enqueued as fixed params


def _without_password(text: str, url: str) -> str:
    """``text`` with the URL's password masked (a driver's error may quote the connection string)."""
    try:
        password = make_url(url).password
    except Exception:
        return text
    return text.replace(str(password), "***") if password else text


def _safe_url(url: str) -> str:
    try:
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
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.storage = _make_storage(storage_url)
        attrs = self._wait_for_study(study_name, wait)
        self.attrs = attrs
        self.config = TrainConfig.from_dict(attrs["config"])
        self.space = {
            name: parse_dimension(f"{name}={text}", self.config.model) for name, text in attrs["space"].items()
        }
        self.parent_run_id: str = attrs["parent_run_id"]
        self._check_parent_run()
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

    def _check_parent_run(self) -> None:
        """The study names its sweep's parent run; a worker pointed at another tracking store (another host's
        default ``sqlite:///mlflow.db``, no ``MLFLOW_TRACKING_URI``) would fail on its first trial with MLflow's
        "Run ... not found": say what to set instead."""
        try:
            tracking.client().get_run(self.parent_run_id)
        except MlflowException:
            raise SweepError(
                f"the sweep's parent run {self.parent_run_id} is not in the tracking store this worker uses "
                f"({_safe_url(tracking.tracking_uri())}): set MLFLOW_TRACKING_URI to the store the sweep was started "
                "with"
            ) from None

    def parent_active(self) -> bool:
        return tracking.client().get_run(self.parent_run_id).info.status == "RUNNING"

    def claim(self) -> optuna.Trial | None:
        """Atomically take one queued trial (None when the queue is empty)."""
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
            f"tags.`{contract.TAG_SWEEP_RUN}` = '{self.parent_run_id}' "
            f"and tags.`{contract.TAG_TRIAL_NUMBER}` = '{number}'",
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def run_trial(self, trial: optuna.Trial) -> None:
        config = self.config
        monitor = config.monitor
        params = {name: dim.suggest(trial) for name, dim in self.space.items()}
        tags = {
            **config.tags,
            **identity_tags(),  # this worker's, not the process's that created the study
            contract.TAG_SWEEP_RUN: self.parent_run_id,
            contract.TAG_TRIAL_NUMBER: str(trial.number),
            contract.TAG_TRIAL_STATE: "running",
        }
        run_name = f"{config.run_name or 'sweep'}-trial-{trial.number}"
        client = tracking.client()

        def on_epoch(epoch: int, val: dict[str, float]) -> None:
            check_stop()
            trial.report(val[monitor], epoch)
            if trial.should_prune():
                raise StopRun("KILLED", f"pruned by median pruner at epoch {epoch}")

        state, value, error = TrialState.FAIL, None, ""
        try:
            data_choices = {name: params.pop(name) for name in FEATURE_DIMENSIONS if name in params}
            trial_config = replace(
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
        label = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(state, "failed")
        child = self.child_run_id(client, trial.number)
        if child:
            client.set_tag(child, contract.TAG_TRIAL_STATE, label)
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


def run_sweep(spec: SweepSpec, *, worker_index: int = 0) -> SweepResult:
    """Create the study and the parent run, run the trials (here and in ``n_workers - 1`` helper processes) and
    log the best trial on the parent run. The parent ends FINISHED, KILLED (Ctrl-C/SIGTERM) or FAILED."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _make_storage(spec.storage)  # fail on a bad URL before any run exists
    config = spec.config
    prepare(config, model_check=False)  # data a trial would refuse is refused before the parent run exists
    if not os.environ.get("MLFLOW_RUN_ID"):  # a dashboard job resumes the run it queued
        mlflow.set_experiment(experiment_id=experiment_id_for(config.experiment))  # created with its kind tag
    tags = run_tags(contract.KIND_SWEEP, config.epochs, {contract.TAG_TRIALS_TOTAL: str(spec.n_trials), **config.tags})
    parent = mlflow.start_run(run_name=config.run_name, tags=tags)
    parent_id = parent.info.run_id
    study_name = spec.study_name or f"recdash-{parent_id}"
    helpers: list[subprocess.Popen[bytes]] = []
    with run_outcome(lambda: f"{result.n_complete} complete, {result.n_pruned} pruned, {result.n_failed} failed"):
        try:
            mlflow.set_tag(contract.TAG_STUDY, study_name)
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
            mlflow.set_tag(contract.TAG_TRIALS_TOTAL, str(n_trials))
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
                    "config": config.to_dict(),
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_stop()
        if not storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            return
        time.sleep(poll)


def _summarise(storage: Any, study_name: str, parent_id: str) -> SweepResult:
    """Log the best trial (number, value, run id, params, test metrics) on the parent run."""
    study_id = storage.get_study_id_from_name(study_name)
    trials = storage.get_all_trials(study_id, deepcopy=False)
    attrs = storage.get_study_user_attrs(study_id)[STUDY_ATTR]
    monitor = TrainConfig.from_dict(attrs["config"]).monitor
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
            child = tracking.client().get_run(result.best_run_id).data.metrics
            result.best_metrics = {k: v for k, v in child.items() if k.startswith("test_")}
            metrics |= {f"best_{k}": v for k, v in result.best_metrics.items()}
            mlflow.set_tag(contract.TAG_BEST_RUN, result.best_run_id)
        mlflow.log_params({f"best_{k}": v for k, v in best.params.items()})
    mlflow.log_metrics(metrics)
    return result


def run_worker(storage: str | None, study_name: str | None, worker_index: int | None = None, wait: float = 60.0) -> int:
    """``sweep --worker``: join the study ``study_name`` in ``storage`` and run its queued trials; returns how many."""
    if not study_name:
        raise SweepError("--worker needs --study-name (and the --storage that holds it)")
    return _Worker(storage or default_storage(), study_name, worker_index, wait=wait).run()


__all__ = ["SweepResult", "run_sweep", "run_worker"]
