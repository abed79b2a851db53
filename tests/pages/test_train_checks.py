"""Train page: what a job would refuse about its data is refused before it is queued (issue 21).

One column as user and item is refused at once, naming it, with the rest of the page (the Jobs panel) in place;
a file too small for the split is refused for every kind of job; column names that say nothing are asked for,
not guessed; "Repeat with seeds" skips the seeds that already have a finished run; the duplicate-job question and
the job's Cancel have different labels; a legacy store's lock notice shows its commands as code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from apps import page, run_ok
from streamlit.testing.v1 import AppTest

from recdash.config import TrainConfig
from recdash.models.rankfm import Hyperparams
from recdash.training import jobs
from recdash.training.run import train

pytestmark = pytest.mark.timeout(240)
START = "FormSubmitter:t_form-Start training"
REFERENCES = "FormSubmitter:t_form-Train references for this data"
SWEEP = "FormSubmitter:s_form-Start sweep"
THREE_ROWS = b"user_id,item_id\n1,2\n1,3\n2,3\n"


@pytest.fixture
def no_job_left() -> Iterator[None]:
    """Whatever a test queued is cancelled (and its process gone) when it ends, passed or failed."""
    yield
    for job in jobs.list_jobs():
        if job.active:
            jobs.cancel(job.run_id, wait=30)


def shown(at: AppTest, kind: str) -> str:
    """Messages of ``kind`` as a user reads them (the page escapes Markdown in messages)."""
    return "\n".join(re.sub(r"\\(.)", r"\1", str(e.value)) for e in at.get(kind))


def upload(at: AppTest, data: bytes, name: str = "ratings.csv", prefix: str = "t") -> AppTest:
    at.selectbox(key=f"{prefix}_dataset").set_value("csv upload")
    run_ok(at)
    at.file_uploader(key=f"{prefix}_upload").set_value((name, data, "text/csv"))
    return run_ok(at)


def no_runs_at_all() -> bool:
    experiments = [e.experiment_id for e in mlflow.search_experiments()]
    return jobs.list_jobs() == [] and (not experiments or mlflow.search_runs(experiments).empty)


def test_one_column_as_user_and_item_is_refused_at_once_and_the_page_stays() -> None:
    at = upload(page("train"), b"user_id,item_id\n" + b"".join(b"u%d,i%d\n" % (i % 9, i % 7) for i in range(90)))
    assert (at.selectbox(key="t_user_col").value, at.selectbox(key="t_item_col").value) == ("user_id", "item_id")
    at.selectbox(key="t_item_col").set_value("user_id")
    run_ok(at)  # no exception box: the page, its form and the Jobs panel are all there
    refusal = "ratings.csv: column 'user_id' is chosen as both the user and the item column"
    assert refusal in shown(at, "error")
    assert "Jobs" in [h.value for h in at.header] and "No jobs yet" in shown(at, "info")
    at.button(key=START).click()
    run_ok(at)
    assert refusal in shown(at, "error") and not at.success and no_runs_at_all()


def test_a_file_too_small_for_the_split_is_refused_for_every_kind_of_job() -> None:
    at = upload(page("train"), THREE_ROWS)
    refusal = "ratings.csv is too small for a random split: its 3 interactions (2 users, 2 items) left"
    at.button(key=START).click()
    run_ok(at)
    assert refusal in shown(at, "error"), shown(at, "error")
    at.number_input(key="t_repeats").set_value(3)
    at.button(key=START).click()
    run_ok(at)
    assert refusal in shown(at, "error")
    at.button(key=REFERENCES).click()
    run_ok(at)
    assert refusal in shown(at, "error")
    upload(at, THREE_ROWS, prefix="s")
    at.button(key=SWEEP).click()
    run_ok(at)
    assert refusal in shown(at, "error")
    assert not at.success and no_runs_at_all()  # nothing queued, no FAILED run left behind


def test_column_names_that_say_nothing_are_asked_for(no_job_left: None) -> None:
    rows = b"".join(b"p%d,x%d,%d\n" % (i % 30, (i * 7) % 40, i % 5) for i in range(600))
    at = upload(page("train"), b"a,b,c\n" + rows, name="export.csv")
    assert at.selectbox(key="t_user_col").value is None and at.selectbox(key="t_item_col").value is None
    assert "Choose which column of export.csv holds the user IDs and which the item IDs" in shown(at, "info")
    at.selectbox(key="t_model").set_value("popularity")
    run_ok(at)
    at.button(key=START).click()
    run_ok(at)
    assert "Choose which column of export.csv" in shown(at, "error") and no_runs_at_all()

    at.selectbox(key="t_user_col").set_value("a")
    at.selectbox(key="t_item_col").set_value("b")
    run_ok(at)
    assert "Choose which column" not in shown(at, "info")
    at.button(key=START).click()
    run_ok(at)
    assert "Train job queued as run" in shown(at, "success"), shown(at, "error")
    (job,) = jobs.list_jobs()
    assert job.argv[job.argv.index("--user-col") + 1] == "a" and job.argv[job.argv.index("--item-col") + 1] == "b"


TINY = {"n_users": 60, "n_items": 40, "n_interactions": 1200}


def test_repeat_with_seeds_skips_the_seeds_already_trained(no_job_left: None) -> None:
    """Train once (seed 42), then repeat with 3 seeds: seed 42 is skipped and said so; 43 and 44 are queued."""
    config = TrainConfig(
        dataset="synthetic", dataset_options={**TINY, "seed": 42}, epochs=1, patience=0, run_name="once",
        hparams=Hyperparams(factors=4, max_samples=5), log_model=False,
    )  # fmt: skip
    once = train(config)
    train(config.replace(split_seed=7, dataset_options={**TINY, "seed": 7}, run_name="other-data"))

    at = page("train")
    at.selectbox(key="t_dataset").set_value("synthetic")
    run_ok(at)
    for key, value in {"t_synthetic_n_users": 60, "t_synthetic_n_items": 40, "t_synthetic_n_interactions": 1200,
                       "t_epochs": 1, "t_patience": 0, "t_rankfm__factors": 4, "t_rankfm__max_samples": 5,
                       "t_repeats": 3}.items():  # fmt: skip
        at.number_input(key=key).set_value(value)
    at.button(key=START).click()
    run_ok(at)
    assert "Skipped seed 42: this configuration already has a finished run on the same data" in shown(at, "info")
    assert "2 train jobs queued, one per seed" in shown(at, "success")
    assert sorted(int(j.argv[j.argv.index("--seed") + 1]) for j in jobs.list_jobs()) == [43, 44]
    assert jobs.finished_seeds(config) == {42: once.run_id}  # not the one with split seed 7
    assert jobs.finished_seeds(config.replace(hparams=Hyperparams(factors=4, max_samples=5, learning_rate=0.01))) == {}


def test_the_duplicate_question_does_not_say_cancel(no_job_left: None) -> None:
    at = page("train")
    at.selectbox(key="t_dataset").set_value("synthetic")
    run_ok(at)
    at.number_input(key="t_epochs").set_value(5000)
    at.number_input(key="t_patience").set_value(0)
    at.button(key=START).click()
    run_ok(at)
    at.button(key=START).click()
    run_ok(at)
    assert at.button(key="train_dup_cancel").label == "Don't queue"  # do not queue this one...
    assert at.button(key="cancel_job").label == "Cancel"  # ... is not "stop that job"
    assert [b.label for b in at.button].count("Cancel") == 1


def test_a_legacy_store_lock_notice_shows_its_commands_as_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from legacy_store import build_legacy_store

    store = build_legacy_store(tmp_path / "old" / "mlruns")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    mlflow.set_tracking_uri(store.as_uri())
    at = page("train")
    (notice,) = [i.value for i in at.info if "Training is not possible here" in i.value]
    notice = notice.replace(" \\\n    ", " ")  # long commands are folded over lines (a paste still runs them)
    target = tmp_path / "old" / "mlruns-migrated.db"
    assert f"```\nmlflow migrate-filestore --source {store} --target sqlite:///{target}\n```" in notice
    assert f"```\nMLFLOW_TRACKING_URI=sqlite:///{target} make run\n```" in notice
    assert "`" not in notice.replace("```", "")  # no stray backtick shown as text
