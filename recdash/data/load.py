"""``load_dataset``: one entry point for the CLI, jobs and pages, picking a loader by name (or file suffix)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from recdash.data.dataset import Dataset, DatasetError
from recdash.data.files import load_table
from recdash.data.movielens import load_movielens_100k
from recdash.data.synthetic import make_synthetic

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
