"""What a dashboard job leaves in the store (issue 21): a job whose process refuses its data ends FAILED marked
refused (the Jobs panel shows it with its reason, the pages that list runs leave it out), and every run a job makes,
queued run, trainings, a sweep's parent and trials, the references' parent and runs, has the same owner."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from apps import page
from mlflow.tracking import MlflowClient

from recdash import catalog, contract, tracking
from recdash.config import TrainConfig
from recdash.models.rankfm import Hyperparams
from recdash.training import jobs, progress
from recdash.training.run import train
from recdash.views import jobs as job_views

pytestmark = pytest.mark.timeout(300)
TINY = ["--dataset", "synthetic", "--synthetic-users", "60", "--synthetic-items", "40",
        "--synthetic-interactions", "1200", "--no-model"]  # fmt: skip


def wait_for(done: Callable[[], bool], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, [(j.name, j.state, j.error) for j in jobs.list_jobs()]
        jobs.tick()
        time.sleep(0.5)


def all_runs() -> list[mlflow.entities.Run]:
    client = MlflowClient()
    return client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)


def test_a_job_its_process_refuses_is_marked_refused_and_hidden_from_the_runs_pages(tmp_path: Path) -> None:
    good = train(TrainConfig(dataset="synthetic", dataset_options={"n_users": 60, "n_items": 40,
                             "n_interactions": 1200, "seed": 42}, epochs=1, hparams=Hyperparams(factors=4,
                             max_samples=5), log_model=False, run_name="good"))  # fmt: skip
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("user_id,item_id\n1,2\n1,3\n2,3\n")
    # queued as the CLI or an older page would: nothing checked the data before the job's process did
    run_id = jobs.submit(jobs.parse_job("train", ["--dataset", "csv", "--data-path", str(tiny), "--no-model"]))
    jobs.tick()
    wait_for(lambda: not jobs.get_job(run_id).active)

    job = jobs.get_job(run_id)
    assert job.state == "refused" and job.error.startswith("tiny is too small for a random split"), job.error
    run = mlflow.get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags[contract.TAG_REFUSED] == job.error
    assert not run.data.metrics and "ended FAILED as refused" in progress.job_log(run_id)
    frame = job_views.jobs_frame(jobs.list_jobs()).set_index("run_id")
    assert (frame.loc[run_id, "state"], frame.loc[run_id, "reason"]) == ("refused", job.error)

    runs = tracking.RunsLoader(tracking.tracking_uri()).load([run.info.experiment_id])
    assert set(runs["run_id"]) == {good.run_id, run_id}
    assert jobs.without_refused(runs)["run_id"].tolist() == [good.run_id]
    assert jobs.without_refused(pd.DataFrame({"run_id": ["a"]}))["run_id"].tolist() == ["a"]  # no tag column

    at = page("runs")
    assert at.dataframe(key="runs_table").value["run_name"].tolist() == ["good"]
    at = page("home")  # the experiment's run count matches the runs listed
    assert next(f.value for f in at.dataframe if "run_count" in f.value.columns)["run_count"].tolist() == [1]
    at = page("compare", runs=f"{good.run_id},{run_id}")
    assert "Comparing 1 run(s)" in " ".join(str(m.value) for m in at.caption)
    at = page("train")  # the Jobs panel still shows it, with why
    table = next(f.value for f in at.dataframe if {"state", "reason"} <= set(f.value.columns))
    assert table.set_index("run_id").loc[run_id, "state"] == "refused"


def test_a_run_that_started_is_never_marked_refused() -> None:
    with mlflow.start_run() as run:
        pass
    assert not jobs.refuse(run.info.run_id, "late")
    assert contract.TAG_REFUSED not in mlflow.get_run(run.info.run_id).data.tags


def test_every_run_a_job_makes_has_the_dashboards_owner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECDASH_USER", "alice")  # the jobs' processes inherit the dashboard's environment
    queued = [
        jobs.submit(jobs.parse_job("train", [*TINY, "--epochs", "1", "--run-name", "one"])),
        jobs.submit(jobs.parse_job("sweep", [*TINY, "--epochs", "1", "--n-trials", "2", "--space", "factors=2:8"])),
        jobs.submit(jobs.parse_job("references", [*TINY, "--models", "popularity"])),
    ]
    jobs.tick(limit=3)
    wait_for(lambda: not any(jobs.get_job(r).active for r in queued))
    assert [jobs.get_job(r).state for r in queued] == ["finished"] * 3, [jobs.get_job(r).error for r in queued]

    runs = all_runs()
    assert len(runs) == 3 + 2 + 1  # the queued runs, two trials, one reference run
    assert {(r.info.user_id, r.data.tags.get(contract.MLFLOW_USER)) for r in runs} == {("alice", "alice")}
    loaded = tracking.RunsLoader(tracking.tracking_uri()).load([runs[0].info.experiment_id])
    people = catalog.build(loaded, tracking.list_experiments()).people
    assert people["user"].tolist() == ["alice"]  # Discover's people: one person, not "unknown" and "root"
