"""Evaluation at scale: users scored in blocks give exactly the numbers of one block (every metric recdash logs,
segments and beyond-accuracy included, and each user's values), and the per-epoch validation sample is a fixed,
seeded set of users whose metrics are those users' own values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recdash.data import make_synthetic, split_dataset
from recdash.evaluation.heldout import HeldOut
from recdash.evaluation.metrics import evaluate_users, interaction_matrix
from recdash.models import Interactions, RankFM


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])) for k in a)


def test_blocks_give_exactly_the_numbers_of_one_block() -> None:
    rng = np.random.default_rng(11)
    n_users, n_items, k = 300, 90, 10
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    truth_mask = rng.random((n_users, n_items)) < 0.08
    truth_mask[::13] = False  # users without held-out items are skipped
    exclude_mask = (rng.random((n_users, n_items)) < 0.2) & ~truth_mask
    truth = interaction_matrix(*np.nonzero(truth_mask), n_users, n_items)
    exclude = interaction_matrix(*np.nonzero(exclude_mask), n_users, n_items)
    extended = {
        "item_popularity": rng.integers(0, 50, n_items),
        "segments": True,
        "user_activity": rng.integers(1, 30, n_users),
        "item_genres": rng.random((n_items, 6)) < 0.3,  # intra-list diversity
        "user_order": rng.integers(0, 2**63, n_users, dtype=np.uint64),
    }
    runs = [
        evaluate_users(lambda users: scores[users].copy(), truth, exclude, k, block_size=size, **extended)
        for size in (1, 7, 64, 1024)
    ]
    first, first_users = runs[0]
    assert {"novelty_at_10", "ild_at_10", "personalization_at_10", "ndcg_at_10_q4"} <= first.keys()
    for result, users in runs[1:]:
        assert same(result, first)  # exactly: novelty and ILD are summed once over all users, not per block
        assert np.array_equal(users.users, first_users.users) and np.array_equal(users.quartile, first_users.quartile)
        for name, values in first_users.values.items():
            assert np.array_equal(users.values[name], values)


def test_progress_is_reported_after_each_block() -> None:
    truth = interaction_matrix(np.arange(10), np.zeros(10, dtype=np.int64), 10, 4)
    seen: list[tuple[int, int]] = []
    evaluate_users(
        lambda users: np.ones((len(users), 4)), truth, None, 2, block_size=4, on_block=lambda *a: seen.append(a)
    )
    assert seen == [(4, 10), (8, 10), (10, 10)]


@pytest.fixture(scope="module")
def held() -> tuple[RankFM, HeldOut]:
    ds = make_synthetic(n_users=400, n_items=150, n_interactions=9000, seed=4)
    split = split_dataset(ds, "random", seed=4)
    train = Interactions.from_frame(split.train)
    rng = np.random.default_rng(0)
    model = RankFM.from_factors(
        train.user_ids, train.item_ids, rng.normal(size=(train.n_users, 8)).astype(np.float32),
        rng.normal(size=(train.n_items, 8)).astype(np.float32), np.zeros(train.n_items, np.float32),
        train.indptr, train.indices, train.popularity,
    )  # fmt: skip
    return model, HeldOut.build(model, split.validation, [split.train], ds.items)


def test_the_validation_sample_is_fixed_by_its_seed(held: tuple[RankFM, HeldOut]) -> None:
    _, full = held
    assert full.n_users == 400
    a, b, other = full.sample(120, seed=1), full.sample(120, seed=1), full.sample(120, seed=2)
    users = [np.flatnonzero(np.diff(s.truth.indptr)) for s in (a, b, other)]
    assert a.n_users == 120 and np.array_equal(users[0], users[1]) and not np.array_equal(users[0], users[2])
    assert full.sample(400, seed=1) is full and full.sample(0, seed=1) is full  # all of them: the set itself


def test_sampled_metrics_are_the_sampled_users_own_values(held: tuple[RankFM, HeldOut]) -> None:
    model, full = held
    sample = full.sample(120, seed=3)
    averages, per_user = sample.evaluate_users(model, 10)
    everyone = full.evaluate_users(model, 10)[1].set_index("user_id")
    assert averages["n_users_evaluated"] == len(per_user) == 120
    mine = everyone.loc[per_user["user_id"]]
    for name in ("ndcg_at_10", "recall_at_10", "precision_at_10"):
        assert np.array_equal(per_user[name].to_numpy(), mine[name].to_numpy())
        assert averages[name] == float(np.mean(mine[name].to_numpy()))
    assert isinstance(per_user, pd.DataFrame)
