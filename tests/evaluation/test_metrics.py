"""Tests for recdash.metrics: hand-computed values, masking, blocking, and parity with rankfmc."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recdash.evaluation.metrics import METRICS, evaluate, gini_index, interaction_matrix, top_k

LOG2_3 = math.log2(3)  # 1.584962500721156


def _fixed_scores(matrix: np.ndarray):
    """score_fn over a fixed [n_users, n_items] matrix, as evaluate() expects."""
    return lambda users: matrix[users]


def _csr(rows: dict[int, list[int]], n_users: int, n_items: int):
    users = np.array([u for u, items in rows.items() for _ in items], dtype=np.int64)
    items = np.array([i for its in rows.values() for i in its], dtype=np.int64)
    return interaction_matrix(users, items, n_users, n_items)


# 4 users x 6 items; each row's ranking is obvious from the scores.
SCORES = np.array(
    [
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],  # u0 ranks 0,1,2,3,4,5
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # u1 ranks 5,4,3,2,1,0
        [0.1, 0.5, 0.4, 0.3, 0.2, 0.6],  # u2 ranks 5,1,2,3,4,0
        [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],  # u3 has no truth -> skipped
    ]
)
TRUTH = {0: [1, 3, 5], 1: [5, 3], 2: [0]}


def test_hand_computed_metrics_at_3():
    truth = _csr(TRUTH, 4, 6)
    res = evaluate(_fixed_scores(SCORES), truth, None, k=3)
    # top-3 and hits:  u0 [0,1,2] -> [0,1,0]   u1 [5,4,3] -> [1,0,1]   u2 [5,1,2] -> [0,0,0]
    assert res["n_users_evaluated"] == 3
    # precision: u0 1/3, u1 2/3, u2 0 -> mean 1/3
    assert res["precision_at_3"] == pytest.approx(1 / 3)
    # recall: u0 1/3, u1 2/2, u2 0 -> (1/3 + 1) / 3 = 4/9
    assert res["recall_at_3"] == pytest.approx(4 / 9)
    # ndcg: u0 DCG 1/log2(3) = 0.63093, IDCG (3 pos) 1 + 0.63093 + 0.5 -> 0.2960819109658652
    #       u1 DCG 1 + 1/log2(4) = 1.5, IDCG (2 pos) 1 + 0.63093 -> 0.9197207891481876;  u2 0
    #       mean (0.2960819 + 0.9197208) / 3 = 0.4052675667046843
    assert res["ndcg_at_3"] == pytest.approx(0.4052675667046843)
    assert res["ndcg_at_3"] == pytest.approx(((1 / LOG2_3) / (1.5 + 1 / LOG2_3) + 1.5 / (1 + 1 / LOG2_3)) / 3)
    # mrr: u0 first hit at rank 2 -> 1/2, u1 rank 1 -> 1, u2 0 -> 1.5/3 = 0.5
    assert res["mrr_at_3"] == pytest.approx(0.5)
    # map: u0 P@2 * 1 / min(3,3) = 1/6;  u1 (P@1 + P@3) / min(2,3) = (1 + 2/3) / 2 = 5/6;  u2 0 -> 1/3
    assert res["map_at_3"] == pytest.approx(1 / 3)
    # hit_rate: u0, u1 hit, u2 not -> 2/3
    assert res["hit_rate_at_3"] == pytest.approx(2 / 3)
    # coverage: union of lists {0,1,2} | {5,4,3} | {5,1,2} = all 6 items
    assert res["coverage_at_3"] == pytest.approx(1.0)
    assert math.isnan(res["mean_popularity_at_3"])
    assert set(res) == {f"{m}_at_3" for m in METRICS} | {
        "coverage_at_3",
        "mean_popularity_at_3",
        "n_users_evaluated",
    }


def test_k_one():
    truth = _csr(TRUTH, 4, 6)
    res = evaluate(_fixed_scores(SCORES), truth, None, k=1)
    # top-1: u0 0 (miss), u1 5 (hit), u2 5 (miss)
    assert res["precision_at_1"] == pytest.approx(1 / 3)
    assert res["recall_at_1"] == pytest.approx((1 / 2) / 3)  # u1 1/|{5,3}|
    assert res["ndcg_at_1"] == pytest.approx(1 / 3)  # IDCG over min(|truth|,1)=1 position
    assert res["map_at_1"] == pytest.approx(1 / 3)
    assert res["mrr_at_1"] == pytest.approx(1 / 3)
    assert res["coverage_at_1"] == pytest.approx(2 / 6)  # items {0, 5}


def test_exclusion_masks_top_scored_item():
    # u0's truth item 0 has the top score but is excluded (e.g. seen in train): never a hit.
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]])
    truth = _csr({0: [0, 3]}, 1, 5)
    exclude = _csr({0: [0, 1]}, 1, 5)
    res = evaluate(_fixed_scores(scores), truth, exclude, k=2)
    # without item 0 and 1, top-2 = [2, 3] -> hits [0, 1]
    assert res["precision_at_2"] == pytest.approx(1 / 2)
    assert res["recall_at_2"] == pytest.approx(1 / 2)
    assert res["mrr_at_2"] == pytest.approx(1 / 2)
    # DCG 1/log2(3); IDCG over min(2,2)=2 positions: 1 + 1/log2(3)
    assert res["ndcg_at_2"] == pytest.approx((1 / LOG2_3) / (1 + 1 / LOG2_3))
    assert res["map_at_2"] == pytest.approx((1 / 2) / 2)
    assert res["coverage_at_2"] == pytest.approx(2 / 5)

    # sanity: without the exclusion the top item would be a hit
    res_no_ex = evaluate(_fixed_scores(scores), truth, None, k=2)
    assert res_no_ex["mrr_at_2"] == pytest.approx(1.0)


def test_exclusion_does_not_modify_caller_scores():
    scores = np.array([[0.9, 0.8, 0.7]], dtype=np.float32)
    before = scores.copy()
    evaluate(lambda users: scores, _csr({0: [1]}, 1, 3), _csr({0: [0]}, 1, 3), k=1)
    np.testing.assert_array_equal(scores, before)


def test_k_at_least_n_items():
    scores = np.array([[0.4, 0.3, 0.2, 0.1]])
    truth = _csr({0: [3]}, 1, 4)
    res = evaluate(_fixed_scores(scores), truth, None, k=10)
    # list is all 4 items, hit at rank 4
    assert res["precision_at_10"] == pytest.approx(1 / 10)  # RecBole: hits / k
    assert res["recall_at_10"] == pytest.approx(1.0)
    assert res["ndcg_at_10"] == pytest.approx(1 / math.log2(5))  # 0.43067655807339306, IDCG = 1
    assert res["mrr_at_10"] == pytest.approx(1 / 4)
    assert res["map_at_10"] == pytest.approx(1 / 4)  # P@4 / min(1, 10)
    assert res["hit_rate_at_10"] == pytest.approx(1.0)
    assert res["coverage_at_10"] == pytest.approx(1.0)


def test_k_beyond_unmasked_items_ignores_masked_slots():
    # 4 items, 3 excluded: only item 2 is a real recommendation; excluded truth item 0 never counts.
    scores = np.array([[0.4, 0.3, 0.2, 0.1]])
    truth = _csr({0: [0, 2]}, 1, 4)
    exclude = _csr({0: [0, 1, 3]}, 1, 4)
    res = evaluate(_fixed_scores(scores), truth, exclude, k=5, item_popularity=np.array([1, 2, 3, 4]))
    assert res["precision_at_5"] == pytest.approx(1 / 5)
    assert res["recall_at_5"] == pytest.approx(1 / 2)
    assert res["mrr_at_5"] == pytest.approx(1.0)
    assert res["coverage_at_5"] == pytest.approx(1 / 4)
    assert res["mean_popularity_at_5"] == pytest.approx(3.0)


def test_users_without_truth_are_skipped():
    truth = _csr({1: [5]}, 4, 6)
    calls: list[np.ndarray] = []

    def score_fn(users: np.ndarray) -> np.ndarray:
        calls.append(users.copy())
        return SCORES[users]

    res = evaluate(score_fn, truth, None, k=1)
    assert res["n_users_evaluated"] == 1
    np.testing.assert_array_equal(np.concatenate(calls), [1])
    assert res["precision_at_1"] == pytest.approx(1.0)  # u1's top item is 5

    empty = evaluate(score_fn, _csr({}, 4, 6), None, k=1)
    assert empty["n_users_evaluated"] == 0
    assert math.isnan(empty["precision_at_1"])


def test_coverage_and_mean_popularity():
    truth = _csr(TRUTH, 4, 6)
    popularity = np.array([10, 20, 30, 40, 50, 60])
    res = evaluate(_fixed_scores(SCORES), truth, None, k=2, item_popularity=popularity)
    # top-2: u0 [0,1], u1 [5,4], u2 [5,1] -> items {0,1,4,5}: coverage 4/6
    assert res["coverage_at_2"] == pytest.approx(4 / 6)
    # popularity of all 6 recommended slots: (10+20 + 60+50 + 60+20) / 6 = 220/6
    assert res["mean_popularity_at_2"] == pytest.approx(220 / 6)


def test_duplicates_in_truth_count_once():
    truth = interaction_matrix(np.array([0, 0, 0]), np.array([1, 1, 2]), 1, 6)
    res = evaluate(_fixed_scores(SCORES[:1]), truth, None, k=2)
    # truth {1, 2}; top-2 [0, 1] -> 1 hit; recall 1/2 (not 1/3)
    assert res["recall_at_2"] == pytest.approx(1 / 2)


def _reference(scores: np.ndarray, truth_sets, exclude_sets, k: int) -> dict[str, float]:
    """Slow per-user reference straight from the RecBole definitions."""
    acc = dict.fromkeys(METRICS, 0.0)
    n = 0
    for u, rel in enumerate(truth_sets):
        if not rel:
            continue
        n += 1
        s = scores[u].copy()
        s[list(exclude_sets[u])] = -np.inf
        ranked = [int(i) for i in np.argsort(-s, kind="stable")[:k] if s[i] > -np.inf]
        hits = [1.0 if i in rel else 0.0 for i in ranked]
        n_hits = sum(hits)
        acc["precision"] += n_hits / k
        acc["recall"] += n_hits / len(rel)
        dcg = sum(h / math.log2(p + 2) for p, h in enumerate(hits))
        idcg = sum(1 / math.log2(p + 2) for p in range(min(len(rel), k)))
        acc["ndcg"] += dcg / idcg
        acc["mrr"] += next((1 / (p + 1) for p, h in enumerate(hits) if h), 0.0)
        ap = sum(sum(hits[: p + 1]) / (p + 1) for p, h in enumerate(hits) if h)
        acc["map"] += ap / min(len(rel), k)
        acc["hit_rate"] += float(n_hits > 0)
    return {f"{m}_at_{k}": v / n for m, v in acc.items()}


@pytest.mark.parametrize("k", [1, 5, 12, 40])
def test_random_against_reference_and_block_size_independence(k):
    rng = np.random.default_rng(7)
    n_users, n_items = 53, 31
    scores = rng.normal(size=(n_users, n_items))
    truth_mask = rng.random((n_users, n_items)) < 0.1
    truth_mask[::9] = False  # some users without truth
    exclude_mask = (rng.random((n_users, n_items)) < 0.2) & ~truth_mask
    truth = interaction_matrix(*np.nonzero(truth_mask), n_users, n_items)
    exclude = interaction_matrix(*np.nonzero(exclude_mask), n_users, n_items)

    popularity = rng.integers(0, 100, size=n_items)
    results = [
        evaluate(_fixed_scores(scores), truth, exclude, k=k, item_popularity=popularity, block_size=bs)
        for bs in (1, 7, 1024)
    ]
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for key, value in results[0].items():
            assert other[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key

    truth_sets = [set(np.flatnonzero(r)) for r in truth_mask]
    exclude_sets = [set(np.flatnonzero(r)) for r in exclude_mask]
    expected = _reference(scores, truth_sets, exclude_sets, k)
    for key, value in expected.items():
        assert results[0][key] == pytest.approx(value, rel=1e-12), key
    assert results[0]["n_users_evaluated"] == sum(bool(s) for s in truth_sets)


def test_top_k():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [4.0, 3.0, 2.0, 1.0]])
    np.testing.assert_array_equal(top_k(scores, 2), [[1, 3], [0, 1]])
    np.testing.assert_array_equal(top_k(scores, 4), [[1, 3, 2, 0], [0, 1, 2, 3]])
    np.testing.assert_array_equal(top_k(scores, 99), [[1, 3, 2, 0], [0, 1, 2, 3]])
    masked = np.array([[-np.inf, 1.0, np.nan, 2.0]])
    np.testing.assert_array_equal(top_k(masked, 2), [[3, 1]])
    with pytest.raises(ValueError, match="k must be >= 1"):
        top_k(scores, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_k_large_catalogue_matches_full_sort(dtype):
    # n_items large enough for the prefiltered path; ties, -inf and NaN included.
    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=(40, 2000)), 1).astype(dtype)
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    scores[rng.random(scores.shape) < 0.1] = np.nan
    scores[0] = -np.inf  # a fully masked row
    expected = np.argsort(np.where(np.isnan(scores), np.inf, -scores), axis=1, kind="stable")
    for k in (1, 10, 100):
        np.testing.assert_array_equal(top_k(scores, k), expected[:, :k])


def test_invalid_k_and_shapes():
    truth = _csr(TRUTH, 4, 6)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        evaluate(_fixed_scores(SCORES), truth, None, k=0)
    with pytest.raises(ValueError, match="block_size"):
        evaluate(_fixed_scores(SCORES), truth, None, block_size=0)
    with pytest.raises(ValueError, match="score_fn returned shape"):
        evaluate(lambda users: SCORES[users, :5], truth, None, k=2)
    with pytest.raises(ValueError, match="exclude shape"):
        evaluate(_fixed_scores(SCORES), truth, _csr({}, 4, 5), k=2)


def test_interaction_matrix_binary_and_validated():
    m = interaction_matrix(np.array([0, 0, 2, 0]), np.array([3, 3, 1, 0]), 3, 4)
    assert m.shape == (3, 4)
    np.testing.assert_array_equal(m.toarray(), [[1, 0, 0, 1], [0, 0, 0, 0], [0, 1, 0, 0]])
    assert m.has_canonical_format
    with pytest.raises(ValueError, match="item_idx out of range"):
        interaction_matrix(np.array([0]), np.array([4]), 3, 4)
    with pytest.raises(ValueError, match="user_idx out of range"):
        interaction_matrix(np.array([-1]), np.array([0]), 3, 4)
    empty = interaction_matrix(np.array([], dtype=int), np.array([], dtype=int), 2, 3)
    assert empty.nnz == 0 and empty.shape == (2, 3)


def test_matches_rankfmc_precision_and_recall():
    pytest.importorskip("rankfmc")
    from rankfmc import RankFM, evaluation

    rng = np.random.default_rng(0)
    n_users, n_items = 200, 100
    item_p = rng.zipf(1.5, size=n_items).astype(float)  # skewed popularity so the model learns something
    item_p /= item_p.sum()
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, size=rng.integers(8, 25), replace=False, p=item_p):
            rows.append((f"u{u}", f"i{i}"))
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    is_test = rng.random(len(df)) < 0.2
    train_df, test_df = df[~is_test].reset_index(drop=True), df[is_test].reset_index(drop=True)

    np.random.seed(0)
    model = RankFM(factors=8, loss="warp", learning_rate=0.1, alpha=0.01, beta=0.1, sigma=0.1)
    model.fit(train_df[["user_id", "item_id"]], epochs=5)

    # Same protocol on both sides: only users/items known to the model (rankfmc drops cold users).
    known = test_df["user_id"].isin(model.user_to_index.index) & test_df["item_id"].isin(model.item_to_index.index)
    test_df = test_df[known].reset_index(drop=True)
    n_u, n_i = len(model.user_id), len(model.item_id)
    train_m = interaction_matrix(
        model.user_to_index[train_df["user_id"]].to_numpy(),
        model.item_to_index[train_df["item_id"]].to_numpy(),
        n_u,
        n_i,
    )
    test_m = interaction_matrix(
        model.user_to_index[test_df["user_id"]].to_numpy(),
        model.item_to_index[test_df["item_id"]].to_numpy(),
        n_u,
        n_i,
    )

    def score_fn(users: np.ndarray) -> np.ndarray:
        return model.v_u[users] @ model.v_i.T + model.w_i

    ours = evaluate(score_fn, test_m, train_m, k=10, block_size=64)
    ref_p = evaluation.precision(model, test_df[["user_id", "item_id"]], k=10, filter_previous=True)
    ref_r = evaluation.recall(model, test_df[["user_id", "item_id"]], k=10, filter_previous=True)
    assert ours["n_users_evaluated"] == test_df["user_id"].nunique()
    assert ours["precision_at_10"] == pytest.approx(ref_p, abs=1e-3)
    assert ours["recall_at_10"] == pytest.approx(ref_r, abs=1e-3)
    assert ours["precision_at_10"] > 0  # the comparison is not vacuous


# ---- segments and beyond-accuracy metrics: tiny cases computed by hand ----------------------------------------------

# 4 users x 5 items, k = 2; every user has truth. Rankings are obvious from the scores.
SEG_SCORES = np.array(
    [
        [0.9, 0.8, 0.1, 0.0, 0.0],  # u0 top-2 [0, 1]
        [0.9, 0.0, 0.8, 0.0, 0.0],  # u1 top-2 [0, 2]
        [0.0, 0.0, 0.0, 0.9, 0.8],  # u2 top-2 [3, 4]
        [0.9, 0.8, 0.0, 0.0, 0.0],  # u3 top-2 [0, 1]
    ]
)
SEG_TRUTH = {0: [0], 1: [2, 3], 2: [1], 3: [1]}
# training interactions per item: item 0 is the head (top 20% of 5 items = ceil(1.0) = 1 item); 1-4 are the tail
SEG_POPULARITY = np.array([8, 4, 2, 1, 1])
SEG_ACTIVITY = np.array([5, 1, 3, 2])  # quartiles by activity: q1 = u1, q2 = u3, q3 = u2, q4 = u0
SEG_GENRES = np.array(
    [
        [1, 1, 0],  # item 0: {a, b}
        [1, 0, 0],  # item 1: {a}
        [0, 0, 1],  # item 2: {c}
        [0, 0, 0],  # item 3: no genre
        [0, 1, 1],  # item 4: {b, c}
    ],
    dtype=bool,
)


def _segments(**overrides):
    kwargs = dict(
        k=2,
        item_popularity=SEG_POPULARITY,
        segments=True,
        user_activity=SEG_ACTIVITY,
        item_genres=SEG_GENRES,
    )
    kwargs.update(overrides)
    return evaluate(_fixed_scores(SEG_SCORES), _csr(SEG_TRUTH, 4, 5), None, **kwargs)


def test_recall_and_ndcg_per_activity_quartile():
    res = _segments()
    # hits: u0 [1,0] (item 0), u1 [0,1] (item 2), u2 [0,0], u3 [0,1] (item 1)
    # recall: u0 1/1, u1 1/2, u2 0, u3 1/1;  ndcg: u0 1, u1 (1/log2 3) / (1 + 1/log2 3), u2 0, u3 1/log2 3
    assert res["recall_at_2_q1"] == pytest.approx(0.5)  # u1, least active (1 training interaction)
    assert res["recall_at_2_q2"] == pytest.approx(1.0)  # u3
    assert res["recall_at_2_q3"] == pytest.approx(0.0)  # u2
    assert res["recall_at_2_q4"] == pytest.approx(1.0)  # u0, most active
    assert res["ndcg_at_2_q1"] == pytest.approx((1 / LOG2_3) / (1 + 1 / LOG2_3))
    assert res["ndcg_at_2_q2"] == pytest.approx(1 / LOG2_3)
    assert res["ndcg_at_2_q3"] == 0.0 and res["ndcg_at_2_q4"] == pytest.approx(1.0)
    # the quartile means average back to the overall means (equal-sized quartiles)
    quartiles = [res[f"recall_at_2_q{q}"] for q in range(1, 5)]
    assert np.mean(quartiles) == pytest.approx(res["recall_at_2"])


def test_tail_hit_share_and_tail_share():
    res = _segments()
    # hits on items 0 (head), 2 (tail), 1 (tail): 2 of 3 hits on the tail
    assert res["tail_hit_share_at_2"] == pytest.approx(2 / 3)
    # slots: [0,1] [0,2] [3,4] [0,1] -> head item 0 three times, 5 tail slots of 8
    assert res["tail_share_at_2"] == pytest.approx(5 / 8)


def test_novelty_is_mean_self_information_of_the_recommended_slots():
    res = _segments()
    # p(i) = popularity / 16: item 0 1/2 (1 bit), 1 1/4 (2), 2 1/8 (3), 3 and 4 1/16 (4 each)
    # slots 0,1 | 0,2 | 3,4 | 0,1 -> (1+2 + 1+3 + 4+4 + 1+2) / 8 = 18/8
    assert res["novelty_at_2"] == pytest.approx(18 / 8)


def test_gini_of_recommendation_counts_over_the_catalogue():
    res = _segments()
    # counts per item: 0:3, 1:2, 2:1, 3:1, 4:1 -> sorted [1,1,1,2,3], n=5, total 8
    # sum (2i - n - 1) c_i = (-4)(1) + (-2)(1) + 0(1) + 2(2) + 4(3) = 10 -> 10 / (5 * 8) = 0.25
    assert res["gini_at_2"] == pytest.approx(0.25)
    assert gini_index(np.array([5, 5, 5])) == 0.0
    assert gini_index(np.array([0, 0, 0, 9])) == pytest.approx(0.75)  # (n-1)/n when one item takes all


def test_personalization_is_one_minus_mean_jaccard_of_list_pairs():
    res = _segments()
    # lists {0,1} {0,2} {3,4} {0,1}; the 6 pairs' Jaccard: (u0,u1) 1/3, (u0,u2) 0, (u0,u3) 1, (u1,u2) 0,
    # (u1,u3) 1/3, (u2,u3) 0 -> mean 5/18 -> personalization 13/18
    assert res["personalization_at_2"] == pytest.approx(13 / 18)


def test_personalization_samples_a_fixed_set_of_pairs_when_there_are_many_users():
    rng = np.random.default_rng(3)
    scores = rng.random((300, 40))
    truth = _csr({u: [u % 40] for u in range(300)}, 300, 40)
    popularity, activity = np.arange(1, 41), np.ones(300)
    runs = [
        evaluate(_fixed_scores(scores), truth, None, k=5, item_popularity=popularity, segments=True,
                 user_activity=activity, block_size=bs)["personalization_at_5"]
        for bs in (7, 1024)
    ]  # fmt: skip
    assert runs[0] == runs[1]  # same pairs whatever the blocking
    assert 0.5 < runs[0] < 1.0


def test_intra_list_diversity_on_genres():
    res = _segments()
    # Jaccard distance of genre sets: u0 {a,b} vs {a} -> 1 - 1/2 = 1/2;  u1 {a,b} vs {c} -> 1;
    # u2: item 3 has no genre, {} vs {b,c} -> union 2, distance 1;  u3 as u0 -> 1/2.  Mean 3/4.
    assert res["ild_at_2"] == pytest.approx(0.75)
    assert "ild_at_2" not in _segments(item_genres=None)


def test_segments_need_popularity_and_activity_and_keep_the_plain_keys():
    with pytest.raises(ValueError, match="needs item_popularity and user_activity"):
        _segments(user_activity=None)
    with pytest.raises(ValueError, match="user_activity has 3 entries"):
        _segments(user_activity=np.ones(3))
    plain = evaluate(_fixed_scores(SEG_SCORES), _csr(SEG_TRUTH, 4, 5), None, k=2, item_popularity=SEG_POPULARITY)
    res = _segments()
    for key, value in plain.items():
        assert res[key] == pytest.approx(value)
    extra = set(res) - set(plain)
    assert extra == {
        *(f"{m}_at_2_q{q}" for m in ("recall", "ndcg") for q in range(1, 5)),
        *(f"{m}_at_2" for m in ("tail_hit_share", "novelty", "gini", "tail_share", "personalization", "ild")),
    }
