"""Sweeps: parent/child MLflow layout, best trial on the parent, pruning tags, exact trial counts across workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from recdash.cli import build_parser
from recdash.training.sweep import run_sweep
from recdash.training.sweep_spec import SweepError, SweepSpec, grid_points, parse_dimension, parse_space

TINY = ["--dataset", "synthetic", "--synthetic-users", "120", "--synthetic-items", "80"]
TINY += ["--synthetic-interactions", "3000", "--factors", "8"]


def _spec(*extra: str):
    args = build_parser().parse_args(["sweep", *TINY, *extra])
    return SweepSpec.from_args(args)


def _children(parent_id: str) -> list:
    return mlflow.search_runs(
        search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{parent_id}'", output_format="list"
    )


def test_space_parsing_and_validation() -> None:
    assert parse_dimension("learning_rate=0.01:0.3:log").log
    assert parse_dimension("loss=bpr,warp").choices == ("bpr", "warp")
    assert parse_dimension("factors=8:64").low == 8
    assert set(parse_space(None)) == {"factors", "learning_rate", "alpha"}
    for bad, message in [
        ("factors=64:8", "LOW must be below HIGH"),
        ("nope=1:2", "NAME one of"),
        ("alpha=0:1:log", "between"),
        ("loss=bpr,hinge", "must be one of"),
        ("factors=1:2:linear", "LOW:HIGH:log"),
    ]:
        with pytest.raises(SweepError, match=message):
            parse_dimension(bad)
    with pytest.raises(SweepError, match="grid needs choices"):
        grid_points(parse_space(["factors=8:16"]))
    assert len(grid_points(parse_space(["factors=8,16", "loss=bpr,warp"]))) == 4


def test_sweep_logs_parent_children_and_best_trial(tmp_path: Path) -> None:
    spec = _spec("--n-trials", "3", "--epochs", "2", "--storage", f"sqlite:///{tmp_path / 'o.db'}", "--run-name", "sw")
    result = run_sweep(spec)
    parent = mlflow.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["recdash.kind"] == "sweep"
    children = _children(result.parent_run_id)
    assert len(children) == 3
    assert sorted(int(c.data.tags["recdash.trial_number"]) for c in children) == [0, 1, 2]
    assert {c.data.tags["recdash.trial_state"] for c in children} == {"complete"}
    for child in children:  # a trial is a normal training run: params, per-epoch metrics, test metrics, model
        assert child.info.status == "FINISHED"
        assert {"factors", "learning_rate", "dataset_digest", "split_method"} <= set(child.data.params)
        assert "test_ndcg_at_10" in child.data.metrics
        assert child.data.tags.get("recdash.model_id") is not None
    best = max(children, key=lambda c: c.data.metrics["best_val_ndcg_at_10"])
    assert parent.data.tags["recdash.best_run_id"] == best.info.run_id == result.best_run_id
    assert parent.data.metrics["best_val_ndcg_at_10"] == pytest.approx(best.data.metrics["best_val_ndcg_at_10"])
    assert parent.data.metrics["best_trial_number"] == int(best.data.tags["recdash.trial_number"])
    assert parent.data.metrics["best_test_ndcg_at_10"] == pytest.approx(best.data.metrics["test_ndcg_at_10"])
    assert parent.data.params["best_factors"] == best.data.params["factors"]
    assert json.loads(parent.data.params["search_space"])["learning_rate"] == "0.02:0.1:log"
    assert parent.data.params["sampler"] == "tpe" and parent.data.params["objective_metric"] == "val_ndcg_at_10"


def test_any_model_sweeps_over_its_own_default_space(tmp_path: Path) -> None:
    data = TINY[: TINY.index("--factors")]
    argv = [
        "sweep",
        "--model",
        "ease",
        *data,
        "--n-trials",
        "2",
        "--no-model",
        "--storage",
        f"sqlite:///{tmp_path}/o.db",
    ]
    spec = SweepSpec.from_args(build_parser().parse_args(argv))
    assert set(spec.space) == {"l2"} and spec.space == parse_space(None, "ease")
    children = _children(run_sweep(spec).parent_run_id)
    assert len(children) == 2 and {c.data.params["model"] for c in children} == {"ease"}
    assert len({c.data.params["l2"] for c in children}) == 2  # each trial its own λ, one validation step each
    with pytest.raises(SweepError, match="popularity has no hyperparameters"):
        parse_space(None, "popularity")
    with pytest.raises(SweepError, match="NAME one of l2"):
        parse_dimension("factors=8:16", "ease")
    with pytest.raises(SweepError, match="NAME one of l2"):
        SweepSpec.from_args(build_parser().parse_args([*argv, "--space", "factors=4:8"]))
    with pytest.raises(SweepError, match="not a hyperparameter of --model ease"):
        SweepSpec(config=spec.config, space=parse_space(["factors=4:8"]), storage=spec.storage)


def test_poor_trials_are_pruned_with_a_clear_tag(tmp_path: Path) -> None:
    spec = _spec(
        "--n-trials", "9", "--epochs", "5", "--patience", "0", "--no-model", "--sampler", "random",
        "--space", "learning_rate=0.000001,0.3", "--storage", f"sqlite:///{tmp_path / 'o.db'}",
    )  # fmt: skip
    result = run_sweep(spec)
    children = _children(result.parent_run_id)
    assert len(children) == 9
    pruned = [c for c in children if c.data.tags["recdash.trial_state"] == "pruned"]
    assert pruned and result.n_pruned == len(pruned)
    for child in pruned:
        assert child.info.status == "KILLED"
        assert child.data.tags["recdash.end_reason"].startswith("pruned by median pruner at epoch")
        assert child.data.params["learning_rate"] == "1e-06"
    assert mlflow.get_run(result.parent_run_id).data.metrics["n_trials_pruned"] == len(pruned)


def test_grid_sampler_runs_each_point_once(tmp_path: Path) -> None:
    spec = _spec(
        "--n-trials", "10", "--epochs", "1", "--no-model", "--sampler", "grid",
        "--space", "factors=4,8", "--space", "loss=bpr,warp", "--storage", f"sqlite:///{tmp_path / 'o.db'}",
    )  # fmt: skip
    result = run_sweep(spec)
    children = _children(result.parent_run_id)
    assert sorted((c.data.params["factors"], c.data.params["loss"]) for c in children) == [
        ("4", "bpr"), ("4", "warp"), ("8", "bpr"), ("8", "warp"),
    ]  # fmt: skip


def test_two_workers_share_one_study_without_duplicates_or_losses(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    common = ["--storage", storage, "--study-name", "shared"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    # the second worker starts first and waits for the study; the sweep itself is the first worker
    joiner = subprocess.Popen(
        [sys.executable, "-m", "recdash", "sweep", "--worker", "--worker-index", "1", *common],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    main = subprocess.run(
        [sys.executable, "-m", "recdash", "sweep", "--dataset", "synthetic", "--n-trials", "8", "--epochs", "4",
         "--patience", "0", "--no-prune", "--no-model", "--factors", "16", *common],
        env=env, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    out, _ = joiner.communicate(timeout=170)  # a loaded machine: its last trial may end after the sweep
    assert main.returncode == 0, main.stderr[-2000:]
    assert joiner.returncode == 0
    summary = json.loads(main.stdout.strip().splitlines()[-1])
    joined = json.loads(out.strip().splitlines()[-1])["trials_run"]
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials()
    assert len(trials) == 8 and sorted(t.number for t in trials) == list(range(8))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    children = _children(summary["parent_run_id"])
    assert sorted(int(c.data.tags["recdash.trial_number"]) for c in children) == list(range(8))
    assert len({c.data.tags["recdash.pid"] for c in children}) == 2 and 0 < joined < 8  # both workers ran trials
    assert summary["complete"] == 8


def test_existing_study_name_is_refused(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    optuna.create_study(study_name="taken", storage=storage)
    with pytest.raises(SweepError, match="already exists"):
        run_sweep(_spec("--n-trials", "1", "--storage", storage, "--study-name", "taken"))
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FAILED"


def test_default_study_storage_lives_beside_the_tracking_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "app-folder"  # where the dashboard was started, e.g. a git checkout
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run_sweep(_spec("--n-trials", "1", "--epochs", "1", "--no-model"))  # no --storage
    beside = (tmp_path / "optuna.db").resolve()  # the store is tmp_path/mlflow.db
    assert beside.exists() and not (elsewhere / "optuna.db").exists()
    parent = mlflow.get_run(result.parent_run_id)
    assert parent.data.params["storage"] == f"sqlite:///{beside}"
    assert optuna.load_study(study_name=result.study_name, storage=f"sqlite:///{beside}").trials
    # a store that is not a SQLite file: the recdash cache folder, never the working directory
    from recdash.training.sweep_spec import default_storage

    monkeypatch.setenv("RECDASH_CACHE_DIR", str(tmp_path / "cache"))
    cached = f"sqlite:///{(tmp_path / 'cache').resolve() / 'optuna.db'}"
    assert default_storage("http://127.0.0.1:5000") == default_storage("postgresql://u@db/mlflow") == cached
    # a team's shared database for every sweep started without --storage (the Train page's too)
    shared = f"sqlite:///{tmp_path / 'team-optuna.db'}"
    monkeypatch.setenv("RECDASH_OPTUNA_STORAGE", shared)
    assert default_storage() == default_storage("http://127.0.0.1:5000") == shared
    spec = _spec("--n-trials", "1", "--epochs", "1", "--no-model")
    assert spec.storage == shared and "--storage" not in spec.to_argv()  # the job's process finds it the same way
    result = run_sweep(spec)
    assert optuna.load_study(study_name=result.study_name, storage=shared).trials


def test_a_storage_that_cannot_be_opened_never_shows_its_password() -> None:
    from recdash.training.sweep import SweepError, _make_storage

    url = "postgresql+psycopg2://alice:s3cret-pw@127.0.0.1:1/optuna"  # port 1: nothing listens there
    with pytest.raises(SweepError) as caught:
        _make_storage(url)
    assert "cannot be opened" in str(caught.value) and "alice" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)


def test_a_worker_on_another_tracking_store_says_what_to_set(
    tmp_path: Path, tracking_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker host without the sweep's MLFLOW_TRACKING_URI: a clear refusal before any trial, not MLflow's
    "Run ... not found" traceback from inside its first trial."""
    from recdash.training.sweep import _Worker

    storage = f"sqlite:///{tmp_path / 'o.db'}"
    result = run_sweep(_spec("--n-trials", "1", "--epochs", "1", "--storage", storage))
    other = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    mlflow.set_tracking_uri(other)
    try:
        with pytest.raises(SweepError, match=f"parent run {result.parent_run_id} is not in the tracking store.*"
                           "set MLFLOW_TRACKING_URI"):  # fmt: skip
            _Worker(storage, result.study_name, worker_index=1)
    finally:
        mlflow.set_tracking_uri(tracking_store)
