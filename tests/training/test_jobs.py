"""Background jobs: real subprocesses on tiny synthetic data, state kept in the MLflow store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from recdash import tracking
from recdash.cli import main as cli_main
from recdash.config import TrainConfig
from recdash.contract import TAG_PROCESS_START
from recdash.data.files import table_header
from recdash.process import process_start
from recdash.training import jobs, progress
from recdash.views import jobs as job_views

pytestmark = pytest.mark.timeout(120)
TINY = ["--dataset", "synthetic", "--synthetic-users", "120", "--synthetic-items", "80"]
TINY += ["--synthetic-interactions", "3000", "--factors", "8", "--no-model"]
LONG = [*TINY, "--epochs", "5000", "--patience", "0"]  # runs until cancelled


@pytest.fixture(autouse=True)
def jobs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECDASH_JOBS_DIR", str(tmp_path / "jobs"))
    return tmp_path / "jobs"


@pytest.fixture
def cleanup() -> list[int]:
    """Pids to kill if a test fails half-way, so no job outlives its test."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if jobs.pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    jobs.reap()


def wait_for(check: Callable[[], bool], timeout: float = 60.0, tick: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tick:
            jobs.tick(limit=1)
        if check():
            return
        time.sleep(0.3)
    raise AssertionError("timed out")


def start_running(cleanup: list[int]) -> jobs.Job:
    run_id = jobs.submit(jobs.parse_job("train", LONG))
    assert jobs.get_job(run_id).state == "queued"
    jobs.tick(limit=1)
    job = jobs.get_job(run_id)
    assert job.state == "running" and job.pid
    cleanup.append(job.pid)
    wait_for(lambda: progress.progress(run_id).epoch >= 2, tick=False)  # the subprocess trains and logs epochs
    run = mlflow.get_run(run_id)
    assert run.data.tags[TAG_PROCESS_START] == process_start(job.pid)  # recorded at launch and by the job itself
    return jobs.get_job(run_id)


def test_cancel_ends_the_run_killed_and_the_process_is_gone(cleanup: list[int]) -> None:
    job = start_running(cleanup)
    seen = progress.progress(job.run_id)
    assert seen.epochs_total == 5000 and seen.elapsed_s and seen.remaining_s
    assert set(seen.history["metric"]) >= {"val_ndcg_at_10", "val_recall_at_10"}
    assert jobs.cancel(job.run_id, wait=30) == "killed"
    assert not jobs.pid_alive(job.pid)
    assert mlflow.get_run(job.run_id).info.status == "KILLED"
    with pytest.raises(ProcessLookupError):
        os.kill(job.pid, 0)


def test_process_killed_from_outside_leaves_a_failed_run_with_a_reason(cleanup: list[int]) -> None:
    job = start_running(cleanup)
    os.killpg(job.pid, signal.SIGKILL)
    wait_for(lambda: jobs.get_job(job.run_id).state != "running")
    run = mlflow.get_run(job.run_id)
    assert run.info.status == "FAILED"
    # the reason in a user's words; the process id and host go to the job's log, for whoever digs
    reason = run.data.tags["recdash.error"]
    assert reason.startswith(jobs.STOPPED_UNEXPECTEDLY) and f"process {job.pid}" not in reason
    assert f"process {job.pid} on {socket.gethostname()} is gone" in Path(job.log_path or "").read_text()


def test_queue_respects_the_limit_and_cancels_queued_jobs(cleanup: list[int]) -> None:
    first = start_running(cleanup)
    second = jobs.submit(jobs.parse_job("train", [*TINY, "--epochs", "2"]))
    third = jobs.submit(jobs.parse_job("train", [*TINY, "--epochs", "2"]))
    for _ in range(3):
        assert jobs.tick(limit=1) == []  # one slot, taken: the others wait
    assert jobs.get_job(second).state == "queued" and jobs.queue_position(second) == 1
    assert [j.run_id for j in jobs.list_jobs()][:3] == [third, second, first.run_id]  # newest first
    assert jobs.cancel(third) == "killed"
    assert mlflow.get_run(third).info.status == "KILLED"
    jobs.cancel(first.run_id, wait=30)
    wait_for(lambda: jobs.get_job(second).state == "finished")
    frame = job_views.jobs_frame(jobs.list_jobs())
    assert sorted(frame["state"]) == ["finished", "killed", "killed"]


def test_bad_arguments_are_refused_before_a_run_exists() -> None:
    for args, message in [
        (["--epochs", "0"], "--epochs"),
        (["--learning-rate", "-1"], "learning_rate"),
        (["--split", "sideways"], "invalid choice"),
    ]:
        with pytest.raises(ValueError, match=message):
            jobs.submit(jobs.parse_job("train", args))
    with pytest.raises(ValueError, match="--space"):
        jobs.submit(jobs.parse_job("sweep", ["--space", "factors=9:1"]))
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_pid_alive_sees_reused_and_dead_pids() -> None:
    assert jobs.pid_alive(os.getpid(), run_start=time.time())  # started before the run: the run's process
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # a process unrelated to recdash that started after the run did: a recycled pid, not the job
        assert not jobs.pid_alive(proc.pid, run_start=time.time() - 3600)
    finally:
        proc.kill()
        proc.wait()
    assert not jobs.pid_alive(proc.pid)


def test_form_values_and_uploads(jobs_dir: Path) -> None:
    config, notes = TrainConfig.from_run_params(
        {"factors": "24", "loss": "bpr", "alpha": "oops", "epochs": "7", "early_stopping_metric": "val_recall_at_10",
         "split_method": "temporal", "split_train": "0.7", "split_validation": "0.2", "split_test": "0.1",
         "dataset": "synthetic", "dataset_n_users": "50"}
    )  # fmt: skip
    values = config.to_form()
    assert values["hparams"]["factors"] == 24 and values["hparams"]["loss"] == "bpr"
    assert values["hparams"]["alpha"] == TrainConfig().params_.as_dict()["alpha"] and any("alpha" in n for n in notes)
    assert values["early_stopping_metric"] == "recall" and values["split"] == "temporal" and values["epochs"] == 7
    assert values["split_fractions"] == "0.7,0.2,0.1" and values["synthetic_n_users"] == 50
    path = jobs.save_upload("ratings.csv", b"u,i,r\n1,2,5\n")
    assert path.parent == jobs_dir / "uploads" and table_header(path) == ["u", "i", "r"]
    with pytest.raises(jobs.JobError, match="upload limit"):
        jobs.save_upload("big.csv", b"x" * 100, max_bytes=10)


def test_cancelling_a_sweep_stops_all_its_trials(cleanup: list[int], tmp_path: Path) -> None:
    args = [*TINY, "--epochs", "5000", "--patience", "0", "--n-trials", "4", "--n-workers", "2", "--no-prune"]
    run_id = jobs.submit(jobs.parse_job("sweep", [*args, "--storage", f"sqlite:///{tmp_path / 'o.db'}"]))
    jobs.tick(limit=2)
    job = jobs.get_job(run_id)
    cleanup.append(job.pid)
    wait_for(lambda: progress.progress(run_id).trials.shape[0] >= 1, tick=False)
    assert jobs.cancel(run_id, wait=40) == "killed"
    assert not jobs.pid_alive(job.pid)
    children = mlflow.search_runs(
        search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{run_id}'", output_format="list"
    )
    assert children and {c.info.status for c in children} == {"KILLED"}
    assert mlflow.get_run(run_id).info.status == "KILLED"


@pytest.fixture
def impostor() -> Iterator[subprocess.Popen[bytes]]:
    """A process that is not a job but whose command line mentions recdash, as every process started from a
    clone named ``recdash`` does (``.../recdash/.venv/bin/python``)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "recdash", "train"])
    yield proc
    proc.kill()
    proc.wait()


def _running_run(pid: int, *, started: str | None, hours_ago: float = 0.0) -> str:
    """A RUNNING run of this host whose process is ``pid`` (identity ``started``), created ``hours_ago``."""
    client = mlflow.MlflowClient()
    experiment = client.create_experiment(f"e-{time.monotonic_ns()}")
    tags = {
        jobs.TAG_PID: str(pid),
        jobs.TAG_HOST: socket.gethostname(),
        **({TAG_PROCESS_START: started} if started else {}),
    }
    start_ms = int((time.time() - hours_ago * 3600) * 1000)
    return client.create_run(experiment, start_time=start_ms, tags=tags).info.run_id


def test_a_reused_pid_is_never_taken_for_the_job(impostor: subprocess.Popen[bytes]) -> None:
    # the job's process recorded itself, then died and its pid went to the impostor
    recorded = _running_run(impostor.pid, started=process_start())
    # a notebook's run (no identity tag): its process made the run, so it is older than the run; this one isn't
    notebook = _running_run(impostor.pid, started=None, hours_ago=1)
    # the impostor's own run is left alone
    own = _running_run(impostor.pid, started=process_start(impostor.pid))
    assert sorted(jobs.reconcile()) == sorted([recorded, notebook])
    for run_id in (recorded, notebook):
        run = mlflow.get_run(run_id)
        assert run.info.status == "FAILED" and run.data.tags["recdash.error"].startswith(jobs.STOPPED_UNEXPECTEDLY)
    assert mlflow.get_run(own).info.status == "RUNNING"
    mlflow.MlflowClient().set_terminated(own)
    assert impostor.poll() is None  # reconciling signalled nothing
    assert jobs.pid_alive(impostor.pid, started=process_start(impostor.pid))
    assert not jobs.pid_alive(impostor.pid, started=process_start())  # the pid is there, but not that process


def test_cli_and_sweep_runs_carry_their_process_identity(tmp_path: Path) -> None:
    assert cli_main(["train", *TINY, "--epochs", "1", "--run-name", "cli"]) == 0
    args = [*TINY, "--epochs", "1", "--n-trials", "2", "--no-prune", "--storage", f"sqlite:///{tmp_path / 'o.db'}"]
    assert cli_main(["sweep", *args, "--run-name", "sw"]) == 0
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert len(runs) == 4  # the training, the sweep and its two trials
    assert {r.data.tags[TAG_PROCESS_START] for r in runs} == {process_start()}


def test_cancel_shows_cancelling_at_once_and_stops_within_an_epoch(cleanup: list[int]) -> None:
    slow = ["--dataset", "synthetic", "--synthetic-users", "3000", "--synthetic-items", "2000"]
    slow += [
        "--synthetic-interactions",
        "200000",
        "--factors",
        "32",
        "--no-model",
        "--epochs",
        "5000",
        "--patience",
        "0",
    ]
    run_id = jobs.submit(jobs.parse_job("train", slow))
    jobs.tick(limit=1)
    cleanup.append(jobs.get_job(run_id).pid)
    wait_for(lambda: progress.progress(run_id).epoch >= 2, tick=False)
    assert jobs.cancel(run_id) == "cancelling"  # at once, while the process finishes its epoch
    signalled_at = progress.progress(run_id).epoch
    # the process may already have finished its epoch and ended; it is never shown as still "running"
    assert jobs.list_jobs()[0].state in ("cancelling", "killed")
    assert jobs.cancel(run_id) in ("cancelling", "killed")  # a second click sends nothing more
    wait_for(lambda: not jobs.get_job(run_id).active, timeout=30)
    assert jobs.get_job(run_id).state == "killed"
    assert progress.progress(run_id).epoch <= signalled_at + 1


def test_a_job_cancelled_while_queued_has_no_duration() -> None:
    run_id = jobs.submit(jobs.parse_job("train", [*TINY, "--epochs", "2"]))
    time.sleep(1.2)  # time spent in the queue is not time spent training
    assert jobs.cancel(run_id) == "killed"
    run = mlflow.get_run(run_id)
    assert run.info.status == "KILLED" and run.info.end_time is None
    assert pd.isna(job_views.jobs_frame(jobs.list_jobs())["duration_s"].iloc[0])
    assert progress.progress(run_id).elapsed_s is None
    loaded = tracking.RunsLoader(mlflow.get_tracking_uri()).load([run.info.experiment_id])
    assert pd.isna(loaded.set_index("run_id").loc[run_id, "duration_s"])  # Runs and Home show no duration
    assert jobs.tick(limit=1) == []  # and it never starts


def test_same_configuration_is_found_while_it_is_queued_or_running() -> None:
    args = [*TINY, "--epochs", "2"]
    first = jobs.submit(jobs.parse_job("train", args))
    assert [j.run_id for j in jobs.same_jobs(jobs.parse_job("train", args))] == [first]
    assert jobs.same_jobs(jobs.parse_job("train", [*TINY, "--epochs", "3"])) == []
    assert jobs.same_jobs(jobs.parse_job("sweep", args)) == []
    jobs.cancel(first)
    assert jobs.same_jobs(jobs.parse_job("train", args)) == []


def test_a_legacy_file_store_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    store = tmp_path / "mlruns"
    store.mkdir()
    with pytest.raises(tracking.TrackingError):
        jobs.submit(jobs.parse_job("train", [*TINY, "--epochs", "1"]), tracking_uri=store.as_uri())
    assert list(store.iterdir()) == []
