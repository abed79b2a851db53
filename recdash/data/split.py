"""Train/validation/test splits: RecBole's per-user random split, a temporal split, and whole held-out users
(cold users). The split has its own seed, so repeating a configuration with other model seeds keeps its data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recdash.data.dataset import Dataset, DatasetError, Split

SPLIT_METHODS = ("random", "temporal", "cold-users")


def _recbole_split_counts(tot: int, ratios: tuple[float, ...]) -> list[int]:
    """RecBole's ``_calcu_split_ids`` counts, verbatim, so our splits match RecBole's RS protocol."""
    cnt = [int(ratios[i] * tot) for i in range(len(ratios))]
    cnt[0] = tot - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * tot < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def _check_fractions(fractions: Any) -> tuple[float, float, float]:
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        values = ()
    ok = len(values) == 3 and all(np.isfinite(v) and v > 0 for v in values) and abs(sum(values) - 1) <= 1e-6
    if not ok:
        raise DatasetError(
            "Split fractions must be three positive numbers (train, validation, test) summing to 1, "
            f"e.g. (0.8, 0.1, 0.1); got {fractions!r}" + (f" (sum {sum(values):g})." if len(values) == 3 else ".")
        )
    return values  # type: ignore[return-value]


def split_dataset(
    ds: Dataset, method: str = "random", fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 42
) -> Split:
    """Per-user train/validation/test split following RecBole (RS, group_by=user; RO or TO ordering).

    ``random`` shuffles each user's interactions with ``seed``; ``temporal`` orders them by timestamp so the
    latest ones land in test. Vectorised: one lexsort plus a per-distinct-count lookup table.
    ``cold-users`` splits users instead (see :func:`split_cold_users`).
    """
    if method not in SPLIT_METHODS:
        raise DatasetError(f"Unknown split method {method!r}; use one of {', '.join(SPLIT_METHODS)}.")
    fr = _check_fractions(fractions)
    if method == "cold-users":
        return split_cold_users(ds, fr, seed)
    total = sum(fr)
    ratios = tuple(f / total for f in fr)  # RecBole normalises too
    df = ds.interactions
    n = len(df)
    codes, _ = pd.factorize(df["user_id"], sort=False)
    rows = np.arange(n)
    if method == "random":
        keys = np.random.default_rng(seed).random(n)
        order = np.lexsort((rows, keys, codes))
    else:
        if "timestamp" not in df.columns:
            raise DatasetError(
                f"Temporal split needs a timestamp column, but {ds.name!r} has none "
                "(map one with timestamp_col=... or use the random split)."
            )
        order = np.lexsort((rows, df["timestamp"].to_numpy(dtype=np.int64), codes))
    per_user = np.bincount(codes)
    starts = np.concatenate(([0], np.cumsum(per_user)[:-1]))
    sorted_codes = codes[order]
    pos = rows - starts[sorted_codes]
    distinct = np.unique(per_user)
    table = np.array([_recbole_split_counts(int(t), ratios) for t in distinct], dtype=np.int64)
    cnt = table[np.searchsorted(distinct, per_user)]  # (n_users, 3)
    n_train = cnt[sorted_codes, 0]
    n_valid = cnt[sorted_codes, 1]
    part_sorted = np.where(pos < n_train, 0, np.where(pos < n_train + n_valid, 1, 2)).astype(np.int8)
    part = np.empty(n, dtype=np.int8)
    part[order] = part_sorted
    frames = [df.iloc[np.flatnonzero(part == k)].reset_index(drop=True) for k in range(3)]
    return Split(frames[0], frames[1], frames[2], method, fr, int(seed))


def split_cold_users(ds: Dataset, fractions: tuple[float, float, float], seed: int) -> Split:
    """Users, not interactions, are split: a seeded ``fractions[2]`` of the users is held out entirely (all their
    interactions are the test set) and another ``fractions[1]`` the same way for validation, so a model meets its
    test users for the first time, as it meets a new user in production."""
    fr = _check_fractions(fractions)
    df = ds.interactions
    users = pd.unique(df["user_id"])
    n = len(users)
    n_test, n_valid = round(fr[2] * n), round(fr[1] * n)
    if n_test < 1 or n_valid < 1 or n - n_test - n_valid < 1:
        raise DatasetError(
            f"The cold-users split needs at least one user in each part; {n} users with fractions {fr} leave "
            f"{n - n_test - n_valid}/{n_valid}/{n_test}."
        )
    order = np.random.default_rng(seed).permutation(n)
    part_of_user = np.zeros(n, dtype=np.int8)
    part_of_user[order[:n_test]] = 2
    part_of_user[order[n_test : n_test + n_valid]] = 1
    codes = pd.Index(users).get_indexer(df["user_id"])
    part = part_of_user[codes]
    frames = [df.iloc[np.flatnonzero(part == k)].reset_index(drop=True) for k in range(3)]
    return Split(frames[0], frames[1], frames[2], "cold-users", fr, int(seed))
