"""The plain-array model: scoring, top-k, fallback, export/import, and agreement with rankfmc."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recdash.model import (
    HyperparameterError,
    Hyperparams,
    RankFMTrainer,
    Recommender,
    csr_rows,
    popularity_recommender,
    validate_k,
)


def tiny() -> Recommender:
    """Two users, four items. Scores are known by construction:
    u1 = [1, 0] -> items score a: 3+0.1, b: 2, c: 1, d: 0  (a has bias 0.1)
    u2 = [0, 1] -> a: 0+0.1, b: 1, c: 2, d: 3
    u1 saw item a; u2 saw item d. Popularity: a 5, b 1, c 3, d 2."""
    indptr, indices = csr_rows(np.array([0, 1]), np.array([0, 3]), 2)
    return Recommender(
        user_ids=["u1", "u2"],
        item_ids=["a", "b", "c", "d"],
        user_factors=np.array([[1.0, 0.0], [0.0, 1.0]]),
        item_factors=np.array([[3.0, 0.0], [2.0, 1.0], [1.0, 2.0], [0.0, 3.0]]),
        item_bias=np.array([0.1, 0.0, 0.0, 0.0]),
        seen_indptr=indptr,
        seen_indices=indices,
        item_popularity=np.array([5, 1, 3, 2]),
    )


def test_recommend_known_users_excludes_seen_and_ranks_by_score() -> None:
    out = tiny().recommend(["u2", "u1"], k=2)
    assert list(out.columns) == ["user_id", "rank", "item_id", "score", "source"]
    assert out["user_id"].tolist() == ["u2", "u2", "u1", "u1"]  # caller's order kept
    assert out["item_id"].tolist() == ["c", "b", "b", "c"]
    assert out["rank"].tolist() == [1, 2, 1, 2]
    assert out["score"].tolist() == pytest.approx([2.0, 1.0, 2.0, 1.0])
    assert set(out["source"]) == {"model"}


def test_recommend_without_exclusion_returns_seen_items() -> None:
    out = tiny().recommend(["u1"], k=1, exclude_seen=False)
    assert out["item_id"].tolist() == ["a"]
    assert out["score"].iloc[0] == pytest.approx(3.1)


def test_unknown_user_gets_popular_items() -> None:
    out = tiny().recommend(["nobody", "u1"], k=3)
    unknown = out[out["user_id"] == "nobody"]
    assert unknown["item_id"].tolist() == ["a", "c", "d"]
    assert set(unknown["source"]) == {"popular"}
    assert out["user_id"].tolist()[:3] == ["nobody"] * 3


def test_k_larger_than_catalogue_returns_what_is_available() -> None:
    out = tiny().recommend(["u1"], k=50)
    assert out["item_id"].tolist() == ["b", "c", "d"]  # 4 items minus the seen one


@pytest.mark.parametrize("bad", [0, -1, "x", 2.5, None, True, ""])
def test_bad_k_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        validate_k(bad)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        tiny().recommend(["u1"], k=bad)  # type: ignore[arg-type]


def test_k_accepts_integral_forms() -> None:
    assert validate_k(3) == validate_k("3") == validate_k(3.0) == validate_k(np.int64(3)) == 3


def test_save_load_round_trip_without_pickle(tmp_path: Path) -> None:
    rec = tiny()
    rec.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["ids.json", "weights.npz"]
    with np.load(tmp_path / "m" / "weights.npz", allow_pickle=False) as z:  # would raise on object arrays
        assert z["user_factors"].dtype == np.float32
    back = Recommender.load(tmp_path / "m")
    pd.testing.assert_frame_equal(back.recommend(["u1", "u2", "x"], k=3), rec.recommend(["u1", "u2", "x"], k=3))


def test_load_reports_missing_or_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a readable recdash model"):
        Recommender.load(tmp_path)
    tiny().save(tmp_path / "m")
    (tmp_path / "m" / "weights.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable recdash model"):
        Recommender.load(tmp_path / "m")


def test_similar_items_uses_cosine_and_skips_the_item_itself() -> None:
    sims = tiny().similar_items("a", k=2)
    assert sims["item_id"].tolist() == ["b", "c"]
    assert sims["similarity"].iloc[0] == pytest.approx(2 / np.sqrt(5))
    with pytest.raises(KeyError):
        tiny().similar_items("zzz")


def test_popularity_recommender_ranks_by_train_count() -> None:
    train = pd.DataFrame({"user_id": ["1", "2", "3", "3"], "item_id": ["x", "x", "y", "x"]})
    rec = popularity_recommender(train)
    out = rec.recommend(["1"], k=5)
    assert out["item_id"].tolist() == ["y"]  # x was seen by user 1
    assert rec.recommend(["new"], k=2)["item_id"].tolist() == ["x", "y"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("factors", 0, "factors"),
        ("factors", 2.5, "integer"),
        ("loss", "hinge", "bpr, warp"),
        ("alpha", -1.0, "alpha"),
        ("learning_rate", "fast", "learning_rate"),
        ("learning_rate", float("nan"), "learning_rate"),
        ("max_samples", 10**6, "max_samples"),
    ],
)
def test_bad_hyperparameters_name_the_flag(field: str, value: object, message: str) -> None:
    with pytest.raises(HyperparameterError, match=message) as info:
        Hyperparams(**{field: value})  # type: ignore[arg-type]
    assert "--" + field.replace("_", "-") in str(info.value)


def test_hyperparams_from_mlflow_strings() -> None:
    hp = Hyperparams.from_mapping({"factors": "16", "loss": "BPR", "alpha": "0.05", "unrelated": "x"})
    assert (hp.factors, hp.loss, hp.alpha) == (16, "bpr", 0.05)


def test_rankings_match_rankfmc_recommend() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 60, 3000).astype(str)
    items = rng.zipf(1.5, 3000).clip(max=80).astype(str)
    train = pd.DataFrame({"user_id": users, "item_id": items}).drop_duplicates()
    trainer = RankFMTrainer(Hyperparams(factors=8, loss="warp"), seed=1)
    for _ in range(3):
        trainer.fit_epoch(train)
    rec = trainer.export(train)
    user_ids = sorted(train["user_id"].unique())
    theirs = trainer.model.recommend(user_ids, n_items=10, filter_previous=True)
    ours = rec.recommend(user_ids, k=10)
    for u in user_ids:
        mine = ours.loc[ours["user_id"] == u, "item_id"].tolist()
        assert mine == [str(x) for x in theirs.loc[u].tolist()], u


def test_training_is_repeatable_for_a_seed() -> None:
    train = pd.DataFrame({"user_id": list("aabbccdd") * 5, "item_id": [str(i % 7) for i in range(40)]})
    hparams = Hyperparams(factors=4, max_samples=5)  # WARP needs fewer samples than the 7 items
    a, b = RankFMTrainer(hparams, seed=3), RankFMTrainer(hparams, seed=3)
    for t in (a, b):
        t.fit_epoch(train)
        t.fit_epoch(train)
    np.testing.assert_array_equal(a.model.v_i, b.model.v_i)
