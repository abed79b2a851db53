"""Serving speed of the Recommend page's path against rankfmc's own ``recommend`` on the same fitted model.

Fits RankFM on the ML-100K train split (``recdash.models.RankFM``, the code recdash training uses), logs the model
to a temporary SQLite tracking store with ``recdash.serving.log_model``, then measures
- cold load: ``recdash.recommend.load`` (= ``mlflow.pyfunc.load_model`` + checks) of the model URI in a fresh
  process that has already imported MLflow, so artifact download and model-code execution are counted;
- warm single-user top-10: median over 200 users of the whole pyfunc ``predict`` path (one-row DataFrame,
  params k=10), next to the Recommender called directly;
- top-10 for all 943 users: our Recommender (and the pyfunc predict) against rankfmc's
  ``recommend(users, n_items=10, filter_previous=True)``; best of 3 each;
- identical rankings: every user's list compared with rankfmc's; a difference counts only when the two items at
  that rank have different scores (items with exactly equal float32 scores may come in either order).

- MLflow's own per-call cost: the same single-user predict through a do-nothing pyfunc with the same signature
  that returns one fixed row per user (``bench/_noop_model.py``), ``noop_pyfunc_ms``, and the ratio
  ``single_user_vs_noop_ratio`` = recdash's pyfunc predict / the do-nothing one (both interleaved, same users).

Run: python bench/recommend.py   (prints one JSON line last)
Targets (issue 16): single_user_vs_noop_ratio <= 1.5, warm_single_user_recommender_ms <= 0.5,
all_users_speedup_vs_rankfmc >= 5, identical_rankings true.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from _noop_model import log_noop
from _timing import best_of

from recdash import recommend as rx
from recdash.config import TrainConfig
from recdash.models import Interactions, RankFM
from recdash.serving import log_model, model_signature
from recdash.training.run import load_data

EPOCHS = 10
N_SINGLE = 200
REPEATS = 3  # cold loads in fresh processes
BATCH_REPEATS = 15  # all-users top-10: ~0.1 s each, best of many so a busy moment does not decide the ratio

COLD_LOAD = """
import sys, time, warnings
warnings.simplefilter("ignore")
import mlflow, recdash.recommend as rx
t0 = time.perf_counter()
rx.load(sys.argv[1])
print(time.perf_counter() - t0)
"""


def compare_rankings(rec, ours: pd.DataFrame, theirs: pd.DataFrame) -> tuple[int, int]:
    """(users whose lists differ only where scores tie exactly, users whose lists really differ)."""
    ours_lists = ours.groupby("user_id", sort=False)["item_id"].apply(list)
    tie_only = real = 0
    item_pos = pd.Index(rec.item_ids)
    for user, row in theirs.iterrows():
        theirs_items = [str(i) for i in row.dropna()]
        mine = ours_lists.get(str(user), [])
        if mine == theirs_items:
            continue
        scores = rec.scores(rec.user_index([str(user)]))[0]
        s_mine = scores[item_pos.get_indexer(mine)]
        s_theirs = scores[item_pos.get_indexer(theirs_items)]
        if len(mine) == len(theirs_items) and np.array_equal(s_mine, s_theirs):
            tie_only += 1
        else:
            real += 1
    return tie_only, real


def main() -> None:
    warnings.simplefilter("ignore")  # MLflow's type-hint nag on every models-from-code log/load
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        uri = f"sqlite:///{tmp}/mlflow.db"
        os.environ["MLFLOW_TRACKING_URI"] = uri
        mlflow.set_tracking_uri(uri)
        config = TrainConfig(dataset="movielens-100k", epochs=EPOCHS, experiment="bench")
        _, split = load_data(config)

        t0 = time.perf_counter()
        rec = RankFM(seed=config.seed).fit(Interactions.from_frame(split.train), epochs=EPOCHS)
        print(f"fitted RankFM, {EPOCHS} epochs: {time.perf_counter() - t0:.2f}s", flush=True)
        mlflow.set_experiment("bench")
        with mlflow.start_run() as run:
            model_uri = log_model(rec).model_uri
        with mlflow.start_run():
            noop_uri = log_noop(Path(tmp), model_signature(rec))
        print(f"logged {model_uri} (run {run.info.run_id}) and a do-nothing pyfunc {noop_uri}", flush=True)

        # cold load in a fresh process (MLflow already imported, as in a running dashboard)
        cold = []
        for _ in range(REPEATS):
            out = subprocess.run(
                [sys.executable, "-c", COLD_LOAD, model_uri], capture_output=True, text=True, check=True, env=os.environ
            )
            cold.append(float(out.stdout.strip().splitlines()[-1]))
        cold_load = statistics.median(cold)
        print(f"cold load (fresh process): median {cold_load:.3f}s of {[round(c, 3) for c in cold]}", flush=True)

        loaded = rx.load(model_uri)
        assert loaded.recommender is not None
        served = loaded.recommender
        rng = np.random.default_rng(0)
        users = [str(u) for u in rng.choice(served.user_ids, size=N_SINGLE, replace=False)]
        for u in users[:20]:  # warm-up
            loaded.pyfunc.predict(pd.DataFrame({"user_id": [u]}), params={"k": 10})

        def median_ms(fn) -> float:
            times = []
            for u in users:
                t = time.perf_counter()
                fn(u)
                times.append((time.perf_counter() - t) * 1000)
            return statistics.median(times)

        noop = mlflow.pyfunc.load_model(noop_uri)
        for u in users[:20]:
            noop.predict(pd.DataFrame({"user_id": [u]}), params={"k": 10})
        # interleaved rounds, so a busy moment of the machine hits both sides alike
        pyfunc_rounds, noop_rounds = [], []
        for _ in range(5):
            pyfunc_rounds.append(
                median_ms(lambda u: loaded.pyfunc.predict(pd.DataFrame({"user_id": [u]}), params={"k": 10}))
            )
            noop_rounds.append(median_ms(lambda u: noop.predict(pd.DataFrame({"user_id": [u]}), params={"k": 10})))
        pyfunc_ms, noop_ms = min(pyfunc_rounds), min(noop_rounds)
        page_ms = median_ms(lambda u: rx.recommend(loaded, u, 10))
        direct_ms = min(median_ms(lambda u: served.recommend([u], k=10)) for _ in range(5))
        print(
            f"warm single-user top-10 median: pyfunc predict {pyfunc_ms:.2f} ms, do-nothing pyfunc {noop_ms:.2f} ms, "
            f"page path (recommend()) {page_ms:.2f} ms, Recommender.recommend {direct_ms:.3f} ms",
            flush=True,
        )

        all_users = [str(u) for u in split.train["user_id"].unique()]
        model = rec.model
        t_rankfmc, theirs = best_of(lambda: model.recommend(all_users, n_items=10, filter_previous=True), BATCH_REPEATS)
        t_ours, ours = best_of(lambda: rec.recommend(all_users, k=10, exclude_seen=True), BATCH_REPEATS)
        frame = pd.DataFrame({"user_id": all_users})
        t_pyfunc, via_pyfunc = best_of(lambda: loaded.pyfunc.predict(frame, params={"k": 10}), BATCH_REPEATS)
        print(
            f"all {len(all_users)} users top-10: rankfmc {t_rankfmc * 1000:.1f} ms, Recommender {t_ours * 1000:.1f} ms "
            f"({t_rankfmc / t_ours:.2f}x), pyfunc predict {t_pyfunc * 1000:.1f} ms ({t_rankfmc / t_pyfunc:.2f}x)",
            flush=True,
        )
        tie_only, real = compare_rankings(rec, ours, theirs)  # type: ignore[arg-type]
        tie_only_pyfunc, real_pyfunc = compare_rankings(served, via_pyfunc, theirs)  # type: ignore[arg-type]
        print(
            f"rankings vs rankfmc: {real} users differ, {tie_only} differ only at exact score ties "
            f"(logged model via pyfunc: {real_pyfunc} differ, {tie_only_pyfunc} tie-only)",
            flush=True,
        )
        print(
            json.dumps(
                {
                    "cold_load_s": round(cold_load, 3),
                    "warm_single_user_ms": round(pyfunc_ms, 3),
                    "noop_pyfunc_ms": round(noop_ms, 3),
                    "single_user_vs_noop_ratio": round(pyfunc_ms / noop_ms, 3),
                    "warm_single_user_page_ms": round(page_ms, 3),
                    "warm_single_user_recommender_ms": round(direct_ms, 3),
                    "all_users_speedup_vs_rankfmc": round(t_rankfmc / t_ours, 2),
                    "all_users_pyfunc_speedup_vs_rankfmc": round(t_rankfmc / t_pyfunc, 2),
                    "identical_rankings": real == 0 and real_pyfunc == 0,
                    "tie_only_differences": tie_only,
                    "n_users": len(all_users),
                    "epochs": EPOCHS,
                }
            )
        )


if __name__ == "__main__":
    main()
