"""Metric definitions stated in docs/metrics.md, checked on examples small enough to compute by hand: coverage over
the items the model can recommend, and the order of users of equal activity in the segment quartiles."""

from __future__ import annotations

import pandas as pd
import pytest

from recdash.models import Interactions, Popularity
from recdash.train import evaluate_recommender


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
