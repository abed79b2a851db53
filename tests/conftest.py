"""Shared fixtures: every test gets a fresh SQLite MLflow store in a temp dir, and no test may leave a run open."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    # job logs and the launcher lock per test: tests run in parallel (pytest -n 2) must not share a launcher
    monkeypatch.setenv("RECDASH_JOBS_DIR", str(tmp_path / "jobs"))
    # runs snapshots (recdash.snapshot) per test, never in ~/.cache: a restart test makes its own loaders
    monkeypatch.setenv("RECDASH_SNAPSHOT_DIR", str(tmp_path / "snapshots"))
    mlflow.set_tracking_uri(uri)
    # the fluent API remembers the last experiment id process-wide; it belongs to the previous test's store
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    yield uri
    active = mlflow.active_run()
    if active is not None:
        mlflow.end_run()
        pytest.fail(f"test left MLflow run {active.info.run_id} open")
    mlflow.set_tracking_uri(None)


class _RefusesRegistry(BaseHTTPRequestHandler):
    """A real HTTP server standing in for an MLflow server with the registry switched off."""

    def _refuse(self) -> None:
        body = json.dumps({"error_code": "ENDPOINT_NOT_FOUND", "message": "Model registry is disabled"}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _refuse

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLFLOW_REGISTRY_URI pointed at a loopback server that refuses every registry call; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusesRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", url)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session", autouse=True)
def repo_stays_clean() -> Iterator[None]:
    """No test may leave tracking data in the checkout (a relative artifact root or storage lands there)."""
    repo = Path(__file__).resolve().parents[1]
    stray = ("mlruns", "mlflow.db", "optuna.db", "mlartifacts")
    before = {name for name in stray if (repo / name).exists()}
    yield
    after = {name for name in stray if (repo / name).exists()}
    assert after <= before, f"tests wrote {sorted(after - before)} into {repo}"


# Folders that need more than Python: a real Chromium (e2e/) or a PostgreSQL server (team/). `make test` runs every
# test; `pytest -m "not e2e and not postgres"` is the fast part a developer runs between edits.
_FOLDER_MARKERS = {"e2e": "e2e", "team": "postgres"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for folder, marker in _FOLDER_MARKERS.items():
            if folder in Path(str(item.path)).relative_to(Path(__file__).parent).parts[:1]:
                item.add_marker(getattr(pytest.mark, marker))
