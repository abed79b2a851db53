"""Benchmark: what per-user results cost (issue 24).

1. ``per_user_artifact_kb``: the size of ``per_user/test.parquet`` for a rankfm run on MovieLens-100K.
2. ``evaluation_overhead_ratio``: a run's test evaluation with its per-user artifact (evaluate every user, log the
   metrics, write and log the artifact) against without it (evaluate, log the metrics), on the same trained model,
   alternated over ``--repeats`` rounds, medians. Also for popularity, the cheapest model to score, where the
   artifact's fixed cost weighs most (``evaluation_overhead_ratio_popularity``).
3. ``compare_100_runs_with_intervals_extra_s``: the Compare page in Chromium on 100 runs of one data group whose
   per-user results are logged (so it draws intervals, Δ table, whiskers) against the same 100 runs without them
   (median of ``--loads`` loads each); needs Debian's Chromium and Playwright, as the browser tests do.

Targets: per_user_artifact_kb <= 100, evaluation_overhead_ratio <= 1.1, compare_100_runs_with_intervals_extra_s <= 1.
Run: python bench/significance.py [--repeats 7] [--loads 5] [--no-browser]   (own temp store; last line JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the browser tests' server and Chromium helpers
sys.path.insert(0, str(ROOT / "bench"))

from recdash import contract  # noqa: E402
from recdash.config import TrainConfig  # noqa: E402
from recdash.evaluation import per_user  # noqa: E402
from recdash.evaluation.heldout import HeldOut  # noqa: E402
from recdash.models import Interactions, Popularity  # noqa: E402
from recdash.training.run import load_data, train  # noqa: E402

K = 10


def _evaluation(held: HeldOut, rec: object, with_artifact: bool) -> float:
    """Seconds for one test evaluation as a training run does it, in a fresh run."""
    with mlflow.start_run() as run:
        started = time.perf_counter()
        if with_artifact:
            metrics, users = held.evaluate_users(rec, K, segments=True)
        else:
            metrics = held.evaluate(rec, K, segments=True)
        mlflow.MlflowClient().log_batch(
            run.info.run_id,
            metrics=[mlflow.entities.Metric(f"test_{k}", v, 0, 0) for k, v in metrics.items()],
        )
        if with_artifact:
            per_user.log(users, run.info.run_id)
        return time.perf_counter() - started


def overhead(config: TrainConfig, repeats: int) -> dict[str, float]:
    """Artifact size and the evaluation overhead ratio for rankfm and popularity on ``config``'s data."""
    data = load_data(config)
    result = train(config, data)
    local = mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path=contract.PER_USER_ARTIFACT)
    size_kb = os.path.getsize(local) / 1024
    n_users = len(pd.read_parquet(local))
    dataset, split = data
    held = HeldOut.build(result.recommender, split.test, [split.train, split.validation], dataset.items)
    popularity = Popularity().fit(Interactions.from_frame(split.train))
    out = {"per_user_artifact_kb": round(size_kb, 1), "per_user_users": n_users}
    for name, rec in (("", result.recommender), ("_popularity", popularity)):
        with_s, without_s = [], []
        _evaluation(held, rec, True)  # warm-up: imports, first artifact write
        for _ in range(repeats):
            without_s.append(_evaluation(held, rec, False))
            with_s.append(_evaluation(held, rec, True))
        out[f"evaluation_with_s{name}"] = round(statistics.median(with_s), 4)
        out[f"evaluation_without_s{name}"] = round(statistics.median(without_s), 4)
        out[f"evaluation_overhead_ratio{name}"] = round(statistics.median(with_s) / statistics.median(without_s), 3)
    return out


N_USERS = 943
RANKING = ("precision", "recall", "ndcg", "mrr", "map", "hit_rate")


def make_compare_runs(uri: str, n: int, with_per_user: bool, experiment: str) -> list[str]:
    """``n`` runs on one data group (ML-100K-sized: 943 test users), each a different configuration, with test
    metrics that are the means of per-user values; ``with_per_user`` also logs those values as the run's per-user
    artifact (what recdash's evaluation writes), so Compare draws intervals for them."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(uri)
    exp = client.create_experiment(experiment)
    rng = np.random.default_rng(0)
    users = np.array([str(u) for u in range(1, N_USERS + 1)], dtype=object)
    quartile = (np.arange(N_USERS) * 4 // N_USERS).astype(np.int8)
    hardness = rng.beta(2, 5, size=N_USERS)  # a user's difficulty, shared by every run (what pairing cancels)
    ids = []
    for i in range(n):
        run = client.create_run(exp, run_name=f"run-{i:03d}")
        skill = 0.2 + 0.1 * i / n
        values = {}
        for m in RANKING:
            raw = np.clip(hardness * skill * 3 + rng.normal(0, 0.15, N_USERS), 0, 1)
            values[f"{m}_at_{K}"] = (raw > 0.5).astype(float) if m == "hit_rate" else raw
        frame = pd.DataFrame({"user_id": users, "quartile": quartile, **values})
        params = {"dataset": "movielens-100k", "dataset_name": "movielens-100k", "dataset_digest": "14f31e851eb44e5a",
                  "split_method": "random", "split_train": "0.8", "split_validation": "0.1", "split_test": "0.1",
                  "split_seed": "42", "model": "rankfm", "factors": str(8 + i), "k": str(K)}  # fmt: skip
        metrics = [Metric(f"test_{name}", float(np.mean(v)), 0, 0) for name, v in values.items()]
        for q in range(4):
            for m in ("recall", "ndcg"):
                v = values[f"{m}_at_{K}"][quartile == q]
                metrics.append(Metric(f"test_{m}_at_{K}_q{q + 1}", float(np.mean(v)), 0, 0))
        client.log_batch(run.info.run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()],
                         tags=[RunTag("recdash.kind", "train")])  # fmt: skip
        if with_per_user:
            per_user.log(frame, run.info.run_id)
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return ids


def compare_extra_seconds(loads: int, n_runs: int = 100) -> dict[str, float]:
    """Compare's Final metrics tab on ``n_runs`` runs with per-user results (whiskers, ★ notes, the differences
    table) against the same runs without (plain bars), in Chromium; medians of ``loads`` warm loads, and the first
    (cold) load of each."""
    from browser import browser_page, chromium_path, streamlit_server
    from compare_page import page_done  # the same "page is done" as the Compare benchmark

    with tempfile.TemporaryDirectory(prefix="recdash-bench-compare-") as tmp:
        work = Path(tmp)
        os.chdir(work)  # MLflow puts a SQLite store's artifacts under the working folder
        uri = f"sqlite:///{work / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        with_ids = make_compare_runs(uri, n_runs, True, "with-per-user")
        without_ids = make_compare_runs(uri, n_runs, False, "without-per-user")
        env = {"MLFLOW_TRACKING_URI": uri, "RECDASH_CACHE_DIR": str(work / "cache")}
        times: dict[str, list[float]] = {"with": [], "without": []}
        first: dict[str, float] = {}
        with streamlit_server(work, env) as url, browser_page(chromium_path()) as page:
            links = {"with": f"{url}/compare?runs={','.join(with_ids)}",
                     "without": f"{url}/compare?runs={','.join(without_ids)}"}  # fmt: skip
            for name, link in links.items():
                page.goto(link)
                first[name] = page_done(page, 2)
            for _ in range(loads):
                for name, link in links.items():
                    page.goto(link)
                    times[name].append(page_done(page, 2))
            drawn = page.locator("text=Is the difference real?").count()
        os.chdir(ROOT)
    with_s, without_s = statistics.median(times["with"]), statistics.median(times["without"])
    return {
        "compare_100_runs_with_intervals_s": round(with_s, 3),
        "compare_100_runs_without_intervals_s": round(without_s, 3),
        "compare_100_runs_with_intervals_extra_s": round(with_s - without_s, 3),
        "compare_first_load_with_s": round(first["with"], 3),
        "compare_first_load_without_s": round(first["without"], 3),
        "differences_section_drawn": bool(drawn),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true", help="skip the Compare timing (no Chromium here)")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="recdash-bench-significance-") as tmp:
        os.chdir(tmp)
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        mlflow.set_experiment("bench-significance")
        config = TrainConfig(dataset="movielens-100k", epochs=10, patience=0, experiment="bench-significance", k=K)
        figures |= overhead(config, args.repeats)
        print(json.dumps(figures), flush=True)
        os.chdir(ROOT)  # out of the folder before it is removed
    if not args.no_browser:
        figures |= compare_extra_seconds(loads=args.loads)
    print(json.dumps(figures))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
