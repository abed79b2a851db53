"""Team scale: the Runs page data load of 10,000 runs through an ``mlflow server`` on PostgreSQL (started with
several workers), against ``mlflow.search_runs`` through the same server; and sweep throughput with 1 vs 2 workers
sharing a PostgreSQL Optuna storage.

Run: python bench/team_scale.py   (needs Debian's `postgresql` package; starts its own throwaway cluster and
server in a temp dir and removes them; prints one JSON line last). RECDASH_BENCH_RUNS changes the run count,
RECDASH_BENCH_SERVER_WORKERS the server's --workers (default 4), RECDASH_BENCH_SERVER=gunicorn its
web server (default uvicorn, MLflow's), RECDASH_REST_WORKERS recdash's threads (8).

The 10,000 runs copy the keys of one real ``recdash train`` run (params, final metrics, tags) with varied values,
grouped like sweeps (a parent and 49 trials). They are bulk-inserted through MLflow's own table definitions into
the server's backend store, because creating them over REST would take longer than everything measured here;
creation is not timed. Measured, each a ratio within this one run:
  - rest_first_load_speedup: search_runs time / recdash's cold first load (concurrent REST pages, no snapshot)
  - rest_restart_load_ratio: a new RunsLoader starting from the snapshot the previous one wrote / the cold load
  - db_direct_load_speedup: search_runs time / recdash reading the backend PostgreSQL read-only
    (RECDASH_BACKEND_DB_URL)
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _timing import best_of

ROOT = Path(__file__).resolve().parents[1]
N_RUNS = int(os.environ.get("RECDASH_BENCH_RUNS", "10000"))
SWEEP_SIZE = 50  # runs per simulated sweep: one parent + 49 trials
SERVER_WORKERS = int(os.environ.get("RECDASH_BENCH_SERVER_WORKERS", "4"))  # mlflow server --workers
# "gunicorn": the server's Flask app under gunicorn's sync workers (one request each) instead of MLflow's default
# uvicorn, whose workers also take requests in threads (see docs/deploy.md)
SERVER_KIND = os.environ.get("RECDASH_BENCH_SERVER", "uvicorn")
SERVER_ARGS = ["--gunicorn-opts", "--timeout 600"] if SERVER_KIND == "gunicorn" else []
CLIENT_THREADS = int(os.environ.get("RECDASH_REST_WORKERS", "8"))  # recdash's concurrent first load
SWEEP_TRIALS = 8
# big enough that training, not MLflow logging or process start-up, is most of a trial (~3 s each here)
SWEEP_FLAGS = [
    "--dataset", "synthetic", "--synthetic-users", "2000", "--synthetic-items", "1500",
    "--synthetic-interactions", "100000", "--epochs", "20", "--patience", "0", "--no-prune",
    "--space", "factors=16:48", "--space", "learning_rate=0.05:0.2:log", "--sampler", "random",
]  # fmt: skip


def _pg_helpers() -> Any:
    """The one implementation of the throwaway PostgreSQL + server, shared with tests/test_postgres_team.py."""
    spec = importlib.util.spec_from_file_location("pg_helpers", ROOT / "tests" / "pg_helpers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pg_helpers"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _template(uri: str) -> tuple[dict[str, str], dict[str, float], dict[str, str]]:
    """Params, final metrics and tags of one real (tiny) recdash training run logged through the server."""
    import mlflow

    from recdash.config import TrainConfig
    from recdash.training.run import train

    mlflow.set_tracking_uri(uri)
    config = TrainConfig(
        dataset="synthetic",
        dataset_options={"n_users": 120, "n_items": 80, "n_interactions": 3000},
        epochs=3,
        log_model=False,
        experiment="template",
    )
    run = mlflow.MlflowClient(uri).get_run(train(config).run_id)
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    return dict(run.data.params), dict(run.data.metrics), tags


def _bulk_insert(backend_uri: str, experiment_id: str, n_runs: int, template: tuple[dict, dict, dict]) -> float:
    """Insert n_runs finished runs into MLflow's tables (runs, params, tags, metrics, latest_metrics)."""
    import sqlalchemy
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag

    params, metrics, tags = template
    rng = random.Random(7)
    exp = int(experiment_id)
    base = int(time.time() * 1000) - n_runs * 60_000
    engine = sqlalchemy.create_engine(backend_uri)
    t0 = time.perf_counter()
    parent = None
    chunk = 1000
    for start in range(0, n_runs, chunk):
        runs, prm, tg, mets = [], [], [], []
        for i in range(start, min(start + chunk, n_runs)):
            run_id = uuid.uuid4().hex
            begin = base + i * 60_000
            is_parent = i % SWEEP_SIZE == 0
            name = f"sweep-{i // SWEEP_SIZE}" if is_parent else f"sweep-{i // SWEEP_SIZE}-trial-{i % SWEEP_SIZE - 1}"
            status = "FINISHED" if is_parent or rng.random() > 0.15 else "KILLED"
            end = begin + rng.randint(2_000, 50_000)
            artifacts = f"mlflow-artifacts:/{exp}/{run_id}/artifacts"
            runs.append(
                dict(run_uuid=run_id, name=name, source_type="LOCAL", source_name="bench", user_id="bench",
                     status=status, start_time=begin, end_time=end, lifecycle_stage="active",
                     artifact_uri=artifacts, experiment_id=exp)
            )  # fmt: skip
            values = dict(params)
            values.update(factors=str(rng.randint(8, 128)), learning_rate=f"{rng.uniform(0.01, 0.3):.4f}")
            values.update(alpha=f"{rng.uniform(1e-4, 0.1):.5f}", loss=rng.choice(["bpr", "warp"]))
            prm += [{"key": k, "value": v, "run_uuid": run_id} for k, v in values.items()]
            run_tags = {**tags, "mlflow.runName": name, "mlflow.user": "bench", "recdash.kind": "train"}
            if is_parent:
                parent = run_id
                run_tags["recdash.kind"] = "sweep"
            else:
                run_tags.update({"mlflow.parentRunId": parent, "recdash.sweep_run_id": parent})
                run_tags["recdash.trial_number"] = str(i % SWEEP_SIZE - 1)
            tg += [{"key": k, "value": v, "run_uuid": run_id} for k, v in run_tags.items()]
            for key, value in metrics.items():
                scaled = value * rng.uniform(0.5, 1.5)
                mets.append(dict(key=key, value=scaled, timestamp=end, step=0, is_nan=False, run_uuid=run_id))
        with engine.begin() as conn:
            for model, rows in ((SqlRun, runs), (SqlParam, prm), (SqlTag, tg), (SqlMetric, mets),
                                (SqlLatestMetric, mets)):  # fmt: skip
                _copy(conn, model.__table__.name, rows)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("ANALYZE"))  # fresh statistics, as autovacuum would have by now
    engine.dispose()
    return time.perf_counter() - t0


def _server_cpu_s(stack: Any) -> float:
    """CPU seconds used so far by the mlflow server's processes (its session) and PostgreSQL's, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        # fields[3] is the session id; [11], [12] user and system time (children that ended count in [13], [14])
        if int(fields[3]) == stack.server.proc.pid or comm == "postgres":
            total += sum(int(f) for f in fields[11:15])
    return total / tick


def _timed(stack: Any, fn: Any) -> tuple[float, float, float, Any]:
    """Wall seconds, this process's CPU seconds and the server's CPU seconds of one call, and its result."""
    server0, client0, t0 = _server_cpu_s(stack), time.process_time(), time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    return wall, time.process_time() - client0, _server_cpu_s(stack) - server0, result


def _copy(conn: Any, table: str, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL COPY of rows into a table: ~10x faster than executemany for the ~1M rows of 10,000 runs."""
    import csv
    import io

    columns = list(rows[0])
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC).writerows([row[c] for c in columns] for row in rows)
    buffer.seek(0)
    with conn.connection.cursor() as cursor:  # the DBAPI (psycopg2) connection inside the transaction
        cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buffer)


def _measure_loads(stack: Any, experiment_id: str) -> dict[str, float]:
    import mlflow

    from recdash.tracking import RunsLoader

    uri = stack.tracking_uri
    os.environ["RECDASH_SNAPSHOT_DIR"] = str(stack.work_dir / "snapshots")  # never the user's cache
    mlflow.set_tracking_uri(uri)
    search_s, search_client, search_server, baseline = _timed(stack, lambda: mlflow.search_runs([experiment_id]))
    _log(f"mlflow.search_runs via server: {search_s:.2f}s ({len(baseline)} runs); CPU: client {search_client:.1f}s, "
         f"server + PostgreSQL {search_server:.1f}s")  # fmt: skip
    # the cold first load: concurrent pages (the snapshot folder is empty, so nothing to start from)
    loader = RunsLoader(uri)
    load_s, load_client, load_server, frame = _timed(stack, lambda: loader.load([experiment_id]))
    assert not loader._restored
    _log(f"RunsLoader.load via server (cold, {CLIENT_THREADS} threads): {load_s:.2f}s ({len(frame)} runs, "
         f"{frame.shape[1]} cols); CPU: client {load_client:.1f}s, server + PostgreSQL {load_server:.1f}s")  # fmt: skip
    # with client and server on the same cores, no client can load faster than the server's own work spread over
    # every core: the speedup search_runs would show against a client that cost nothing
    ceiling = search_s / (search_server / (os.cpu_count() or 1))
    _log(f"ceiling on this host ({os.cpu_count()} CPUs shared by client and server): {ceiling:.2f}x")
    assert len(frame) == len(baseline) == N_RUNS, (len(frame), len(baseline))
    assert set(frame["run_id"]) == set(baseline["run_id"])

    refresh_s, _ = best_of(lambda: loader.load([experiment_id]), 3)
    _log(f"refresh (nothing new) via server: {refresh_s * 1000:.0f} ms")
    with mlflow.start_run(experiment_id=experiment_id, run_name="late"):
        mlflow.log_metric("test_ndcg_at_10", 0.1)
    t0 = time.perf_counter()
    after = loader.load([experiment_id])
    refresh_new_s = time.perf_counter() - t0
    assert len(after) == N_RUNS + 1
    _log(f"refresh (one new run) via server: {refresh_new_s * 1000:.0f} ms")

    # restart: a new loader (a new dashboard process) on the snapshot the previous one wrote
    loader.save_snapshot()
    size_mb = Path(loader._snapshot_path).stat().st_size / 2**20

    def restart() -> Any:
        restarted = RunsLoader(uri)
        assert restarted._restored, "the snapshot was not used"
        return restarted.load([experiment_id])

    restart_s, again = best_of(restart, 3)
    assert len(again) == N_RUNS + 1
    _log(f"restart with a valid snapshot ({size_mb:.1f} MB): {restart_s:.2f}s")

    def direct_db() -> Any:
        os.environ["RECDASH_BACKEND_DB_URL"] = stack.backend_store_uri
        try:
            direct = RunsLoader(uri, snapshot=False)
            frame = direct.load([experiment_id])
        finally:
            del os.environ["RECDASH_BACKEND_DB_URL"]
        assert direct.uses_sql, f"the backend database was not used: {direct.notice}"
        return frame

    db_s, direct = best_of(direct_db, 3)
    assert len(direct) == N_RUNS + 1
    _log(f"RunsLoader.load via RECDASH_BACKEND_DB_URL (read-only PostgreSQL): {db_s:.2f}s")
    return {
        "runs": N_RUNS,
        "server": SERVER_KIND,
        "server_workers": SERVER_WORKERS,
        "client_threads": CLIENT_THREADS,
        "rest_first_load_speedup": round(search_s / load_s, 2),
        "rest_first_load_speedup_ceiling_here": round(ceiling, 2),
        "search_runs_client_cpu_s": round(search_client, 1),
        "search_runs_server_cpu_s": round(search_server, 1),
        "recdash_load_client_cpu_s": round(load_client, 1),
        "recdash_load_server_cpu_s": round(load_server, 1),
        "rest_restart_load_ratio": round(restart_s / load_s, 3),
        "db_direct_load_speedup": round(search_s / db_s, 2),
        "search_runs_seconds": round(search_s, 3),
        "recdash_load_seconds": round(load_s, 3),
        "restart_load_seconds": round(restart_s, 3),
        "snapshot_mb": round(size_mb, 2),
        "db_direct_load_seconds": round(db_s, 3),
        "refresh_ms_via_server": round(refresh_s * 1000, 1),
        "refresh_one_new_run_ms_via_server": round(refresh_new_s * 1000, 1),
    }


class _ConnectionSampler:
    """Peak number of PostgreSQL backends (all databases) while a block runs: what max_connections must cover."""

    def __init__(self, stack: Any) -> None:
        import threading

        self.url = stack.cluster.url("postgres")
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
        query = sqlalchemy.text("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
        while not self._stop.is_set():
            with engine.connect() as conn:
                self.peak = max(self.peak, int(conn.execute(query).scalar_one()) - 1)  # minus our own
            self._stop.wait(0.25)
        engine.dispose()

    def __enter__(self) -> _ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _sweep(stack: Any, n_workers: int, study: str) -> dict[str, float]:
    """One sweep of SWEEP_TRIALS trials on n_workers local processes; throughput from Optuna's trial timestamps."""
    import optuna

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = stack.tracking_uri
    cmd = [sys.executable, "-m", "recdash", "sweep", *SWEEP_FLAGS, "--n-trials", str(SWEEP_TRIALS),
           "--n-workers", str(n_workers), "--storage", stack.optuna_storage, "--study-name", study,
           "--experiment", "bench-sweeps"]  # fmt: skip
    t0 = time.perf_counter()
    with _ConnectionSampler(stack) as connections:
        proc = subprocess.run(cmd, env=env, cwd=stack.work_dir, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"sweep failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    trials = optuna.load_study(study_name=study, storage=stack.optuna_storage).get_trials(deepcopy=False)
    done = [t for t in trials if t.datetime_complete is not None]
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)) / dt.timedelta(seconds=1)
    per_min = 60 * len(done) / span
    mean_trial = sum((t.datetime_complete - t.datetime_start) / dt.timedelta(seconds=1) for t in done) / len(done)
    _log(f"sweep {n_workers} worker(s): {len(done)} trials in {span:.1f}s of trials ({wall:.1f}s wall): "
         f"{per_min:.1f} trials/min, peak {connections.peak} PostgreSQL connections")  # fmt: skip
    return {
        "trials": len(done),
        "span_s": span,
        "wall_s": wall,
        "per_min": per_min,
        "peak": connections.peak,
        "mean_trial_s": mean_trial,
    }


def main() -> None:
    import mlflow
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pg = _pg_helpers()
    if pg.find_pg_bin() is None:
        sys.exit("PostgreSQL server binaries not found: apt-get install postgresql (or set RECDASH_PG_BIN)")
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="recdash-team-bench-") as tmp:
        os.chdir(tmp)
        t0 = time.perf_counter()
        with pg.team_stack(Path(tmp), server_workers=SERVER_WORKERS, server_args=SERVER_ARGS) as stack:
            _log(f"PostgreSQL + mlflow server up in {time.perf_counter() - t0:.1f}s at {stack.tracking_uri}")
            template = _template(stack.tracking_uri)
            experiment_id = mlflow.MlflowClient(stack.tracking_uri).create_experiment("bench-10k")
            created = _bulk_insert(stack.backend_store_uri, experiment_id, N_RUNS, template)
            _log(f"bulk-inserted {N_RUNS} runs in {created:.1f}s (not timed below)")
            result = _measure_loads(stack, experiment_id)
            one = _sweep(stack, 1, "bench-1-worker")
            two = _sweep(stack, 2, "bench-2-workers")
        result.update(
            {
                "sweep_trials": SWEEP_TRIALS,
                "sweep_trials_per_min_1_worker": round(one["per_min"], 2),
                "sweep_trials_per_min_2_workers": round(two["per_min"], 2),
                "sweep_2_vs_1_speedup": round(two["per_min"] / one["per_min"], 2),
                "sweep_wall_seconds_1_worker": round(one["wall_s"], 1),
                "sweep_wall_seconds_2_workers": round(two["wall_s"], 1),
                "sweep_mean_trial_seconds_1_worker": round(one["mean_trial_s"], 2),
                "sweep_mean_trial_seconds_2_workers": round(two["mean_trial_s"], 2),
                "peak_db_connections_1_worker": one["peak"],
                "peak_db_connections_2_workers": two["peak"],
                "cpus": os.cpu_count(),
                "load_average_at_start": round(load_at_start, 2),  # other jobs on the machine skew the sweep ratio
                "python": platform.python_version(),
                "mlflow": mlflow.__version__,
            }
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
