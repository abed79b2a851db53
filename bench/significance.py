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
    if not args.no_browser:
        from _significance_browser import compare_extra_seconds

        figures |= compare_extra_seconds(loads=args.loads)
    print(json.dumps(figures))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
