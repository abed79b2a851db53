"""The item-item Gram matrix EASE and ItemKNN are built from: exact, and built once for a search's candidates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recdash.models import EASE, Interactions, ItemKNN, gram
from recdash.models.ease import EASEParams
from recdash.models.itemknn import ItemKNNParams


@pytest.fixture(scope="module")
def train() -> Interactions:
    rng = np.random.default_rng(3)
    users = rng.integers(0, 300, 6_000).astype(str)
    items = rng.zipf(1.3, 6_000).clip(max=2_500).astype(str)
    return Interactions.from_frame(pd.DataFrame({"user_id": users, "item_id": items}))


def test_columns_of_the_lower_triangle_are_the_whole_matrix(
    train: Interactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gram, "BLOCK", 64)  # several blocks of columns, the last one shorter
    x = train.matrix()
    full = (x.T @ x).toarray()
    lower = gram.lower(train, writable=False)
    for start, stop in ((0, 100), (100, train.n_items), (5, 9), (0, train.n_items)):
        np.testing.assert_array_equal(gram.columns(lower, start, stop), full[:, start:stop])


def test_candidates_share_one_gram_and_fit_what_they_fit_alone(
    train: Interactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = [EASE(EASEParams(l2=50.0)).fit(train), ItemKNN(ItemKNNParams(neighbours=20, shrink=10.0)).fit(train)]
    builds: list[int] = []
    build = gram._build
    monkeypatch.setattr(gram, "_build", lambda t: builds.append(1) or build(t))
    with gram.shared(train):
        together = [
            EASE(EASEParams(l2=50.0)).fit(train),
            EASE(EASEParams(l2=500.0)).fit(train),  # EASE inverts a copy: the shared matrix stays XᵀX
            ItemKNN(ItemKNNParams(neighbours=20, shrink=10.0)).fit(train),
        ]
    assert len(builds) == 1
    np.testing.assert_array_equal(alone[0].weights, together[0].weights)
    assert (alone[1].item_similarity != together[2].item_similarity).nnz == 0
    EASE(EASEParams(l2=50.0)).fit(train)  # outside the block nothing is kept: built again
    assert len(builds) == 2 and not gram._kept


def test_without_room_beside_it_ease_fits_build_their_own(train: Interactions, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeping the matrix costs one more n x n array for the whole search: with too little memory free for the
    copy EASE overwrites and the best model so far, each EASE fit builds its own (same weights); ItemKNN, which
    only reads it, still shares one."""
    builds: list[int] = []
    build = gram._build
    monkeypatch.setattr(gram, "_build", lambda t: builds.append(1) or build(t))
    monkeypatch.setattr(gram, "available_memory", lambda: 1)
    with gram.shared(train):
        first, second = EASE(EASEParams(l2=50.0)).fit(train), EASE(EASEParams(l2=50.0)).fit(train)
        assert len(builds) == 2
        ItemKNN(ItemKNNParams(neighbours=20)).fit(train)
        ItemKNN(ItemKNNParams(neighbours=50)).fit(train)
        assert len(builds) == 3
    np.testing.assert_array_equal(first.weights, second.weights)
