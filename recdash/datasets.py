"""Datasets for recdash: MovieLens-100K, a structured synthetic generator, and user CSV/Parquet files.

Everything is normalised to one implicit-feedback shape so training, evaluation and the UI never care where
data came from: ``interactions`` with string ``user_id``/``item_id``, a float ``weight`` (the rating when
there is one, else 1.0) and an optional int64 ``timestamp``. IDs stay strings end to end so "007" never
silently becomes 7.

Import-light on purpose (numpy/pandas only at import time): mlflow is imported lazily in :func:`lineage`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import inspect
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    import mlflow.data.dataset

__all__ = [
    "DEFAULT_CACHE_DIR",
    "GROUPLENS_URL",
    "ML100K_GENRES",
    "ML100K_OCCUPATIONS",
    "RECBOLE_VERSION",
    "SPLIT_METHODS",
    "Dataset",
    "DatasetError",
    "Split",
    "apply_min_rating",
    "lineage",
    "load_dataset",
    "load_movielens_100k",
    "load_table",
    "make_synthetic",
    "read_movielens_100k",
    "split_cold_users",
    "split_dataset",
    "verify_movielens_100k",
]

DEFAULT_CACHE_DIR: Path = Path(os.environ.get("RECDASH_CACHE_DIR") or Path.home() / ".cache" / "recdash")
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
RECBOLE_VERSION = "1.2.1"
ML100K_GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
ML100K_OCCUPATIONS: tuple[str, ...] = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive", "healthcare",
    "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer", "retired", "salesman",
    "scientist", "student", "technician", "writer",
)  # fmt: skip
ML100K_SHAPE = (100_000, 943, 1_682)  # rows, users, items: the published counts we verify against

_CACHE_FORMAT = 1
_DOWNLOAD_TIMEOUT_S = 15
_PIP_TIMEOUT_S = 180
SPLIT_METHODS = ("random", "temporal", "cold-users")


class DatasetError(ValueError):
    """Bad or unavailable data; the message is shown to users verbatim, so it names the file/column/problem."""


# --------------------------------------------------------------------------------------------------------
# Dataset / Split containers
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Normalised implicit-feedback data plus optional item/user metadata.

    Treat the frames as read-only: counts and the digest are computed once and cached on the instance.
    """

    name: str
    source: str
    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        missing = [c for c in ("user_id", "item_id", "weight") if c not in self.interactions.columns]
        if missing:
            raise DatasetError(
                f"Dataset {self.name!r}: interactions lack column(s) {', '.join(missing)}; "
                f"found {', '.join(map(str, self.interactions.columns)) or 'no columns'}."
            )

    @cached_property
    def n_users(self) -> int:
        return int(self.interactions["user_id"].nunique())

    @cached_property
    def n_items(self) -> int:
        return int(self.interactions["item_id"].nunique())

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)

    @cached_property
    def digest(self) -> str:
        """Order-sensitive content hash: splits depend on row order, so reordered data is a different input."""
        return _digest(self.interactions)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, source={self.source!r}, interactions={self.n_interactions}, "
            f"users={self.n_users}, items={self.n_items}, digest={self.digest!r})"
        )


def _digest(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    cols = [c for c in ("user_id", "item_id", "weight", "timestamp") if c in df.columns]
    h.update(("|".join(cols) + f"|{len(df)}").encode())
    for col in cols:
        s = df[col]
        if col in ("user_id", "item_id"):
            # Object array so pyarrow-backed and python-backed strings hash identically.
            values = pd.util.hash_array(s.to_numpy(dtype=object))
        elif col == "weight":
            values = pd.util.hash_array(s.to_numpy(dtype=np.float64))
        else:
            values = pd.util.hash_array(s.to_numpy(dtype=np.int64))
        h.update(values.tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class Split:
    """Train/validation/test interactions plus how they were made (logged as MLflow params)."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    method: str
    fractions: tuple[float, float, float]
    seed: int

    def params(self) -> dict[str, str | float | int]:
        """Flat params for ``mlflow.log_params`` so runs are comparable by split protocol."""
        return {
            "split_method": self.method,
            "split_train": float(self.fractions[0]),
            "split_validation": float(self.fractions[1]),
            "split_test": float(self.fractions[2]),
            "split_seed": int(self.seed),
        }


# --------------------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------------------

_TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".csv.gz", ".csv.zip", ".csv.bz2", ".csv.xz")


def load_dataset(name: str, *, path: str | None = None, min_rating: float | None = None, **kwargs: Any) -> Dataset:
    """One entry point for the UI/CLI: pick a loader by name (or by file suffix) and apply ``min_rating``."""
    key = name.strip().lower()
    if key in ("movielens-100k", "ml-100k", "movielens"):
        ds = _call(load_movielens_100k, "movielens-100k", path=path, **kwargs)
    elif key == "synthetic":
        if path is not None:
            raise DatasetError("The synthetic dataset is generated, it does not take a path.")
        ds = _call(make_synthetic, "synthetic", **kwargs)
    elif key in ("csv", "parquet"):
        if not path:
            raise DatasetError(f"Loading a {key} dataset needs a file path (path=...).")
        ds = _call(load_table, key, path, fmt=key, **kwargs)
    elif key.endswith(_TABLE_SUFFIXES):
        if path is not None and path != name:
            raise DatasetError(f"Got both a file name ({name!r}) and path={path!r}; pass only one.")
        ds = _call(load_table, "file", name, **kwargs)
    else:
        raise DatasetError(
            f"Unknown dataset {name!r}. Use 'movielens-100k', 'synthetic', 'csv' or 'parquet' (with path=...), "
            "or a file name ending in .csv/.tsv/.parquet."
        )
    return apply_min_rating(ds, min_rating)


def _call(fn: Callable[..., Dataset], label: str, *args: Any, **kwargs: Any) -> Dataset:
    """Turn unknown options into a user-facing DatasetError instead of a TypeError traceback."""
    accepted = set(inspect.signature(fn).parameters)
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        options = sorted(accepted - {"path"})
        raise DatasetError(f"Unknown option(s) for {label}: {', '.join(unknown)}. Accepted: {', '.join(options)}.")
    return fn(*args, **kwargs)


def apply_min_rating(ds: Dataset, min_rating: float | None) -> Dataset:
    """Keep interactions with ``weight >= min_rating`` (e.g. 4 stars = "liked"); None keeps everything."""
    if min_rating is None:
        return ds
    try:
        threshold = float(min_rating)
    except (TypeError, ValueError):
        raise DatasetError(f"min_rating must be a number, got {min_rating!r}.") from None
    weights = ds.interactions["weight"]
    keep = (weights >= threshold).to_numpy()
    if keep.all():
        return ds
    if not keep.any():
        raise DatasetError(
            f"min_rating={threshold:g} removes all {len(weights):,} interactions of {ds.name!r} "
            f"(weights range {weights.min():g}–{weights.max():g})."
        )
    return dataclasses.replace(ds, interactions=ds.interactions.loc[keep].reset_index(drop=True))


# --------------------------------------------------------------------------------------------------------
# MovieLens-100K
# --------------------------------------------------------------------------------------------------------


def _resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    # Read the env var at call time so tests and the CLI can redirect the cache after import.
    raw = cache_dir or os.environ.get("RECDASH_CACHE_DIR") or DEFAULT_CACHE_DIR
    return Path(raw).expanduser()


def load_movielens_100k(path: str | None = None, cache_dir: str | None = None) -> Dataset:
    """MovieLens-100K from (1) ``path``, (2) the cache, (3) GroupLens, (4) the RecBole wheel on PyPI.

    The wheel fallback exists because GroupLens is often unreachable from CI/sandboxes while PyPI is not.
    Everything is verified against the published counts before being cached, and the cache is written
    atomically, so an interrupted or wrong download never poisons later runs.
    """
    target = _resolve_cache_dir(cache_dir) / "movielens-100k"
    if path is not None:
        ds = read_movielens_100k(path)
        verify_movielens_100k(ds)
        return _write_cache(ds, target)

    tried: list[str] = []
    cached = _read_cache(target, tried)
    if cached is not None:
        return cached
    sources: list[tuple[str, Callable[[], Dataset]]] = [
        (f"download from {GROUPLENS_URL}", _fetch_grouplens),
        (f"RecBole {RECBOLE_VERSION} wheel via pip", _fetch_recbole_wheel),
    ]
    for label, fetch in sources:
        try:
            ds = fetch()
            verify_movielens_100k(ds)
        except Exception as exc:  # any failure just means "try the next source"
            tried.append(f"{label}: {_short(exc)}")
            continue
        return _write_cache(ds, target)
    raise DatasetError(
        "Could not load MovieLens-100K. Tried:\n  - "
        + "\n  - ".join(tried)
        + "\nDownload ml-100k.zip from https://grouplens.org/datasets/movielens/100k/ on a machine with "
        "internet access and point recdash at it (the .zip or the unpacked folder), e.g. "
        "load_dataset('movielens-100k', path='/path/to/ml-100k.zip')."
    )


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().replace("\n", " ") or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def verify_movielens_100k(ds: Dataset) -> None:
    """Raise DatasetError unless ``ds`` has exactly the published 100,000 ratings / 943 users / 1,682 items."""
    got = (ds.n_interactions, ds.n_users, ds.n_items)
    if got != ML100K_SHAPE:
        raise DatasetError(
            f"This does not look like MovieLens-100K ({ds.source}): expected "
            f"{ML100K_SHAPE[0]:,} ratings / {ML100K_SHAPE[1]:,} users / {ML100K_SHAPE[2]:,} items, "
            f"got {got[0]:,} / {got[1]:,} / {got[2]:,}."
        )
    if ds.items is not None and len(ds.items) != ML100K_SHAPE[2]:
        raise DatasetError(
            f"MovieLens-100K item file from {ds.source} has {len(ds.items):,} rows, expected {ML100K_SHAPE[2]:,}."
        )


def read_movielens_100k(path: str | os.PathLike[str]) -> Dataset:
    """Parse a local ML-100K folder or .zip (GroupLens ``u.data`` format, or RecBole ``ml-100k.inter``).

    Does not verify counts, so it can be used (and tested) on small files in the same format.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"MovieLens path not found: {p}")
    wanted = ("u.data", "u.item", "u.user", "ml-100k.inter", "ml-100k.item", "ml-100k.user")
    if p.is_dir():
        files = _files_from_dir(p, wanted)
    else:
        try:
            with zipfile.ZipFile(p) as zf:
                files = _files_from_zip(zf, wanted)
        except zipfile.BadZipFile:
            raise DatasetError(f"{p} is not a valid .zip file (expected ml-100k.zip or its unpacked folder).") from None
    source = str(p.resolve())
    if "u.data" in files:
        return _parse_grouplens(files, source)
    if "ml-100k.inter" in files:
        return _parse_recbole(files, source)
    raise DatasetError(
        f"No MovieLens-100K ratings found in {p}: expected 'u.data' (GroupLens format, possibly under ml-100k/) "
        "or 'ml-100k.inter' (RecBole format)."
    )


def _files_from_dir(folder: Path, wanted: tuple[str, ...]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name in wanted:
        for candidate in (folder / name, folder / "ml-100k" / name):
            if candidate.is_file():
                files[name] = candidate.read_bytes()
                break
    return files


def _files_from_zip(zf: zipfile.ZipFile, wanted: tuple[str, ...]) -> dict[str, bytes]:
    """Read only the members we need; prefer the shallowest match (e.g. ``ml-100k/u.data``)."""
    by_base: dict[str, str] = {}
    for member in sorted(zf.namelist(), key=lambda m: (m.count("/"), m)):
        base = member.rsplit("/", 1)[-1]
        if base in wanted and base not in by_base and "__MACOSX" not in member:
            by_base[base] = member
    return {base: zf.read(member) for base, member in by_base.items()}


_TITLE_YEAR = re.compile(r"\s*\((\d{4})\)\s*(?:\(V\))?\s*$")


def _split_title_year(titles: pd.Series, years: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Strip a trailing "(1995)" from titles; use it as the year where the given year is missing/invalid.

    Shared by both sources so GroupLens and RecBole produce the same items frame.
    """
    titles = titles.fillna("").astype(str).str.strip().replace({"unkonwn": "unknown"})  # RecBole typo
    from_title = titles.str.extract(_TITLE_YEAR, expand=False)
    given = years.where(years.astype(str).str.fullmatch(r"\d{4}").fillna(False).astype(bool))
    year = pd.to_numeric(given.fillna(from_title), errors="coerce").astype("Int64")
    clean = titles.str.replace(_TITLE_YEAR, "", regex=True).str.strip()
    return clean, year


def _read_delimited(data: bytes, sep: str, names: list[str] | None, encoding: str, **kw: Any) -> pd.DataFrame:
    return pd.read_csv(
        io.BytesIO(data),
        sep=sep,
        header=None if names else 0,
        names=names,
        encoding=encoding,
        quoting=csv.QUOTE_NONE,
        keep_default_na=False,
        na_values=[""],
        **kw,
    )


def _interactions(users: pd.Series, items: pd.Series, ratings: pd.Series, ts: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": users.astype(str),
            "item_id": items.astype(str),
            "weight": ratings.astype(np.float32),
            "timestamp": ts.astype(np.int64),
        }
    )


def _parse_grouplens(files: Mapping[str, bytes], source: str) -> Dataset:
    try:
        raw = _read_delimited(
            files["u.data"], "\t", ["user_id", "item_id", "rating", "timestamp"], "latin-1",
            dtype={"user_id": str, "item_id": str, "rating": np.float64, "timestamp": np.float64},
        )  # fmt: skip
        inter = _interactions(raw["user_id"], raw["item_id"], raw["rating"], raw["timestamp"])
        items = users = None
        if "u.item" in files:
            cols = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *ML100K_GENRES]
            it = _read_delimited(files["u.item"], "|", cols, "latin-1", dtype={c: str for c in cols[:5]})
            flags = it[list(ML100K_GENRES)].fillna(0).to_numpy(dtype=np.int8).astype(bool)
            # Title year first (matches RecBole's release_year), release date only as a fallback.
            date_year = it["release_date"].fillna("").astype(str).str[-4:]
            title_year = it["title"].fillna("").astype(str).str.extract(_TITLE_YEAR, expand=False)
            title, year = _split_title_year(it["title"], title_year.fillna(date_year))
            items = _items_frame(it["item_id"], title, _join_flags(flags), year)
        if "u.user" in files:
            cols = ["user_id", "age", "gender", "occupation", "zip_code"]
            users = _users_frame(_read_delimited(files["u.user"], "|", cols, "latin-1", dtype=str))
    except (ValueError, KeyError, pd.errors.ParserError) as exc:
        raise DatasetError(f"Could not parse GroupLens MovieLens files from {source}: {_short(exc)}") from exc
    return Dataset("movielens-100k", source, inter, items, users)


def _parse_recbole(files: Mapping[str, bytes], source: str) -> Dataset:
    def atomic(name: str) -> pd.DataFrame:
        df = _read_delimited(files[name], "\t", None, "utf-8", dtype=str)
        df.columns = [str(c).split(":", 1)[0] for c in df.columns]  # "user_id:token" -> "user_id"
        return df

    try:
        raw = atomic("ml-100k.inter")
        ratings = pd.to_numeric(raw["rating"], errors="raise")
        ts = pd.to_numeric(raw["timestamp"], errors="raise")
        inter = _interactions(raw["user_id"], raw["item_id"], ratings, ts)
        items = users = None
        if "ml-100k.item" in files:
            it = atomic("ml-100k.item")
            title, year = _split_title_year(it["movie_title"], it["release_year"])
            genres = it["class"].fillna("").astype(str).str.split().str.join("|")
            items = _items_frame(it["item_id"], title, genres, year)
        if "ml-100k.user" in files:
            users = _users_frame(atomic("ml-100k.user"))
    except (ValueError, KeyError, pd.errors.ParserError) as exc:
        raise DatasetError(f"Could not parse RecBole MovieLens files from {source}: {_short(exc)}") from exc
    return Dataset("movielens-100k", source, inter, items, users)


def _join_flags(flags: np.ndarray) -> pd.Series:
    names = np.array(ML100K_GENRES, dtype=object)
    return pd.Series(["|".join(names[row]) for row in flags], dtype=str)


def _items_frame(item_id: pd.Series, title: pd.Series, genres: pd.Series, year: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": item_id.astype(str).to_numpy(),
            "title": title.astype(str).to_numpy(),
            "genres": genres.astype(str).to_numpy(),
            "year": pd.array(year.to_numpy(), dtype="Int64"),
        }
    ).astype({"item_id": str, "title": str, "genres": str})


def _users_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "user_id": df["user_id"].astype(str).to_numpy(),
            "age": pd.array(pd.to_numeric(df["age"], errors="coerce"), dtype="Int64"),
            "gender": df["gender"].astype(str).to_numpy(),
            "occupation": df["occupation"].astype(str).to_numpy(),
            "zip_code": df["zip_code"].astype(str).to_numpy(),
        }
    )
    return out.astype({"user_id": str, "gender": str, "occupation": str, "zip_code": str})


def _fetch_grouplens() -> Dataset:
    with urllib.request.urlopen(GROUPLENS_URL, timeout=_DOWNLOAD_TIMEOUT_S) as resp:
        data = resp.read(64 * 2**20)
    wanted = ("u.data", "u.item", "u.user")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = _files_from_zip(zf, wanted)
    if "u.data" not in files:
        raise DatasetError("downloaded zip has no u.data")
    return _parse_grouplens(files, GROUPLENS_URL)


def _fetch_recbole_wheel() -> Dataset:
    """Fetch RecBole's bundled ml-100k atomic files from its pure wheel, without installing/importing it."""
    prefix = "recbole/dataset_example/ml-100k/"
    with tempfile.TemporaryDirectory(prefix="recdash-recbole-") as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:none:", "--only-binary=:all:",
            "--disable-pip-version-check", "--quiet", f"recbole=={RECBOLE_VERSION}", "-d", tmp,
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
        wheels = sorted(Path(tmp).glob("recbole-*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
            raise DatasetError(f"pip download failed (exit {proc.returncode}): {tail}")
        with zipfile.ZipFile(wheels[0]) as zf:
            files = {name: zf.read(prefix + name) for name in ("ml-100k.inter", "ml-100k.item", "ml-100k.user")}
    return _parse_recbole(files, f"recbole-{RECBOLE_VERSION} wheel (PyPI): {prefix}")


def _read_cache(target: Path, tried: list[str]) -> Dataset | None:
    """Load and re-verify the cache; a missing or corrupt cache returns None (and is later replaced)."""
    if not target.exists():
        return None
    try:
        meta = json.loads((target / "meta.json").read_text())
        if meta.get("format") != _CACHE_FORMAT:
            raise DatasetError(f"cache format {meta.get('format')!r} != {_CACHE_FORMAT}")
        inter = pd.read_parquet(target / "interactions.parquet")
        items = pd.read_parquet(target / "items.parquet") if (target / "items.parquet").exists() else None
        users = pd.read_parquet(target / "users.parquet") if (target / "users.parquet").exists() else None
        ds = Dataset("movielens-100k", str(meta["source"]), inter, items, users)
        verify_movielens_100k(ds)
        if ds.digest != meta.get("digest"):
            raise DatasetError(f"digest {ds.digest} does not match recorded {meta.get('digest')}")
    except Exception as exc:
        tried.append(f"cache at {target}: unusable ({_short(exc)}), refetching")
        return None
    return ds


def _write_cache(ds: Dataset, target: Path) -> Dataset:
    """Write via a temp dir + os.replace so readers only ever see a complete cache."""
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp is 0700; a shared cache should be readable like any other file
        ds.interactions.to_parquet(tmp / "interactions.parquet", index=False)
        if ds.items is not None:
            ds.items.to_parquet(tmp / "items.parquet", index=False)
        if ds.users is not None:
            ds.users.to_parquet(tmp / "users.parquet", index=False)
        meta = {"format": _CACHE_FORMAT, "source": ds.source, "digest": ds.digest, "shape": list(ML100K_SHAPE)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if target.exists():  # stale/corrupt cache: move aside first, rename over a non-empty dir fails
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "x")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:  # read-only home etc.: still usable, just not cached
        return dataclasses.replace(ds, warnings=(*ds.warnings, f"Could not write cache {target}: {_short(exc)}"))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return ds


# --------------------------------------------------------------------------------------------------------
# Synthetic
# --------------------------------------------------------------------------------------------------------

_SYN_GENRES = ("Action", "Comedy", "Drama", "Sci-Fi", "Romance", "Thriller", "Documentary", "Animation")
_ADJECTIVES = (
    "Silent", "Golden", "Broken", "Hidden", "Last", "Crimson", "Electric", "Frozen", "Wild", "Lonely",
    "Midnight", "Secret", "Lucky", "Distant", "Burning", "Paper",
)  # fmt: skip
_NOUNS = (
    "Harbor", "Empire", "Garden", "River", "Signal", "Machine", "Winter", "Horizon", "Letter", "Circus",
    "Mirror", "Orchard", "Voyage", "Station", "Kingdom", "Echo",
)  # fmt: skip


def make_synthetic(
    n_users: int = 500, n_items: int = 400, n_interactions: int = 20_000, n_factors: int = 8, seed: int = 0
) -> Dataset:
    """Seeded data with learnable structure: latent factors + Zipf popularity, so MF can beat popularity.

    Each user's items are drawn without replacement from softmax(user·item + log popularity) via
    Gumbel-top-k, fully vectorised (100k interactions in well under a second).
    """
    for label, value, low in (("n_users", n_users, 1), ("n_items", n_items, 1), ("n_factors", n_factors, 1)):
        if int(value) != value or value < low:
            raise DatasetError(f"synthetic: {label} must be an integer >= {low}, got {value!r}.")
    n_users, n_items, n_interactions, n_factors = int(n_users), int(n_items), int(n_interactions), int(n_factors)
    if not n_users <= n_interactions <= n_users * n_items:
        raise DatasetError(
            f"synthetic: n_interactions must be between n_users ({n_users:,}) and n_users*n_items "
            f"({n_users * n_items:,}), got {n_interactions:,}."
        )
    rng = np.random.default_rng(seed)
    user_f = rng.normal(size=(n_users, n_factors)).astype(np.float32)
    item_f = rng.normal(size=(n_items, n_factors)).astype(np.float32)
    scale = np.float32(2.5 / np.sqrt(n_factors))  # taste strong enough to matter next to popularity
    log_pop = (-1.0 * np.log(rng.permutation(n_items) + 1.0)).astype(np.float32)  # Zipf, shuffled over ids
    counts = _activity_counts(rng, n_users, n_items, n_interactions)

    users_idx, items_idx, affinity = [], [], []
    chunk = max(1, 2_000_000 // n_items)
    for start in range(0, n_users, chunk):
        stop = min(start + chunk, n_users)
        k = counts[start:stop]
        kmax = int(k.max())
        taste = (user_f[start:stop] @ item_f.T) * scale
        keys = taste + log_pop + rng.gumbel(size=taste.shape).astype(np.float32)
        if kmax < n_items:
            top = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax]
        else:
            top = np.tile(np.arange(n_items), (stop - start, 1))
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)  # Plackett-Luce order = the order items were "found"
        mask = np.arange(kmax)[None, :] < k[:, None]
        rows = np.repeat(np.arange(start, stop), k)
        picked = top[mask]
        users_idx.append(rows)
        items_idx.append(picked)
        affinity.append(taste[rows - start, picked])
    u = np.concatenate(users_idx)
    i = np.concatenate(items_idx)
    aff = np.concatenate(affinity)

    # Timestamps: each user starts sometime in the first half-year, then consumes in sampled order.
    gaps = 60 + rng.exponential(86_400.0, size=len(u)).astype(np.int64)
    cum = np.cumsum(gaps)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    per_user = cum - np.repeat(cum[first] - gaps[first], counts)
    start_t = 1_600_000_000 + rng.integers(0, 180 * 86_400, size=n_users)
    ts = start_t[u] + per_user

    # Ratings follow affinity so min_rating keeps the "liked" items.
    z = (aff - aff.mean()) / (aff.std() + 1e-9)
    rating = np.clip(np.rint(3.5 + z + rng.normal(0.0, 0.7, size=len(u))), 1, 5).astype(np.float32)

    wu, wi = max(4, len(str(n_users))), max(4, len(str(n_items)))
    user_ids = np.array([f"u{j + 1:0{wu}d}" for j in range(n_users)], dtype=object)
    item_ids = np.array([f"i{j + 1:0{wi}d}" for j in range(n_items)], dtype=object)
    order = np.argsort(ts, kind="stable")
    inter = pd.DataFrame(
        {
            "user_id": pd.array(user_ids, dtype=str).take(u[order]),
            "item_id": pd.array(item_ids, dtype=str).take(i[order]),
            "weight": rating[order],
            "timestamp": ts[order].astype(np.int64),
        }
    )

    n_g = len(_SYN_GENRES)
    primary = np.argmax(item_f[:, : min(n_factors, n_g)], axis=1) % n_g
    secondary = rng.integers(0, n_g, size=n_items)
    has_second = (rng.random(n_items) < 0.35) & (secondary != primary)
    genres = [
        _SYN_GENRES[p] + (f"|{_SYN_GENRES[s]}" if h else "")
        for p, s, h in zip(primary, secondary, has_second, strict=True)
    ]
    adj = rng.integers(0, len(_ADJECTIVES), size=n_items)
    noun = rng.integers(0, len(_NOUNS), size=n_items)
    titles = [f"The {_ADJECTIVES[a]} {_NOUNS[b]} {j + 1}" for j, (a, b) in enumerate(zip(adj, noun, strict=True))]
    items = pd.DataFrame(
        {
            "item_id": pd.array(item_ids, dtype=str),
            "title": pd.array(titles, dtype=str),
            "genres": pd.array(genres, dtype=str),
            "year": pd.array(rng.integers(1960, 2024, size=n_items), dtype="Int64"),
        }
    )
    fav = np.argmax(user_f[:, : min(n_factors, n_g)], axis=1) % n_g
    # MovieLens's user columns, each a noisy function of the user's latent taste, so side features carry signal
    # by construction: age follows one factor, gender the sign of another, occupation the best-aligned of random
    # directions in taste space (drawn after everything else, so the interactions do not depend on them)
    age = np.clip(np.rint(38 + 13 * user_f[:, 0 % n_factors] + rng.normal(0, 4, n_users)), 16, 75)
    female = user_f[:, 1 % n_factors] + rng.normal(0, 0.5, n_users) > 0
    directions = rng.normal(size=(n_factors, len(ML100K_OCCUPATIONS))).astype(np.float32)
    job = np.argmax(user_f @ directions + rng.gumbel(size=(n_users, len(ML100K_OCCUPATIONS))), axis=1)
    users = pd.DataFrame(
        {
            "user_id": pd.array(user_ids, dtype=str),
            "age": pd.array(age.astype(np.int64), dtype="Int64"),
            "gender": pd.array(np.where(female, "F", "M"), dtype=str),
            "occupation": pd.array(np.asarray(ML100K_OCCUPATIONS, dtype=object)[job], dtype=str),
            "favourite_genre": pd.array([_SYN_GENRES[g] for g in fav], dtype=str),
        }
    )
    source = (
        f"generated(seed={seed}, n_users={n_users}, n_items={n_items}, "
        f"n_interactions={n_interactions}, n_factors={n_factors})"
    )
    return Dataset("synthetic", source, inter, items, users)


def _activity_counts(rng: np.random.Generator, n_users: int, n_items: int, total: int) -> np.ndarray:
    """Heavy-tailed per-user counts summing to ``total``, each >= min(5, total // n_users).

    Capped at half the catalogue when that is feasible, so no user has "seen everything".
    """
    floor = min(5, n_items, total // n_users)
    cap = max(n_items // 2, floor) if total <= n_users * max(n_items // 2, floor) else n_items
    counts = np.full(n_users, floor, dtype=np.int64)
    p = rng.lognormal(0.0, 1.0, size=n_users)
    remaining = total - counts.sum()
    while remaining > 0:
        room = cap - counts
        w = p * (room > 0)
        counts += np.minimum(rng.multinomial(remaining, w / w.sum()), room)
        remaining = total - counts.sum()
    return counts


# --------------------------------------------------------------------------------------------------------
# CSV / Parquet
# --------------------------------------------------------------------------------------------------------


def load_table(
    path: str,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    weight_col: str | None = None,
    timestamp_col: str | None = None,
    fmt: str | None = None,
    max_bytes: int = 200 * 2**20,
) -> Dataset:
    """Load user interactions from CSV/TSV/Parquet with a column mapping and user-readable errors."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"File not found: {p}")
    if not p.is_file():
        raise DatasetError(f"Not a file: {p}")
    size = p.stat().st_size
    if size == 0:
        raise DatasetError(f"File is empty: {p.name}")
    if size > max_bytes:
        raise DatasetError(
            f"{p.name} is {size / 2**20:,.1f} MB, over the {max_bytes / 2**20:,.1f} MB limit. "
            "Use a smaller sample or raise max_bytes."
        )
    with p.open("rb") as fh:
        head = fh.read(65_536)
    kind = _table_format(p, head, fmt)
    wanted = {"user_id": user_col, "item_id": item_col}
    if weight_col:
        wanted["weight"] = weight_col
    if timestamp_col:
        wanted["timestamp"] = timestamp_col
    notes: list[str] = []
    if kind == "parquet":
        raw, line_offset, unit = _read_parquet(p, wanted), 0, "row"
    else:
        raw, line_offset, unit = _read_csv(p, head, wanted, notes), 2, "line"
    if raw.empty:
        raise DatasetError(f"{p.name} has a header but no data rows.")
    inter, more = _normalise(raw, wanted, p.name, line_offset, unit)
    stem = p.name.split(".")[0] or p.stem
    return Dataset(stem, str(p.resolve()), inter, warnings=(*notes, *more))


def _table_format(p: Path, head: bytes, fmt: str | None) -> str:
    if fmt is not None:
        f = fmt.lower().lstrip(".")
        if f in ("csv", "tsv", "txt"):
            return "csv"
        if f in ("parquet", "pq"):
            return "parquet"
        raise DatasetError(f"Unknown file format {fmt!r}; use 'csv' or 'parquet'.")
    if head.startswith(b"PAR1") or p.suffix.lower() in (".parquet", ".pq"):
        return "parquet"
    return "csv"


def _compressed(p: Path) -> bool:
    return p.suffix.lower() in (".gz", ".bz2", ".zip", ".xz", ".zst")


def _read_csv(p: Path, head: bytes, wanted: dict[str, str], notes: list[str]) -> pd.DataFrame:
    if not _compressed(p):
        sample = head[:8192]
        controls = sum(sample.count(bytes([b])) for b in (*range(0, 9), *range(14, 32)))
        if b"\x00" in sample or controls > max(2, len(sample) // 100) or sample.startswith(b"PAR1"):
            raise DatasetError(
                f"{p.name} does not look like a text CSV file (it contains binary data). "
                "Export it as CSV (UTF-8) or Parquet."
            )
        text = head.decode("utf-8", errors="ignore")
        first = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    else:
        first = ""
    if not first.strip() and not _compressed(p):
        raise DatasetError(f"File is empty: {p.name} (no header line).")
    sep = max((",", "\t", ";", "|"), key=first.count) if first else ","
    if first and first.count(sep) == 0:
        sep = ","

    def read(encoding: str, **kw: Any) -> pd.DataFrame:
        return pd.read_csv(
            p, sep=sep, encoding=encoding, skipinitialspace=True, keep_default_na=False, na_values=[""], **kw
        )

    encoding = "utf-8-sig"
    try:
        try:
            header = read(encoding, nrows=0)
        except UnicodeDecodeError:
            encoding = "latin-1"
            header = read(encoding, nrows=0)
        columns = _match_columns(list(header.columns), wanted, p.name)
        id_cols = {columns[k]: str for k in ("user_id", "item_id")}
        try:
            raw = read(encoding, usecols=list(columns.values()), dtype=id_cols)
        except UnicodeDecodeError:
            encoding = "latin-1"
            raw = read(encoding, usecols=list(columns.values()), dtype=id_cols)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"File is empty: {p.name}") from None
    except pd.errors.ParserError as exc:
        raise DatasetError(f"Could not parse {p.name} as CSV: {_short(exc)}") from None
    if encoding == "latin-1":
        notes.append(f"{p.name} is not valid UTF-8; it was read as Latin-1 (check accented names).")
    raw.columns = [str(c).strip() for c in raw.columns]
    return raw.rename(columns={v: k for k, v in columns.items()})


def _read_parquet(p: Path, wanted: dict[str, str]) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(p).names
        columns = _match_columns(names, wanted, p.name)
        raw = pd.read_parquet(p, columns=list(columns.values()))
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"{p.name} is not a readable Parquet file: {_short(exc)}") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    return raw.rename(columns={v: k for k, v in columns.items()})


def _match_columns(found: list[Any], wanted: dict[str, str], fname: str) -> dict[str, str]:
    """Map our column roles to the file's actual column names (whitespace-insensitive)."""
    stripped = {str(c).strip(): str(c) for c in found}
    missing = [f"'{col}' ({role})" for role, col in wanted.items() if col.strip() not in stripped]
    if missing:
        shown = ", ".join(repr(str(c)) for c in found[:30]) + (" …" if len(found) > 30 else "")
        raise DatasetError(
            f"{fname} is missing column(s) {', '.join(missing)}. Columns in the file: {shown or 'none'}. "
            "Choose the right columns with user_col=/item_col=/weight_col=/timestamp_col=."
        )
    return {role: stripped[col.strip()] for role, col in wanted.items()}


def _where(mask: np.ndarray, offset: int, unit: str) -> str:
    idx = np.flatnonzero(mask)[:5] + offset
    return f"{unit}{'s' if len(idx) > 1 else ''} {', '.join(map(str, idx))}"


def _normalise(
    raw: pd.DataFrame, wanted: dict[str, str], fname: str, offset: int, unit: str
) -> tuple[pd.DataFrame, list[str]]:
    out: dict[str, Any] = {}
    for role in ("user_id", "item_id"):
        s = raw[role]
        if pd.api.types.is_float_dtype(s) and s.dropna().mod(1).eq(0).all():
            s = s.astype("Int64")  # parquet floats like 7.0 -> "7"
        was_null = s.isna().to_numpy(dtype=bool)
        s = s.astype(str)
        null = was_null | s.isna().to_numpy(dtype=bool) | (s.str.strip() == "").to_numpy(dtype=bool)
        if null.any():
            raise DatasetError(
                f"{fname}: {int(null.sum()):,} row(s) have an empty {role.replace('_id', '')} ID in column "
                f"'{wanted[role]}' (first at {_where(null, offset, unit)}). Remove or fill those rows."
            )
        out[role] = s
    if "weight" in raw:
        w = raw["weight"]
        col = wanted["weight"]
        if pd.api.types.is_bool_dtype(w):
            w = w.astype(np.float64)
        if not pd.api.types.is_numeric_dtype(w):
            num = pd.to_numeric(w, errors="coerce")
            bad = (num.isna() & w.notna()).to_numpy()
            if bad.any():
                examples = ", ".join(repr(str(v)) for v in pd.unique(w[bad])[:5])
                raise DatasetError(
                    f"{fname}: weight column '{col}' must be numeric; {int(bad.sum()):,} value(s) are not, "
                    f"e.g. {examples} (first at {_where(bad, offset, unit)})."
                )
            w = num
        w = w.astype(np.float64)
        bad = ~np.isfinite(w.to_numpy())
        if bad.any():
            raise DatasetError(
                f"{fname}: weight column '{col}' has {int(bad.sum()):,} empty or non-finite value(s) "
                f"(first at {_where(bad, offset, unit)})."
            )
        out["weight"] = w.astype(np.float32)
    else:
        out["weight"] = np.ones(len(raw), dtype=np.float32)
    if "timestamp" in raw:
        out["timestamp"] = _timestamps(raw["timestamp"], wanted["timestamp"], fname, offset, unit)
    inter = pd.DataFrame(out)
    inter["user_id"] = inter["user_id"].astype(str)
    inter["item_id"] = inter["item_id"].astype(str)
    notes: list[str] = []
    dups = int(inter.duplicated(["user_id", "item_id"]).sum())
    if dups:
        notes.append(
            f"{dups:,} duplicate (user_id, item_id) row(s) kept as repeated interactions "
            f"(first at {_where(inter.duplicated(['user_id', 'item_id']).to_numpy(), offset, unit)})."
        )
    return inter, notes


def _timestamps(s: pd.Series, col: str, fname: str, offset: int, unit: str) -> np.ndarray:
    """Numeric timestamps are kept as int64; date strings become Unix seconds (UTC)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        dt = pd.to_datetime(s, utc=True)
    elif pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        bad = s.isna().to_numpy()
        if bad.any():
            raise DatasetError(
                f"{fname}: timestamp column '{col}' has {int(bad.sum()):,} empty value(s) "
                f"(first at {_where(bad, offset, unit)})."
            )
        return s.to_numpy().astype(np.int64)
    else:
        num = pd.to_numeric(s, errors="coerce")
        if num.notna().all():
            return num.to_numpy().astype(np.int64)
        dt = pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
    bad = dt.isna().to_numpy()
    if bad.any():
        examples = ", ".join(repr(str(v)) for v in pd.unique(s[bad])[:5])
        raise DatasetError(
            f"{fname}: timestamp column '{col}' has {int(bad.sum()):,} value(s) that are neither numbers nor "
            f"dates, e.g. {examples} (first at {_where(bad, offset, unit)})."
        )
    return ((dt - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy().astype(np.int64)


# --------------------------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------------------------


def _recbole_split_counts(tot: int, ratios: tuple[float, ...]) -> list[int]:
    """RecBole's ``_calcu_split_ids`` counts, verbatim, so our splits match RecBole's RS protocol."""
    cnt = [int(ratios[i] * tot) for i in range(len(ratios))]
    cnt[0] = tot - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * tot < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


def _check_fractions(fractions: Any) -> tuple[float, float, float]:
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        values = ()
    ok = len(values) == 3 and all(np.isfinite(v) and v > 0 for v in values) and abs(sum(values) - 1) <= 1e-6
    if not ok:
        raise DatasetError(
            "Split fractions must be three positive numbers (train, validation, test) summing to 1, "
            f"e.g. (0.8, 0.1, 0.1); got {fractions!r}" + (f" (sum {sum(values):g})." if len(values) == 3 else ".")
        )
    return values  # type: ignore[return-value]


def split_dataset(
    ds: Dataset, method: str = "random", fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 42
) -> Split:
    """Per-user train/validation/test split following RecBole (RS, group_by=user; RO or TO ordering).

    ``random`` shuffles each user's interactions with ``seed``; ``temporal`` orders them by timestamp so the
    latest ones land in test. Vectorised: one lexsort plus a per-distinct-count lookup table.
    ``cold-users`` splits users instead (see :func:`split_cold_users`).
    """
    if method not in SPLIT_METHODS:
        raise DatasetError(f"Unknown split method {method!r}; use one of {', '.join(SPLIT_METHODS)}.")
    fr = _check_fractions(fractions)
    if method == "cold-users":
        return split_cold_users(ds, fr, seed)
    total = sum(fr)
    ratios = tuple(f / total for f in fr)  # RecBole normalises too
    df = ds.interactions
    n = len(df)
    codes, _ = pd.factorize(df["user_id"], sort=False)
    rows = np.arange(n)
    if method == "random":
        keys = np.random.default_rng(seed).random(n)
        order = np.lexsort((rows, keys, codes))
    else:
        if "timestamp" not in df.columns:
            raise DatasetError(
                f"Temporal split needs a timestamp column, but {ds.name!r} has none "
                "(map one with timestamp_col=... or use the random split)."
            )
        order = np.lexsort((rows, df["timestamp"].to_numpy(dtype=np.int64), codes))
    per_user = np.bincount(codes)
    starts = np.concatenate(([0], np.cumsum(per_user)[:-1]))
    sorted_codes = codes[order]
    pos = rows - starts[sorted_codes]
    distinct = np.unique(per_user)
    table = np.array([_recbole_split_counts(int(t), ratios) for t in distinct], dtype=np.int64)
    cnt = table[np.searchsorted(distinct, per_user)]  # (n_users, 3)
    n_train = cnt[sorted_codes, 0]
    n_valid = cnt[sorted_codes, 1]
    part_sorted = np.where(pos < n_train, 0, np.where(pos < n_train + n_valid, 1, 2)).astype(np.int8)
    part = np.empty(n, dtype=np.int8)
    part[order] = part_sorted
    frames = [df.iloc[np.flatnonzero(part == k)].reset_index(drop=True) for k in range(3)]
    return Split(frames[0], frames[1], frames[2], method, fr, int(seed))


def split_cold_users(ds: Dataset, fractions: tuple[float, float, float], seed: int) -> Split:
    """Users, not interactions, are split: a seeded ``fractions[2]`` of the users is held out entirely (all their
    interactions are the test set) and another ``fractions[1]`` the same way for validation, so a model meets its
    test users for the first time, as it meets a new user in production."""
    fr = _check_fractions(fractions)
    df = ds.interactions
    users = pd.unique(df["user_id"])
    n = len(users)
    n_test, n_valid = round(fr[2] * n), round(fr[1] * n)
    if n_test < 1 or n_valid < 1 or n - n_test - n_valid < 1:
        raise DatasetError(
            f"The cold-users split needs at least one user in each part; {n} users with fractions {fr} leave "
            f"{n - n_test - n_valid}/{n_valid}/{n_test}."
        )
    order = np.random.default_rng(seed).permutation(n)
    part_of_user = np.zeros(n, dtype=np.int8)
    part_of_user[order[:n_test]] = 2
    part_of_user[order[n_test : n_test + n_valid]] = 1
    codes = pd.Index(users).get_indexer(df["user_id"])
    part = part_of_user[codes]
    frames = [df.iloc[np.flatnonzero(part == k)].reset_index(drop=True) for k in range(3)]
    return Split(frames[0], frames[1], frames[2], "cold-users", fr, int(seed))


# --------------------------------------------------------------------------------------------------------
# MLflow lineage
# --------------------------------------------------------------------------------------------------------


def lineage(ds: Dataset) -> tuple[mlflow.data.dataset.Dataset, dict[str, str]]:
    """An MLflow dataset for ``mlflow.log_input`` plus flat tags, so every run records exactly what it saw."""
    import mlflow.data
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.types.utils import _infer_schema

    # Explicit source objects: letting MLflow guess from a free-form string warns about ambiguity.
    if ds.source.startswith(("http://", "https://")):
        source: Any = HTTPDatasetSource(ds.source)
    else:
        source = LocalArtifactDatasetSource(ds.source)
    with warnings.catch_warnings():  # schema inference nags about int columns; ours never hold NaN
        warnings.simplefilter("ignore", UserWarning)
        mlflow_ds = mlflow.data.from_pandas(ds.interactions, source=source, name=ds.name, digest=ds.digest)
        # MLflow infers the schema element by element (~1.7 s on ML-100K, more than the training overhead budget);
        # the column types are uniform, so infer them on a sample and prime the cached property with the result.
        mlflow_ds.__dict__["schema"] = _infer_schema(ds.interactions.head(1000))
    tags = {
        "dataset_name": ds.name,
        "dataset_digest": ds.digest,
        "dataset_source": ds.source,
        "dataset_rows": str(ds.n_interactions),
        "dataset_users": str(ds.n_users),
        "dataset_items": str(ds.n_items),
    }
    return mlflow_ds, tags
