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
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recdash.datasets import SPLIT_METHODS
from recdash.flags import TAG_PROCESS_START, proc_stat, process_start
from recdash.tracking import check_writable, is_file_store, metric_histories, run_label
from recdash.train import NEW_EXPERIMENT_TAGS, TAG_END_REASON, TAG_ERROR, TAG_HOST, TAG_KIND, TAG_PID

TAG_JOB_STATE = "recdash.job_state"
TAG_ARGV = "recdash.argv"
TAG_LOG = "recdash.log"
TAG_SLOTS = "recdash.job_slots"
TAG_LAUNCHED_AT = "recdash.launched_at"
TAG_CANCEL_AT = "recdash.cancel_requested_at"
TAG_EPOCHS_TOTAL = "recdash.epochs_total"
TAG_PARENT = "mlflow.parentRunId"
KINDS = ("train", "sweep", "references")
STATES = {"SCHEDULED": "queued", "RUNNING": "running", "FINISHED": "finished", "FAILED": "failed", "KILLED": "killed"}
ACTIVE_STATES = ("queued", "running", "cancelling")  # "cancelling": RUNNING with a cancel requested
CANCEL_GRACE_SECONDS = 10.0
MAX_CHART_POINTS = 500  # per series of a job's live chart

# Processes this app started: polled (non-blocking) so finished ones are reaped, never waited for.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class JobError(ValueError):
    """A job request that cannot be carried out; the message says why."""


def jobs_dir() -> Path:
    """Where job logs go: $RECDASH_JOBS_DIR, else <cache>/jobs ($RECDASH_CACHE_DIR or ~/.cache/recdash)."""
    explicit = os.environ.get("RECDASH_JOBS_DIR")
    base = Path(explicit) if explicit else Path(os.environ.get("RECDASH_CACHE_DIR", "~/.cache/recdash")) / "jobs"
    path = base.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_limit() -> int:
    """Concurrent job slots: $RECDASH_MAX_JOBS, else the number of cores."""
    try:
        return max(1, int(os.environ.get("RECDASH_MAX_JOBS", "")))
    except ValueError:
        return max(1, os.cpu_count() or 1)


def _client(tracking_uri: str | None) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri)


def _uri(tracking_uri: str | None) -> str:
    import mlflow

    return tracking_uri or mlflow.get_tracking_uri()


# ---------------------------------------------------------------------------------------------------- validation


def parse_job_args(kind: str, args: Sequence[str]) -> Any:
    """Validate CLI arguments exactly as the job's subprocess will; returns the TrainConfig or SweepSpec.

    Raises ValueError (ConfigError, HyperparameterError, SweepError, JobError) with a user-readable message.
    """
    import io

    from recdash.cli import build_parser
    from recdash.flags import train_config_from_args

    if kind not in KINDS:
        raise JobError(f"unknown job kind {kind!r}; use one of {', '.join(KINDS)}")
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parsed = build_parser().parse_args([kind, *args])
    except SystemExit:
        lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
        raise JobError(lines[-1] if lines else "invalid options") from None
    if kind in ("train", "references"):
        config = train_config_from_args(parsed)
        if kind == "references":
            from recdash.models import get_model

            for name in parsed.models.split(","):
                get_model(name)  # an unknown name is refused here, not in the job
        return config
    from recdash.sweep import sweep_spec_from_args

    return sweep_spec_from_args(parsed, args)


# ---------------------------------------------------------------------------------------------------- submit


def _references_models(args: Sequence[str]) -> list[str]:
    """The models a references job fits (its ``--models`` flag, else the default three)."""
    from recdash.models import REFERENCE_MODELS

    argv = list(args)
    if "--models" in argv and argv.index("--models") + 1 < len(argv):
        return argv[argv.index("--models") + 1].split(",")
    return list(REFERENCE_MODELS)


def submit(
    kind: str,
    args: Sequence[str],
    *,
    tracking_uri: str | None = None,
    slots: int = 1,
) -> str:
    """Validate and queue a job: an MLflow run with status SCHEDULED; :func:`tick` starts it. Returns its id.

    A store recdash only reads (a legacy file store) is refused first, before anything is written to it.
    """
    check_writable(_uri(tracking_uri), "training")
    parsed = parse_job_args(kind, args)
    config = parsed if kind in ("train", "references") else parsed.config
    client = _client(tracking_uri)
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is None:
        experiment_id = client.create_experiment(config.experiment, tags=NEW_EXPERIMENT_TAGS)
    else:
        experiment_id = experiment.experiment_id
    if experiment is not None and experiment.lifecycle_stage != "active":
        raise JobError(f"experiment {config.experiment!r} is deleted; restore it or pick another name")
    tags = {
        "recdash.created_by": "recdash",
        TAG_KIND: kind,
        TAG_JOB_STATE: "queued",
        TAG_ARGV: json.dumps([kind, *args]),
        TAG_SLOTS: str(max(1, int(slots))),
        TAG_EPOCHS_TOTAL: str(config.epochs_total),
    }
    if kind == "references":
        tags[TAG_EPOCHS_TOTAL] = str(len(_references_models(args)))
    if kind == "sweep":
        tags["recdash.trials_total"] = str(parsed.n_trials)
    run = client.create_run(experiment_id, run_name=config.run_name, tags=tags)
    client.update_run(run.info.run_id, status="SCHEDULED")
    return run.info.run_id


# ---------------------------------------------------------------------------------------------------- processes


def _proc_start_epoch(pid: int) -> float | None:
    """When the process started (seconds since the epoch), from /proc; None where there is no procfs."""
    fields = proc_stat(pid)
    if fields is None:
        return None
    try:
        btime = next(
            int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line[:5] == "btime"
        )
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, StopIteration):
        return None


def pid_alive(pid: int, started: str | None = None, run_start: float | None = None) -> bool:
    """Is ``pid`` still the process that runs the job? Zombies, dead and reused PIDs count as gone.

    ``started`` is the process identity recorded on the run (:data:`recdash.flags.TAG_PROCESS_START`): the
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
    began = _proc_start_epoch(pid)
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
    import fcntl

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
    return _job(_client(tracking_uri).get_run(run_id))


def list_jobs(tracking_uri: str | None = None, max_results: int = 200) -> list[Job]:
    """Jobs started from the dashboard (queued, running, cancelling, finished, failed, killed), newest first."""
    client = _client(tracking_uri)
    return [_job(r) for r in _search(client, f"tags.`{TAG_JOB_STATE}` LIKE '%'", max_results)]


def same_jobs(kind: str, args: Sequence[str], tracking_uri: str | None = None) -> list[Job]:
    """Queued or running jobs (not being cancelled) of exactly this configuration: same kind, same CLI
    arguments. The Train page asks before queueing one more, so a double click does not train twice."""
    client = _client(tracking_uri)
    argv = [kind, *args]
    found = []
    for status in ("SCHEDULED", "RUNNING"):
        found += _search(client, f"tags.`{TAG_JOB_STATE}` LIKE '%' and attributes.status = '{status}'", 1000)
    jobs = [_job(r) for r in found]
    return [j for j in jobs if j.argv == argv and j.state in ("queued", "running")]


def jobs_frame(jobs: list[Job]) -> pd.DataFrame:
    """A table of jobs for display."""
    now = time.time()
    rows = []
    for j in jobs:
        start = j.launched_at  # a job that never launched (cancelled while queued) has no duration
        end = j.ended_at if not j.active else now
        rows.append(
            {
                "state": j.state,
                "kind": j.kind,
                "name": j.name,
                "queued": pd.Timestamp(j.queued_at, unit="s").strftime("%Y-%m-%d %H:%M:%S"),
                "duration_s": round(end - start, 1) if start and end else None,
                "reason": j.error,
                "run_id": j.run_id,
            }
        )
    return pd.DataFrame(rows, columns=["state", "kind", "name", "queued", "duration_s", "reason", "run_id"])


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
    if is_file_store(_uri(tracking_uri)):
        return []  # a legacy file store is only read: no job of ours can be in it, nothing may be written
    client = _client(tracking_uri)
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
        if cancel_at or tags.get(TAG_PARENT) in cancelled_parents:
            reason = f"cancelled; process {pid} on {host} ended"
            _end(client, run.info.run_id, "KILLED", reason, job_tagged)
        else:
            tail = _log_tail(tags.get(TAG_LOG))
            reason = f"process {pid} on {host} is gone" + (f"; last output: {tail}" if tail else "")
            _end(client, run.info.run_id, "FAILED", reason, job_tagged)
        ended.append(run.info.run_id)
    return ended


def tick(tracking_uri: str | None = None, limit: int | None = None) -> list[str]:
    """Reap, reconcile, then start queued jobs oldest first while their slots fit under ``limit``.

    Cheap enough to call on every page refresh; returns the run ids it started.
    """
    uri = _uri(tracking_uri)
    if is_file_store(uri):
        return []  # read-only: see reconcile
    limit = limit or default_limit()
    reap()
    reconcile(uri)
    client = _client(uri)
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
    client = _client(tracking_uri)
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
    client = _client(tracking_uri)
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
    if client.get_run(run_id).info.status == "RUNNING":
        _end(client, run_id, "KILLED", f"cancelled; process {pid} on {host} was stopped")
    for child in _search(client, f"tags.`{TAG_PARENT}` = '{run_id}' and attributes.status = 'RUNNING'"):
        _end(client, child.info.run_id, "KILLED", "cancelled with its sweep", state_tag=False)


# ---------------------------------------------------------------------------------------------------- progress


@dataclass
class Progress:
    """How far a job got: epochs (training) or trials (sweep), timing, and metric history."""

    job: Job
    epoch: int = 0
    epochs_total: int | None = None
    elapsed_s: float | None = None
    remaining_s: float | None = None
    history: pd.DataFrame = field(default_factory=pd.DataFrame)  # step, metric, value
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)  # sweeps: trial, state, value, run_id
    trials_total: int | None = None
    best_value: float | None = None
    objective: str | None = None  # sweeps: the validation metric maximised


def progress(run_id: str, tracking_uri: str | None = None) -> Progress:
    """Progress of a job read from its MLflow run (works after an app restart: nothing is kept in memory)."""
    client = _client(tracking_uri)
    run = client.get_run(run_id)
    job = _job(run)
    out = Progress(job=job, epochs_total=job.epochs_total)
    now = time.time()
    if job.launched_at:
        out.elapsed_s = (job.ended_at if job.ended_at and not job.active else now) - job.launched_at
    if job.kind == "sweep":
        return _sweep_progress(client, run, out)
    if job.kind == "references":
        return _references_progress(client, run, out)
    keys = sorted(k for k in run.data.metrics if k.startswith("val_"))
    if not keys:
        return out
    # one read for every series (the page polls this every few seconds), at most MAX_CHART_POINTS per series:
    # the first, last, lowest and highest are always kept, so the epoch count and the chart stay right
    hist = metric_histories([run_id], [*keys, "epoch_seconds"], max_points=MAX_CHART_POINTS, uri=_uri(tracking_uri))
    val = hist[hist["key"] != "epoch_seconds"].rename(columns={"key": "metric"})
    out.history = val[["step", "metric", "value"]].sort_values(["metric", "step"], ignore_index=True)
    out.epoch = int(val["step"].max()) if len(val) else 0
    seconds = hist.loc[hist["key"] == "epoch_seconds", "value"]
    if job.state == "running" and out.epoch and out.epochs_total and len(seconds):
        out.remaining_s = max(0, out.epochs_total - out.epoch) * float(seconds.mean())
    return out


def _sweep_progress(client: Any, run: Any, out: Progress) -> Progress:
    from recdash.sweep import TAG_TRIAL_NUMBER, TAG_TRIAL_STATE

    run_id = run.info.run_id
    try:
        out.trials_total = int(run.data.tags.get("recdash.trials_total", ""))
    except ValueError:
        out.trials_total = None
    children = _search(client, f"tags.`{TAG_PARENT}` = '{run_id}'", 10_000, "ASC")
    monitor = run.data.params.get("objective_metric") or "val_ndcg_at_10"
    out.objective = monitor
    searched = _searched_params(run.data.params)
    rows = []
    for child in children:
        tags = child.data.tags
        value = child.data.metrics.get(f"best_{monitor}")
        if value is None:
            history = [m.value for m in client.get_metric_history(child.info.run_id, monitor)]
            value = max(history) if history else None
        rows.append(
            {
                "trial": int(tags.get(TAG_TRIAL_NUMBER, "-1")),
                "state": tags.get(TAG_TRIAL_STATE, STATES.get(child.info.status, "")),
                "value": value,
                **{name: child.data.params.get(name) for name in searched},
                "run_id": child.info.run_id,
            }
        )
    trials = pd.DataFrame(rows, columns=["trial", "state", "value", *searched, "run_id"]).sort_values("trial")
    for name in searched:  # params are text in MLflow; numbers sort and align as numbers
        numbers = pd.to_numeric(trials[name], errors="coerce")
        if numbers.notna().sum() == trials[name].notna().sum():
            trials[name] = numbers
    out.trials = trials.reset_index(drop=True)
    done = out.trials[out.trials["state"].isin(["complete", "pruned", "failed"])]
    out.epoch = len(done)
    complete = out.trials[out.trials["state"] == "complete"]["value"].dropna()
    out.best_value = float(complete.max()) if len(complete) else None
    if out.job.state == "running" and out.trials_total and len(done) and out.elapsed_s:
        out.remaining_s = out.elapsed_s / len(done) * max(0, out.trials_total - len(done))
    return out


def _references_progress(client: Any, run: Any, out: Progress) -> Progress:
    """A references job: one row per reference run (model, state, chosen hyperparameters, validation value)."""
    children = _search(client, f"tags.`{TAG_PARENT}` = '{run.info.run_id}'", 100, "ASC")
    monitor = run.data.params.get("early_stopping_metric") or "val_ndcg_at_10"
    test_metric = f"test_ndcg_at_{run.data.params.get('k', '10')}"
    out.objective = monitor
    rows = []
    for child in children:
        p, m = child.data.params, child.data.metrics
        chosen = ", ".join(f"{name}={p[name]}" for name in ("l2", "neighbours", "shrink") if name in p)
        rows.append(
            {
                "model": p.get("model", ""),
                "state": STATES.get(child.info.status, ""),
                "hyperparameters": chosen,
                "value": m.get(f"best_{monitor}"),
                "test_ndcg": m.get(test_metric),
                "run_id": child.info.run_id,
            }
        )
    out.trials = pd.DataFrame(rows, columns=["model", "state", "hyperparameters", "value", "test_ndcg", "run_id"])
    out.epoch = int((out.trials["state"] == "finished").sum()) if len(out.trials) else 0
    out.trials_total = out.epochs_total
    return out


def _searched_params(params: dict[str, str]) -> list[str]:
    """The hyperparameters a sweep searched, from its parent run's ``search_space`` param (JSON)."""
    try:
        space = json.loads(params.get("search_space", "{}"))
    except ValueError:
        return []
    reserved = {"trial", "state", "value", "run_id"}
    return [str(name) for name in space if str(name) not in reserved] if isinstance(space, dict) else []


def job_log(run_id: str, tracking_uri: str | None = None, max_chars: int = 20_000) -> str:
    """The end of a job's stdout/stderr log (empty when it is on another machine or not started)."""
    path = get_job(run_id, tracking_uri).log_path
    if not path or not os.path.exists(path):
        return ""
    with open(path, "rb") as fh:
        fh.seek(max(0, os.path.getsize(path) - max_chars))
        return fh.read().decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------------- figures

TRIAL_COLORS = {"complete": "#1f77b4", "pruned": "#ff7f0e", "failed": "#d62728", "running": "#7f7f7f"}


def padded_range(values: Sequence[float], fraction: float = 0.08) -> list[float]:
    """An axis range holding every value with room to spare, so no marker sits on (or past) the plot's edge."""
    lo, hi = float(min(values)), float(max(values))
    pad = max((hi - lo) * fraction, abs(hi) * 0.02, 1e-3)
    return [lo - pad, hi + pad]


def _steps_axis(steps: Sequence[float]) -> dict[str, Any]:
    """x axis of whole numbers (epochs, trial numbers) with half a step of room at both ends."""
    lo, hi = float(min(steps)), float(max(steps))
    axis: dict[str, Any] = {"range": [lo - 0.5, hi + 0.5], "tickformat": "d"}
    if hi - lo <= 15:
        axis["dtick"] = 1  # few points: one tick per step, never "1.5"
    return axis


def history_figure(history: pd.DataFrame) -> Any:
    """The live chart of a training job: each validation ranking metric against the epoch.

    Lines with markers, so the first epoch (one point per metric) already shows; mean popularity is left out
    (an item count, it would flatten the ranking metrics, which lie in 0..1).
    """
    import plotly.graph_objects as go

    from recdash.charts import empty_figure, plotly_text
    from recdash.metrics import METRICS

    if history.empty:
        return empty_figure("No epoch has finished yet")
    ranking = history[history["metric"].str.match(rf"val_({'|'.join(METRICS)})_at_")]
    ranking = ranking[np.isfinite(ranking["value"].astype(float))]
    if ranking.empty:
        return empty_figure("No validation ranking metric logged yet")
    # plain dicts, validated once by go.Figure: this is redrawn every few seconds while a job runs
    traces = [
        {
            "type": "scatter", "x": rows["step"].tolist(), "y": rows["value"].tolist(), "name": plotly_text(metric),
            "mode": "lines+markers" if len(rows) <= 100 else "lines",
            "hovertemplate": "%{y:.4f}<extra>%{fullData.name}</extra>",
        }
        for metric, rows in ranking.groupby("metric", sort=True)
    ]  # fmt: skip
    layout = {
        "xaxis": {"title": {"text": "epoch"}, **_steps_axis(ranking["step"].tolist())},
        "yaxis": {"title": {"text": "validation"}, "range": padded_range(ranking["value"].tolist())},
        "height": 360, "hovermode": "x unified", "legend": {"orientation": "h", "y": -0.25},
        "margin": {"t": 20, "b": 20},
    }  # fmt: skip
    return go.Figure(data=traces, layout=layout)


def trials_figure(trials: pd.DataFrame, objective: str = "objective") -> Any:
    """A sweep's trials: each trial's objective value by trial number, coloured by state, with the best value
    so far as a step line. Both axes are padded so the first, the last and the best trials are fully visible."""
    import plotly.graph_objects as go

    from recdash.charts import empty_figure, plotly_text

    values = trials.dropna(subset=["value"]) if not trials.empty else trials
    if not values.empty:
        values = values[np.isfinite(values["value"].astype(float))]
    if values.empty:
        return empty_figure("No trial has a value yet")
    params = [c for c in values.columns if c not in ("trial", "state", "value", "run_id")]
    fig = go.Figure()
    for state, rows in values.groupby("state", sort=False):
        hover = [
            "<br>".join(
                [f"trial {int(r['trial'])} ({plotly_text(state)})", f"{plotly_text(objective)} = {r['value']:.4f}"]
                + [f"{plotly_text(p)} = {plotly_text(r[p])}" for p in params if pd.notna(r[p])]
            )
            for _, r in rows.iterrows()
        ]
        fig.add_trace(
            go.Scatter(
                x=rows["trial"].tolist(), y=rows["value"].tolist(), mode="markers", name=plotly_text(state),
                hovertext=hover,
                hoverinfo="text", marker={"size": 10, "color": TRIAL_COLORS.get(str(state), "#9467bd")},
            )
        )  # fmt: skip
    complete = values[values["state"] == "complete"].sort_values("trial")
    if len(complete):
        fig.add_trace(
            go.Scatter(
                x=complete["trial"].tolist(), y=complete["value"].cummax().tolist(), mode="lines", name="best so far",
                line={"shape": "hv", "color": "#2ca02c", "width": 1.5}, hoverinfo="skip",
            )
        )  # fmt: skip
    fig.update_xaxes(title_text="trial", **_steps_axis(values["trial"].tolist()))
    fig.update_yaxes(title_text=plotly_text(objective), range=padded_range(values["value"].tolist()))
    fig.update_layout(height=360, legend={"orientation": "h", "y": -0.25}, margin={"t": 20, "b": 20})
    return fig


# ---------------------------------------------------------------------------------------------------- forms


def form_values_from_params(params: dict[str, str]) -> dict[str, Any]:
    """Train-form values from an existing run's params ("Start from run"); unknown or bad values are skipped."""
    from recdash.metrics import METRICS
    from recdash.models import MODELS, HyperparameterError, all_hyperparameters, coerce_param

    values: dict[str, Any] = {}
    if params.get("model") in MODELS:
        values["model"] = params["model"]
    for name, spec in all_hyperparameters().items():
        if name in params:
            with contextlib.suppress(HyperparameterError):
                values[name] = coerce_param(spec, params[name])
    for key in ("epochs", "k", "seed", "patience", "split_seed"):
        with contextlib.suppress(KeyError, ValueError):
            values[key] = int(float(params[key]))
    metric = params.get("early_stopping_metric", "")
    for m in METRICS:
        if metric == m or metric.startswith(f"val_{m}_at_"):
            values["early_stopping_metric"] = m
    if params.get("split_method") in SPLIT_METHODS:
        values["split"] = params["split_method"]
    with contextlib.suppress(KeyError, ValueError):
        values["split_fractions"] = tuple(float(params[f"split_{part}"]) for part in ("train", "validation", "test"))
    dataset = params.get("dataset")
    if dataset in ("movielens-100k", "synthetic"):
        values["dataset"] = dataset
    for key in ("n_users", "n_items", "n_interactions"):
        with contextlib.suppress(KeyError, ValueError):
            values[f"synthetic_{key}"] = int(float(params[f"dataset_{key}"]))
    with contextlib.suppress(KeyError, ValueError):
        values["min_rating"] = float(params["min_rating"])
    for kind in ("user", "item"):  # side features: none, builtin, or a table file still there (else none)
        spec = params.get(f"{kind}_features", "")
        if spec:
            values[f"{kind}_features"] = spec if spec in ("none", "builtin") or Path(spec).is_file() else "none"
    return values


# ---------------------------------------------------------------------------------------------------- uploads

MAX_UPLOAD_BYTES = 100 * 2**20


def save_upload(filename: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Keep an uploaded table in the jobs dir (content-addressed, so re-uploads don't pile up) for a job to read."""
    import hashlib

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


def job_dataset(args: Sequence[str]) -> Any:
    """The dataset a train job with these data arguments reads, loaded as the job loads it (the page checks an
    uploaded feature table's IDs against it). ValueError (ConfigError, DatasetError, JobError) when it cannot."""
    from recdash.datasets import load_dataset

    config = parse_job_args("train", args)
    return load_dataset(config.dataset, path=config.data_path, min_rating=config.min_rating, **config.dataset_options)


def table_columns(path: str | Path) -> list[str]:
    """Header of an uploaded CSV/TSV (for the column-mapping dropdowns); [] when it cannot be read."""
    try:
        head = pd.read_csv(path, sep=None, engine="python", nrows=5, encoding_errors="replace")
    except Exception:  # any unreadable file: the page then says so, and load_table gives the precise reason
        return []
    return [str(c) for c in head.columns]
