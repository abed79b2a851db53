"""MovieLens-100K: read from a local GroupLens folder or zip, else the cache, else downloaded (GroupLens, then
RecBole's wheel on PyPI, where this machine can reach only the package registries), verified against the
published counts, and cached as Parquet."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recdash import settings
from recdash.data.dataset import Dataset, DatasetError, short_error

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


def _resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    raw = cache_dir or settings.CACHE_DIR.get()  # read at call time: tests and the CLI redirect the cache
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
            tried.append(f"{label}: {short_error(exc)}")
            continue
        return _write_cache(ds, target)
    raise DatasetError(
        "Could not load MovieLens-100K. Tried:\n  - "
        + "\n  - ".join(tried)
        + "\nDownload ml-100k.zip from https://grouplens.org/datasets/movielens/100k/ on a machine with "
        "internet access and point recdash at it (the .zip or the unpacked folder), e.g. "
        "load_dataset('movielens-100k', path='/path/to/ml-100k.zip')."
    )


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
        raise DatasetError(f"Could not parse GroupLens MovieLens files from {source}: {short_error(exc)}") from exc
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
        raise DatasetError(f"Could not parse RecBole MovieLens files from {source}: {short_error(exc)}") from exc
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
        tried.append(f"cache at {target}: unusable ({short_error(exc)}), refetching")
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
        return dataclasses.replace(ds, warnings=(*ds.warnings, f"Could not write cache {target}: {short_error(exc)}"))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return ds
