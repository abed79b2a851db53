"""Side features: the encoding (hand-computed cases), uploaded tables' checks, built-in tables, the cold-users split,
and rankfm with features (rankings equal rankfmc's own, new users and new items scored by features)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from test_datasets import _grouplens_folder

from recdash.config import ConfigError, TrainConfig
from recdash.data import make_synthetic, read_movielens_100k, split_dataset
from recdash.data.features import (
    ColumnEncoding,
    FeatureEncoding,
    FeatureError,
    builtin_features,
    fit_column,
    load_features,
    read_feature_table,
)
from recdash.models import Interactions, RankFM, get_model, load
from recdash.models.rankfm import Hyperparams
from recdash.training.run import train
from recdash.training.sweep_spec import SweepError, parse_dimension

SMALL = {"n_users": 300, "n_items": 200, "n_interactions": 9000}

# ---- encoding ------------------------------------------------------------------------------------------------


def test_each_kind_encodes_as_computed_by_hand() -> None:
    frame = pd.DataFrame(
        {
            "gender": ["F", "M", None],
            "genres": ["Action|Drama", "Drama", ""],
            "age": [17, 25, 56],
            "score": [1.0, 3.0, 2.0],
        }
    )
    enc = FeatureEncoding(
        "user_id",
        (
            fit_column("gender", frame["gender"], "category"),
            fit_column("genres", frame["genres"], "multi"),
            fit_column("age", frame["age"], "bucket"),
            fit_column("score", frame["score"], "number"),
        ),
    )
    assert enc.names()[:5] == ["gender=F", "gender=M", "genres=Action", "genres=Drama", "age=under 18"]
    x = enc.encode(frame)
    assert x.shape == (3, 2 + 2 + 7 + 1)
    assert x[:, :2].tolist() == [[1, 0], [0, 1], [0, 0]]  # a missing value: nothing known
    assert x[:, 2:4].tolist() == [[1, 1], [0, 1], [0, 0]]
    ages = x[:, 4:11]
    assert ages.argmax(axis=1).tolist() == [0, 2, 6] and ages.sum(axis=1).tolist() == [1, 1, 1]  # <18, 25-34, 56+
    # standardised: mean 2, population std sqrt(2/3)
    assert x[:, 11] == pytest.approx([-1 / np.sqrt(2 / 3), 1 / np.sqrt(2 / 3), 0.0], rel=1e-6)
    again = FeatureEncoding.from_dict(enc.to_dict())
    assert np.array_equal(again.encode(frame), x)


def test_unknown_values_are_refused_by_name_and_absent_columns_encode_as_nothing() -> None:
    enc = FeatureEncoding("user_id", (ColumnEncoding("gender", "category", ("F", "M")),))
    with pytest.raises(FeatureError, match=r"gender must be one of F, M; got 'X'"):
        enc.encode(pd.DataFrame({"gender": ["X"]}))
    assert enc.encode(pd.DataFrame({"other": [1]})).tolist() == [[0.0, 0.0]]
    with pytest.raises(FeatureError, match="age must be a number"):
        ColumnEncoding("age", "bucket", ("a", "b"), (18.0,)).encode(pd.Series(["old"]))


# ---- uploaded tables -------------------------------------------------------------------------------------------


def _csv(tmp_path: Path, text: str, name: str = "users.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,age\n1,3\n", r"needs a user_id column; found id, age"),
        ("user_id,age\n1,3\n1,4\n", r"user_id must be unique; repeated: 1"),
        ("user_id,age,city\n1,3,a\n2,,b\n", r"column 'age' has 1 missing value\(s\) \(e.g. line 3\)"),
        ("user_id,country,age\n1,US,3\n2,US,4\n", r"column 'country' has one value \('US'\) for every user"),
        ("user_id\n1\n2\n", r"has no attribute column besides user_id"),
        ("user_id,age\n", r"has a header but no rows"),
    ],
)
def test_bad_feature_tables_are_refused_with_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(FeatureError, match=message):
        read_feature_table(_csv(tmp_path, text), "user")


def test_too_many_categories_and_binary_files_are_refused(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},zip{i}" for i in range(250))
    with pytest.raises(FeatureError, match=r"column 'zip' has 250 distinct values, more than 200 categories"):
        read_feature_table(_csv(tmp_path, "user_id,zip\n" + rows), "user")
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(FeatureError, match=r"x\.csv"):
        read_feature_table(binary, "user")
    with pytest.raises(FeatureError, match="file not found"):
        read_feature_table(tmp_path / "missing.csv", "user")


def test_ids_outside_the_data_are_reported_and_users_without_a_row_encode_as_nothing(tmp_path: Path) -> None:
    ds = make_synthetic(n_users=20, n_items=10, n_interactions=100, seed=1)
    users = ds.users["user_id"].tolist()
    text = "user_id,plan,spend\n" + "\n".join(f"{u},{'pro' if i % 2 else 'free'},{i}" for i, u in enumerate(users[:15]))
    table = read_feature_table(_csv(tmp_path, text + "\nghost1,pro,3\nghost2,free,1\n"), "user", ds)
    assert any("2 user_id(s) are not in the data and are ignored (e.g. ghost1, ghost2)" in w for w in table.warnings)
    assert any("5 user(s) of the data have no row" in w for w in table.warnings)
    assert [c.kind for c in table.encoding.columns] == ["category", "number"]
    x = table.matrix([users[1], users[19]])
    assert x[0, :2].tolist() == [0.0, 1.0] and x[1].tolist() == [0.0, 0.0, 0.0]
    assert load_features("none", "user", ds) is None


def test_movielens_builtins_bucket_age_and_derive_the_decade(tmp_path: Path) -> None:
    ds = read_movielens_100k(str(_grouplens_folder(tmp_path / "ml")))
    users = builtin_features(ds, "user")
    assert users.encoding.describe() == "age: bucket (7), gender: category (2), occupation: category (2)"
    row = dict(zip(users.encoding.names(), users.matrix(["22"])[0], strict=True))
    assert row["age=25-34"] == 1 and row["gender=M"] == 1 and row["occupation=writer"] == 1 and sum(row.values()) == 3
    items = builtin_features(ds, "item")
    x = dict(zip(items.encoding.names(), items.matrix(["1"])[0], strict=True))
    assert x["genres=Animation"] == x["genres=Comedy"] == x["decade=1990s"] == 1
    assert items.matrix(["267"])[0][items.encoding.names().index("decade=1990s")] == 0  # no year: no decade
    no_users = make_synthetic(n_users=20, n_items=10, n_interactions=100)
    with pytest.raises(FeatureError, match="has no built-in user attributes"):
        builtin_features(type(no_users)("x", "y", no_users.interactions), "user")


def test_synthetic_users_carry_movielens_columns_tied_to_their_taste() -> None:
    ds = make_synthetic(seed=3)
    assert {"age", "gender", "occupation"} <= set(ds.users.columns)
    assert set(ds.users["gender"]) == {"F", "M"} and ds.users["age"].between(16, 75).all()
    # users sharing an occupation share items more than random pairs do (the occupation encodes taste)
    seen = ds.interactions.groupby("user_id")["item_id"].agg(set)
    jobs = ds.users.set_index("user_id")["occupation"]
    rng = np.random.default_rng(0)
    ids = seen.index.to_numpy()
    same, other = [], []
    for _ in range(3000):
        a, b = rng.choice(ids, 2, replace=False)
        j = len(seen[a] & seen[b]) / len(seen[a] | seen[b])
        (same if jobs[a] == jobs[b] else other).append(j)
    assert np.mean(same) > 1.2 * np.mean(other)


def test_cold_users_split_holds_out_whole_users() -> None:
    ds = make_synthetic(n_users=200, n_items=50, n_interactions=3000, seed=2)
    split = split_dataset(ds, "cold-users", (0.8, 0.1, 0.1), seed=5)
    parts = [set(f["user_id"]) for f in (split.train, split.validation, split.test)]
    assert [len(p) for p in parts] == [160, 20, 20]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert len(split.train) + len(split.validation) + len(split.test) == ds.n_interactions
    again = split_dataset(ds, "cold-users", (0.8, 0.1, 0.1), seed=5)
    assert set(again.test["user_id"]) == parts[2]
    assert set(split_dataset(ds, "cold-users", (0.8, 0.1, 0.1), seed=6).test["user_id"]) != parts[2]


# ---- rankfm with features --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted() -> tuple[RankFM, Interactions]:
    ds = make_synthetic(**SMALL, seed=4)
    inter = Interactions.from_frame(ds.interactions, builtin_features(ds, "user"), builtin_features(ds, "item"))
    return RankFM(Hyperparams(factors=8), seed=3).fit(inter, epochs=4), inter


def test_rankings_with_features_equal_rankfmc_recommend(fitted: tuple[RankFM, Interactions]) -> None:
    model, inter = fitted
    assert model.user_x is not None and model.item_x is not None and np.abs(model.user_feature_factors).sum() > 0
    users = inter.user_ids[:60]
    theirs = model.model.recommend(users, n_items=10, filter_previous=True)
    ours = model.recommend(users, k=10)
    for user in users:
        assert ours.loc[ours["user_id"] == user, "item_id"].tolist() == theirs.loc[user].tolist()
    pairs = pd.DataFrame({"user_id": np.repeat(users[:3], 5), "item_id": np.tile(inter.item_ids[:5], 3)})
    expected = model.model.predict(pairs)
    got = model.scores(model.user_index(users[:3]))[:, :5].ravel()
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_feature_scores_are_the_utility_of_a_user_without_own_factors(fitted: tuple[RankFM, Interactions]) -> None:
    model, _ = fitted
    copy = model.snapshot()
    copy.user_factors = np.zeros_like(copy.user_factors)  # a user known only by features has no v_u
    assert copy.scores(np.array([7]))[0] == pytest.approx(model.feature_scores(model.user_x[[7]])[0], rel=1e-5)


def test_saved_model_keeps_features_encoding_and_cold_start(
    tmp_path: Path, fitted: tuple[RankFM, Interactions]
) -> None:
    model, inter = fitted
    copy = model.snapshot()
    copy.set_cold_start("blend", 0.5, chosen_on="test")
    loaded = load(copy.save(tmp_path / "m"))
    assert loaded.cold_start == {"strategy": "blend", "blend_weight": 0.5, "chosen_on": "test"}
    assert loaded.user_encoding == model.user_encoding and loaded.item_encoding == model.item_encoding
    assert np.array_equal(loaded.scores(np.arange(5)), copy.scores(np.arange(5)))
    new = pd.DataFrame({"user_id": ["n1", "n2"], "age": [30, 70], "gender": ["F", "M"], "occupation": ["artist", None]})
    recs = loaded.recommend(["n1", "n2", inter.user_ids[0], "n3"], k=10, user_features=new)
    assert recs.groupby("user_id", sort=False)["source"].first().to_dict() == {
        "n1": "blend",
        "n2": "blend",
        inter.user_ids[0]: "model",
        "n3": "popular",  # no attributes given
    }
    popular = recs.loc[recs["user_id"] == "n3", "item_id"].tolist()
    assert recs.loc[recs["user_id"] == "n1", "item_id"].tolist() != popular
    assert (
        recs.loc[recs["user_id"] == "n1", "item_id"].tolist() != recs.loc[recs["user_id"] == "n2", "item_id"].tolist()
    )


def test_new_items_with_features_are_scored(fitted: tuple[RankFM, Interactions]) -> None:
    model, _ = fitted
    bigger = model.with_new_items(
        pd.DataFrame({"item_id": ["fresh"], "genres": ["Action|Comedy"], "decade": ["1990s"]})
    )
    assert bigger.n_items == model.n_items + 1
    scores = bigger.scores(np.arange(4))
    assert np.isfinite(scores[:, -1]).all() and np.ptp(scores[:, -1]) > 0  # depends on the user
    assert np.array_equal(scores[:, :-1], model.scores(np.arange(4)))
    with pytest.raises(ValueError, match="not in the model's catalogue"):
        model.with_new_items(pd.DataFrame({"item_id": [model.item_ids[0]], "genres": ["Drama"]}))


def test_cold_start_strategies_are_checked(fitted: tuple[RankFM, Interactions]) -> None:
    model, _ = fitted
    copy = model.snapshot()
    with pytest.raises(ValueError, match="blend weight between 0 and 1"):
        copy.set_cold_start("blend", 1.5)
    plain = get_model("ease")()
    with pytest.raises(ValueError, match="needs a model trained with user features"):
        plain.set_cold_start("features")


# ---- training and sweeps ---------------------------------------------------------------------------------------


def test_features_are_refused_for_models_without_them_and_bad_tables_before_any_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--user-features needs a model that uses side features"):
        TrainConfig(model="ease", user_features="builtin")
    bad = _csv(tmp_path, "user_id,x\n1,a\n2,a\n")
    config = TrainConfig(dataset="synthetic", dataset_options=SMALL, user_features=str(bad), epochs=1)
    with pytest.raises(ConfigError, match=r"--user-features: users.csv: column 'x' has one value"):
        train(config)
    assert mlflow.search_runs(search_all_experiments=True).empty


def test_a_cold_users_run_logs_the_strategy_it_serves_and_never_less_than_popularity() -> None:
    config = TrainConfig(
        dataset="synthetic", dataset_options=SMALL, split="cold-users", epochs=4, patience=0,
        user_features="builtin", item_features="builtin", hparams=Hyperparams(factors=8),
    )  # fmt: skip
    result = train(config)
    run = mlflow.get_run(result.run_id)
    p, m = run.data.params, run.data.metrics
    assert p["split_method"] == "cold-users" and p["user_features"] == "builtin" and p["user_features_digest"]
    assert p["user_features_encoding"].startswith("age: bucket (7), gender: category (2), occupation: category")
    assert p["cold_start_strategy"] == result.recommender.cold_start["strategy"]
    chosen = p["cold_start_strategy"] + (
        f"_{float(p['cold_start_blend_weight']):g}" if "cold_start_blend_weight" in p else ""
    )
    assert m[f"cold_start_val_{chosen}_ndcg_at_10"] >= m["cold_start_val_popular_ndcg_at_10"]
    assert {
        "features_test_recall_at_10",
        "test_recall_at_10",
        "baseline_test_recall_at_10",
        "test_novelty_at_10",
    } <= set(m)
    assert "test_recall_at_10_q1" not in m  # cold users have no training activity to take quartiles of
    contexts = {i.tags[0].value for i in run.inputs.dataset_inputs}
    assert contexts == {"training", "features"}
    names = {i.dataset.name for i in run.inputs.dataset_inputs}
    assert {"synthetic-user-features", "synthetic-item-features"} <= names


def test_features_on_or_off_is_a_searchable_choice(tmp_path: Path) -> None:
    dim = parse_dimension("user_features=none,builtin", "rankfm")
    assert dim.choices == ("none", "builtin")
    with pytest.raises(SweepError, match=r"not found: nowhere\.csv"):
        parse_dimension("item_features=none,nowhere.csv", "rankfm")
    with pytest.raises(SweepError, match="NAME one of l2"):
        parse_dimension("user_features=none,builtin", "ease")
