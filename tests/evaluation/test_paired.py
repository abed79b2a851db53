"""Paired comparisons of runs from per-user frames: users are matched by ID, runs without per-user results are named,
directions come from the contract, and the answers are known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recdash.evaluation import paired

RNG = np.random.default_rng(3)
N = 400


def frame(values: np.ndarray, users: np.ndarray | None = None, metric: str = "test_ndcg_at_10") -> pd.DataFrame:
    ids = users if users is not None else np.array([f"u{i}" for i in range(len(values))])
    return pd.DataFrame({"user_id": ids, "quartile": np.arange(len(values)) % 4, metric: values})


BASE = RNG.uniform(0, 1, N)


def test_a_clearly_better_run_is_beyond_noise_and_an_equal_one_is_not() -> None:
    frames = {
        "ref": frame(BASE),
        "better": frame(np.clip(BASE + 0.05 + RNG.normal(0, 0.01, N), 0, None)),
        "same": frame(BASE + RNG.normal(0, 1e-9, N)),
        "none": None,
    }
    table = paired.against(frames, "test_ndcg_at_10", "ref").set_index("run_id")
    assert table.loc["better", "verdict"] == "better beyond noise" and table.loc["better", "low"] > 0
    assert table.loc["same", "verdict"] == "within noise"
    assert "none" not in table.index and (table["p_adjusted"] >= table["p_value"]).all()
    assert paired.matrix(frames, "test_ndcg_at_10").missing == ["none"]


def test_lower_is_better_metrics_are_judged_by_their_direction() -> None:
    frames = {"ref": frame(BASE, metric="test_gini_at_10"), "up": frame(BASE + 0.1, metric="test_gini_at_10")}
    table = paired.against(frames, "test_gini_at_10", "ref")
    assert table["verdict"].tolist() == ["worse beyond noise"]  # a higher Gini: less even


def test_users_are_matched_by_id_not_by_position() -> None:
    shuffled = RNG.permutation(N)
    ids = np.array([f"u{i}" for i in range(N)])
    frames = {"ref": frame(BASE), "same-shuffled": frame(BASE[shuffled], ids[shuffled])}
    table = paired.against(frames, "test_ndcg_at_10", "ref")
    assert table["difference"].abs().max() == 0 and table["verdict"].tolist() == ["within noise"]


def test_within_noise_and_best_note() -> None:
    frames = {
        "a": frame(BASE + 0.2),
        "b": frame(BASE + 0.2 + RNG.normal(0, 0.001, N)),
        "c": frame(BASE),
    }
    best, close = paired.within_noise(frames, "test_ndcg_at_10")
    assert best in ("a", "b") and set(close) == {"a", "b"}
    run, note = paired.best_note(frames, "test_ndcg_at_10", {"a": "A", "b": "B", "c": "C"})
    assert run == best and note.startswith("best, but within noise of")


def test_mean_intervals_cover_the_logged_mean_and_quartiles() -> None:
    table = paired.mean_intervals({"a": frame(BASE)}, "test_ndcg_at_10").iloc[0]
    assert table["low"] < table["mean"] < table["high"] and table["mean"] == pytest.approx(BASE.mean())
    q = paired.mean_intervals({"a": frame(BASE)}, "test_ndcg_at_10", quartile=2).iloc[0]
    assert q["n_users"] == N // 4 and q["mean"] == pytest.approx(BASE[2::4].mean())


def test_seed_spread_and_one_users_values() -> None:
    repeats = {f"s{s}": frame(BASE + 0.01 * s) for s in range(3)}
    spread = paired.seed_spread(repeats, "test_ndcg_at_10")
    assert spread is not None and spread.seed_noise_std == pytest.approx(0.01) and spread.n_repeats == 3
    values = paired.user_values(repeats, "u5", ["test_ndcg_at_10"])
    assert values.loc["s2", "test_ndcg_at_10"] == pytest.approx(BASE[5] + 0.02)
