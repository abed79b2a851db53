"""Faults (issue 7): a training process SIGKILLed mid-epoch, an exception inside training, the app restarted while
jobs run, and two users starting jobs at once. Afterwards every run is FINISHED, FAILED or KILLED with a reason, none
is stuck RUNNING, and finished runs and their models are intact. Real subprocesses, real SQLite store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from streamlit.testing.v1 import AppTest

from recdash import recommend as rx
from recdash.config import TrainConfig
from recdash.contract import TAG_ERROR
from recdash.models.rankfm import Hyperparams
from recdash.process import proc_stat
from recdash.training import jobs, progress
from recdash.training.run import train

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.timeout(240)
TINY = ["--dataset", "synthetic", "--synthetic-users", "120", "--synthetic-items", "80"]
TINY += ["--synthetic-interactions", "3000", "--factors", "8"]
SHORT = [*TINY, "--epochs", "3", "--patience", "0"]
LONG = [*TINY, "--epochs", "5000", "--patience", "0", "--no-model"]  # runs until killed


@pytest.fixture(autouse=True)
def jobs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECDASH_JOBS_DIR", str(tmp_path / "jobs"))
    return tmp_path / "jobs"


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """Job pids to kill if a test fails half-way, so no job outlives its test."""
    started: list[int] = []
    yield started
    for pid in started:
        if jobs.pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    jobs.reap()


def wait_for(check: Callable[[], bool], timeout: float = 90.0, tick: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tick:
            jobs.tick(limit=4)
        if check():
            return
        time.sleep(0.3)
    raise AssertionError("timed out")


def _dead(pid: int) -> bool:
    """What the kernel says: no such process, or only its zombie is left."""
    fields = proc_stat(pid)
    return fields is None or fields[0] in ("Z", "X")


def statuses(run_ids: list[str]) -> dict[str, str]:
    return {r: mlflow.get_run(r).info.status for r in run_ids}


def assert_settled(client: MlflowClient) -> None:
    """No run of the store is RUNNING or SCHEDULED; every FAILED/KILLED one says why."""
    ids = [e.experiment_id for e in client.search_experiments()]
    for run in client.search_runs(ids, max_results=1000):
        assert run.info.status in ("FINISHED", "FAILED", "KILLED"), (run.info.run_name, run.info.status)
        if run.info.status != "FINISHED":
            reason = run.data.tags.get(TAG_ERROR) or run.data.tags.get("recdash.end_reason")
            assert reason, run.info.run_name


def assert_model_intact(run_id: str) -> None:
    loaded = rx.load(f"runs:/{run_id}/model")
    recs = rx.recommend(loaded, str(loaded.recommender.user_ids[0]), k=5)
    assert len(recs) == 5 and (recs["source"] == "model").all()


def test_sigkill_mid_epoch_and_exception_in_training_leave_failed_runs_with_reasons(
    tmp_path: Path, pids: list[int]
) -> None:
    csv = tmp_path / "interactions.csv"
    csv.write_text("user_id,item_id\n" + "".join(f"u{i % 40},i{(i * 7) % 30}\n" for i in range(1200)))
    killed = jobs.submit(jobs.parse_job("train", [*LONG, "--run-name", "killed"]))
    vanished = jobs.submit(
        jobs.parse_job("train", ["--dataset", "csv", "--data-path", str(csv), "--epochs", "2", "--run-name", "gone"])
    )
    ok = jobs.submit(jobs.parse_job("train", [*SHORT, "--run-name", "ok"]))
    csv.unlink()  # the dataset disappears after the job was accepted: the job fails inside training
    jobs.tick(limit=4)
    pids.extend(j.pid for j in jobs.list_jobs() if j.pid)
    wait_for(lambda: progress.progress(killed).epoch >= 2, tick=False)  # mid-training
    os.killpg(jobs.get_job(killed).pid, signal.SIGKILL)
    wait_for(lambda: all(s != "RUNNING" for s in statuses([killed, vanished, ok]).values()))
    expected = {killed: "FAILED", vanished: "FAILED", ok: "FINISHED"}
    assert statuses([killed, vanished, ok]) == expected, jobs.get_job(ok).error
    killed_job, vanished_job = jobs.get_job(killed), jobs.get_job(vanished)
    assert killed_job.error.startswith(jobs.STOPPED_UNEXPECTEDLY) and str(killed_job.pid) not in killed_job.error
    assert "interactions.csv" in vanished_job.error  # the reason names the missing file
    assert progress.progress(killed).epoch >= 2  # the epochs it finished are kept
    assert_settled(MlflowClient())
    assert_model_intact(ok)


def test_exception_inside_in_process_training_ends_the_run_failed() -> None:
    def boom(epoch: int, metrics: dict[str, float]) -> None:
        if epoch == 2:
            raise RuntimeError("disk full while logging")

    config = TrainConfig(
        dataset="synthetic", dataset_options={"n_users": 120, "n_items": 80, "n_interactions": 3000}, epochs=5,
        patience=0, hparams=Hyperparams(factors=4), experiment="faults", run_name="boom",
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="disk full"):
        train(config, on_epoch=boom)
    assert mlflow.active_run() is None
    (run,) = MlflowClient().search_runs([mlflow.get_experiment_by_name("faults").experiment_id])
    assert run.info.status == "FAILED" and "disk full while logging" in run.data.tags[TAG_ERROR]
    assert run.data.metrics["val_ndcg_at_10"] >= 0  # what was logged before the failure is kept
    with pytest.raises(KeyboardInterrupt):
        train(config, on_epoch=lambda e, m: (_ for _ in ()).throw(KeyboardInterrupt()) if e == 1 else None)
    assert_settled(MlflowClient())


def _launch_from_another_app(tracking_uri: str) -> None:
    """An "app" process that starts the queued jobs and exits: the jobs outlive it, as after an app restart."""
    code = "from recdash.training import jobs; jobs.tick(limit=4)"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60, cwd=os.getcwd())


def test_app_restarted_while_jobs_run(tracking_store: str, pids: list[int]) -> None:
    short = jobs.submit(jobs.parse_job("train", [*SHORT, "--epochs", "4", "--run-name", "short"]))
    long = jobs.submit(jobs.parse_job("train", [*LONG, "--run-name", "long"]))
    queued = jobs.submit(jobs.parse_job("train", [*SHORT, "--run-name", "queued"]))
    jobs.cancel(queued)  # a queued job cancelled before the restart ends KILLED at once
    _launch_from_another_app(tracking_store)  # the old app started the jobs and is gone
    long_pid = jobs.get_job(long).pid
    # this process (the restarted app) never started them and keeps no memory of them
    assert long_pid not in jobs._CHILDREN and jobs.get_job(short).pid not in jobs._CHILDREN
    pids.append(long_pid)
    wait_for(lambda: progress.progress(long).epoch >= 2, tick=False)

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)  # the restarted app's Train page
    at.switch_page("pages/train.py")
    at.session_state["job_select"] = long
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (table,) = [d.value.set_index("name") for d in at.dataframe if {"state", "reason"} <= set(d.value.columns)]
    assert table.loc["long", "state"] == "running" and table.loc["queued", "state"] == "killed"
    assert any(t.value.startswith("Epoch ") and "of 5000" in t.value for t in at.text)

    os.killpg(long_pid, signal.SIGKILL)  # the job dies while nobody watches
    wait_for(lambda: statuses([short])[short] == "FINISHED", tick=False)
    wait_for(lambda: _dead(long_pid), tick=False)  # a SIGKILLed process takes a moment to finish exiting
    at.run()  # the page's next refresh reconciles
    assert not at.exception
    assert statuses([short, long, queued]) == {short: "FINISHED", long: "FAILED", queued: "KILLED"}
    assert jobs.get_job(long).error.startswith(jobs.STOPPED_UNEXPECTEDLY)
    assert jobs.get_job(queued).error == "cancelled before it started"
    assert_settled(MlflowClient())
    assert_model_intact(short)


def test_two_users_start_jobs_at_the_same_time(pids: list[int]) -> None:
    barrier = threading.Barrier(2)
    submitted: dict[str, str] = {}
    errors: list[BaseException] = []

    def user(name: str, factors: int) -> None:
        try:
            barrier.wait(timeout=30)
            submitted[name] = jobs.submit(
                jobs.parse_job("train", [*SHORT, "--factors", str(factors), "--run-name", name])
            )
            barrier.wait(timeout=30)
            jobs.tick(limit=4)  # both pages tick at once: the launcher lock must start each job exactly once
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=user, args=(n, f)) for n, f in (("alice", 4), ("bob", 6))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(set(submitted.values())) == 2
    pids.extend(j.pid for j in jobs.list_jobs() if j.pid)
    ended = ("FINISHED", "FAILED", "KILLED")
    wait_for(lambda: all(s in ended for s in statuses(list(submitted.values())).values()), timeout=240)  # busy CI
    outcome = {name: (mlflow.get_run(r).info.status, jobs.get_job(r).error) for name, r in submitted.items()}
    assert all(status == "FINISHED" for status, _ in outcome.values()), outcome
    for name, factors in (("alice", 4), ("bob", 6)):
        run = mlflow.get_run(submitted[name])
        assert run.info.run_name == name and run.data.params["factors"] == str(factors)
        assert run.data.metrics["best_epoch"] >= 1 and run.data.tags.get("recdash.pid")
        assert_model_intact(submitted[name])
    pids_used = {jobs.get_job(r).pid for r in submitted.values()}
    assert len(pids_used) == 2  # one process per job, none launched twice
    assert_settled(MlflowClient())
