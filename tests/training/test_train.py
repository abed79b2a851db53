"""One training run = one MLflow run: what it logs, how it ends, and the model it leaves behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from stores import sqlite_store

from recdash.cli import main as cli_main
from recdash.config import ConfigError, TrainConfig
from recdash.models.rankfm import Hyperparams
from recdash.training.run import StopRun, train

SMALL = {"n_users": 120, "n_items": 80, "n_interactions": 3000}


def small_config(**overrides: object) -> TrainConfig:
    base: dict[str, object] = dict(
        dataset="synthetic",
        dataset_options=SMALL,
        epochs=3,
        patience=0,
        experiment="t",
        hparams=Hyperparams(factors=8, loss="warp", max_samples=10),
    )
    base.update(overrides)
    return TrainConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One real training run in its own store, shared by the read-only checks below."""
    store = tmp_path_factory.mktemp("store")
    with sqlite_store(store) as uri:
        result = train(small_config(run_name="first"))
    return {"uri": uri, "store": store, "result": result}


def test_run_logs_params_metrics_lineage_and_tags(finished: dict[str, object]) -> None:
    client = MlflowClient(str(finished["uri"]))
    result = finished["result"]
    run = client.get_run(result.run_id)  # type: ignore[attr-defined]
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "first"
    p = run.data.params
    assert p["loss"] == "warp" and p["factors"] == "8" and p["epochs"] == "3"
    assert p["split_method"] == "random" and p["split_seed"] == "42"
    assert p["dataset_name"] == "synthetic" and p["dataset_digest"]
    m = run.data.metrics
    for name in ("precision", "recall", "ndcg", "mrr", "map", "hit_rate"):
        assert 0 <= m[f"test_{name}_at_10"] <= 1
        assert 0 <= m[f"baseline_test_{name}_at_10"] <= 1
        history = client.get_metric_history(run.info.run_id, f"val_{name}_at_10")
        assert [h.step for h in history] == [1, 2, 3]
    assert 0 < m["test_coverage_at_10"] <= 1
    assert m["test_mean_popularity_at_10"] > 0
    assert 1 <= m["best_epoch"] <= 3 and m["train_seconds"] > 0
    assert run.data.tags["recdash.created_by"] == "recdash"
    assert run.data.tags["recdash.pid"] == str(os.getpid())
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.name == "synthetic"
    assert inputs[0].dataset.digest


def test_model_follows_the_predict_contract(finished: dict[str, object]) -> None:
    mlflow.set_tracking_uri(str(finished["uri"]))
    uri = finished["result"].model_uri  # type: ignore[attr-defined]
    model = mlflow.pyfunc.load_model(uri)
    known = finished["result"].recommender.user_ids[0]  # type: ignore[attr-defined]
    out = model.predict(pd.DataFrame({"user_id": [known, "nobody"]}), params={"k": 5})
    assert list(out.columns) == ["user_id", "rank", "item_id", "score", "source"]
    assert out[out.user_id == known]["source"].eq("model").sum() == 5
    assert out[out.user_id == "nobody"]["source"].eq("popular").sum() == 5
    with pytest.raises(mlflow.exceptions.MlflowException, match="user_id"):
        model.predict(pd.DataFrame({"uid": ["1"]}))


def test_model_loads_in_a_fresh_process_without_rankfmc(finished: dict[str, object]) -> None:
    code = textwrap.dedent(
        f"""
        import json, sys, mlflow, pandas as pd
        mlflow.set_tracking_uri({str(finished["uri"])!r})
        m = mlflow.pyfunc.load_model({finished["result"].model_uri!r})
        out = m.predict(pd.DataFrame({{"user_id": ["nobody"]}}))
        print(json.dumps({{"rankfmc": "rankfmc" in sys.modules, "rows": len(out), "src": sorted(set(out.source))}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=str(finished["store"])
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"rankfmc": False, "rows": 10, "src": ["popular"]}


def test_early_stopping_keeps_the_best_epoch() -> None:
    result = train(small_config(epochs=40, patience=2, hparams=Hyperparams(factors=8, learning_rate=0.5)))
    run = MlflowClient().get_run(result.run_id)
    steps = MlflowClient().get_metric_history(result.run_id, "val_ndcg_at_10")
    assert len(steps) < 40, "patience 2 should stop long before 40 epochs"
    best = max(steps, key=lambda h: (h.value, -h.step))
    assert run.data.metrics["best_epoch"] == best.step
    assert "early stopping" in run.data.tags["recdash.end_reason"]
    # every validation metric at the kept epoch, not only the monitored one (val_* at the last step is past it)
    for name in ("precision", "recall", "ndcg", "mrr", "map", "hit_rate", "coverage"):
        at_best = [h.value for h in MlflowClient().get_metric_history(result.run_id, f"val_{name}_at_10")
                   if h.step == best.step]  # fmt: skip
        assert run.data.metrics[f"best_val_{name}_at_10"] == pytest.approx(at_best[0]), name


def test_exception_in_training_ends_run_failed_with_reason() -> None:
    def boom(epoch: int, metrics: dict[str, float]) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        train(small_config(log_model=False), on_epoch=boom)
    (run,) = MlflowClient().search_runs([mlflow.get_experiment_by_name("t").experiment_id])
    assert run.info.status == "FAILED"
    assert "disk on fire" in run.data.tags["recdash.error"]


def test_interrupt_ends_run_killed_and_stoprun_uses_its_status() -> None:
    def interrupt(epoch: int, metrics: dict[str, float]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(small_config(log_model=False, run_name="ctrl-c"), on_epoch=interrupt)

    def prune(epoch: int, metrics: dict[str, float]) -> None:
        raise StopRun("KILLED", "pruned at epoch 1")

    with pytest.raises(StopRun):
        train(small_config(log_model=False, run_name="pruned"), on_epoch=prune)
    runs = {r.info.run_name: r for r in MlflowClient().search_runs([mlflow.get_experiment_by_name("t").experiment_id])}
    assert runs["ctrl-c"].info.status == "KILLED"
    assert runs["pruned"].info.status == "KILLED"
    assert runs["pruned"].data.tags["recdash.end_reason"] == "pruned at epoch 1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--factors", "0"], "--factors"),
        (["--loss", "hinge"], "--loss"),
        (["--learning-rate", "-0.1"], "--learning-rate"),
        (["--epochs", "0"], "--epochs"),
        (["--split-fractions", "0.5,0.5"], "--split-fractions"),
        (["--dataset", "csv"], "--data-path"),
    ],
)
def test_cli_refuses_bad_values_before_creating_a_run(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(["train", "--dataset", "synthetic", "--experiment", "cli", *argv])
    assert code == 2
    assert message in capsys.readouterr().err
    assert mlflow.get_experiment_by_name("cli") is None or not MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("cli").experiment_id]
    )


def test_warp_max_samples_beyond_the_catalogue_is_refused_before_a_run(capsys: pytest.CaptureFixture[str]) -> None:
    """rankfmc's WARP kernel corrupts the heap (``free(): invalid next size``) when max_samples >= the number of
    items; the process died instead of the run failing. Now it is refused with the limit, before any run exists."""
    argv = ["train", "--dataset", "synthetic", "--synthetic-users", "200", "--synthetic-items", "50",
            "--synthetic-interactions", "4000", "--epochs", "1", "--max-samples", "50",
            "--experiment", "cli"]  # fmt: skip
    assert cli_main(argv) == 2
    assert "max_samples (--max-samples) must be below the number of items" in capsys.readouterr().err
    assert mlflow.get_experiment_by_name("cli") is None or not MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("cli").experiment_id]
    )


def test_repeats_with_other_seeds_share_their_data_and_split(capsys: pytest.CaptureFixture[str]) -> None:
    """--seed is the model's; --split-seed the split's (and synthetic data's): repeats differ only in the model."""
    base = [
        "train",
        "--dataset",
        "synthetic",
        "--synthetic-users",
        "100",
        "--synthetic-items",
        "60",
        "--synthetic-interactions",
        "2000",
        "--epochs",
        "1",
        "--factors",
        "8",
        "--experiment",
        "cli",
        "--no-model",
    ]
    runs = []
    for extra in (["--seed", "1"], ["--seed", "2"], ["--seed", "1", "--split-seed", "7"]):
        assert cli_main([*base, *extra]) == 0
        run_id = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_id"]
        runs.append(MlflowClient().get_run(run_id).data.params)
    first, other_seed, other_split = runs
    assert first["dataset_digest"] == other_seed["dataset_digest"] and first["split_seed"] == other_seed["split_seed"]
    assert (first["seed"], other_seed["seed"]) == ("1", "2")
    assert other_split["split_seed"] == "7" and other_split["dataset_digest"] != first["dataset_digest"]


def test_config_validation_messages() -> None:
    with pytest.raises(ConfigError, match="--early-stopping-metric"):
        small_config(early_stopping_metric="auc")
    with pytest.raises(ConfigError, match="--k"):
        small_config(k=0)


def test_cli_train_end_to_end_on_synthetic(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(
        [
            "train",
            "--dataset",
            "synthetic",
            "--synthetic-users",
            "100",
            "--synthetic-items",
            "60",
            "--synthetic-interactions",
            "2000",
            "--epochs",
            "2",
            "--factors",
            "8",
            "--experiment",
            "cli",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = MlflowClient().get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert summary["model_uri"] == f"runs:/{summary['run_id']}/model"


@pytest.mark.slow
def test_movielens_defaults_beat_popularity_within_a_minute() -> None:
    """The foundation issue's bar: default settings on ML-100K, under a minute, recall >= 1.6x popularity."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "recdash", "train", "--dataset", "movielens-100k"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert elapsed < 60, f"took {elapsed:.1f}s"
    assert summary["test_recall_at_10"] >= 1.6 * summary["baseline_test_recall_at_10"], summary
    run = MlflowClient().get_run(summary["run_id"])
    assert run.data.params["dataset_rows"] == "100000"


def test_cli_help_documents_every_hyperparameter(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli_main(["train", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--factors",
        "--loss",
        "--max-samples",
        "--alpha",
        "--beta",
        "--sigma",
        "--learning-rate",
        "--learning-schedule",
        "--learning-exponent",
        "--split",
        "--split-fractions",
        "--min-rating",
        "--patience",
        "--early-stopping-metric",
    ):
        assert flag in text
