"""`mlflow models serve` under load: a recdash model against a do-nothing pyfunc on the same server settings.

Why: a team serves recdash models with MLflow's own scoring server; what recdash's predict costs shows up as
requests per second lost against a model that does nothing. Measured here:

- a rankfm model fitted on the ML-100K train split (10 epochs) and logged with ``recdash.serving.log_model``, and a
  do-nothing pyfunc with the same signature that returns one fixed row per user (``bench/_noop_model.py``);
- each served by ``mlflow models serve --env-manager local --workers W`` (same W for both, default 1), one server
  at a time, on a loopback port;
- 2,000 single-user top-10 requests (``{"dataframe_records": [{"user_id": ...}], "params": {"k": 10}}``, random
  known users) from 16 client threads with keep-alive connections, after 100 warm-up requests; two rounds each,
  alternating, the better round of each kept (the machine is shared, so a busy moment must not decide).

Prints per model: requests/s, p50/p99 latency in ms, server errors (non-200 answers and failed connections); and
``served_rps_ratio`` = recdash's requests/s / the do-nothing model's (target >= 0.9). Last line: one JSON object.
Run: python bench/serve_load.py [--workers 1] [--requests 2000] [--threads 16]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from _noop_model import log_noop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from recdash.config import TrainConfig
from recdash.models import Interactions, RankFM
from recdash.serving import log_model, model_signature
from recdash.training.run import load_data

EPOCHS = 10
WARMUP = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model_uri: str, workers: int, cwd: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # it execs uvicorn by name
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    log = (cwd / f"{name}.log").open("wb")
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} server exited:\n{(cwd / f'{name}.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{name} server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def load(port: int, users: list[str], n_requests: int, threads: int) -> dict[str, Any]:
    """Send ``n_requests`` single-user requests from ``threads`` threads; requests/s, latencies and errors."""
    bodies = [json.dumps({"dataframe_records": [{"user_id": u}], "params": {"k": 10}}).encode() for u in users]
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(n_requests))

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        bad = 0
        for i in counter:
            body = bodies[i % len(bodies)]
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
                if response.status != 200 or b"predictions" not in data:
                    bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    ms = np.array(latencies) * 1000
    return {
        "rps": n_requests / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": errors[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="recdash-bench-serve-") as tmp:
        os.chdir(tmp)
        uri = f"sqlite:///{tmp}/mlflow.db"
        os.environ["MLFLOW_TRACKING_URI"] = uri
        mlflow.set_tracking_uri(uri)
        _, split = load_data(TrainConfig(dataset="movielens-100k"))
        rec = RankFM(seed=1).fit(Interactions.from_frame(split.train), epochs=EPOCHS).snapshot()
        with mlflow.start_run():
            uris = {"recdash": log_model(rec).model_uri, "noop": log_noop(Path(tmp), model_signature(rec))}
        rng = np.random.default_rng(0)
        users = [str(u) for u in rng.choice(rec.user_ids, size=500, replace=False)]
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in uris}
        for round_ in range(2):
            for name, model_uri in uris.items():
                proc, port = start_server(model_uri, args.workers, Path(tmp), f"{name}-{round_}")
                try:
                    load(port, users, WARMUP, args.threads)
                    result = load(port, users, args.requests, args.threads)
                finally:
                    stop(proc)
                results[name].append(result)
                print(
                    f"round {round_ + 1} {name}: {result['rps']:.1f} req/s, p50 {result['p50_ms']:.1f} ms, "
                    f"p99 {result['p99_ms']:.1f} ms, {result['errors']} errors",
                    flush=True,
                )
    best = {name: max(rounds, key=lambda r: r["rps"]) for name, rounds in results.items()}
    out = {
        "served_rps_ratio": round(best["recdash"]["rps"] / best["noop"]["rps"], 3),
        "recdash_rps": round(best["recdash"]["rps"], 1),
        "noop_rps": round(best["noop"]["rps"], 1),
        "recdash_p50_ms": round(best["recdash"]["p50_ms"], 2),
        "recdash_p99_ms": round(best["recdash"]["p99_ms"], 2),
        "noop_p50_ms": round(best["noop"]["p50_ms"], 2),
        "noop_p99_ms": round(best["noop"]["p99_ms"], 2),
        "server_errors": sum(r["errors"] for rounds in results.values() for r in rounds),
        "rounds_rps": {name: [round(r["rps"], 1) for r in rounds] for name, rounds in results.items()},
        "median_rps": {name: round(statistics.median(r["rps"] for r in rounds), 1) for name, rounds in results.items()},
        "workers": args.workers,
        "requests": args.requests,
        "threads": args.threads,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
