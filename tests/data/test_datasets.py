"""Tests for recdash.datasets: real files in tmp_path, no mocks of MLflow or pandas."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recdash.data import (
    Dataset,
    DatasetError,
    apply_min_rating,
    lineage,
    load_dataset,
    load_movielens_100k,
    load_table,
    make_synthetic,
    read_movielens_100k,
    split_dataset,
    verify_movielens_100k,
)
from recdash.data.movielens import ML100K_GENRES, _read_cache, _resolve_cache_dir
from recdash.data.split import _recbole_split_counts
from recdash.data.synthetic import _SYN_GENRES

# --------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def _ds(rows: list[tuple[str, str, float, int]]) -> Dataset:
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "weight", "timestamp"])
    df = df.astype({"user_id": str, "item_id": str, "weight": np.float32, "timestamp": np.int64})
    return Dataset("hand", "test", df)


# --------------------------------------------------------------------------------------------------------
# synthetic
# --------------------------------------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_structured() -> None:
    a = make_synthetic(n_users=120, n_items=90, n_interactions=3000, seed=3)
    b = make_synthetic(n_users=120, n_items=90, n_interactions=3000, seed=3)
    c = make_synthetic(n_users=120, n_items=90, n_interactions=3000, seed=4)
    assert a.digest == b.digest and a.digest != c.digest
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.items, b.items)

    inter = a.interactions
    assert list(inter.columns) == ["user_id", "item_id", "weight", "timestamp"]
    assert (a.n_interactions, a.n_users, a.n_items) == (3000, 120, 90)
    assert inter["user_id"].map(type).eq(str).all() and inter["user_id"].str.match(r"^u\d{4}$").all()
    assert inter["weight"].dtype == np.float32 and inter["timestamp"].dtype == np.int64
    assert inter["weight"].between(1, 5).all()
    assert inter.groupby("user_id").size().min() >= 5
    assert not inter.duplicated(["user_id", "item_id"]).any()  # sampled without replacement
    assert inter["timestamp"].is_monotonic_increasing
    assert inter.groupby("user_id")["timestamp"].apply(lambda s: s.is_unique).all()

    # Zipf-like popularity: the top 10% of items take a big share of interactions.
    default = make_synthetic()
    pop = default.interactions["item_id"].value_counts()
    assert pop.iloc[: len(pop) // 10].sum() > 0.2 * default.n_interactions  # 2x a uniform catalogue

    items = a.items
    assert set(items["item_id"]) >= set(inter["item_id"]) and items["item_id"].is_unique
    assert str(items["year"].dtype) == "Int64"
    genres = {g for gs in items["genres"] for g in gs.split("|")}
    assert genres <= set(_SYN_GENRES)
    assert a.users is not None and len(a.users) == 120


def test_synthetic_has_learnable_taste() -> None:
    """The generator's latent structure must be visible: users' items share their favourite genre."""
    ds = make_synthetic(n_users=300, n_items=200, n_interactions=12_000, seed=1)
    merged = ds.interactions.merge(ds.users, on="user_id").merge(ds.items, on="item_id")
    share = merged.apply(lambda r: r["favourite_genre"] in r["genres"].split("|"), axis=1).mean()
    base = ds.items["genres"].str.split("|").explode().value_counts(normalize=True).max()
    assert share > base * 1.2


def test_synthetic_100k_rows_is_fast() -> None:
    t0 = time.perf_counter()
    ds = make_synthetic(n_users=2000, n_items=1000, n_interactions=100_000, seed=0)
    assert time.perf_counter() - t0 < 5  # generous: typically ~0.3 s
    assert ds.n_interactions == 100_000 and ds.n_users == 2000


@pytest.mark.parametrize(
    "kwargs",
    [{"n_users": 0}, {"n_items": 10, "n_users": 10, "n_interactions": 101}, {"n_interactions": 10}],
)
def test_synthetic_rejects_impossible_sizes(kwargs: dict[str, int]) -> None:
    with pytest.raises(DatasetError, match="synthetic"):
        make_synthetic(**kwargs)


# --------------------------------------------------------------------------------------------------------
# CSV / Parquet
# --------------------------------------------------------------------------------------------------------


def test_string_ids_preserved_csv_and_parquet(tmp_path: Path) -> None:
    csv = _write(tmp_path / "likes.csv", "user_id,item_id\n007,0042\n7,42\n007,42\n")
    ds = load_table(str(csv))
    assert ds.name == "likes"
    assert ds.interactions["user_id"].tolist() == ["007", "7", "007"]
    assert ds.interactions["item_id"].tolist() == ["0042", "42", "42"]
    assert ds.interactions["weight"].tolist() == [1.0, 1.0, 1.0]
    assert "timestamp" not in ds.interactions
    assert ds.warnings == ()

    pq = tmp_path / "likes.parquet"
    ds.interactions.to_parquet(pq)
    back = load_table(str(pq))
    assert back.interactions["user_id"].tolist() == ["007", "7", "007"]
    assert back.digest == ds.digest


def test_column_mapping_tsv_and_dates(tmp_path: Path) -> None:
    tsv = _write(
        tmp_path / "events.tsv",
        "who\twhat\tstars\twhen\textra\nalice\tA1\t4.5\t2024-01-02\tx\nbob\tB2\t2\t2024-01-03 10:00:00\ty\n",
    )
    ds = load_table(str(tsv), user_col="who", item_col="what", weight_col="stars", timestamp_col="when")
    inter = ds.interactions
    assert list(inter.columns) == ["user_id", "item_id", "weight", "timestamp"]
    assert inter["weight"].tolist() == [4.5, 2.0]
    assert inter["timestamp"].tolist() == [1704153600, 1704276000]


def test_numeric_timestamps_and_latin1(tmp_path: Path) -> None:
    f = tmp_path / "old.csv"
    f.write_bytes("user,item,ts\nJos\xe9,Caf\xe9,100\n".encode("latin-1"))
    ds = load_table(str(f), user_col="user", item_col="item", timestamp_col="ts")
    assert ds.interactions["user_id"].tolist() == ["José"]
    assert ds.interactions["timestamp"].dtype == np.int64
    assert any("Latin-1" in w for w in ds.warnings)


def test_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"File not found: .*nope\.csv"):
        load_table(str(tmp_path / "nope.csv"))


def test_csv_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"File is empty: empty\.csv"):
        load_table(str(_write(tmp_path / "empty.csv", "")))
    with pytest.raises(DatasetError, match="header but no data rows"):
        load_table(str(_write(tmp_path / "header.csv", "user_id,item_id\n")))


def test_csv_binary_file(tmp_path: Path) -> None:
    f = tmp_path / "photo.csv"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    with pytest.raises(DatasetError, match=r"photo\.csv does not look like a text CSV"):
        load_table(str(f))
    g = tmp_path / "fake.parquet"
    g.write_bytes(b"not parquet at all")
    with pytest.raises(DatasetError, match=r"fake\.parquet is not a readable Parquet file"):
        load_table(str(g))


def test_csv_missing_columns_named(tmp_path: Path) -> None:
    f = _write(tmp_path / "cols.csv", "customer,product,rating\n1,2,3\n")
    with pytest.raises(DatasetError) as err:
        load_table(str(f), weight_col="score")
    msg = str(err.value)
    assert "'user_id' (user_id)" in msg and "'item_id' (item_id)" in msg and "'score' (weight)" in msg
    assert "'customer', 'product', 'rating'" in msg


def test_csv_non_numeric_weights(tmp_path: Path) -> None:
    f = _write(tmp_path / "w.csv", "user_id,item_id,rating\na,x,5\nb,y,five\nc,z,??\nd,w,4\n")
    with pytest.raises(DatasetError) as err:
        load_table(str(f), weight_col="rating")
    msg = str(err.value)
    assert "'rating'" in msg and "'five'" in msg and "'??'" in msg and "2 value(s)" in msg
    assert "lines 3, 4" in msg
    g = _write(tmp_path / "blank.csv", "user_id,item_id,rating\na,x,5\nb,y,\n")
    with pytest.raises(DatasetError, match="'rating' has 1 empty or non-finite"):
        load_table(str(g), weight_col="rating")


def test_csv_null_ids(tmp_path: Path) -> None:
    f = _write(tmp_path / "ids.csv", "user_id,item_id\na,x\n,y\nc,\n")
    with pytest.raises(DatasetError, match=r"1 row\(s\) have an empty user ID in column 'user_id' \(first at line 3\)"):
        load_table(str(f))


def test_file_too_big(tmp_path: Path) -> None:
    f = _write(tmp_path / "big.csv", "user_id,item_id\n" + "u,i\n" * 1000)
    with pytest.raises(DatasetError, match=r"big\.csv is .* MB, over the .* MB limit"):
        load_table(str(f), max_bytes=1000)


def test_duplicates_are_kept_and_reported(tmp_path: Path) -> None:
    f = _write(tmp_path / "dups.csv", "user_id,item_id\na,x\na,x\nb,y\na,x\nb,y\nc,z\n")
    ds = load_table(str(f))
    assert ds.n_interactions == 6
    assert len(ds.warnings) == 1
    assert ds.warnings[0].startswith("3 duplicate (user_id, item_id) row(s) kept as repeated interactions")


def test_load_table_million_rows_quickly(tmp_path: Path) -> None:
    n = 1_000_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "user_id": rng.integers(0, 50_000, n),
            "item_id": rng.integers(0, 5_000, n),
            "rating": rng.integers(1, 6, n),
            "ts": rng.integers(0, 10**9, n),
        }
    )
    f = tmp_path / "big.csv"
    df.to_csv(f, index=False)
    t0 = time.perf_counter()
    ds = load_table(str(f), weight_col="rating", timestamp_col="ts")
    loaded = time.perf_counter() - t0
    t0 = time.perf_counter()
    sp = split_dataset(ds)
    split_s = time.perf_counter() - t0
    assert ds.n_interactions == n
    assert len(sp.train) + len(sp.validation) + len(sp.test) == n
    assert loaded < 5 and split_s < 3  # generous for CI; typically ~0.6 s and ~0.3 s


# --------------------------------------------------------------------------------------------------------
# dispatch, min_rating, digest
# --------------------------------------------------------------------------------------------------------


def test_load_dataset_dispatch(tmp_path: Path) -> None:
    f = _write(tmp_path / "r.csv", "u,i,r\na,x,5\nb,y,2\nc,z,4\n")
    by_kind = load_dataset("csv", path=str(f), user_col="u", item_col="i", weight_col="r")
    by_name = load_dataset(str(f), user_col="u", item_col="i", weight_col="r", min_rating=4)
    assert by_kind.n_interactions == 3 and by_name.n_interactions == 2
    assert by_name.interactions["user_id"].tolist() == ["a", "c"]
    assert load_dataset("synthetic", n_users=20, n_items=30, n_interactions=200).n_users == 20
    with pytest.raises(DatasetError, match="Unknown dataset 'imdb'"):
        load_dataset("imdb")
    with pytest.raises(DatasetError, match=r"Unknown option.*n_user"):
        load_dataset("synthetic", n_user=5)
    with pytest.raises(DatasetError, match="needs a file path"):
        load_dataset("parquet")


def test_apply_min_rating() -> None:
    ds = _ds([("a", "x", 5, 1), ("a", "y", 2, 2), ("b", "x", 4, 3)])
    assert apply_min_rating(ds, None) is ds
    kept = apply_min_rating(ds, 4)
    assert kept.interactions["item_id"].tolist() == ["x", "x"] and kept.digest != ds.digest
    with pytest.raises(DatasetError, match="removes all 3 interactions"):
        apply_min_rating(ds, 6)


def test_digest_is_stable_and_content_based() -> None:
    a = _ds([("a", "x", 5, 1), ("b", "y", 2, 2)])
    b_df = a.interactions.astype({"user_id": object, "item_id": object, "weight": np.float64})
    assert Dataset("other", "elsewhere", b_df).digest == a.digest
    changed = a.interactions.copy()
    changed.loc[1, "weight"] = 3
    assert Dataset("hand", "test", changed).digest != a.digest
    assert len(a.digest) == 16 and int(a.digest, 16) >= 0


# --------------------------------------------------------------------------------------------------------
# splitting
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tot", "ratios", "expected"),
    [
        (1, (0.8, 0.1, 0.1), [1, 0, 0]),
        (2, (0.8, 0.1, 0.1), [1, 0, 1]),
        (3, (0.8, 0.1, 0.1), [1, 1, 1]),
        (5, (0.8, 0.1, 0.1), [3, 1, 1]),
        (10, (0.8, 0.1, 0.1), [8, 1, 1]),
        (11, (0.8, 0.1, 0.1), [9, 1, 1]),
        (25, (0.6, 0.2, 0.2), [15, 5, 5]),
    ],
)
def test_recbole_split_rule(tot: int, ratios: tuple[float, float, float], expected: list[int]) -> None:
    assert _recbole_split_counts(tot, ratios) == expected


def _hand_dataset() -> Dataset:
    rows = []
    for user, n in (("a", 1), ("b", 2), ("c", 3), ("d", 5), ("e", 10)):
        rows += [(user, f"{user}{k}", 1.0, 1000 * k + ord(user)) for k in range(n)]
    rng = np.random.default_rng(7)
    rows = [rows[i] for i in rng.permutation(len(rows))]  # interleave users and times
    return _ds(rows)


def test_random_split_sizes_disjoint_union_deterministic() -> None:
    ds = _hand_dataset()
    sp = split_dataset(ds, "random", (0.8, 0.1, 0.1), seed=1)
    sizes = {
        u: tuple(int((part["user_id"] == u).sum()) for part in (sp.train, sp.validation, sp.test)) for u in "abcde"
    }
    assert sizes == {"a": (1, 0, 0), "b": (1, 0, 1), "c": (1, 1, 1), "d": (3, 1, 1), "e": (8, 1, 1)}
    keys = [set(zip(p["user_id"], p["item_id"], strict=True)) for p in (sp.train, sp.validation, sp.test)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert keys[0] | keys[1] | keys[2] == set(zip(ds.interactions["user_id"], ds.interactions["item_id"], strict=True))
    assert list(sp.train.columns) == list(ds.interactions.columns)

    again = split_dataset(ds, "random", (0.8, 0.1, 0.1), seed=1)
    pd.testing.assert_frame_equal(sp.test, again.test)
    tests = {tuple(split_dataset(ds, seed=s).test["item_id"]) for s in range(10)}
    assert len(tests) > 1  # the seed matters
    assert sp.params() == {
        "split_method": "random",
        "split_train": 0.8,
        "split_validation": 0.1,
        "split_test": 0.1,
        "split_seed": 1,
    }


def test_temporal_split_puts_latest_last() -> None:
    ds = make_synthetic(n_users=60, n_items=80, n_interactions=1500, seed=2)
    sp = split_dataset(ds, "temporal")
    last_train = sp.train.groupby("user_id")["timestamp"].max()
    first_valid = sp.validation.groupby("user_id")["timestamp"].min()
    first_test = sp.test.groupby("user_id")["timestamp"].min()
    last_valid = sp.validation.groupby("user_id")["timestamp"].max()
    assert (last_train.reindex(first_valid.index) <= first_valid).all()
    assert (last_valid.reindex(first_test.index).dropna() <= first_test.reindex(last_valid.index).dropna()).all()
    assert (last_train.reindex(first_test.index) <= first_test).all()
    assert sp.method == "temporal"
    assert len(sp.train) + len(sp.validation) + len(sp.test) == ds.n_interactions


def test_split_errors() -> None:
    ds = _hand_dataset()
    with pytest.raises(DatasetError, match="three positive numbers"):
        split_dataset(ds, fractions=(0.8, 0.1, 0.2))
    with pytest.raises(DatasetError, match="three positive numbers"):
        split_dataset(ds, fractions=(0.9, 0.1))
    with pytest.raises(DatasetError, match="three positive numbers"):
        split_dataset(ds, fractions=(1.0, 0.0, 0.0))
    with pytest.raises(DatasetError, match="Unknown split method 'loo'"):
        split_dataset(ds, method="loo")
    no_ts = Dataset("x", "t", ds.interactions.drop(columns="timestamp"))
    with pytest.raises(DatasetError, match="Temporal split needs a timestamp column"):
        split_dataset(no_ts, "temporal")


# --------------------------------------------------------------------------------------------------------
# MovieLens-100K parsing, verification and caching
# --------------------------------------------------------------------------------------------------------

_FLAGS = {g: i for i, g in enumerate(ML100K_GENRES)}


def _flags(*genres: str) -> str:
    bits = ["0"] * 19
    for g in genres:
        bits[_FLAGS[g]] = "1"
    return "|".join(bits)


_U_DATA = "196\t1\t3\t881250949\n186\t2\t5\t891717742\n196\t3\t1\t878887116\n22\t267\t4\t880606923\n"
_KIDS = "Children's"
_U_ITEM = (
    f"1|Toy Story (1995)|01-Jan-1995||http://x|{_flags('Animation', _KIDS, 'Comedy')}\n"
    f"2|Misérables, Les (1995)|01-Jan-1995||http://x|{_flags('Drama', 'Musical')}\n"
    f"3|Land Before Time III: The Time of the Great Giving (1995) (V)|01-Jan-1995||http://x|"
    f"{_flags('Animation', _KIDS)}\n"
    f"267|unknown||||{_flags('unknown')}\n"
)
_U_USER = "196|49|M|writer|55105\n186|39|F|executive|00330\n22|25|M|writer|40206\n"


def _grouplens_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    _write(root / "u.data", _U_DATA)
    _write(root / "u.item", _U_ITEM, encoding="latin-1")
    _write(root / "u.user", _U_USER)
    return root


def test_grouplens_folder_parser(tmp_path: Path) -> None:
    ds = read_movielens_100k(str(_grouplens_folder(tmp_path / "ml")))
    inter = ds.interactions
    assert ds.name == "movielens-100k" and ds.n_interactions == 4
    assert inter["user_id"].tolist() == ["196", "186", "196", "22"]
    assert inter["weight"].tolist() == [3, 5, 1, 4] and inter["timestamp"].dtype == np.int64
    items = ds.items.set_index("item_id")
    assert items.loc["1", "title"] == "Toy Story" and items.loc["1", "year"] == 1995
    assert items.loc["1", "genres"] == "Animation|Children's|Comedy"
    assert items.loc["2", "title"] == "Misérables, Les"
    assert items.loc["3", "title"] == "Land Before Time III: The Time of the Great Giving"
    assert items.loc["3", "year"] == 1995
    assert items.loc["267", "title"] == "unknown" and pd.isna(items.loc["267", "year"])
    assert str(ds.items["year"].dtype) == "Int64"
    assert ds.users.set_index("user_id").loc["186", "zip_code"] == "00330"


def test_grouplens_zip_with_subfolder_and_recbole_format_agree(tmp_path: Path) -> None:
    folder = read_movielens_100k(str(_grouplens_folder(tmp_path / "ml")))
    zpath = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("ml-100k/u.data", _U_DATA)
        zf.writestr("ml-100k/u.item", _U_ITEM.encode("latin-1"))
        zf.writestr("ml-100k/u.user", _U_USER)
        zf.writestr("ml-100k/README", "ignored")
    zipped = read_movielens_100k(str(zpath))
    assert zipped.digest == folder.digest
    pd.testing.assert_frame_equal(zipped.items, folder.items)

    rb = tmp_path / "rb"
    rb.mkdir()
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + _U_DATA
    _write(rb / "ml-100k.inter", inter)
    _write(
        rb / "ml-100k.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Children's Comedy\n2\tMisérables, Les\t1995\tDrama Musical\n"
        "3\tLand Before Time III: The Time of the Great Giving (1995)\tV\tAnimation Children's\n"
        "267\tunkonwn\tunkonwn\tunknown\n",
    )
    _write(
        rb / "ml-100k.user",
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n" + _U_USER.replace("|", "\t"),
    )
    recbole = read_movielens_100k(str(rb))
    assert recbole.digest == folder.digest
    pd.testing.assert_frame_equal(recbole.items, folder.items)  # both sources normalise to one frame
    pd.testing.assert_frame_equal(recbole.users, folder.users)


def test_movielens_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="MovieLens path not found"):
        read_movielens_100k(str(tmp_path / "missing"))
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(DatasetError, match=r"expected 'u\.data'"):
        read_movielens_100k(str(tmp_path / "emptydir"))
    bad = _write(tmp_path / "bad.zip", "not a zip")
    with pytest.raises(DatasetError, match=r"not a valid \.zip"):
        read_movielens_100k(str(bad))


def test_verification_rejects_tiny_and_leaves_no_cache(tmp_path: Path) -> None:
    folder = _grouplens_folder(tmp_path / "ml")
    with pytest.raises(DatasetError, match=r"expected 100,000 ratings / 943 users / 1,682 items, got 4 / 3 / 4"):
        verify_movielens_100k(read_movielens_100k(str(folder)))
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match="does not look like MovieLens-100K"):
        load_movielens_100k(path=str(folder), cache_dir=str(cache))
    assert not cache.exists() or list(cache.iterdir()) == []  # nothing half-written


def test_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    target = tmp_path / "movielens-100k"
    target.mkdir()
    _write(target / "meta.json", '{"format": 1, "source": "x", "digest": "0"}')
    (target / "interactions.parquet").write_bytes(b"garbage")
    tried: list[str] = []
    assert _read_cache(target, tried) is None
    assert len(tried) == 1 and "unusable" in tried[0]


def test_default_cache_dir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECDASH_CACHE_DIR", str(tmp_path / "c"))
    assert _resolve_cache_dir(None) == tmp_path / "c"
    assert _resolve_cache_dir(str(tmp_path / "x")) == tmp_path / "x"
    monkeypatch.delenv("RECDASH_CACHE_DIR")
    assert _resolve_cache_dir(None) == Path("~/.cache/recdash").expanduser()


# --------------------------------------------------------------------------------------------------------
# lineage
# --------------------------------------------------------------------------------------------------------


def test_lineage_logs_to_mlflow(tmp_path: Path) -> None:
    import mlflow

    ds = make_synthetic(n_users=30, n_items=40, n_interactions=400, seed=5)
    mds, tags = lineage(ds)
    assert tags == {
        "dataset_name": "synthetic",
        "dataset_digest": ds.digest,
        "dataset_source": ds.source,
        "dataset_rows": "400",
        "dataset_users": "30",
        "dataset_items": str(ds.n_items),
    }
    assert mds.name == "synthetic" and mds.digest == ds.digest

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with mlflow.start_run() as run:
            mlflow.log_input(mds, context="training")
            mlflow.set_tags(tags)
        got = mlflow.get_run(run.info.run_id)
    finally:
        mlflow.set_tracking_uri(None)
    logged = got.inputs.dataset_inputs[0].dataset
    assert (logged.name, logged.digest) == ("synthetic", ds.digest)
    assert got.data.tags["dataset_rows"] == "400"


# --------------------------------------------------------------------------------------------------------
# the real thing
# --------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_movielens_via_wheel_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECDASH_CACHE_DIR", str(tmp_path))
    ds = load_movielens_100k()
    assert (ds.n_interactions, ds.n_users, ds.n_items) == (100_000, 943, 1_682)
    assert ds.items is not None and ds.items.set_index("item_id").loc["1", "title"] == "Toy Story"
    assert ds.users is not None and len(ds.users) == 943
    assert (tmp_path / "movielens-100k" / "meta.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["movielens-100k"]  # no temp leftovers

    t0 = time.perf_counter()
    cached = load_dataset("movielens-100k")
    assert time.perf_counter() - t0 < 2  # typically ~0.05 s
    assert cached.digest == ds.digest and cached.source == ds.source
    pd.testing.assert_frame_equal(cached.items, ds.items)

    # A corrupt cache is detected by verification and refetched.
    (tmp_path / "movielens-100k" / "interactions.parquet").write_bytes(b"truncated")
    again = load_movielens_100k()
    assert again.digest == ds.digest
    assert load_movielens_100k().digest == ds.digest
