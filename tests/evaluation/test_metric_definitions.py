"""Metric definitions stated in docs/metrics.md, checked on examples small enough to compute by hand: coverage over
the items the model can recommend, and the order of users of equal activity in the segment quartiles."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from recdash.evaluation.heldout import evaluate_recommender, user_order
from recdash.models import Interactions, Popularity


def _frame(pairs: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=["user_id", "item_id"])


def test_coverage_divides_by_the_items_the_model_can_recommend() -> None:
    """Train items w x y z (popularity x 4, y 2, w 1, z 1); the test also has q, an item never seen in train.
    Top-1 (seen items excluded; ties to the lower item ID): b gets w, c gets y, d gets y. Two distinct items of
    the four the model can recommend: coverage 2/4 (not 2/5: q can be neither recommended nor counted)."""
    train = _frame([("a", "x"), ("a", "y"), ("a", "z"), ("b", "x"), ("b", "y"), ("c", "x"), ("d", "x"), ("d", "w")])
    test = _frame([("b", "z"), ("c", "y"), ("d", "q")])
    model = Popularity().fit(Interactions.from_frame(train))
    metrics = evaluate_recommender(model, test, [train], k=1)
    assert metrics["coverage_at_1"] == pytest.approx(2 / 4)
    assert metrics["recall_at_1"] == pytest.approx(1 / 3)  # c's hit; q still counts as d's miss
    assert metrics["n_users_evaluated"] == 3


def test_users_of_equal_activity_are_split_into_quartiles_by_a_hash_of_their_id() -> None:
    """Users 1..8 each have one training item (p), so their activity ties. Each is recommended h1 (the most
    popular item they have not seen); users 1 and 2 have h1 in test (recall 1), the others h2 (recall 0).
    By BLAKE2b-64 of the ID the order is 6 2 4 5 3 8 7 1: quartiles {6,2} {4,5} {3,8} {7,1}, so recall by quartile
    is 0.5, 0, 0, 0.5 (string order, {1,2} {3,4} {5,6} {7,8}, would give 1, 0, 0, 0)."""
    users = [str(i) for i in range(1, 9)]

    def blake(user: str) -> int:
        return int.from_bytes(hashlib.blake2b(user.encode(), digest_size=8).digest(), "big")

    assert sorted(users, key=blake) == ["6", "2", "4", "5", "3", "8", "7", "1"]
    assert user_order(users).tolist() == [blake(u) for u in users]
    train = _frame([(u, "p") for u in users] + [("helper", "h1"), ("helper", "h2"), ("helper", "h3")])
    test = _frame([(u, "h1" if u in ("1", "2") else "h2") for u in users])
    model = Popularity().fit(Interactions.from_frame(train))
    metrics = evaluate_recommender(model, test, [train], k=1, segments=True)
    quartiles = [metrics[f"recall_at_1_q{q}"] for q in range(1, 5)]
    assert quartiles == pytest.approx([0.5, 0.0, 0.0, 0.5])
    assert metrics["recall_at_1"] == pytest.approx(2 / 8) == pytest.approx(sum(quartiles) / 4)  # 8 users: n % 4 == 0
