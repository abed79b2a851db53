"""`mlflow models serve` on recdash models, for real: server processes on loopback ports, real HTTP.

One tiny rankfm model is trained, registered and aliased ``champion``; MLflow's own scoring server serves
``models:/<name>@champion``; every answer is checked against ``predict`` on the same model loaded in process.
Then every other algorithm (EASE, ItemKNN, popularity) is trained the same way and served by its own server,
started side by side, and must answer the same predict contract.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from stores import sqlite_store

from recdash.config import TrainConfig
from recdash.models import MODELS
from recdash.models.rankfm import Hyperparams
from recdash.registry import register_run_model, set_alias
from recdash.training.run import load_data, train

MODEL_NAME = "recs"
SMALL = {"n_users": 120, "n_items": 80, "n_interactions": 3000}
START_DEADLINE_S = 90


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status)


def _post(base: str, body: Any) -> tuple[int, dict[str, Any]]:
    """POST ``body`` (a JSON-able object, or raw bytes) to /invocations; returns (status, parsed JSON)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base}/invocations", data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return int(err.code), json.loads(err.read())


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's whole process group (mlflow CLI + the uvicorn it starts), SIGKILL what lingers.

    Waiting for the CLI process is not enough: uvicorn is its child and may still answer for a moment after it.
    """
    pgid = proc.pid  # start_new_session=True: the group id is the leader's pid
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while _group_alive(pgid) and time.monotonic() < deadline:
        proc.poll()  # reap the leader so it does not linger as a zombie member of the group
        time.sleep(0.1)
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait(timeout=15)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Train + register + alias in a store of its own, start the real server, yield what the tests need."""
    store = tmp_path_factory.mktemp("serving")
    with sqlite_store(store) as uri:
        config = TrainConfig(
            dataset="synthetic", dataset_options=SMALL, epochs=2, patience=0, experiment="serving",
            hparams=Hyperparams(factors=8, loss="warp", max_samples=10),
        )  # fmt: skip
        result = train(config)
        version = register_run_model(result.run_id, MODEL_NAME)
        set_alias(MODEL_NAME, "champion", version)
        model_uri = f"models:/{MODEL_NAME}@champion"
        in_process = mlflow.pyfunc.load_model(model_uri)

    proc, base = _start_server(model_uri, uri, store, "server")
    try:
        _wait_ready(proc, base, store / "server.log")
        rec = in_process.unwrap_python_model().recommender
        known = str(rec.user_ids[0])
        yield {"base": base, "model": in_process, "rec": rec, "known": known, "proc": proc}
    finally:
        _stop(proc)


def _start_server(model_uri: str, tracking_uri: str, cwd: Path, name: str) -> tuple[subprocess.Popen[bytes], str]:
    """``mlflow models serve`` of ``model_uri`` on a free loopback port, in its own process group."""
    port = _free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri)
    # `mlflow models serve` execs `uvicorn` by name: the venv's bin dir must be on PATH
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    with open(cwd / f"{name}.log", "wb") as log:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(proc: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if _get(f"{base}/ping") == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"server did not answer /ping within {START_DEADLINE_S}s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)


def _expected(served: dict[str, Any], users: list[str], **params: Any) -> pd.DataFrame:
    return served["model"].predict(pd.DataFrame({"user_id": users}), params=params or None)


def _assert_same(got: list[dict[str, Any]], expected: pd.DataFrame) -> None:
    frame = pd.DataFrame(got)
    assert list(frame.columns) == ["user_id", "rank", "item_id", "score", "source"]
    for column in ("user_id", "rank", "item_id", "source"):
        assert frame[column].tolist() == expected[column].tolist(), column
    assert frame["score"].to_numpy() == pytest.approx(expected["score"].to_numpy(), rel=1e-6)


def _assert_bad_request(status: int, body: dict[str, Any], *needles: str) -> None:
    assert 400 <= status < 500, body
    assert body.get("error_code") in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"), body
    for needle in needles:
        assert needle in body["message"], body["message"]


def test_known_user_gets_the_same_recommendations_as_in_process_predict(served: dict[str, Any]) -> None:
    status, body = _post(served["base"], {"dataframe_records": [{"user_id": served["known"]}], "params": {"k": 5}})
    assert status == 200, body
    _assert_same(body["predictions"], _expected(served, [served["known"]], k=5))
    assert {row["source"] for row in body["predictions"]} == {"model"}
    assert len(body["predictions"]) == 5


def test_unknown_user_gets_popular_fallback_rows(served: dict[str, Any]) -> None:
    users = [served["known"], "nobody-like-this"]
    status, body = _post(served["base"], {"dataframe_records": [{"user_id": u} for u in users], "params": {"k": 3}})
    assert status == 200, body
    _assert_same(body["predictions"], _expected(served, users, k=3))
    unknown = [row for row in body["predictions"] if row["user_id"] == "nobody-like-this"]
    assert len(unknown) == 3 and {row["source"] for row in unknown} == {"popular"}
    rec = served["rec"]
    most_popular = str(rec.item_ids[int(rec.item_popularity.argmax())])
    assert unknown[0]["item_id"] == most_popular


def test_default_k_is_ten_and_numeric_ids_are_read_as_strings(served: dict[str, Any]) -> None:
    status, body = _post(served["base"], {"dataframe_split": {"columns": ["user_id"], "data": [[served["known"]]]}})
    assert status == 200, body
    _assert_same(body["predictions"], _expected(served, [served["known"]]))
    assert len(body["predictions"]) == 10
    # MovieLens ids look numeric; a JSON number is the same user as its string
    status, body = _post(served["base"], {"dataframe_records": [{"user_id": 196}], "params": {"k": 2}})
    assert status == 200 and [row["user_id"] for row in body["predictions"]] == ["196", "196"]


def test_k_larger_than_the_catalogue_returns_every_available_item(served: dict[str, Any]) -> None:
    rec = served["rec"]
    users = [served["known"], "nobody-like-this"]
    status, body = _post(served["base"], {"dataframe_records": [{"user_id": u} for u in users], "params": {"k": 10**6}})
    assert status == 200, body
    _assert_same(body["predictions"], _expected(served, users, k=10**6))
    frame = pd.DataFrame(body["predictions"])
    seen = len(rec.seen_items(int(rec.user_index([served["known"]])[0])))
    assert (frame["user_id"] == served["known"]).sum() == rec.n_items - seen
    assert (frame["user_id"] == "nobody-like-this").sum() == rec.n_items


def test_missing_user_id_is_a_400_naming_the_column(served: dict[str, Any]) -> None:
    status, body = _post(served["base"], {"dataframe_records": [{"uid": "1"}], "params": {"k": 5}})
    _assert_bad_request(status, body, "user_id")


@pytest.mark.parametrize("user_id", [{"nested": 1}, [1, 2]], ids=["object", "list"])
def test_user_id_of_the_wrong_type_is_a_400(served: dict[str, Any], user_id: Any) -> None:
    status, body = _post(served["base"], {"dataframe_records": [{"user_id": user_id}], "params": {"k": 5}})
    _assert_bad_request(status, body, "user_id")


def test_empty_user_id_is_a_400(served: dict[str, Any]) -> None:
    status, body = _post(served["base"], {"dataframe_records": [{"user_id": None}]})
    _assert_bad_request(status, body, "user_id must not be empty")


@pytest.mark.parametrize("k", [0, -1])
def test_k_not_positive_is_a_400(served: dict[str, Any], k: int) -> None:
    status, body = _post(served["base"], {"dataframe_records": [{"user_id": served["known"]}], "params": {"k": k}})
    _assert_bad_request(status, body, "k must be a positive integer")


@pytest.mark.parametrize("k", ["x", 2.5])
def test_k_of_the_wrong_type_is_a_400_from_the_param_schema(served: dict[str, Any], k: Any) -> None:
    # MLflow checks params against the model signature (k: long) before predict runs; its message names k
    status, body = _post(served["base"], {"dataframe_records": [{"user_id": served["known"]}], "params": {"k": k}})
    _assert_bad_request(status, body, "'k'")


def test_exclude_seen_of_the_wrong_type_is_a_400(served: dict[str, Any]) -> None:
    body_in = {"dataframe_records": [{"user_id": served["known"]}], "params": {"exclude_seen": "no"}}
    status, body = _post(served["base"], body_in)
    _assert_bad_request(status, body, "exclude_seen")


@pytest.mark.parametrize("raw", [b"not json", b"{}"], ids=["not-json", "no-input-field"])
def test_malformed_bodies_are_a_400(served: dict[str, Any], raw: bytes) -> None:
    status, body = _post(served["base"], raw)
    _assert_bad_request(status, body)
    assert body["message"]


def test_server_stops_cleanly(served: dict[str, Any]) -> None:
    """Last on purpose: the fixture's finally would do this too; here it is checked."""
    proc = served["proc"]
    _stop(proc)
    assert proc.poll() is not None and not _group_alive(proc.pid)
    with pytest.raises(OSError):
        _get(f"{served['base']}/ping")


# ---- every other algorithm: the same contract from its own server --------------------------------------------------

OTHER_MODELS = sorted(set(MODELS) - {"rankfm"})


@pytest.fixture(scope="module")
def served_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    """EASE, ItemKNN and popularity trained on one dataset, each logged model served by its own server; the servers
    start side by side (their start-up is mostly imports)."""
    store = tmp_path_factory.mktemp("serving_models")
    with sqlite_store(store) as uri:
        base = TrainConfig(dataset="synthetic", dataset_options=SMALL, experiment="serving-models")
        data = load_data(base)
        models = {}
        for name in OTHER_MODELS:
            result = train(TrainConfig(**{**base.__dict__, "model": name, "hparams": None, "run_name": name}), data)
            models[name] = {"uri": result.model_uri, "model": mlflow.pyfunc.load_model(result.model_uri)}
    servers = {name: _start_server(m["uri"], uri, store, name) for name, m in models.items()}
    try:
        for name, (proc, base_url) in servers.items():
            _wait_ready(proc, base_url, store / f"{name}.log")
            models[name] |= {"base": base_url, "rec": models[name]["model"].unwrap_python_model().recommender}
        yield models
    finally:
        for proc, _ in servers.values():
            _stop(proc)


@pytest.mark.parametrize("name", OTHER_MODELS)
def test_every_model_answers_the_predict_contract_from_its_own_server(
    served_models: dict[str, dict[str, Any]], name: str
) -> None:
    served = served_models[name]
    rec = served["rec"]
    assert type(rec).__name__ == {"als": "ALS", "ease": "EASE", "itemknn": "ItemKNN", "popularity": "Popularity"}[name]
    known = str(rec.user_ids[3])
    users = [known, "nobody-like-this"]
    status, body = _post(served["base"], {"dataframe_records": [{"user_id": u} for u in users], "params": {"k": 4}})
    assert status == 200, body
    _assert_same(body["predictions"], _expected(served, users, k=4))
    rows = pd.DataFrame(body["predictions"])
    mine = rows[rows["user_id"] == known]
    assert mine["rank"].tolist() == [1, 2, 3, 4] and set(mine["source"]) == {"model"}
    seen = set(rec.item_ids[rec.seen_items(int(rec.user_index([known])[0]))])
    assert not seen & set(mine["item_id"])  # exclude_seen by default
    assert set(rows.loc[rows["user_id"] == "nobody-like-this", "source"]) == {"popular"}
    status, body = _post(served["base"], {"dataframe_records": [{"user_id": known}], "params": {"k": 0}})
    _assert_bad_request(status, body, "k must be a positive integer")


# ---- a model with side features: the command, a fresh process without rankfmc, and the server ----------

NEW_USER = {"user_id": "someone-new", "age": 29, "gender": "F", "occupation": "programmer"}
FRESH_PREDICT = """
import json, sys
sys.modules["rankfmc"] = None  # serving must not need it: any import of rankfmc now fails
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
rows = [json.loads(sys.argv[2]), {"user_id": "nobody-at-all"}]
out = model.predict(pd.DataFrame(rows), params={"k": 10})
print(out.to_json(orient="records"))
"""


@pytest.fixture(scope="module")
def served_features(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``python -m recdash train --dataset synthetic --split cold-users --user-features builtin --item-features
    builtin`` as a user types it, then its model in a fresh process and behind ``mlflow models serve``."""
    store = tmp_path_factory.mktemp("serving_features")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri)
    command = [sys.executable, "-m", "recdash", "train", "--dataset", "synthetic", "--split", "cold-users"]
    command += ["--user-features", "builtin", "--item-features", "builtin", "--experiment", "features"]
    done = subprocess.run(command, cwd=store, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    fresh = subprocess.run(
        [sys.executable, "-c", FRESH_PREDICT, summary["model_uri"], json.dumps(NEW_USER)],
        cwd=store, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    proc, base = _start_server(summary["model_uri"], uri, store, "features")
    try:
        _wait_ready(proc, base, store / "features.log")
        yield {"summary": summary, "fresh": json.loads(fresh.stdout.strip().splitlines()[-1]), "base": base, "uri": uri}
    finally:
        _stop(proc)


def test_cold_users_run_with_features_beats_its_popularity_baseline(served_features: dict[str, Any]) -> None:
    summary = served_features["summary"]
    assert summary["test_recall_at_10"] > summary["baseline_test_recall_at_10"], summary
    assert summary["cold_start"]["strategy"] in ("features", "blend"), summary["cold_start"]


def test_a_new_user_with_attributes_gets_feature_based_rows_in_a_fresh_process(served_features: dict[str, Any]) -> None:
    rows = pd.DataFrame(served_features["fresh"])
    new = rows[rows["user_id"] == NEW_USER["user_id"]]
    popular = rows[rows["user_id"] == "nobody-at-all"]
    assert len(new) == 10 and set(new["source"]) == {served_features["summary"]["cold_start"]["strategy"]}
    assert set(popular["source"]) == {"popular"} and len(popular) == 10
    assert new["item_id"].tolist() != popular["item_id"].tolist()


def test_the_server_answers_a_new_user_as_the_fresh_process_did(served_features: dict[str, Any]) -> None:
    body = {"dataframe_records": [NEW_USER, {"user_id": "nobody-at-all"}], "params": {"k": 10}}
    status, answer = _post(served_features["base"], body)
    assert status == 200, answer
    _assert_same(answer["predictions"], pd.DataFrame(served_features["fresh"]))
    status, answer = _post(served_features["base"], {"dataframe_records": [{**NEW_USER, "gender": "X"}]})
    _assert_bad_request(status, answer, "gender must be one of F, M")
