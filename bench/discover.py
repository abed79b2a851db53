"""Benchmark: Discover's catalog on 10,000 runs over 50 dataset digests and 100 registered models, SQLite.

Creates the store in a temp dir on tmpfs when there is one (creation is not measured): 10 experiments, runs
bulk-inserted through MLflow's own table definitions (as bench/runs_load.py does) with recdash's lineage params, a
dataset input each (50 digests under 20 names, so names have several versions), 25 users; then 100 registered
models with 1-5 versions from those runs and champion/challenger aliases through the registry API. Measured, in
this process:
  - index_build_s: recdash.catalog.build on top of the runs load (runs frame, experiments, registry snapshot
    already read): entities, usage, the word index (target <= 2 s)
  - search_warm_ms: median of 50 varied queries (names, typos, partial words, ids, params, users, several words)
    on the built index, after one warm-up pass (target <= 100 ms)
Prints one JSON line last. Usage: .venv/bin/python bench/discover.py [--runs 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

N_EXPERIMENTS = 10
N_DIGESTS = 50
N_MODELS = 100
N_USERS = 25
T0_MS = 1_700_000_000_000
NAMES = [
    "movielens-100k",
    "movielens-1m",
    "amazon-books",
    "amazon-beauty",
    "yelp-reviews",
    "lastfm-1k",
    "steam-games",
    "goodreads",
    "netflix-prize",
    "book-crossing",
    "epinions",
    "gowalla",
    "foursquare-nyc",
    "anime-ratings",
    "jester-jokes",
    "douban-movies",
    "ciao",
    "retail-rocket",
    "taobao-clicks",
    "spotify-mpd",
]
MODELS = ["rankfm", "ease", "itemknn", "popularity"]


def _digest(d: int) -> str:
    return f"{(d * 2654435761) % 16**16:016x}"


def _create(uri: str, n_runs: int, artifacts: Path) -> list[tuple[str, int]]:
    """Experiments, datasets, runs with params, metrics, tags and a dataset input each; returns (run id, digest)."""
    from mlflow import MlflowClient
    from mlflow.store.tracking.dbmodels.models import (
        SqlDataset,
        SqlInput,
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from sqlalchemy import insert

    client = MlflowClient(uri)
    experiments = [
        client.create_experiment(f"team-{e}", artifact_location=(artifacts / str(e)).as_uri())
        for e in range(N_EXPERIMENTS)
    ]
    store = client._tracking_client.store
    datasets, dataset_ids = [], {}
    for d in range(N_DIGESTS):
        dataset_ids[d] = uuid.uuid4().hex
        datasets.append(
            {
                "dataset_uuid": dataset_ids[d],
                "experiment_id": int(experiments[d % N_EXPERIMENTS]),
                "name": NAMES[d % len(NAMES)],
                "digest": _digest(d),
                "dataset_source_type": "local",
                "dataset_source": json.dumps({"uri": f"/data/{NAMES[d % len(NAMES)]}.parquet"}),
                "dataset_schema": "{}",
                "dataset_profile": json.dumps({"num_rows": 1000 + d}),
            }
        )
    rng = random.Random(0)
    runs, params, metrics, tags, inputs, made = [], [], [], [], [], []
    for i in range(n_runs):
        run_id = uuid.uuid4().hex
        d = rng.randrange(N_DIGESTS)
        experiment = experiments[d % N_EXPERIMENTS]
        started = T0_MS + i * 60_000
        model = MODELS[i % len(MODELS)]
        runs.append(
            {
                "run_uuid": run_id,
                "name": f"{model}-{NAMES[d % len(NAMES)]}-{i}",
                "source_type": "LOCAL",
                "source_name": "",
                "entry_point_name": "",
                "user_id": f"user-{i % N_USERS}",
                "status": "FINISHED",
                "start_time": started,
                "end_time": started + 9000,
                "source_version": "",
                "lifecycle_stage": "active",
                "artifact_uri": f"{artifacts}/{run_id}",
                "experiment_id": int(experiment),
            }
        )
        values = {
            "model": model,
            "factors": str(2 ** (3 + i % 5)),
            "loss": ("warp", "bpr")[i % 2],
            "learning_rate": str(round(0.01 + (i % 7) / 100, 2)),
            "dataset": NAMES[d % len(NAMES)],
            "dataset_name": NAMES[d % len(NAMES)],
            "dataset_digest": _digest(d),
            "split_method": "random",
            "split_seed": "42",
            "seed": str(i % 5),
        }
        params += [{"run_uuid": run_id, "key": k, "value": v} for k, v in values.items()]
        ndcg = rng.uniform(0.1, 0.4)
        for key, value in (
            ("test_ndcg_at_10", ndcg),
            ("baseline_test_ndcg_at_10", 0.15),
            ("test_recall_at_10", ndcg * 0.9),
            ("val_ndcg_at_10", ndcg * 1.05),
        ):
            metrics.append(
                {"run_uuid": run_id, "key": key, "value": value, "timestamp": started, "step": 0, "is_nan": False}
            )
        tags += [
            {"run_uuid": run_id, "key": "mlflow.runName", "value": runs[-1]["name"]},
            {"run_uuid": run_id, "key": "team", "value": f"squad-{i % 6}"},
        ]
        inputs.append(
            {
                "input_uuid": uuid.uuid4().hex,
                "source_type": "DATASET",
                "source_id": dataset_ids[d],
                "destination_type": "RUN",
                "destination_id": run_id,
            }
        )
        made.append((run_id, d))
    with store.engine.begin() as conn:
        conn.execute(insert(SqlDataset.__table__), datasets)
        conn.execute(insert(SqlRun.__table__), runs)
        conn.execute(insert(SqlParam.__table__), params)
        conn.execute(insert(SqlMetric.__table__), metrics)
        conn.execute(insert(SqlLatestMetric.__table__), metrics)
        conn.execute(insert(SqlTag.__table__), tags)
        conn.execute(insert(SqlInput.__table__), inputs)
    return made


def _register(uri: str, made: list[tuple[str, int]]) -> int:
    """100 registered models with 1-5 versions each from random runs, champion (and challenger) aliases."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    rng = random.Random(1)
    n_versions = 0
    for m in range(N_MODELS):
        name = f"{MODELS[m % len(MODELS)]}-{NAMES[m % len(NAMES)]}-{m}"
        client.create_registered_model(name, description=f"Ranking model {m} for the {NAMES[m % len(NAMES)]} team")
        count = 1 + m % 5
        for _ in range(count):
            run_id, _d = made[rng.randrange(len(made))]
            client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id)
        n_versions += count
        client.set_registered_model_alias(name, "champion", str(count))
        if count > 1:
            client.set_registered_model_alias(name, "challenger", str(count - 1))
    return n_versions


QUERIES = [
    "movielens",
    "movielen",
    "movilens",
    "movielens-100k",
    "amazon",
    "amazn books",
    "books",
    "yelp",
    "lastfm",
    "steam",
    "goodread",
    "netflix",
    "prize",
    "crossing",
    "gowalla",
    "foursquare",
    "nyc",
    "anime",
    "jester",
    "douban",
    "retail",
    "taobao",
    "spotify",
    "user-3",
    "user 17",
    "squad-2",
    "warp",
    "bpr",
    "rankfm",
    "ease",
    "itemknn",
    "popularity",
    "champion",
    "challenger",
    "rankfm movielens",
    "ease amazon-books",
    "itemknn-yelp",
    "team-4",
    "ranking model",
    "v3",
    "rankfm-movielens-100k-0",
    "factors 64",
    "0.05",
    "random",
    "learning",
    "epinion",
    "ciao",
    "spotfy",
    "moviel",
    "qwertyuiop",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    base_dir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    tmp = Path(tempfile.mkdtemp(prefix="recdash-bench-", dir=base_dir))
    try:
        uri = f"sqlite:///{tmp / 'mlflow.db'}"
        os.environ["MLFLOW_TRACKING_URI"] = uri
        os.chdir(tmp)
        from mlflow import MlflowClient

        from recdash import catalog, registry, tracking

        t = time.perf_counter()
        made = _create(uri, args.runs, tmp / "artifacts")
        n_versions = _register(uri, made)
        print(
            f"created {args.runs} runs, {N_MODELS} models, {n_versions} versions in {time.perf_counter() - t:.1f} s",
            flush=True,
        )

        t = time.perf_counter()
        experiments = tracking.list_experiments(uri)
        runs = tracking.RunsLoader(uri).load(list(experiments["experiment_id"]))
        models, versions = registry.snapshot(MlflowClient(uri))
        load_s = time.perf_counter() - t
        print(f"runs load + experiments + registry snapshot: {load_s:.2f} s ({len(runs)} runs)", flush=True)

        builds = []
        for _ in range(3):
            t = time.perf_counter()
            cat = catalog.build(runs, experiments, models, versions)
            builds.append(time.perf_counter() - t)
        index_build_s = min(builds)
        assert len(cat.runs) == args.runs and len(cat.datasets) == N_DIGESTS and len(cat.models) == N_MODELS
        print(
            f"catalog + index build: {index_build_s:.3f} s (best of 3), {len(cat.index.vocab):,} words, "
            f"{len(cat.index.entries):,} entities",
            flush=True,
        )

        assert len(QUERIES) == 50
        for query in QUERIES:  # warm-up pass (first calls import rapidfuzz, fill numpy caches)
            cat.index.search(query)
        times = []
        for query in QUERIES:
            t = time.perf_counter()
            found = cat.index.search(query)
            times.append(time.perf_counter() - t)
            if query in ("movielen", "movilens", "moviel"):
                assert "movielens-100k" in found.loc[found["kind"] == "dataset", "title"].tolist(), query
        assert cat.index.search("qwertyuiop").empty
        search_ms = statistics.median(times) * 1000
        p95_ms = sorted(times)[int(0.95 * len(times))] * 1000
        print(f"warm search: median {search_ms:.1f} ms, p95 {p95_ms:.1f} ms over {len(times)} queries", flush=True)
        print(
            json.dumps(
                {
                    "n_runs": args.runs,
                    "n_digests": N_DIGESTS,
                    "n_models": N_MODELS,
                    "n_versions": n_versions,
                    "entities": len(cat.index.entries),
                    "words": len(cat.index.vocab),
                    "load_s": round(load_s, 3),
                    "index_build_s": round(index_build_s, 3),
                    "search_warm_ms": round(search_ms, 1),
                    "search_p95_ms": round(p95_ms, 1),
                }
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
