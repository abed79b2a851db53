"""Shared fixtures: every test gets a fresh SQLite MLflow store in a temp dir, and no test may leave a run open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest


@pytest.fixture(autouse=True)
def tracking_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real SQLite tracking store with its artifacts next to it, isolated per test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.chdir(tmp_path)  # default artifact root ./mlruns lands in the temp dir
    mlflow.set_tracking_uri(uri)
    # the fluent API remembers the last experiment id process-wide; it belongs to the previous test's store
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    yield uri
    active = mlflow.active_run()
    if active is not None:
        mlflow.end_run()
        pytest.fail(f"test left MLflow run {active.info.run_id} open")
    mlflow.set_tracking_uri(None)
