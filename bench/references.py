"""Reference models on MovieLens-100K: fit + full evaluation time of EASE and ItemKNN, and the cost of the segment
and beyond-accuracy metrics.

Why: reference runs are meant to be cheap enough to fit on every dataset and split a team trains on, and every run
now logs the per-quartile and beyond-accuracy metrics, so their overhead on evaluation must stay small.

- ``ease_fit_eval_s`` / ``itemknn_fit_eval_s``: mapping the training interactions, fitting with the default
  hyperparameters, and the full test evaluation a run logs (full ranking, train + validation items excluded,
  segments and beyond-accuracy metrics included); best of 3.
- ``segment_metrics_overhead_ratio``: on the same fitted EASE model and the same held-out set, evaluation with the
  new metrics divided by evaluation without them (best of 5 each); target <= 1.3.

The split is recdash's random 80/10/10 with seed 42. Nothing is written outside a temporary directory (no MLflow
store is needed: this times the model layer and the metrics). Run: ``python bench/references.py``; the last stdout
line is one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from _timing import best_of

from recdash.data import load_dataset, split_dataset
from recdash.evaluation.heldout import HeldOut
from recdash.models import EASE, Interactions, ItemKNN, Recommender

K = 10
REPEATS = 3
EVAL_REPEATS = 5


def fit_and_evaluate(cls: type[Recommender], split: Any, items: Any) -> tuple[Recommender, dict[str, float]]:
    """What a run does after loading its data: map the interactions, fit, evaluate on test with every metric."""
    model = cls().fit(Interactions.from_frame(split.train))
    test = HeldOut.build(model, split.test, [split.train, split.validation], items)
    return model, test.evaluate(model, K, segments=True)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="recdash-bench-references-") as tmp:
        os.chdir(tmp)
        t0 = time.perf_counter()
        ds = load_dataset("movielens-100k")
        split = split_dataset(ds, "random", (0.8, 0.1, 0.1), seed=42)
        print(f"data: {ds.n_interactions} interactions, train {len(split.train)} ({time.perf_counter() - t0:.2f}s)")

        out: dict[str, Any] = {}
        models: dict[str, Recommender] = {}
        for name, cls in (("ease", EASE), ("itemknn", ItemKNN)):
            seconds, (model, metrics) = best_of(lambda cls=cls: fit_and_evaluate(cls, split, ds.items), REPEATS)
            models[name] = model
            out[f"{name}_fit_eval_s"] = round(seconds, 4)
            out[f"{name}_test_recall_at_{K}"] = round(metrics[f"recall_at_{K}"], 4)
            out[f"{name}_test_ndcg_at_{K}"] = round(metrics[f"ndcg_at_{K}"], 4)
            print(
                f"{name} {model.params.as_dict()}: fit + full test evaluation {seconds:.3f}s, recall@{K} "
                f"{metrics[f'recall_at_{K}']:.4f}, ndcg@{K} {metrics[f'ndcg_at_{K}']:.4f}",
                flush=True,
            )

        model = models["ease"]
        test = HeldOut.build(model, split.test, [split.train, split.validation], ds.items)
        plain_s, _ = best_of(lambda: test.evaluate(model, K), EVAL_REPEATS)
        full_s, _ = best_of(lambda: test.evaluate(model, K, segments=True), EVAL_REPEATS)
        print(f"EASE test evaluation: {plain_s:.4f}s without, {full_s:.4f}s with segment/beyond-accuracy metrics")
        out["evaluation_plain_s"] = round(plain_s, 4)
        out["evaluation_with_segments_s"] = round(full_s, 4)
        out["segment_metrics_overhead_ratio"] = round(full_s / plain_s, 3)
        out["k"] = K
    print(json.dumps(out))


if __name__ == "__main__":
    main()
