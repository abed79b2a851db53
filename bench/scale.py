"""recdash on MovieLens-20M-shaped data (issue 25): synthetic 138,493 users x 26,744 items x 20,000,263
interactions (seeded), from data to a finished run.

Run: python bench/scale.py [--quick]   (own temp dir and SQLite store; prints one JSON line last; --quick: 1M only)

- ``data_ready_s``: generate -> split -> model-ready arrays (``Interactions``); target <= 60.
- ``parquet_read_s``: the same interactions written to a Parquet file (IDs as plain strings, as a user's file has
  them), read back by recdash's loader; target <= 20. ``parquet_digest_matches``: the same dataset digest.
- ``epoch_overhead_ratio``: recdash's epoch (rankfmc's kernel on recdash's arrays, then the per-epoch validation on
  the fixed 10,000-user sample) / a bare ``rankfmc.RankFM.fit`` of one epoch on the same (user, item) code arrays;
  target <= 1.3.
- ``full_eval_s``: the full test evaluation of the 1-epoch model (building the test set, then every metric recdash
  logs: ranking metrics, coverage, popularity, segments, beyond-accuracy, per-user values) over all test users;
  target <= 60. ``eval_speedup_vs_implicit``: ``implicit.evaluation.ranking_metrics_at_k`` (its own metrics, all
  cores) on the same factors (user [v_u, 1], item [v_i, w_i]: the same scores), split and k, train + validation
  items filtered as recdash excludes them, divided by recdash's evaluation (without building); target >= 1.
- ``peak_rss_gb`` and ``end_to_end_1_epoch_s``: the whole ``python -m recdash train ... --epochs 1`` as a
  subprocess (its own peak resident memory, wall time); target <= 3 GB.
- ``als_fit_eval_s``: ``--model als`` with its defaults, 3 ALS iterations and the same full test evaluation
  (reported).
- ``curve``: the same command at 1M / 5M / 20M interactions (users scaled with the interactions, the catalogue
  fixed): seconds per stage, read off the stage lines the command prints, and peak memory.

The machine is shared: ``load`` gives the load averages before and after (uptime's numbers).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SHAPE = (138_493, 26_744, 20_000_263)  # MovieLens-20M: users, items, interactions
CURVE = (1_000_000, 5_000_000, 20_000_263)
K = 10


def shape_for(n_interactions: int) -> tuple[int, int, int]:
    """MovieLens-20M's shape at ``n_interactions``: users in proportion, the catalogue as it is."""
    users, items, total = SHAPE
    return max(1, round(users * n_interactions / total)), items, n_interactions


def in_process(shape: tuple[int, int, int], tmp: Path) -> dict[str, Any]:
    """Data, Parquet, one epoch (recdash's and bare rankfmc's) and the full test evaluation, in this process."""
    from rankfmc import RankFM as RankFMC

    from recdash.config import TrainConfig
    from recdash.data import load_dataset, make_synthetic, split_dataset
    from recdash.evaluation.heldout import HeldOut
    from recdash.models import Interactions, Popularity, RankFM

    out: dict[str, Any] = {}
    users, items, n = shape
    t0 = time.perf_counter()
    ds = make_synthetic(n_users=users, n_items=items, n_interactions=n, seed=42)
    generated = time.perf_counter()
    split = split_dataset(ds, "random", (0.8, 0.1, 0.1), 42)
    split_done = time.perf_counter()
    train = Interactions.from_frame(split.train)
    ready = time.perf_counter()
    out["data_ready_s"] = round(ready - t0, 2)
    out["data_stages_s"] = {
        "generate": round(generated - t0, 2),
        "split": round(split_done - generated, 2),
        "arrays": round(ready - split_done, 2),
    }
    print(f"data ready: {out['data_stages_s']}", flush=True)

    # a user's Parquet file: plain string IDs (what pandas or Spark write), read by recdash's loader
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp / "interactions.parquet"
    frame = ds.interactions
    table = pa.table(
        {
            "user_id": pa.array(np.asarray(frame["user_id"].cat.categories, dtype=object)).take(
                pa.array(frame["user_id"].cat.codes.to_numpy())
            ),
            "item_id": pa.array(np.asarray(frame["item_id"].cat.categories, dtype=object)).take(
                pa.array(frame["item_id"].cat.codes.to_numpy())
            ),
            "rating": pa.array(frame["weight"].to_numpy()),
            "timestamp": pa.array(frame["timestamp"].to_numpy()),
        }
    )
    pq.write_table(table, path)
    del table
    t0 = time.perf_counter()
    back = load_dataset(str(path), weight_col="rating", timestamp_col="timestamp")
    out["parquet_read_s"] = round(time.perf_counter() - t0, 2)
    out["parquet_mb"] = round(path.stat().st_size / 2**20, 1)
    out["parquet_digest_matches"] = back.digest == ds.digest
    print(f"parquet read: {out['parquet_read_s']}s, digest matches: {out['parquet_digest_matches']}", flush=True)
    del back
    path.unlink()

    config = TrainConfig()  # the defaults a first run gets: rankfm, WARP, 64 factors
    hp = config.params_.as_dict()
    pairs = np.column_stack([train.user_idx, train.item_idx])
    np.random.seed(0)
    t0 = time.perf_counter()
    RankFMC(n_jobs=1, **hp).fit(pairs, epochs=1)
    bare = time.perf_counter() - t0
    del pairs
    print(f"bare rankfmc fit, 1 epoch: {bare:.1f}s", flush=True)

    baseline = Popularity().fit(train)
    t0 = time.perf_counter()
    full_validation = HeldOut.build(baseline, split.validation, [], exclude_seen=True)  # as a run builds it
    validation = full_validation.sample(config.validation_users, config.split_seed)
    out["validation_build_s"] = round(time.perf_counter() - t0, 2)
    model = RankFM(config.params_, seed=config.seed)
    model.fit(train, epochs=0)
    t0 = time.perf_counter()
    model.fit_epoch(train)
    fit = time.perf_counter() - t0
    validation.evaluate(model, K)
    epoch = time.perf_counter() - t0
    out["epoch_overhead_ratio"] = round(epoch / bare, 3)
    out["epoch"] = {
        "bare_rankfmc_fit_s": round(bare, 2),
        "recdash_fit_s": round(fit, 2),
        "recdash_validation_s": round(epoch - fit, 2),
        "validation_users": validation.n_users,
        "validation_users_all": full_validation.n_users,
    }
    print(f"recdash epoch: {out['epoch']}", flush=True)
    del full_validation, validation

    t0 = time.perf_counter()
    test = HeldOut.build(model, split.test, [split.validation], ds.items, exclude_seen=True)
    built = time.perf_counter()
    metrics, per_user = test.evaluate_users(model, K, segments=True)
    ours = time.perf_counter() - built
    out["full_eval_s"] = round(time.perf_counter() - t0, 2)
    out["full_eval"] = {
        "build_s": round(built - t0, 2),
        "evaluate_s": round(ours, 2),
        "users": int(metrics["n_users_evaluated"]),
        "metrics": len(metrics) - 1,
        "ndcg_at_10": round(metrics["ndcg_at_10"], 4),
    }
    print(f"full evaluation: {out['full_eval']}", flush=True)
    del per_user

    out |= implicit_comparison(model, split, ours)
    del test
    out |= als_fit_eval(train, split, ds)
    return out


ALS_EPOCHS = 3  # ALS iterations timed (recdash epochs); a run picks its own number by early stopping


def als_fit_eval(train: Any, split: Any, ds: Any) -> dict[str, Any]:
    """``--model als`` with its defaults (128 factors, implicit's CPU solver on every core): fit for
    :data:`ALS_EPOCHS` iterations, then the same full test evaluation as above."""
    from recdash.evaluation.heldout import HeldOut
    from recdash.models import ALS

    t0 = time.perf_counter()
    als = ALS(seed=42).fit(train, epochs=ALS_EPOCHS)
    fitted = time.perf_counter()
    test = HeldOut.build(als, split.test, [split.validation], ds.items, exclude_seen=True)
    metrics, _ = test.evaluate_users(als, K, segments=True)
    done = time.perf_counter()
    result = {
        "als_fit_eval_s": round(done - t0, 2),
        "als": {
            "epochs": ALS_EPOCHS,
            "factors": als.params.factors,
            "fit_s": round(fitted - t0, 2),
            "evaluation_s": round(done - fitted, 2),
            "ndcg_at_10": round(metrics["ndcg_at_10"], 4),
        },
    }
    print(f"als: {result}", flush=True)
    return result


def implicit_comparison(model: Any, split: Any, ours_s: float) -> dict[str, Any]:
    """``implicit.evaluation.ranking_metrics_at_k`` on the same scores, split and k, timed."""
    try:
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.evaluation import ranking_metrics_at_k
    except ImportError as exc:
        return {"eval_speedup_vs_implicit": None, "implicit": f"not importable: {exc}"}
    from recdash.evaluation.metrics import interaction_matrix

    def matrix(*frames: Any) -> Any:
        rows = np.concatenate([model.user_index(f["user_id"]) for f in frames])
        cols = np.concatenate([model.item_index(f["item_id"]) for f in frames])
        keep = (rows >= 0) & (cols >= 0)
        return interaction_matrix(rows[keep], cols[keep], model.n_users, model.n_items)

    seen, truth = matrix(split.train, split.validation), matrix(split.test)
    als = AlternatingLeastSquares(factors=model.user_factors.shape[1] + 1, num_threads=0)
    ones = np.ones((model.n_users, 1), dtype=np.float32)
    als.user_factors = np.ascontiguousarray(np.hstack([model.user_factors, ones]), dtype=np.float32)
    als.item_factors = np.ascontiguousarray(np.hstack([model.item_factors, model.item_bias[:, None]]), np.float32)
    t0 = time.perf_counter()
    theirs = ranking_metrics_at_k(als, seen, truth, K=K, show_progress=False, num_threads=0)
    implicit_s = time.perf_counter() - t0
    print(f"implicit ranking_metrics_at_k: {implicit_s:.1f}s {theirs}", flush=True)
    return {
        "eval_speedup_vs_implicit": round(implicit_s / ours_s, 3),
        "implicit": {"seconds": round(implicit_s, 2), "ndcg_at_10": round(float(theirs["ndcg"]), 4)},
    }


# The command run as it is, reporting its own peak resident memory at exit: VmHWM of /proc/self/status belongs to
# this process image (getrusage's ru_maxrss would also count the bench process it was forked from).
_WRAPPER = """
import runpy, sys
sys.argv = ["recdash", *sys.argv[1:]]
try:
    runpy.run_module("recdash", run_name="__main__")
finally:
    peak = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
    print(f"PEAK_RSS_KB {peak[0]}", file=sys.stderr, flush=True)
"""

# (name, the stage line that starts it): each stage lasts until the next one starts
_MARKS = (
    ("read_and_code", "reading "),
    ("split", "splitting "),
    ("arrays_run_and_validation_set", "split: "),
    ("epoch_fit", "epoch 1/1: training"),
    ("epoch_validation", "epoch 1/1: validating"),
    ("test_set_and_evaluation", "epoch 1/1 "),
    ("baseline_evaluation", "evaluating the popularity baseline"),
    ("model_and_results_logging", "logging the model"),
)


def train_command(shape: tuple[int, int, int], tmp: Path, name: str) -> dict[str, Any]:
    """``python -m recdash train`` for one epoch on synthetic data of ``shape``: wall time, peak memory and the
    seconds between its stage lines. Every run goes to one store, made before the first (creating MLflow's tables
    is a store's one-off cost, not a training's)."""
    users, items, n = shape
    wrapper = tmp / "run_recdash.py"
    wrapper.write_text(_WRAPPER)
    store = tmp / "mlflow.db"
    argv = [
        sys.executable, str(wrapper), "train", "--dataset", "synthetic", "--synthetic-users", str(users),
        "--synthetic-items", str(items), "--synthetic-interactions", str(n), "--epochs", "1",
        "--experiment", "scale", "--run-name", name,
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    lines: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - t0, line.rstrip("\n")))
        print(f"  [{name} {lines[-1][0]:7.1f}s] {lines[-1][1][:150]}", flush=True)
    err = proc.stderr.read() if proc.stderr else ""
    proc.wait()
    wall = time.perf_counter() - t0
    peak = [int(x.split()[1]) for x in err.splitlines() if x.startswith("PEAK_RSS_KB ")]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {err[-2000:]}")
    starts: list[tuple[str, float]] = [("startup", 0.0)]
    for stage, prefix in _MARKS:
        found = [t for t, text in lines if text.startswith(prefix)]
        if found:
            starts.append((stage, found[0]))
    starts.append(("end", wall))
    stages = {a: round(tb - ta, 2) for (a, ta), (_, tb) in itertools.pairwise(starts)}
    summary = json.loads(lines[-1][1]) if lines and lines[-1][1].startswith("{") else {}
    return {
        "interactions": n,
        "users": users,
        "items": items,
        "wall_s": round(wall, 1),
        "peak_rss_gb": round(peak[0] / 2**20, 3) if peak else None,
        "stages_s": stages,
        "test_ndcg_at_10": summary.get("test_ndcg_at_10"),
        "baseline_test_ndcg_at_10": summary.get("baseline_test_ndcg_at_10"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M interactions only (a few minutes)")
    args = parser.parse_args()
    sizes = (CURVE[0],) if args.quick else CURVE
    main_shape = shape_for(sizes[-1])
    load_before = [round(x, 2) for x in os.getloadavg()]
    result: dict[str, Any] = {"shape": dict(zip(("users", "items", "interactions"), main_shape, strict=True))}
    with tempfile.TemporaryDirectory(prefix="recdash-scale-") as name:
        tmp = Path(name)
        os.chdir(tmp)
        result |= in_process(main_shape, tmp)
        import gc

        gc.collect()
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
        mlflow.search_experiments()  # creates the store's tables
        curve = {}
        for n in sizes:
            curve[f"{round(n / 1e6)}M"] = train_command(shape_for(n), tmp, f"train-{n}")
        last = curve[f"{round(sizes[-1] / 1e6)}M"]
        result["peak_rss_gb"] = last["peak_rss_gb"]
        result["end_to_end_1_epoch_s"] = last["wall_s"]
        result["curve"] = curve
    result["bench_process_peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
    result["load"] = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()], "cores": os.cpu_count()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
