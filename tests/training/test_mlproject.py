"""The MLproject entry points run under `mlflow run . --env-manager local` and leave a proper run behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[2]
# the smallest settings each entry point might declare; only the ones it declares are passed
TINY = {"dataset": "synthetic", "epochs": "2", "factors": "8", "max_samples": "10", "patience": "0"}
SWEEP_TINY = {**TINY, "n_trials": "2", "n_workers": "1"}


def _entry_points() -> dict[str, Any]:
    return yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]


def _mlflow_run(entry_point: str, params: dict[str, str], tracking_uri: str) -> subprocess.CompletedProcess[str]:
    declared = _entry_points()[entry_point].get("parameters", {})
    command = [sys.executable, "-m", "mlflow", "run", str(REPO), "-e", entry_point, "--env-manager", "local"]
    for key, value in params.items():
        if key in declared:
            command += ["-P", f"{key}={value}"]
    # the entry point's command starts with `python`: it has to be this venv's python
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MLFLOW_RUN_ID", None)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _project_runs(client: MlflowClient) -> list[Any]:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(experiments, filter_string="tags.`mlflow.source.type` = 'PROJECT'"))


def _assert_trained(client: MlflowClient, run: Any, epochs: str) -> None:
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == epochs
    assert run.data.params["dataset_name"] == "synthetic"
    for name in ("precision", "recall", "ndcg", "mrr", "map", "hit_rate"):
        assert 0 <= run.data.metrics[f"test_{name}_at_10"] <= 1
    assert run.data.metrics["best_epoch"] >= 1
    models = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")
    assert [m.name for m in models] == ["model"]


def test_train_entry_point_runs_and_logs_one_finished_run(tracking_store: str) -> None:
    done = _mlflow_run("train", TINY, tracking_store)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(tracking_store)
    runs = _project_runs(client)
    assert len(runs) == 1, [r.info.run_id for r in runs]
    run = runs[0]
    # the project's run is the training run itself (recdash.train resumes MLFLOW_RUN_ID), not a wrapper around it
    assert run.data.tags["mlflow.project.entryPoint"] == "train"
    assert run.data.tags["recdash.kind"] == "train"
    assert run.data.params["factors"] == "8"
    _assert_trained(client, run, "2")
    assert run.info.run_id in done.stdout  # the CLI's JSON summary names the run


def test_train_entry_point_trains_on_a_file_of_any_size(tracking_store: str, tmp_path: Path) -> None:
    """The way to train on a file larger than the Train page's upload limit: a path, read where it lies."""
    from recdash.data.synthetic import make_synthetic

    data = make_synthetic(n_users=60, n_items=40, n_interactions=1_500, seed=3).interactions
    path = tmp_path / "big.parquet"
    data.rename(columns={"user_id": "customer", "item_id": "sku"}).to_parquet(path)
    params = {**TINY, "dataset": "parquet", "file": str(path), "user_column": "customer", "item_column": "sku"}
    done = _mlflow_run("train", {**params, "validation_sample": "20"}, tracking_store)
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = _project_runs(MlflowClient(tracking_store))
    assert run.info.status == "FINISHED" and run.data.params["dataset_name"] == "big"
    assert run.data.params["validation_users"] == "20" and run.data.params["dataset_rows"] == "1500"


def test_bad_parameter_fails_the_project_run_with_a_clear_message(tracking_store: str) -> None:
    done = _mlflow_run("train", {**TINY, "epochs": "0"}, tracking_store)
    assert done.returncode != 0
    assert "error: --epochs must be between 1 and" in done.stderr
    assert "Traceback" not in done.stderr
    runs = _project_runs(MlflowClient(tracking_store))
    assert [r.info.status for r in runs] == ["FAILED"]


@pytest.mark.skipif("sweep" not in _entry_points(), reason="MLproject has no `sweep` entry point yet")
def test_sweep_entry_point_runs_with_tiny_settings(tracking_store: str, tmp_path: Path) -> None:
    # entry points run with the project directory as cwd: a relative default storage would land in the repo
    done = _mlflow_run("sweep", {**SWEEP_TINY, "storage": f"sqlite:///{tmp_path / 'optuna.db'}"}, tracking_store)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(tracking_store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = list(client.search_runs(experiments))
    trained = [r for r in runs if r.data.tags.get("recdash.kind") == "train"]
    assert trained, "the sweep logged no training run"
    for run in trained:
        _assert_trained(client, run, "2")
    project = [r for r in runs if r.data.tags.get("mlflow.source.type") == "PROJECT"]
    assert project and all(r.info.status == "FINISHED" for r in project)
