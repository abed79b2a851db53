"""The model layer: one shared suite run over every algorithm (known answers by construction, export/import, the
fallback), then each algorithm's own checks (rankfm against rankfmc, EASE's closed form and memory, ItemKNN's
similarity; ALS against implicit in test_als.py)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from recdash.cli import main
from recdash.models import (
    ALS,
    EASE,
    MODELS,
    HyperparameterError,
    Interactions,
    ItemKNN,
    Popularity,
    RankFM,
    Recommender,
    UnknownModelError,
    ease,
    get_model,
    gram,
    load,
    validate_k,
)
from recdash.models import base as models_base
from recdash.models.als import ALSParams
from recdash.models.base import csr_rows
from recdash.models.ease import EASEParams
from recdash.models.itemknn import ItemKNNParams
from recdash.models.rankfm import Hyperparams

# ---- the shared suite: every algorithm ---------------------------------------------------------------------------


def two_groups() -> pd.DataFrame:
    """20 users x 20 items in two groups that never mix: users u00-u09 saw 7 of items a00-a09, users u10-u19 saw 7 of
    items b10-b19. A personalised model must recommend a user's own group first (by construction, its only
    signal); popularity cannot tell the groups apart."""
    rows = []
    for u in range(20):
        group = "a" if u < 10 else "b"
        base = 0 if u < 10 else 10
        for j in range(7):
            rows.append((f"u{u:02d}", f"{group}{base + (u + j) % 10:02d}"))
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


FITTED_PARAMS = {
    "rankfm": Hyperparams(factors=4, loss="bpr", learning_rate=0.1, alpha=0.001),
    "ease": EASEParams(l2=1.0),
    "itemknn": ItemKNNParams(neighbours=5, shrink=0.0),
    "popularity": None,
    "als": ALSParams(factors=4, regularization=0.1, alpha=4.0),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request: pytest.FixtureRequest) -> Recommender:
    cls = get_model(request.param)
    return cls(FITTED_PARAMS[request.param], seed=1).fit(Interactions.from_frame(two_groups()), epochs=30)


def test_every_model_is_registered_with_its_hyperparameters() -> None:
    assert set(MODELS) == {"rankfm", "ease", "itemknn", "popularity", "als"}
    for name, cls in MODELS.items():
        assert get_model(name.upper()) is cls and cls.name == name
        for spec in cls.hyperparameters().values():  # every default is inside its own range
            assert cls.Params(**{spec.name: spec.default}).as_dict()[spec.name] == spec.default
    assert isinstance(get_model("ALS")(), ALS)
    with pytest.raises(UnknownModelError, match="rankfm, popularity, ease, itemknn, als"):
        get_model("bpr")


def test_scores_are_a_dense_block_for_any_block_of_users(fitted: Recommender) -> None:
    users = np.array([3, 0, 17])
    block = fitted.scores(users)
    assert block.shape == (3, fitted.n_items) and np.isfinite(block).all()
    np.testing.assert_allclose(block[1], fitted.scores(np.array([0]))[0], rtol=1e-6)


def test_personalised_models_recommend_the_users_own_group(fitted: Recommender) -> None:
    out = fitted.recommend([f"u{u:02d}" for u in range(20)], k=3)
    assert len(out) == 60 and set(out["source"]) == {"model"}
    own = out["item_id"].str[0] == np.where(out["user_id"].str[1:].astype(int) < 10, "a", "b")
    if fitted.name == "popularity":
        assert not own.all()  # the same list for everyone: it cannot serve both groups
        assert out.groupby("user_id")["item_id"].apply(tuple).nunique() <= 20
    else:
        assert own.all(), out[~own]


def test_recommendations_exclude_seen_items_and_fall_back_for_unknown_users(fitted: Recommender) -> None:
    out = fitted.recommend(["u00", "nobody"], k=20)
    mine = out[out["user_id"] == "u00"]
    assert not set(mine["item_id"]) & set(two_groups().query("user_id == 'u00'")["item_id"])
    assert len(mine) == 20 - 7 and mine["rank"].tolist() == list(range(1, 14))
    assert (np.diff(mine["score"].to_numpy()) <= 0).all()
    unknown = out[out["user_id"] == "nobody"]
    assert len(unknown) == 20 and set(unknown["source"]) == {"popular"}


def test_export_is_plain_arrays_and_loads_back_identically(fitted: Recommender, tmp_path: Path) -> None:
    arrays, meta = fitted.export()
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    assert json.loads(json.dumps(meta))["model"] == fitted.name
    fitted.save(tmp_path / "m")
    with np.load(tmp_path / "m" / "weights.npz", allow_pickle=False) as z:  # would raise on object arrays
        assert set(z.files) == set(arrays)
    back = load(tmp_path / "m")
    assert type(back) is type(fitted) and back.params == fitted.params
    users = ["u00", "u15", "x"]
    pd.testing.assert_frame_equal(back.recommend(users, k=5), fitted.recommend(users, k=5))


def test_closed_form_models_refuse_epoch_training(fitted: Recommender) -> None:
    if fitted.iterative:
        return
    with pytest.raises(NotImplementedError, match="closed form"):
        fitted.fit_epoch(Interactions.from_frame(two_groups()))


# ---- rankfm -------------------------------------------------------------------------------------------------------


def tiny() -> RankFM:
    """Two users, four items. Scores are known by construction:
    u1 = [1, 0] -> items score a: 3+0.1, b: 2, c: 1, d: 0  (a has bias 0.1)
    u2 = [0, 1] -> a: 0+0.1, b: 1, c: 2, d: 3
    u1 saw item a; u2 saw item d. Popularity: a 5, b 1, c 3, d 2."""
    indptr, indices = csr_rows(np.array([0, 1]), np.array([0, 3]), 2)
    return RankFM.from_factors(
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
    back = load(tmp_path / "m")
    pd.testing.assert_frame_equal(back.recommend(["u1", "u2", "x"], k=3), rec.recommend(["u1", "u2", "x"], k=3))


def test_load_reports_missing_or_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a readable recdash model"):
        load(tmp_path)
    tiny().save(tmp_path / "m")
    (tmp_path / "m" / "weights.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable recdash model"):
        load(tmp_path / "m")


def test_models_saved_before_there_were_several_algorithms_load_as_rankfm(tmp_path: Path) -> None:
    """Format 1 had no "model" key: its files are rankfm's factor arrays."""
    tiny().save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "ids.json").read_text())
    old = {"format_version": 1, "user_ids": meta["user_ids"], "item_ids": meta["item_ids"]}
    (tmp_path / "m" / "ids.json").write_text(json.dumps(old))
    back = load(tmp_path / "m")
    assert isinstance(back, RankFM)
    pd.testing.assert_frame_equal(back.recommend(["u1", "u2"], k=3), tiny().recommend(["u1", "u2"], k=3))


def test_similar_items_uses_cosine_and_skips_the_item_itself() -> None:
    sims = tiny().similar_items("a", k=2)
    assert sims["item_id"].tolist() == ["b", "c"]
    assert sims["similarity"].iloc[0] == pytest.approx(2 / np.sqrt(5))
    with pytest.raises(KeyError):
        tiny().similar_items("zzz")


def test_popularity_ranks_by_train_count_and_has_no_similar_items() -> None:
    train = pd.DataFrame({"user_id": ["1", "2", "3", "3"], "item_id": ["x", "x", "y", "x"]})
    rec = Popularity().fit(Interactions.from_frame(train))
    out = rec.recommend(["1"], k=5)
    assert out["item_id"].tolist() == ["y"]  # x was seen by user 1
    assert rec.recommend(["new"], k=2)["item_id"].tolist() == ["x", "y"]
    assert rec.scores(np.array([0, 2])).tolist() == [[3.0, 1.0], [3.0, 1.0]]
    with pytest.raises(ValueError, match="no notion of item similarity"):
        rec.similar_items("x")


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


@pytest.mark.parametrize("block_users", [None, 7], ids=["one-block", "blocks-of-7-users"])
def test_rankings_match_rankfmc_recommend(block_users: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 60, 3000).astype(str)
    items = rng.zipf(1.5, 3000).clip(max=80).astype(str)
    train = pd.DataFrame({"user_id": users, "item_id": items}).drop_duplicates()
    rec = RankFM(Hyperparams(factors=8, loss="warp"), seed=1).fit(Interactions.from_frame(train), epochs=3)
    user_ids = sorted(train["user_id"].unique())
    theirs = rec.model.recommend(user_ids, n_items=10, filter_previous=True)
    if block_users:  # recommend() scores users in blocks of ~1 MB of scores: here 60 users make 9 blocks
        monkeypatch.setattr(models_base, "_BLOCK_SCORES", block_users * rec.n_items)
    ours = rec.recommend(user_ids, k=10)
    for u in user_ids:
        mine = ours.loc[ours["user_id"] == u, "item_id"].tolist()
        assert mine == [str(x) for x in theirs.loc[u].tolist()], u


def test_training_is_repeatable_for_a_seed() -> None:
    train = pd.DataFrame({"user_id": list("aabbccdd") * 5, "item_id": [str(i % 7) for i in range(40)]})
    hparams = Hyperparams(factors=4, max_samples=5)  # WARP needs fewer samples than the 7 items
    data = Interactions.from_frame(train)
    a, b = RankFM(hparams, seed=3).fit(data, epochs=2), RankFM(hparams, seed=3).fit(data, epochs=2)
    np.testing.assert_array_equal(a.item_factors, b.item_factors)
    snapshot = a.snapshot()
    a.fit_epoch(data)  # rankfmc updates its arrays in place; a snapshot must not move with them
    np.testing.assert_array_equal(snapshot.item_factors, b.item_factors)
    assert not np.array_equal(a.item_factors, b.item_factors)


def test_warp_with_as_many_samples_as_items_is_refused_before_rankfmc_runs() -> None:
    data = Interactions.from_frame(pd.DataFrame({"user_id": list("aabb"), "item_id": list("xyxz")}))
    with pytest.raises(HyperparameterError, match=r"max_samples \(--max-samples\) must be below the number of items"):
        RankFM(Hyperparams(loss="warp", max_samples=3)).fit(data)
    RankFM(Hyperparams(loss="bpr", max_samples=3, factors=2)).fit(data)  # BPR samples one negative: fine


# ---- EASE ---------------------------------------------------------------------------------------------------------


def test_ease_matches_its_closed_form_on_a_hand_computed_case() -> None:
    """X = [[1,1],[1,0],[0,1]] -> G = XᵀX = [[2,1],[1,2]]; λ = 1: P = (G + I)⁻¹ = [[3,-1],[-1,3]] / 8;
    B = -P / diag(P) = [[0, 1/3], [1/3, 0]] (zero diagonal)."""
    train = pd.DataFrame({"user_id": ["0", "0", "1", "2"], "item_id": ["i", "j", "i", "j"]})
    model = EASE(EASEParams(l2=1.0)).fit(Interactions.from_frame(train))
    np.testing.assert_allclose(model.weights, [[0.0, 1 / 3], [1 / 3, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(model.scores(np.array([1, 2])), [[0.0, 1 / 3], [1 / 3, 0.0]], rtol=1e-6)


def test_ease_weights_solve_the_constrained_least_squares() -> None:
    """Steck's optimality condition: (XᵀX + λI) B - XᵀX is zero off the diagonal (the diagonal holds the
    Lagrange multipliers of diag(B) = 0)."""
    data = Interactions.from_frame(two_groups())
    model = EASE(EASEParams(l2=3.0)).fit(data)
    x = data.matrix().toarray().astype(np.float64)
    gram = x.T @ x
    residual = (gram + 3.0 * np.eye(len(gram))) @ model.weights.astype(np.float64) - gram
    off = ~np.eye(len(gram), dtype=bool)
    assert np.abs(residual[off]).max() < 1e-4 and np.all(np.diag(model.weights) == 0)


def test_ease_fits_in_blocks_to_the_float64_closed_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """The float32 fit (lower Gram triangle by column blocks, Cholesky inverse in place, mirrored by blocks) equals
    the float64 formula B = -P / diag(P), including blocks that do not divide the catalogue."""
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"user_id": rng.integers(0, 200, 3000), "item_id": rng.zipf(1.4, 3000).clip(max=50)})
    data = Interactions.from_frame(train.astype(str))
    x = data.matrix().toarray().astype(np.float64)
    precision = np.linalg.inv(x.T @ x + 5.0 * np.eye(data.n_items))
    expected = precision / -np.diag(precision)
    np.fill_diagonal(expected, 0.0)
    for block in (7, 2048):
        monkeypatch.setattr(gram, "BLOCK", block)
        model = EASE(EASEParams(l2=5.0)).fit(data)
        assert model.weights.dtype == np.float32 and model.weights.flags.c_contiguous
        np.testing.assert_allclose(model.weights, expected, atol=2e-6)


def test_ease_fit_holds_one_item_by_item_array(monkeypatch: pytest.MonkeyPatch) -> None:
    """Peak memory of the fit is the one n x n float32 array plus a column block (the float64 Gram matrix and its
    inverse took four times that and more). numpy reports its allocations to tracemalloc."""
    import tracemalloc

    rng = np.random.default_rng(2)
    n_items = 1000
    train = pd.DataFrame({"user_id": rng.integers(0, 500, 20_000), "item_id": rng.integers(0, n_items, 20_000)})
    data = Interactions.from_frame(train.astype(str))
    monkeypatch.setattr(gram, "BLOCK", 32)
    one = 4 * n_items * n_items
    EASE().fit(Interactions.from_frame(two_groups()))  # scipy's modules imported before memory is traced
    tracemalloc.start()
    try:
        EASE().fit(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * one, f"peak {peak / one:.2f} x the n x n float32 array"


def test_ease_refuses_a_catalogue_too_large_for_the_memory_available(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before any run exists, naming the memory it would need and what to use instead."""
    data = Interactions.from_frame(two_groups())
    monkeypatch.setattr(ease, "available_memory", lambda: 1_000)
    with pytest.raises(HyperparameterError) as err:
        EASE().fit(data)
    message = str(err.value)
    assert "needs about 0.0 GB of memory at 20 items (a 20 x 20 float32 item-item matrix)" in message
    assert "this machine has 0.0 GB available" in message and "--model als" in message and "--model itemknn" in message
    small = ["--dataset", "synthetic", "--synthetic-users", "60", "--synthetic-items", "40",
             "--synthetic-interactions", "1200"]  # fmt: skip
    assert main(["train", "--model", "ease", *small]) != 0
    err = capsys.readouterr().err
    assert "EASE (--model ease) needs about" in err and "Traceback" not in err
    assert mlflow.search_runs(search_all_experiments=True).empty  # refused before any run exists
    assert ease.fit_memory(26_744) == pytest.approx(2.86e9 + 0.86e9, rel=0.01)  # what a 26.7k catalogue needs
    monkeypatch.setattr(ease, "available_memory", lambda: None)  # unknown: not refused
    EASE(EASEParams(l2=1.0)).fit(data)


def test_ease_refuses_an_l2_too_small_for_float32_with_a_message() -> None:
    """Two items seen by the same 50,000 users make XᵀX singular; λ = 0.001 is below float32's rounding of counts
    that large, so the Cholesky factorisation fails: a message naming --l2, not LAPACK's info code."""
    users = np.arange(50_000).astype(str)
    train = pd.DataFrame(
        {
            "user_id": np.concatenate([users, users, users[::7]]),
            "item_id": ["a"] * 50_000 + ["b"] * 50_000 + ["c"] * len(users[::7]),
        }
    )
    data = Interactions.from_frame(train)
    with pytest.raises(HyperparameterError, match=r"l2 \(--l2\) 0.001 is too small for this data.*Use a larger --l2"):
        EASE(EASEParams(l2=0.001)).fit(data)
    assert np.isfinite(EASE(EASEParams(l2=10.0)).fit(data).weights).all()


# ---- ItemKNN ------------------------------------------------------------------------------------------------------


def test_itemknn_similarity_shrinkage_and_neighbours_by_hand() -> None:
    """Users: u0 {0,1}, u1 {0,1}, u2 {0,2}, u3 {2}. |U_0| = 3, |U_1| = 2, |U_2| = 2; co(0,1) = 2, co(0,2) = 1.
    shrink 0: sim(0,1) = 2/sqrt(6), sim(0,2) = 1/sqrt(6), sim(1,2) = 0. With 1 neighbour per item: 0 keeps 1,
    1 keeps 0, 2 keeps 0. u2 (history {0,2}) scores item 1 with sim(1,0); u3 (history {2}) scores item 0 with 0,
    since 2 is not among 0's neighbours. shrink 1: sim(0,1) = 2/(sqrt(6)+1)."""
    train = pd.DataFrame(
        {"user_id": ["u0", "u0", "u1", "u1", "u2", "u2", "u3"], "item_id": ["0", "1", "0", "1", "0", "2", "2"]}
    )
    data = Interactions.from_frame(train)
    full = ItemKNN(ItemKNNParams(neighbours=2, shrink=0.0)).fit(data)
    np.testing.assert_allclose(full.item_similarity.toarray(), np.array([[0, 2, 1], [2, 0, 0], [1, 0, 0]]) / np.sqrt(6))
    one = ItemKNN(ItemKNNParams(neighbours=1, shrink=0.0)).fit(data)
    scores = one.scores(np.array([2, 3]))
    assert scores[0, 1] == pytest.approx(2 / np.sqrt(6)) and scores[1, 0] == 0.0
    shrunk = ItemKNN(ItemKNNParams(neighbours=2, shrink=1.0)).fit(data)
    assert shrunk.item_similarity[0, 1] == pytest.approx(2 / (np.sqrt(6) + 1))
    assert one.similar_items("1", k=2)["item_id"].tolist() == ["0"]  # item 1's one neighbour
    # fitting keeps the model's description of "similar", which Recommend's caption shows, a description
    assert one.similarity == ItemKNN.similarity and isinstance(one.similarity, str)


def test_one_user_at_a_time_gives_the_rows_of_one_batch_in_the_callers_order(fitted: Recommender) -> None:
    users = ["u03", "nobody", "u15", "u03", "u11"]
    batch = fitted.recommend(users, k=4)
    singles = pd.concat([fitted.recommend([u], k=4) for u in users], ignore_index=True)
    for column in ("user_id", "rank", "source"):
        assert batch[column].tolist() == singles[column].tolist(), column
    assert batch["score"].to_numpy() == pytest.approx(singles["score"].to_numpy(), rel=1e-5, abs=1e-6)
    # items agree rank by rank, except that items with equal scores may come in either order (BLAS may round a
    # one-row product differently from a block's): compare each list as (score, item) sorted
    key = lambda f: sorted(zip(f["user_id"], f["score"].round(5), f["item_id"], strict=True))  # noqa: E731
    assert key(batch) == key(singles)
    firsts = batch.drop_duplicates("user_id")["user_id"].tolist()
    assert firsts == ["u03", "nobody", "u15", "u11"] and batch["rank"].tolist()[:4] == [1, 2, 3, 4]


def test_served_records_are_pandas_own(fitted: Recommender) -> None:
    """``mlflow models serve`` turns predictions into JSON via to_dict(orient="records"); the fast path must give
    exactly pandas' records (same values, same Python types)."""
    from mlflow.utils.proto_json_utils import _get_jsonable_obj

    out = fitted.recommend(["u01", "nobody"], k=3)
    plain = pd.DataFrame(out)
    assert type(plain) is pd.DataFrame and type(out[out["rank"] == 1]) is pd.DataFrame
    fast, slow = _get_jsonable_obj(out, pandas_orient="records"), plain.to_dict(orient="records")
    assert fast == slow
    assert [type(v) for v in fast[0].values()] == [type(v) for v in slow[0].values()] == [str, int, str, float, str]
    assert out.to_dict() == plain.to_dict() and out.to_dict(orient="list") == plain.to_dict(orient="list")
