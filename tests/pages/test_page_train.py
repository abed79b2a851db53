"""Train page: start a training from the form, watch its progress, see it finish; bad input is refused; a second
identical start asks first; cancel shows at once; sweeps show their trials; a legacy store cannot be trained into."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest
from streamlit.testing.v1 import AppTest

from recdash.contract import run_label
from recdash.training import jobs, progress
from recdash.views import jobs as job_views

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.timeout(180)
TINY = {
    "t_synthetic_n_users": 120,
    "t_synthetic_n_items": 80,
    "t_synthetic_n_interactions": 3000,
    "t_rankfm__factors": 8,
}
# about half a second an epoch on the 2-core machine: long enough to see a job between two epochs
SLOW = {"t_synthetic_n_users": 3000, "t_synthetic_n_items": 2000, "t_synthetic_n_interactions": 200_000}
START = "FormSubmitter:t_form-Start training"


@pytest.fixture(autouse=True)
def jobs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECDASH_JOBS_DIR", str(tmp_path / "jobs"))
    return tmp_path / "jobs"


@pytest.fixture
def no_job_left() -> Iterator[None]:
    """Whatever a test queued is cancelled (and its process gone) when it ends, passed or failed."""
    yield
    for job in jobs.list_jobs():
        if job.active:
            jobs.cancel(job.run_id, wait=30)


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/train.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at: AppTest) -> str:
    return "\n".join(t.value for t in at.text)


def _shown(elements: object) -> list[str]:
    """Message bodies as the user reads them (the page escapes Markdown in messages)."""
    return [re.sub(r"\\(.)", r"\1", e.value) for e in elements]  # type: ignore[attr-defined]


def _state(at: AppTest) -> str:
    text = _texts(at)
    return text.split("state: ")[1].split()[0] if "state: " in text else ""


def _fill(at: AppTest, values: dict[str, object], **text: str) -> None:
    at.selectbox(key="t_dataset").set_value("synthetic").run()
    for key, value in values.items():
        at.number_input(key=key).set_value(value)
    for key, value in text.items():
        at.text_input(key=key).set_value(value)


def _poll(at: AppTest, done: Callable[[AppTest], bool], timeout: float = 120) -> None:
    """Rerun the page (as the live fragment does) until ``done``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out; page text:\n{_texts(at)}")


def _figure(at: AppTest, key: str) -> dict:
    (chart,) = [c for c in at.get("plotly_chart") if c.key == key]
    return json.loads(chart.proto.spec)


def test_start_training_see_progress_and_finished_run() -> None:
    at = _page()
    _fill(at, {**TINY, "t_epochs": 40, "t_patience": 0}, t_run_name="page-run")
    at.button(key=START).click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("queued as run" in s.value for s in at.success)

    seen_progress, deadline = set(), time.monotonic() + 120
    state = ""
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        text = _texts(at)
        seen_progress |= {line for line in text.splitlines() if line.startswith("Epoch ")}
        state = _state(at)
        if state in ("finished", "failed", "killed"):
            break
        time.sleep(0.5)
    assert state == "finished", _texts(at)
    assert len(seen_progress) >= 2, seen_progress  # the epoch count moved while we watched
    assert any(line.startswith("Epoch 40 of 40") for line in _texts(at).splitlines())
    links = at.get("page_link")
    assert len(links) == 3  # Compare, Recommend, Discover
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FINISHED" and run.info.run_name == "page-run"
    assert run.data.params["epochs"] == "40" and run.data.params["factors"] == "8"
    assert run.data.tags[jobs.TAG_JOB_STATE]
    # the live chart: one line per validation ranking metric, every epoch a point (markers: one epoch shows too)
    traces = _figure(at, "job_history_chart")["data"]
    assert {t["name"] for t in traces} == {f"val_{m}_at_10" for m in ("precision", "recall", "ndcg", "mrr", "map")} | {
        "val_hit_rate_at_10"
    }
    assert all(len(t["x"]) == 40 and "markers" in t["mode"] for t in traces)


def test_live_chart_draws_a_single_epoch() -> None:
    history = progress.progress(_one_epoch_run()).history
    figure = json.loads(job_views.history_figure(history).to_json())
    assert figure["data"] and all(len(t["y"]) == 1 and "markers" in t["mode"] for t in figure["data"])
    low, high = figure["layout"]["yaxis"]["range"]
    assert all(low < y < high for t in figure["data"] for y in t["y"])


def _one_epoch_run() -> str:
    from recdash.config import TrainConfig
    from recdash.models.rankfm import Hyperparams
    from recdash.training.run import train

    config = TrainConfig(
        dataset="synthetic",
        dataset_options={"n_users": 120, "n_items": 80, "n_interactions": 3000},
        epochs=1,
        hparams=Hyperparams(factors=8),
        log_model=False,
    )
    return train(config).run_id


def test_invalid_values_are_refused_before_anything_starts() -> None:
    at = _page()
    at.text_input(key="t_split_fractions").set_value("0.5,0.1,0.1")
    at.button(key=START).click().run()
    assert not at.exception
    assert any("split-fractions" in e for e in _shown(at.error))
    at.text_area(key="s_space").set_value("factors=200:10")
    at.button(key="FormSubmitter:s_form-Start sweep").click().run()
    assert any("LOW must be below HIGH" in e for e in _shown(at.error))
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_split_fractions_label_reads_as_words() -> None:
    at = _page()
    assert at.text_input(key="t_split_fractions").label == "Train, validation, test fractions"
    assert at.text_input(key="s_split_fractions").label == "Train, validation, test fractions"


def test_start_from_run_prefills_the_form() -> None:
    with mlflow.start_run(run_name="old"):
        mlflow.log_params({"factors": 24, "loss": "bpr", "learning_rate": 0.05, "epochs": 7, "dataset": "synthetic"})
    at = _page()
    at.selectbox(key="t_from_run").select_index(0).run()
    at.button(key="t_load").click().run()
    assert not at.exception, at.exception
    assert at.number_input(key="t_rankfm__factors").value == 24
    assert at.selectbox(key="t_rankfm__loss").value == "bpr"
    assert at.number_input(key="t_epochs").value == 7
    assert at.selectbox(key="t_dataset").value == "synthetic"


def _unname(run_id: str) -> None:
    """Make a run unnamed, as MLflow 1 and some scripts left runs (the SQL store always invents a name)."""
    uri = mlflow.get_tracking_uri().removeprefix("sqlite:///")
    with sqlite3.connect(uri) as db:
        db.execute("UPDATE runs SET name = '' WHERE run_uuid = ?", (run_id,))
        db.execute("DELETE FROM tags WHERE run_uuid = ? AND key = 'mlflow.runName'", (run_id,))


def test_unnamed_runs_are_called_by_their_short_id(no_job_left: None) -> None:
    with mlflow.start_run(run_name="named") as named:
        mlflow.log_params({"factors": 24})
    with mlflow.start_run() as unnamed:
        mlflow.log_params({"factors": 16})
    _unname(unnamed.info.run_id)
    job = jobs.submit(jobs.parse_job("train", ["--dataset", "synthetic", "--epochs", "1"]))
    _unname(job)
    at = _page()
    options = at.selectbox(key="t_from_run").options
    assert unnamed.info.run_id[:8] in options and f"named  [{named.info.run_id[:8]}]" in options
    assert not [o for o in options if "unnamed" in o or "None" in o]
    (job_option,) = [o for o in at.selectbox(key="job_select").options if job[:8] in o]
    assert job_option.split()[-1] == run_label("", job) == job[:8]
    assert job_views.jobs_frame(jobs.list_jobs())["name"].tolist() == [job[:8]]


def test_a_second_identical_start_asks_first(no_job_left: None) -> None:
    at = _page()
    _fill(at, {**TINY, "t_epochs": 5000, "t_patience": 0}, t_run_name="twice")
    at.button(key=START).click().run()
    assert any("queued as run" in s.value for s in at.success)
    (first,) = jobs.list_jobs()

    at.button(key=START).click().run()  # the same form again: a double click, or a second tab
    assert not at.exception, at.exception
    assert any("same train configuration is already" in w for w in _shown(at.warning))
    assert [j.run_id for j in jobs.list_jobs()] == [first.run_id]
    at.button(key="train_dup_cancel").click().run()
    assert not at.warning and [j.run_id for j in jobs.list_jobs()] == [first.run_id]

    at.button(key=START).click().run()
    at.button(key="train_dup_queue").click().run()
    assert any("queued as run" in s.value for s in at.success)
    second, older = jobs.list_jobs()
    assert older.run_id == first.run_id and second.argv == first.argv

    at.number_input(key="t_epochs").set_value(4999)  # another configuration is not asked about
    at.button(key=START).click().run()
    assert not at.warning and len(jobs.list_jobs()) == 3


def test_repeat_with_seeds_queues_one_job_per_seed_on_the_same_split(no_job_left: None) -> None:
    at = _page()
    _fill(at, {**TINY, "t_epochs": 5000, "t_patience": 0, "t_seed": 7, "t_split_seed": 3}, t_run_name="rep")
    at.number_input(key="t_repeats").set_value(3)
    at.button(key=START).click().run()
    assert not at.exception, at.exception
    assert any("3 train jobs queued, one per seed" in s.value for s in at.success)
    queued = sorted(jobs.list_jobs(), key=lambda j: j.name)
    assert [j.name for j in queued] == ["rep-s7", "rep-s8", "rep-s9"]
    for job, seed in zip(queued, (7, 8, 9), strict=True):
        argv = job.argv
        assert argv[argv.index("--seed") + 1] == str(seed) and argv[argv.index("--split-seed") + 1] == "3"


def test_cancel_shows_cancelling_at_once_and_stops_within_an_epoch(no_job_left: None) -> None:
    at = _page()
    _fill(at, {**SLOW, "t_rankfm__factors": 32, "t_epochs": 5000, "t_patience": 0}, t_run_name="to-cancel")
    at.button(key=START).click().run()
    (job,) = jobs.list_jobs()
    _poll(at, lambda at: progress.progress(job.run_id).epoch >= 2)
    assert _state(at) == "running"

    (cancel,) = [b for b in at.button if b.label == "Cancel" and str(b.key).startswith("cancel")]
    cancel.click().run()
    assert not at.exception, at.exception
    at_click = progress.progress(job.run_id).epoch  # epochs logged when the job was signalled (or later)
    assert "Cancel requested: cancelling." in [c.value for c in at.caption]
    assert _state(at) in ("cancelling", "killed")  # killed only if the job's epoch ended within this page run
    assert "Cancel" not in [b.label for b in at.button]  # no second SIGTERM: it would interrupt a write
    _poll(at, lambda at: _state(at) == "killed", timeout=60)
    final = progress.progress(job.run_id).epoch
    assert final <= at_click + 1, (at_click, final)  # the epoch in progress ends, no other starts
    assert mlflow.get_run(job.run_id).info.status == "KILLED"


def test_sweep_shows_each_trial_with_its_hyperparameters_and_every_point(tmp_path: Path) -> None:
    args = ["--dataset", "synthetic", "--synthetic-users", "120", "--synthetic-items", "80"]
    args += ["--synthetic-interactions", "3000", "--epochs", "2", "--no-model", "--n-trials", "4", "--no-prune"]
    run_id = jobs.submit(jobs.parse_job("sweep", [*args, "--space", "factors=4:16", "--space", "loss=bpr,warp"]))
    jobs.tick()
    deadline = time.monotonic() + 120
    while jobs.get_job(run_id).active and time.monotonic() < deadline:
        time.sleep(0.5)
    assert jobs.get_job(run_id).state == "finished", progress.job_log(run_id)

    at = _page()
    trials = next(f.value for f in at.dataframe if "trial" in f.value.columns)
    assert list(trials.columns) == ["trial", "state", "value", "factors", "loss", "run_id"]
    for row in trials.itertuples():
        params = mlflow.get_run(row.run_id).data.params
        assert (str(row.factors), row.loss) == (params["factors"], params["loss"])
    figure = _figure(at, "job_trials_chart")
    points = [(x, y) for t in figure["data"] if t["mode"] == "markers" for x, y in zip(t["x"], t["y"], strict=True)]
    assert sorted(x for x, _ in points) == [0, 1, 2, 3]
    (x_low, x_high), (y_low, y_high) = figure["layout"]["xaxis"]["range"], figure["layout"]["yaxis"]["range"]
    margin = (y_high - y_low) * 0.03
    assert all(x_low + 0.25 <= x <= x_high - 0.25 and y_low + margin <= y <= y_high - margin for x, y in points)


def test_legacy_file_store_says_why_and_offers_no_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from legacy_store import build_legacy_store, snapshot

    store = build_legacy_store(tmp_path / "old" / "mlruns")
    before = snapshot(store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    mlflow.set_tracking_uri(store.as_uri())
    at = _page()
    assert any("Training is not possible here" in i for i in _shown(at.info))
    assert at.button(key=START).disabled and at.button(key="FormSubmitter:s_form-Start sweep").disabled
    assert snapshot(store) == before


def test_model_picker_trains_that_model_and_references_run_on_the_same_form_data() -> None:
    """EASE on the form: its λ instead of rankfm's fields and no epochs; the job is an ordinary run with model=ease.
    "Train references for this data" on the same form queues one job of three reference runs on that data."""
    at = _page()
    assert at.selectbox(key="t_model").value == "rankfm" and at.number_input(key="t_rankfm__factors")
    at.selectbox(key="t_model").set_value("ease").run()
    keys = {w.key for w in at.number_input}
    assert "t_ease__l2" in keys and not keys & {"t_rankfm__factors", "t_epochs", "t_patience", "t_itemknn__neighbours"}
    at.selectbox(key="t_dataset").set_value("synthetic").run()
    for key, value in {**TINY, "t_ease__l2": 50.0}.items():
        if key != "t_rankfm__factors":
            at.number_input(key=key).set_value(value)
    at.text_input(key="t_run_name").set_value("page-ease")
    at.button(key=START).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.button(key="FormSubmitter:t_form-Train references for this data").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    refs, ease = jobs.list_jobs()  # newest first
    assert ease.argv[:3] == ["train", "--model", "ease"] and ease.argv[ease.argv.index("--l2") + 1] == "50"
    assert "--factors" not in ease.argv and "--epochs" not in ease.argv
    assert refs.kind == "references" and refs.argv[refs.argv.index("--synthetic-items") + 1] == "80"

    at.session_state["job_select"] = ease.run_id
    _poll(at, lambda at: _state(at) in ("finished", "failed", "killed"))
    assert _state(at) == "finished", _texts(at)
    assert "Epoch 1 of 1" in _texts(at)  # one validation step
    run = mlflow.get_run(ease.run_id)
    assert (run.data.params["model"], run.data.params["l2"]) == ("ease", "50.0")
    assert "factors" not in run.data.params and "epochs" not in run.data.params

    at.session_state["job_select"] = refs.run_id
    _poll(at, lambda at: _state(at) in ("finished", "failed", "killed"))
    assert _state(at) == "finished", _texts(at)
    assert "Reference model 3 of 3 finished" in _texts(at)
    (table,) = [d.value for d in at.dataframe if "hyperparameters" in d.value.columns]
    assert sorted(table["model"]) == ["ease", "itemknn", "popularity"] and set(table["state"]) == {"finished"}
    children = mlflow.search_runs(
        search_all_experiments=True, filter_string=f"tags.`mlflow.parentRunId` = '{refs.run_id}'", output_format="list"
    )
    assert {c.data.tags["recdash.reference"] for c in children} == {"true"}
    assert {c.data.params["dataset_n_items"] for c in children} == {"80"}


def test_side_feature_choices_for_rankfm_only_and_a_bad_table_says_why(no_job_left: None, tmp_path: Path) -> None:
    """rankfm gets user and item feature choices (EASE none); an uploaded table is checked at once: its FeatureError
    as a message naming the uploaded file, its warnings and encoding; the choice reaches the job's command line."""
    at = _page()
    assert at.selectbox(key="t_user_features").options == [
        "none",
        "built-in: age, gender, occupation",
        "upload a CSV or Parquet table",
    ]
    assert at.selectbox(key="t_item_features").value == "none"
    assert at.selectbox(key="s_user_features")  # the sweep tab has them too
    at.selectbox(key="t_model").set_value("ease").run()
    assert not {"t_user_features", "t_item_features"} & {w.key for w in at.selectbox}
    at.selectbox(key="t_model").set_value("rankfm").run()
    _fill(at, {**TINY, "t_epochs": 1})
    at.selectbox(key="t_user_features").set_value("upload").run()
    assert any("Upload a user feature table" in i for i in _shown(at.info))
    at.button(key=START).click().run()  # no table yet: refused, nothing queued
    assert any("upload a usable table first" in e for e in _shown(at.error))
    assert jobs.list_jobs() == []

    uploader = at.get("file_uploader")[-1]
    uploader.upload("people.csv", b"uid,age\nu0001,30\nu0002,40\n", "text/csv").run()
    assert not at.exception
    assert _shown(at.error) == ["people.csv: needs a user_id column; found uid, age"]
    at.get("file_uploader")[-1].upload("people.csv", b"user_id,age,job\nu0001,30,x\nu0002,40,x\n", "text/csv").run()
    assert any("column 'job' has one value" in e for e in _shown(at.error))
    good = b"user_id,age,job\nu0001,30,x\nu0002,40,y\nstranger,50,x\n"
    at.get("file_uploader")[-1].upload("people.csv", good, "text/csv").run()
    assert not at.exception and not at.error, _shown(at.error)
    warnings = _shown(at.warning)
    assert any(
        w.startswith("people.csv: 1 user_id(s) are not in the data and are ignored (e.g. stranger)") for w in warnings
    )
    assert any("have no row; nothing is known about them" in w for w in warnings)
    assert any("people.csv: 2 users; age: number (standardised), job: category (2)" in c for c in _shown(at.caption))

    at.selectbox(key="t_item_features").set_value("builtin").run()
    at.button(key=START).click().run()
    assert not at.exception and not at.error, _shown(at.error)
    (job,) = jobs.list_jobs()
    argv = job.argv
    assert argv[argv.index("--item-features") + 1] == "builtin"
    assert argv[argv.index("--user-features") + 1] == str(jobs.save_upload("people.csv", good))


def test_start_from_run_carries_side_features(tmp_path: Path) -> None:
    table = tmp_path / "items.csv"
    table.write_text("item_id,kind\ni0001,a\ni0002,b\n")
    with mlflow.start_run(run_name="with-features"):
        mlflow.log_params(
            {"model": "rankfm", "dataset": "synthetic", "user_features": "builtin", "item_features": str(table)}
        )
    with mlflow.start_run(run_name="gone-table"):
        mlflow.log_params({"model": "rankfm", "user_features": str(tmp_path / "gone.csv"), "item_features": "none"})
    at = _page()

    def load(name: str) -> None:  # pick the run and press the button: one script run
        picker = at.selectbox(key="t_from_run")
        picker.set_value(next(o for o in picker.options if name in o))
        at.button(key="t_load").click().run()
        assert not at.exception, at.exception

    load("with-features")
    assert at.selectbox(key="t_user_features").value == "builtin"
    assert at.selectbox(key="t_item_features").value == str(table)
    assert at.selectbox(key="t_item_features").format_func(str(table)) == "file items.csv (from the run)"
    load("gone-table")
    assert at.selectbox(key="t_user_features").value == "none"  # the table file is gone: not offered, and said so
    assert any("user feature table" in w and "gone.csv no longer exists here" in w for w in _shown(at.warning))
