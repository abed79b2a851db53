"""Benchmark recdash.metrics.evaluate against rankfmc.evaluation on MovieLens-100K.

Why: recdash evaluates after every run and inside tuning loops, so its metrics must be much faster
than rankfmc's per-user Python loops while giving the same numbers. Both sides score the same
fitted RankFM on the same test split with the same protocol (precision/recall @10, train items
filtered out, only users and items known to the model), each timed as best of 3 from the test
DataFrame to the final numbers.

Run: ``python bench/metrics.py``. The last stdout line is one JSON object.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from _timing import best_of
from rankfmc import RankFM, evaluation

from recdash.data import load_dataset, split_dataset
from recdash.evaluation.metrics import evaluate, interaction_matrix

K = 10
REPEATS = 3


def load_movielens(data_dir: Path) -> Any:
    """ML-100K via recdash.datasets, with its download cache in our temp dir (nothing left behind)."""
    return load_dataset("movielens-100k", cache_dir=str(data_dir))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="recdash-bench-") as tmp:
        t0 = time.perf_counter()
        ds = load_movielens(Path(tmp))
        split = split_dataset(ds, "random", (0.8, 0.1, 0.1), seed=42)
        print(
            f"data: {len(ds.interactions)} interactions, train {len(split.train)}, "
            f"test {len(split.test)} ({time.perf_counter() - t0:.2f}s)",
            flush=True,
        )
    train = split.train[["user_id", "item_id"]].reset_index(drop=True)
    test = split.test[["user_id", "item_id"]].reset_index(drop=True)

    np.random.seed(0)
    model = RankFM(factors=32, loss="warp", learning_rate=0.1, alpha=0.01, beta=0.1, sigma=0.1)
    t0 = time.perf_counter()
    model.fit(train, epochs=10)
    print(f"fit RankFM(factors=32, warp, 10 epochs): {time.perf_counter() - t0:.2f}s", flush=True)

    # Same protocol on both sides: rankfmc drops cold users; cold items cannot be ranked by either.
    known = test["user_id"].isin(model.user_to_index.index) & test["item_id"].isin(model.item_to_index.index)
    test = test[known].reset_index(drop=True)
    print(f"test rows with known user and item: {len(test)} (dropped {int((~known).sum())})", flush=True)

    def run_rankfmc() -> tuple[float, float]:
        p = evaluation.precision(model, test, k=K, filter_previous=True)
        r = evaluation.recall(model, test, k=K, filter_previous=True)
        return float(p), float(r)

    n_u, n_i = len(model.user_id), len(model.item_id)
    users_index, items_index = model.user_to_index.index, model.item_to_index.index

    def build_train_matrix() -> Any:
        # The counterpart of model.user_items, which rankfmc builds once during fit(): built (and
        # timed) separately, then reused, just as recdash reuses it for validation and test.
        return interaction_matrix(
            users_index.get_indexer(train["user_id"]), items_index.get_indexer(train["item_id"]), n_u, n_i
        )

    t_train_matrix, exclude = best_of(build_train_matrix, REPEATS)
    popularity = np.asarray(exclude.sum(axis=0)).ravel()  # train interactions per item

    def run_recdash() -> dict[str, float]:
        # From the test DataFrame to the numbers, as rankfmc does: map ids, build truth, evaluate.
        truth = interaction_matrix(
            users_index.get_indexer(test["user_id"]), items_index.get_indexer(test["item_id"]), n_u, n_i
        )
        return evaluate(
            lambda users: model.v_u[users] @ model.v_i.T + model.w_i,
            truth,
            exclude,
            k=K,
            item_popularity=popularity,
        )

    t_rankfmc, (p_ref, r_ref) = best_of(run_rankfmc, REPEATS)
    print(f"rankfmc precision+recall@{K}: {t_rankfmc:.4f}s  precision={p_ref:.6f} recall={r_ref:.6f}", flush=True)
    t_recdash, ours = best_of(run_recdash, REPEATS)
    print(
        f"recdash evaluate (all metrics)@{K}: {t_recdash:.4f}s  precision={ours[f'precision_at_{K}']:.6f} "
        f"recall={ours[f'recall_at_{K}']:.6f} users={ours['n_users_evaluated']}",
        flush=True,
    )
    print(f"recdash train (exclude) matrix, built once per run: {t_train_matrix:.4f}s", flush=True)
    print("recdash metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in ours.items()), flush=True)

    diff_p = abs(ours[f"precision_at_{K}"] - p_ref)
    diff_r = abs(ours[f"recall_at_{K}"] - r_ref)
    print(
        json.dumps(
            {
                "speedup_vs_rankfmc": t_rankfmc / t_recdash,
                "max_abs_diff": max(diff_p, diff_r),
                "rankfmc_seconds": t_rankfmc,
                "recdash_seconds": t_recdash,
                "recdash_train_matrix_seconds": t_train_matrix,
                "speedup_incl_train_matrix": t_rankfmc / (t_recdash + t_train_matrix),
                "rankfmc_precision": p_ref,
                "rankfmc_recall": r_ref,
                "recdash_precision": ours[f"precision_at_{K}"],
                "recdash_recall": ours[f"recall_at_{K}"],
                "n_users_evaluated": ours["n_users_evaluated"],
                "n_test_rows": len(test),
                "k": K,
                "repeats": REPEATS,
            }
        )
    )


if __name__ == "__main__":
    main()
