"""Background training and sweep jobs whose state lives in MLflow, not in the dashboard process.

A job is an MLflow run created up front with status SCHEDULED (the queue), the CLI arguments in a tag, and
``recdash.job_state``. :func:`tick` -- called by the Train page on every refresh, no thread needed -- starts
queued jobs as ``python -m recdash train|sweep ...`` subprocesses (each in its own session, so a crash or a
memory blow-up never takes the app down) while fewer than the concurrency limit run, and reconciles RUNNING
runs whose process is gone: they end FAILED with the reason in ``recdash.error``, so an app restart or a
``kill -9`` never leaves a run RUNNING forever. A run's process is known by its PID *and* its start
(``recdash.process_start``, :mod:`recdash.flags`), so a later process that reuses the PID is never taken for
the job. :func:`cancel` sends SIGTERM to the job's process group (the CLI stops at the end of the current
epoch, the run ends KILLED) and the job shows as "cancelling" until then; :func:`tick` escalates to SIGKILL
after a grace period. Nothing here imports streamlit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from recdash import contract, settings, tracking
from recdash.config import TrainConfig
from recdash.contract import (
    MLFLOW_PARENT_RUN,
    TAG_ARGV,
    TAG_CANCEL_AT,
    TAG_END_REASON,
    TAG_EPOCHS_TOTAL,
    TAG_ERROR,
    TAG_HOST,
    TAG_JOB_STATE,
    TAG_KIND,
    TAG_LAUNCHED_AT,
    TAG_LOG,
    TAG_PID,
    TAG_PROCESS_START,
    TAG_REFUSED,
    TAG_SLOTS,
    run_label,
)
from recdash.errors import UserError
from recdash.process import proc_stat, process_start, start_epoch
from recdash.tracking.client import search_runs
from recdash.training.references import ReferencesSpec, prepare_references
from recdash.training.run import load_data, prepare
from recdash.training.sweep_spec import FEATURE_DIMENSIONS, SweepSpec

STATES = {"SCHEDULED": "queued", "RUNNING": "running", "FINISHED": "finished", "FAILED": "failed", "KILLED": "killed"}
ACTIVE_STATES = ("queued", "running", "cancelling")  # "cancelling": RUNNING with a cancel requested
CANCEL_GRACE_SECONDS = 10.0
MAX_CHART_POINTS = 500  # per series of a job's live chart
MAX_UPLOAD_BYTES = 100 * 2**20

# Processes this app started: polled (non-blocking) so finished ones are reaped, never waited for.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class JobError(UserError, ValueError):
    """A job request that cannot be carried out; the message says why."""


class JobSpec(Protocol):
    """What can be queued: a :class:`~recdash.config.TrainConfig`, a :class:`~recdash.training.sweep.SweepSpec`
    or a :class:`~recdash.training.references.ReferencesSpec` (each knows its command line)."""

    kind: str

    def to_argv(self) -> list[str]: ...


def jobs_dir() -> Path:
    """Where job logs and uploads go (``RECDASH_JOBS_DIR``)."""
    path = settings.JOBS_DIR.get()
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_limit() -> int:
    """Concurrent job slots (``RECDASH_MAX_JOBS``, default the number of cores)."""
    return settings.MAX_JOBS.get()


# ---------------------------------------------------------------------------------------------------- specs


def config_of(spec: JobSpec) -> TrainConfig:
    """The training configuration inside a job spec (a sweep's or references' base config)."""
    return spec if isinstance(spec, TrainConfig) else spec.config  # type: ignore[attr-defined]


def parse_job(kind: str, argv: list[str]) -> JobSpec:
    """The spec a job's command line describes, validated exactly as the job's process will validate it."""
    parsers = {contract.KIND_TRAIN: TrainConfig.from_argv, contract.KIND_SWEEP: SweepSpec.from_argv,
               contract.KIND_REFERENCES: ReferencesSpec.from_argv}  # fmt: skip
    if kind not in parsers:
        raise JobError(f"unknown job kind {kind!r}; use one of {', '.join(parsers)}")
    return parsers[kind](argv)


def _steps_total(spec: JobSpec) -> int:
    """Steps the job's progress counts: epochs (training), models (references) or epochs of one trial (sweep)."""
    if isinstance(spec, ReferencesSpec):
        return len(spec.model_names)
    return config_of(spec).epochs_total if isinstance(spec, TrainConfig) else config_of(spec).epochs


# ---------------------------------------------------------------------------------------------------- submit


def submit(spec: JobSpec, *, tracking_uri: str | None = None) -> str:
    """Queue a job: an MLflow run with status SCHEDULED holding the job's command line; :func:`tick` starts it.
    Returns the run id. A store recdash only reads (a legacy file store) is refused before anything is written."""
    uri = tracking.resolve(tracking_uri)
    tracking.check_writable(uri, "training")
    config = config_of(spec)
    client = tracking.client(uri)
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is not None and experiment.lifecycle_stage != "active":
        raise JobError(f"experiment {config.experiment!r} is deleted; restore it or pick another name")
    if experiment is None:  # made by recdash: it opens on its training runs in MLflow's UI
        experiment_id = client.create_experiment(config.experiment, tags=contract.NEW_EXPERIMENT_TAGS)
    else:
        experiment_id = experiment.experiment_id
    tags = {
        contract.TAG_CREATED_BY: "recdash",
        # the owner, as on every run the job makes (run.run_tags); MLflow takes the run's user from this tag
        contract.MLFLOW_USER: settings.USER.get(),
        TAG_KIND: spec.kind,
        TAG_JOB_STATE: "queued",
        TAG_ARGV: json.dumps([spec.kind, *spec.to_argv()]),
        TAG_SLOTS: str(max(1, int(getattr(spec, "slots", 1)))),
        TAG_EPOCHS_TOTAL: str(_steps_total(spec)),
    }
    if isinstance(spec, SweepSpec):
        tags[contract.TAG_TRIALS_TOTAL] = str(spec.n_trials)
    run = client.create_run(experiment_id, run_name=config.run_name, tags=tags)
    client.update_run(run.info.run_id, status="SCHEDULED")
    return run.info.run_id


def check_spec(spec: JobSpec) -> list[str]:
    """Refuse (a UserError) what the job's process would refuse about its data, before it is queued: the checks of
    :func:`recdash.training.run.prepare`, as the process makes them, for a training, for each reference model, and
    for a sweep's data and each side-feature choice it searches. A sweep that searches hyperparameters is not
    refused by the model's check of the values it leaves alone (trials may move away from them): that comes back
    as a note instead. Loads the data: callers cache it."""
    config = config_of(spec)
    if isinstance(spec, ReferencesSpec):
        prepare_references(config, load_data(config), spec.model_names)
        return []
    if not isinstance(spec, SweepSpec):
        prepare(config)
        return []
    data = load_data(config)
    prepare(config, data, model_check=False)
    for name in FEATURE_DIMENSIONS:
        for choice in getattr(spec.space.get(name), "choices", None) or ():
            prepare(config.replace(**{name: str(choice)}), data, model_check=False)
    try:
        prepare(config, data)
    except UserError as exc:
        if all(name in FEATURE_DIMENSIONS for name in spec.space):
            raise  # every trial keeps these hyperparameters: every trial would be refused
        return [f"With the hyperparameters the search leaves as they are, a trial is refused: {exc}"]
    return []


def finished_seeds(config: TrainConfig, tracking_uri: str | None = None) -> dict[int, str]:
    """Seed -> run id of the FINISHED runs of ``config``'s experiment that trained this configuration on the same
    data (:meth:`TrainConfig.same_training_params`) with another or the same seed: what a repeat need not train
    again. Reference runs (their hyperparameters were chosen on validation) are not repeats."""
    client = tracking.client(tracking_uri)
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is None:
        return {}
    wanted = config.same_training_params()
    model = wanted[contract.MODEL_PARAM].replace("'", "")
    query = f"attributes.status = 'FINISHED' and params.{contract.MODEL_PARAM} = '{model}'"
    seeds: dict[int, str] = {}
    for run in search_runs(client, [experiment.experiment_id], query):
        params = run.data.params
        if run.data.tags.get(contract.TAG_REFERENCE) == "true" or "seed" not in params:
            continue
        if all(params.get(key) == value for key, value in wanted.items()):
            with contextlib.suppress(ValueError):
                seeds.setdefault(int(params["seed"]), run.info.run_id)
    return seeds


# ---------------------------------------------------------------------------------------------------- processes


def pid_alive(pid: int, started: str | None = None, run_start: float | None = None) -> bool:
    """Is ``pid`` still the process that runs the job? Zombies, dead and reused PIDs count as gone.

    ``started`` is the process identity recorded on the run (:data:`TAG_PROCESS_START`): the
    process must still have it. Runs without one (a notebook calling ``train()``) fall back to ``run_start``:
    their process created the run, so it started before the run did, and a PID handed to a later process
    fails that test. With neither, only existence is checked.
    """
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    procdir = Path(f"/proc/{pid}")
    if not procdir.exists():
        return True  # no procfs: trust the signal check
    fields = proc_stat(pid)
    if fields is None or fields[0] in ("Z", "X"):  # gone since the signal check, or only its zombie is left
        return False
    if started:
        return process_start(pid) == started
    began = start_epoch(pid)
    return began is None or run_start is None or began <= run_start + 5.0


def _run_process(run: Any) -> tuple[int | None, str | None, float]:
    """The PID, recorded process identity and creation time of a run's process, from its tags."""
    tags = run.data.tags
    try:
        pid = int(tags[TAG_PID])
    except (KeyError, ValueError):
        pid = None
    return pid, tags.get(TAG_PROCESS_START), run.info.start_time / 1000


def reap() -> None:
    """Collect exit statuses of finished child processes (no zombies), without blocking."""
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            _CHILDREN.pop(pid, None)


def _signal_job(pid: int, sig: int, started: str | None = None, run_start: float | None = None) -> None:
    """Signal the job's whole process group when it leads one (sweep helpers, trials), else just the pid.

    Nothing is sent unless ``pid`` is still the job's process: a reused PID belongs to someone else.
    """
    if not pid_alive(pid, started, run_start):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


@contextlib.contextmanager
def _launch_lock(wait: bool = False) -> Iterator[bool]:
    """One launcher at a time per machine (several browser tabs tick at once); yields False if busy.

    With ``wait`` it blocks until the lock is free: cancelling a queued job must not race a launch of it.
    """
    with (jobs_dir() / "launcher.lock").open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


STOPPED_UNEXPECTEDLY = (
    "The job stopped before it finished (its process ended without ending the run: it crashed, ran out of memory "
    "or was killed, or the machine restarted)."
)


def _note_in_log(path: str | None, text: str) -> None:
    """Append the dashboard's own note to a job's log: the details (process id, host) stay there, out of the
    reason a user reads."""
    if not path:
        return
    with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as fh:
        fh.write(f"[recdash {time.strftime('%Y-%m-%d %H:%M:%S')}] {text}\n")


def _log_tail(path: str | None, lines: int = 3) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(path) - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip() and "Warning" not in ln and "warn(" not in ln]
    return " | ".join(kept[-lines:])[:1000]


def _launch(client: Any, run: Any, tracking_uri: str) -> None:
    run_id = run.info.run_id
    argv = json.loads(run.data.tags[TAG_ARGV])
    log_path = jobs_dir() / f"{run_id}.log"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_EXPERIMENT_NAME"}
    env |= {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_RUN_ID": run_id,
        "MLFLOW_EXPERIMENT_ID": run.info.experiment_id,
        "PYTHONUNBUFFERED": "1",
    }
    # Mark it started before the process exists, so a second tick never launches it twice.
    client.update_run(run_id, status="RUNNING")
    client.set_tag(run_id, TAG_JOB_STATE, "running")
    client.set_tag(run_id, TAG_LAUNCHED_AT, f"{time.time():.3f}")
    client.set_tag(run_id, TAG_LOG, str(log_path))
    try:
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "recdash", *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: cancel signals it and its helpers only
            )
    except OSError as exc:
        client.delete_tag(run_id, TAG_LAUNCHED_AT)
        _end(client, run_id, "FAILED", f"could not start the job: {exc}", ran=False)
        return
    _CHILDREN[proc.pid] = proc
    # the process records the same identity itself once it runs; until then this one tells it from a reused pid
    started = process_start(proc.pid)
    tags = {TAG_PID: str(proc.pid), TAG_HOST: socket.gethostname(), **({TAG_PROCESS_START: started} if started else {})}
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


# ---------------------------------------------------------------------------------------------------- listing


def _experiment_ids(client: Any) -> list[str]:
    return [e.experiment_id for e in client.search_experiments()]


def _search(client: Any, filter_string: str, max_results: int = 500, order: str = "DESC") -> list[Any]:
    ids = _experiment_ids(client)
    if not ids:
        return []
    return client.search_runs(ids, filter_string, max_results=max_results, order_by=[f"attributes.start_time {order}"])


@dataclass
class Job:
    """One job as the dashboard shows it."""

    run_id: str
    kind: str
    name: str
    state: str
    experiment_id: str
    queued_at: float
    launched_at: float | None
    ended_at: float | None
    pid: int | None
    host: str | None
    epochs_total: int | None
    error: str
    log_path: str | None
    argv: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        """Queued, running or cancelling: the page keeps polling while any job is."""
        return self.state in ACTIVE_STATES


def _job(run: Any) -> Job:
    tags = run.data.tags
    info = run.info

    def num(key: str) -> float | None:
        try:
            return float(tags[key])
        except (KeyError, ValueError):
            return None

    pid = num(TAG_PID)
    epochs = num(TAG_EPOCHS_TOTAL)
    try:
        argv = json.loads(tags.get(TAG_ARGV, "[]"))
    except ValueError:
        argv = []
    state = STATES.get(info.status, info.status.lower())
    if state == "running" and TAG_CANCEL_AT in tags:
        state = "cancelling"  # shown from the click on, while the process finishes its epoch
    elif state == "failed" and TAG_REFUSED in tags:
        state = "refused"  # its data or options were refused before training: no result, nothing ran
    return Job(
        run_id=info.run_id,
        kind=tags.get(TAG_KIND, "train"),
        name=run_label(info.run_name, info.run_id),
        state=state,
        experiment_id=info.experiment_id,
        queued_at=info.start_time / 1000,
        launched_at=num(TAG_LAUNCHED_AT),
        ended_at=info.end_time / 1000 if info.end_time else None,
        pid=int(pid) if pid is not None else None,
        host=tags.get(TAG_HOST),
        epochs_total=int(epochs) if epochs is not None else None,
        error=tags.get(TAG_ERROR) or tags.get(TAG_END_REASON, ""),
        log_path=tags.get(TAG_LOG),
        argv=argv,
    )


def get_job(run_id: str, tracking_uri: str | None = None) -> Job:
    return _job(tracking.client(tracking_uri).get_run(run_id))


def list_jobs(tracking_uri: str | None = None, max_results: int = 200) -> list[Job]:
    """Jobs started from the dashboard (queued, running, cancelling, finished, failed, killed), newest first."""
    client = tracking.client(tracking_uri)
    return [_job(r) for r in _search(client, f"tags.`{TAG_JOB_STATE}` LIKE '%'", max_results)]


def same_jobs(spec: JobSpec, tracking_uri: str | None = None) -> list[Job]:
    """Queued or running jobs (not being cancelled) of exactly this configuration: same kind, same command line
    (canonical, so equal specs give equal ones). The Train page asks before queueing one more, so a double click
    does not train twice."""
    client = tracking.client(tracking_uri)
    argv = [spec.kind, *spec.to_argv()]
    found = []
    for status in ("SCHEDULED", "RUNNING"):
        found += _search(client, f"tags.`{TAG_JOB_STATE}` LIKE '%' and attributes.status = '{status}'", 1000)
    jobs = [_job(r) for r in found]
    return [j for j in jobs if j.argv == argv and j.state in ("queued", "running")]


# ---------------------------------------------------------------------------------------------------- tick


def _end(client: Any, run_id: str, status: str, reason: str, state_tag: bool = True, ran: bool = True) -> None:
    """End a run with ``status`` and the reason. A run that never ran gets no end time, so it has no duration
    anywhere (MLflow would otherwise count the time it waited in the queue)."""
    client.set_tag(run_id, TAG_ERROR, reason)
    if state_tag:
        client.set_tag(run_id, TAG_JOB_STATE, STATES[status])
    if ran:
        client.set_terminated(run_id, status=status)
    else:
        client.update_run(run_id, status=status)


def reconcile(tracking_uri: str | None = None) -> list[str]:
    """End RUNNING runs of this host whose process is gone: KILLED if a cancel was asked, else FAILED.

    Also escalates a cancel to SIGKILL when the process outlived the grace period. Returns the runs ended.
    """
    if tracking.is_file_store(tracking.resolve(tracking_uri)):
        return []  # a legacy file store is only read: no job of ours can be in it, nothing may be written
    client = tracking.client(tracking_uri)
    host = socket.gethostname()
    ended: list[str] = []
    now = time.time()
    running = _search(client, "attributes.status = 'RUNNING'", max_results=1000)
    cancelled_parents = {r.info.run_id for r in running if TAG_CANCEL_AT in r.data.tags}
    for run in running:
        tags = run.data.tags
        pid, started, run_start = _run_process(run)
        if tags.get(TAG_HOST) != host or pid is None:
            continue
        job_tagged = TAG_JOB_STATE in tags
        cancel_at = tags.get(TAG_CANCEL_AT)
        if pid_alive(pid, started, run_start):
            if cancel_at and now - float(cancel_at) > CANCEL_GRACE_SECONDS:
                _signal_job(pid, signal.SIGKILL, started, run_start)
            continue
        if cancel_at or tags.get(MLFLOW_PARENT_RUN) in cancelled_parents:
            _note_in_log(tags.get(TAG_LOG), f"process {pid} on {host} ended after the cancel; run ended KILLED")
            _end(client, run.info.run_id, "KILLED", "cancelled", job_tagged)
        else:
            tail = _log_tail(tags.get(TAG_LOG))
            _note_in_log(tags.get(TAG_LOG), f"process {pid} on {host} is gone; run ended FAILED")
            reason = STOPPED_UNEXPECTEDLY + (f" Its last output: {tail}" if tail else " It left no output.")
            _end(client, run.info.run_id, "FAILED", reason, job_tagged)
        ended.append(run.info.run_id)
    return ended


def tick(tracking_uri: str | None = None, limit: int | None = None) -> list[str]:
    """Reap, reconcile, then start queued jobs oldest first while their slots fit under ``limit``.

    Cheap enough to call on every page refresh; returns the run ids it started.
    """
    uri = tracking.resolve(tracking_uri)
    if tracking.is_file_store(uri):
        return []  # read-only: see reconcile
    limit = limit or default_limit()
    reap()
    reconcile(uri)
    client = tracking.client(uri)
    started: list[str] = []
    with _launch_lock() as mine:
        if not mine:
            return started
        host = socket.gethostname()
        jobs = _search(client, f"tags.`{TAG_JOB_STATE}` LIKE '%' and attributes.status = 'RUNNING'", 1000)
        used = sum(int(r.data.tags.get(TAG_SLOTS, "1")) for r in jobs if r.data.tags.get(TAG_HOST) == host)
        queue = _search(client, f"tags.`{TAG_JOB_STATE}` LIKE '%' and attributes.status = 'SCHEDULED'", 1000, "ASC")
        for run in queue:
            slots = int(run.data.tags.get(TAG_SLOTS, "1"))
            if used and used + slots > limit:
                break  # first come, first served: a big job is not overtaken by smaller ones
            fresh = client.get_run(run.info.run_id)
            if fresh.info.status != "SCHEDULED":
                continue
            _launch(client, fresh, uri)
            used += slots
            started.append(run.info.run_id)
    return started


def queue_position(run_id: str, tracking_uri: str | None = None) -> int | None:
    """1-based place of a queued job in the queue (None if it is not queued)."""
    client = tracking.client(tracking_uri)
    queue = _search(client, f"tags.`{TAG_JOB_STATE}` LIKE '%' and attributes.status = 'SCHEDULED'", 1000, "ASC")
    ids = [r.info.run_id for r in queue]
    return ids.index(run_id) + 1 if run_id in ids else None


# ---------------------------------------------------------------------------------------------------- cancel


def cancel(run_id: str, tracking_uri: str | None = None, wait: float = 0.0) -> str:
    """Cancel a job: a queued one ends KILLED at once; a running one gets SIGTERM (its process group) and shows
    as "cancelling" until its process stops at the end of the current epoch.

    With ``wait`` > 0, waits up to that long for the process to end, escalating to SIGKILL after the grace
    period, and ends the run (and a sweep's running trials) KILLED if the process did not. Returns the state.
    """
    client = tracking.client(tracking_uri)
    with _launch_lock(wait=True):  # a queued job is either launched or cancelled, never both
        run = client.get_run(run_id)
        if run.info.status == "SCHEDULED":
            _end(client, run_id, "KILLED", "cancelled before it started", ran=False)
            return "killed"
    status = run.info.status
    if status != "RUNNING":
        return STATES.get(status, status.lower())
    tags = run.data.tags
    host = socket.gethostname()
    pid, started, run_start = _run_process(run)
    if tags.get(TAG_HOST) != host or pid is None:
        raise JobError(f"this job runs on {tags.get(TAG_HOST, 'an unknown host')}; cancel it there")
    if TAG_CANCEL_AT not in tags:  # a second SIGTERM would interrupt the job mid-write: send one only
        client.set_tag(run_id, TAG_CANCEL_AT, f"{time.time():.3f}")
        _signal_job(pid, signal.SIGTERM, started, run_start)
    start = time.monotonic()
    escalated = False
    while wait > 0 and time.monotonic() - start < wait and pid_alive(pid, started, run_start):
        if not escalated and time.monotonic() - start > min(CANCEL_GRACE_SECONDS, wait / 2):
            _signal_job(pid, signal.SIGKILL, started, run_start)
            escalated = True
        time.sleep(0.2)
    if wait > 0:
        if pid_alive(pid, started, run_start):
            _signal_job(pid, signal.SIGKILL, started, run_start)
            time.sleep(0.5)
            reap()
        _finish_cancel(client, run_id, pid, host, started, run_start)
    return get_job(run_id, tracking_uri).state


def _finish_cancel(client: Any, run_id: str, pid: int, host: str, started: str | None, run_start: float) -> None:
    """After the process is gone: the run and any running child runs (sweep trials) end KILLED."""
    reap()
    if pid_alive(pid, started, run_start):
        return
    run = client.get_run(run_id)
    if run.info.status == "RUNNING":
        _note_in_log(run.data.tags.get(TAG_LOG), f"process {pid} on {host} was stopped by the cancel; run ended KILLED")
        _end(client, run_id, "KILLED", "cancelled")
    for child in _search(client, f"tags.`{MLFLOW_PARENT_RUN}` = '{run_id}' and attributes.status = 'RUNNING'"):
        _end(client, child.info.run_id, "KILLED", "cancelled with its sweep", state_tag=False)


# ---------------------------------------------------------------------------------------------------- refused


def refuse(run_id: str, reason: str, tracking_uri: str | None = None) -> bool:
    """The job's own process refused its data or options before training (a UserError before its run started):
    end the queued run FAILED with the reason in :data:`~recdash.contract.TAG_REFUSED` (and ``recdash.error``), so
    the Jobs panel shows why and no page takes it for a result (:func:`without_refused`). Returns False, doing
    nothing, when the run already ended (it did start: its own ending stands)."""
    client = tracking.client(tracking_uri)
    run = client.get_run(run_id)
    if run.info.status not in ("RUNNING", "SCHEDULED"):
        return False
    client.set_tag(run_id, TAG_REFUSED, reason[:5000])
    _end(client, run_id, "FAILED", reason[:5000], state_tag=TAG_JOB_STATE in run.data.tags)
    return True


def without_refused(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table without refused jobs' runs (:func:`refuse`): they hold no result, so Runs, Compare, Home and
    Discover do not list them; the Jobs panel still does, with the reason."""
    column = f"{contract.TAG}{TAG_REFUSED}"
    if column not in runs.columns:
        return runs
    return runs[runs[column].isna()].reset_index(drop=True)


def without_refused_counts(experiments: pd.DataFrame, tracking_uri: str | None = None) -> pd.DataFrame:
    """The experiments table (:func:`recdash.tracking.list_experiments`) with refused jobs' runs taken out of each
    ``run_count``, so a count matches the runs the pages list."""
    if experiments.empty or tracking.is_file_store(tracking.resolve(tracking_uri)):
        return experiments  # no job of recdash's can be in a store it only reads
    client = tracking.client(tracking_uri)
    ids = experiments.loc[experiments["lifecycle_stage"] == "active", "experiment_id"].astype(str).tolist()
    refused: dict[str, int] = {}
    for run in search_runs(client, ids, f"tags.`{TAG_REFUSED}` LIKE '%'") if ids else ():
        refused[run.info.experiment_id] = refused.get(run.info.experiment_id, 0) + 1
    if not refused:
        return experiments
    less = experiments["experiment_id"].astype(str).map(refused).fillna(0).astype("int64")
    return experiments.assign(run_count=experiments["run_count"] - less)


# ---------------------------------------------------------------------------------------------------- uploads


def save_upload(filename: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Keep an uploaded table in the jobs dir (content-addressed, so re-uploads don't pile up) for a job to read."""
    if len(data) > max_bytes:
        raise JobError(f"{filename} is {len(data) / 2**20:,.1f} MB, over the {max_bytes / 2**20:,.0f} MB upload limit")
    if not data:
        raise JobError(f"{filename} is empty")
    suffix = "".join(Path(filename).suffixes[-2:]).lower() or ".csv"
    if not all(ch.isalnum() or ch == "." for ch in suffix):
        suffix = ".csv"
    folder = jobs_dir() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:24]}{suffix}"
    if not path.exists():
        path.write_bytes(data)
    return path
