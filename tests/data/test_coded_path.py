"""Issue 25's data path on integer codes gives exactly what the string path gave: the same digests, the same split
rows, the same model indices, rankfm weights, rankings and metrics on MovieLens-100K (values recorded with the code
before the change: tests/fixtures/issue25-reference.json, made by tests/fixtures/make_issue25_reference.py), and the
same synthetic data below the sampled generator's threshold. Above it, the sampled generator keeps the structure."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recdash.config import TrainConfig
from recdash.data import Dataset, load_dataset, load_table, make_synthetic, split_dataset
from recdash.data.features import builtin_features
from recdash.data.split import grouped_order
from recdash.evaluation.heldout import HeldOut
from recdash.models import EASE, Popularity, RankFM
from recdash.models.base import Interactions
from recdash.training.run import train

REFERENCE = json.loads((Path(__file__).parents[1] / "fixtures" / "issue25-reference.json").read_text())


def lists_digest(recs: pd.DataFrame) -> str:
    """As the fixture's maker hashed the top-k lists (scores rounded to 5 decimals)."""
    text = "\n".join(
        f"{u}\t{r}\t{i}\t{s:.5f}"
        for u, r, i, s in zip(recs["user_id"], recs["rank"], recs["item_id"], recs["score"], strict=True)
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def assert_ease_lists_are_the_float64_closed_forms(train: Interactions, model: Any, users: list[str]) -> None:
    """Every user's top-10 items, in order, are those of B = -P / diag(P), P = (XᵀX + λI)⁻¹ in float64."""
    x = train.matrix().toarray().astype(np.float64)
    precision = np.linalg.inv(x.T @ x + model.params.l2 * np.eye(train.n_items))
    weights = precision / -np.diag(precision)
    np.fill_diagonal(weights, 0.0)
    scores = np.where(x > 0, -np.inf, x @ weights)
    rows = pd.Index(train.user_ids).get_indexer(users)
    expected = train.item_ids[np.argsort(-scores[rows], axis=1, kind="stable")[:, :10]]
    got = model.recommend(users, k=10)
    assert got["item_id"].to_numpy().reshape(len(users), 10).tolist() == expected.tolist()


def same_metrics(got: dict[str, float], expected: dict[str, float]) -> None:
    """Equal to the recorded values: exactly on the machine that recorded them; BLAS on another CPU may round a
    matrix product's last bit differently, hence the 1e-9 (the digests and lists above are exact)."""
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), name


@pytest.fixture(scope="module")
def ml100k() -> Dataset:
    return load_dataset("movielens-100k")


def test_ids_are_coded_and_the_digest_is_the_string_digest(ml100k: Dataset) -> None:
    inter = ml100k.interactions
    for column in ("user_id", "item_id"):
        assert isinstance(inter[column].dtype, pd.CategoricalDtype)  # codes per row, never a string object
        categories = inter[column].cat.categories
        assert categories.is_monotonic_increasing and categories.is_unique
    assert ml100k.digest == REFERENCE["ml100k_digest"]
    # the same rows as plain strings, coded by the Dataset itself: the same digest
    plain = inter.astype({"user_id": object, "item_id": object})
    assert Dataset("plain", "test", plain).digest == ml100k.digest


@pytest.mark.parametrize("method", ["random", "temporal", "cold-users"])
def test_splits_keep_their_rows(ml100k: Dataset, method: str) -> None:
    split = split_dataset(ml100k, method, seed=42)
    parts = (split.train, split.validation, split.test)
    assert [Dataset("part", "part", p.reset_index(drop=True)).digest for p in parts] == REFERENCE["splits"][method]


def test_small_synthetic_data_is_what_it_was() -> None:
    """Below the sampled generator's threshold the exact draw is unchanged: digests of runs in stores still match."""
    for key, recorded in REFERENCE["synthetic"].items():
        sizes = {name: int(value) for name, value in (part.split("=") for part in key.split(","))}
        if sizes["n_interactions"] > 100_000:
            continue  # MovieLens-1M's shape was checked when the fixture was made (about 5 s)
        assert make_synthetic(**sizes).digest == recorded["digest"], key


def test_interactions_from_codes_equal_the_string_unique(ml100k: Dataset) -> None:
    """The model layer's indices are what ``np.unique`` over the ID strings gave (the saved models' ID maps)."""
    train_rows = split_dataset(ml100k, "random", seed=42).train
    coded = Interactions.from_frame(train_rows)
    users = train_rows["user_id"].astype(str).to_numpy()
    items = train_rows["item_id"].astype(str).to_numpy()
    user_ids, user_idx = np.unique(users, return_inverse=True)
    item_ids, item_idx = np.unique(items, return_inverse=True)
    assert np.array_equal(coded.user_ids, user_ids) and np.array_equal(coded.item_ids, item_ids)
    assert np.array_equal(coded.user_idx, user_idx) and np.array_equal(coded.item_idx, item_idx)
    pairs = np.unique(np.stack([user_idx, item_idx]), axis=1)
    assert np.array_equal(coded.indices, pairs[1]) and coded.indptr[-1] == pairs.shape[1]


def test_rankfmc_fed_codes_learns_the_same_weights(ml100k: Dataset) -> None:
    """rankfmc set up from recdash's arrays draws and learns exactly what its ``_init_all`` over the ID strings
    gave (its kernel has no BLAS: bit for bit on any machine)."""
    from rankfmc import RankFM as RankFMC

    split = split_dataset(ml100k, "random", seed=42)
    train_set = Interactions.from_frame(split.train, builtin_features(ml100k, "user"), None)
    ours = RankFM(RankFM.Params(factors=8), seed=3).fit(train_set, epochs=2)

    theirs = RankFMC(n_jobs=1, **RankFM.Params(factors=8).as_dict())
    frame = pd.DataFrame({"user_id": split.train["user_id"].astype(str), "item_id": split.train["item_id"].astype(str)})
    features = pd.DataFrame(train_set.user_x(), columns=[f"f{j}" for j in range(train_set.user_x().shape[1])])
    features.insert(0, "user_id", train_set.user_ids)
    for epoch in range(2):  # recdash seeds numpy per epoch; rankfmc's fit_partial would restart its schedule
        np.random.seed((3 * 100_003 + epoch) % 2**32)
        theirs.fit_partial(frame, user_features=features, epochs=1)
    assert np.array_equal(theirs.index_to_user.to_numpy(dtype=str), ours.user_ids)
    for mine, rankfmc_array in ((ours.user_factors, theirs.v_u), (ours.item_factors, theirs.v_i),
                                (ours.item_bias, theirs.w_i), (ours.user_feature_factors, theirs.v_uf)):  # fmt: skip
        assert np.array_equal(mine, rankfmc_array)


@pytest.mark.parametrize("name", ["rankfm", "rankfm_features", "ease", "popularity"])
def test_rankings_and_test_metrics_are_the_recorded_ones(ml100k: Dataset, name: str) -> None:
    split = split_dataset(ml100k, "random", seed=42)
    users = sorted(split.test["user_id"].astype(str).unique())
    if name == "rankfm_features":
        featured = Interactions.from_frame(
            split.train, builtin_features(ml100k, "user"), builtin_features(ml100k, "item")
        )
        model: Any = RankFM(RankFM.Params(factors=16), seed=7).fit(featured, epochs=2)
    else:
        plain = Interactions.from_frame(split.train)
        model = {"rankfm": lambda: RankFM(seed=7).fit(plain, epochs=3), "ease": lambda: EASE().fit(plain),
                 "popularity": lambda: Popularity().fit(plain)}[name]()  # fmt: skip
    recorded = REFERENCE["models"][name]
    if name == "ease":  # EASE's arithmetic became float32 (issue 25, 26.7k items): scores differ past the 5th decimal
        assert_ease_lists_are_the_float64_closed_forms(plain, model, users)
    else:
        assert lists_digest(model.recommend(users, k=10)) == recorded["top10"]
    test = HeldOut.build(model, split.test, [split.train, split.validation], ml100k.items)
    averages, per_user = test.evaluate_users(model, 10, segments=True)
    same_metrics(averages, recorded["test"])
    assert len(per_user) == recorded["test"]["n_users_evaluated"]


def test_a_training_run_logs_the_recorded_metrics() -> None:
    """The whole run (load, split, index, epochs with validation, test and baseline evaluation): the same numbers
    (the validation sample is all of ML-100K's 943 validation users, fewer than the default 10,000)."""
    import mlflow

    result = train(TrainConfig(epochs=3, patience=0, log_model=False, experiment="ref"))
    recorded = REFERENCE["train_rankfm"]
    logged = {k: v for k, v in result.metrics.items() if "seconds" not in k}
    # since issue 21 a run also logs every validation metric at the kept epoch (best_val_*), recorded or not
    kept = {k: v for k, v in logged.items() if not k.startswith("best_val_") or k in recorded["metrics"]}
    extra = set(logged) - set(kept)
    assert "best_val_recall_at_10" in extra and all(k.startswith("best_val_") for k in extra)
    same_metrics(kept, recorded["metrics"])
    history = mlflow.tracking.MlflowClient().get_metric_history(result.run_id, "val_ndcg_at_10")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(recorded["val_ndcg_at_10"])
    params = mlflow.get_run(result.run_id).data.params
    assert (params["validation_users"], params["validation_users_seed"]) == ("943", "42")


def test_numeric_looking_ids_stay_strings_in_parquet_and_csv(tmp_path: Path) -> None:
    """ "007" and "7" are two users, from a Parquet file (dictionary codes) and from a CSV (pyarrow), and a
    Parquet file of integer IDs gives their text ("7")."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = {"user": ["007", "7", "007", " 7"], "item": ["0042", "42", "1e3", "0042"]}
    pq.write_table(pa.table(rows), tmp_path / "ids.parquet")
    (tmp_path / "ids.csv").write_text("user,item\n007,0042\n7,42\n007,1e3\n 7,0042\n")
    for name in ("ids.parquet", "ids.csv"):
        ds = load_table(str(tmp_path / name), user_col="user", item_col="item")
        users = ds.interactions["user_id"].tolist()
        assert users[:3] == ["007", "7", "007"] and ds.interactions["item_id"].tolist()[:3] == ["0042", "42", "1e3"]
        assert ds.n_users == 2 + (name == "ids.parquet")  # a CSV skips the space after the separator, as it did
        assert list(ds.interactions["user_id"].cat.categories) == sorted(set(users))
    pq.write_table(pa.table({"user_id": pa.array([7, 7, 8]), "item_id": pa.array([1.0, 2.0, 1.0])}), tmp_path / "n.pq")
    numbers = load_table(str(tmp_path / "n.pq"))
    assert numbers.interactions["user_id"].tolist() == ["7", "7", "8"]
    assert numbers.interactions["item_id"].tolist() == ["1", "2", "1"]


def test_grouped_order_is_lexsort() -> None:
    rng = np.random.default_rng(5)
    for keys in (rng.random(5000), rng.integers(0, 4, 5000), rng.normal(size=5000) * 1e9, 1 + rng.random(5000) / 1e12):
        groups = rng.integers(0, 40, keys.size)
        assert np.array_equal(grouped_order(groups, keys), np.lexsort((np.arange(keys.size), keys, groups)))


def test_large_catalogues_are_drawn_from_candidates_quickly_with_the_same_structure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above EXACT_CELLS each user's items come from sampled candidates: seconds for what the exact draw (a key per
    user x item pair: 1.2 billion here) would take minutes for; seeded; every user gets exactly their count, no
    pair twice; taste and popularity still decide."""
    t0 = time.perf_counter()
    ds = make_synthetic(n_users=60_000, n_items=20_000, n_interactions=1_000_000, seed=1)
    assert time.perf_counter() - t0 < 20  # typically 1-2 s; the exact draw takes minutes
    inter = ds.interactions
    assert ds.n_users == 60_000 and ds.n_interactions == 1_000_000
    assert not inter.duplicated(["user_id", "item_id"]).any()
    assert make_synthetic(n_users=60_000, n_items=20_000, n_interactions=1_000_000, seed=1).digest == ds.digest

    import recdash.data.synthetic as synthetic

    monkeypatch.setattr(synthetic, "EXACT_CELLS", 0)  # small data through the sampled draw
    small = make_synthetic(n_users=300, n_items=400, n_interactions=12_000, seed=1)
    again = make_synthetic(n_users=300, n_items=400, n_interactions=12_000, seed=1)
    other = make_synthetic(n_users=300, n_items=400, n_interactions=12_000, seed=2)
    assert small.digest == again.digest != other.digest
    merged = small.interactions.merge(small.users, on="user_id").merge(small.items, on="item_id")
    share = merged.apply(lambda r: r["favourite_genre"] in r["genres"].split("|"), axis=1).mean()
    base = small.items["genres"].str.split("|").explode().value_counts(normalize=True).max()
    assert share > base * 1.2  # taste: users' items share their favourite genre (test_synthetic_has_learnable_taste)
    counts = small.interactions["item_id"].value_counts()
    assert counts.iloc[: len(counts) // 20].sum() > 0.15 * len(small.interactions)  # Zipf: the top 5% of items
