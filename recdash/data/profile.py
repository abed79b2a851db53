"""A dataset's profile: its shape in a few kilobytes, computed once when a run trains and logged with it.

Discover shows a dataset's counts, density, activity histograms, long tail and a few sample rows. Computing them
means loading the data, which at MovieLens-20M size takes half a minute and gigabytes: far too much for every visit
of a page. So each training logs its data's profile as the run artifact ``dataset/profile.json``
(:data:`recdash.contract.PROFILE_ARTIFACT`, about 10 KB at any size) and the page reads that; the page computes one
from the data only for runs without it (older runs) and only for data small enough to load at once.

The profile is made from the integer codes of the IDs (``np.bincount``): at 20 million rows it costs well under a
second of a training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from recdash import contract
from recdash.tracking.artifacts import read_run_file

FORMAT_VERSION = 1
HISTOGRAM_BINS = 40
TAIL_POINTS = 200  # the long-tail curve, sampled evenly over the items (and its first point exact)
SAMPLE_ROWS = 10


@dataclass(frozen=True)
class Histogram:
    """Counts of a per-user or per-item activity in equal-width bins, with the median and maximum it summarises."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    median: float
    max: int

    @classmethod
    def of(cls, values: np.ndarray, bins: int = HISTOGRAM_BINS) -> Histogram:
        if not len(values):
            return cls((0.0, 1.0), (0,), 0.0, 0)
        counts, edges = np.histogram(values, bins=bins)
        return cls(tuple(edges.tolist()), tuple(int(c) for c in counts), float(np.median(values)), int(values.max()))


@dataclass(frozen=True)
class Profile:
    """A dataset's shape: counts, density, activity distributions, the long tail, rating and time range, samples."""

    interactions: int
    users: int
    items: int
    per_user: Histogram  # interactions per user
    per_item: Histogram  # interactions per item
    head_items: int  # the fewest (most popular) items holding half of all interactions
    long_tail: pd.DataFrame  # share_of_items, share_of_interactions (cumulative, most popular first)
    ratings: tuple[float, float, int] | None  # min, max, distinct values; None for implicit (all 1.0)
    time_range: tuple[pd.Timestamp, pd.Timestamp] | None
    sample: pd.DataFrame  # a few seeded rows, item titles included when the data has them

    @property
    def density(self) -> float:
        return self.interactions / (self.users * self.items) if self.users and self.items else 0.0

    def summary(self) -> pd.DataFrame:
        """The profile as label/value rows, for a table."""
        rows = [
            ("interactions", f"{self.interactions:,}"),
            ("users", f"{self.users:,}"),
            ("items", f"{self.items:,}"),
            ("density", f"{self.density:.4%}"),
            ("interactions per user (median, max)", f"{self.per_user.median:g}, {self.per_user.max:,}"),
            ("interactions per item (median, max)", f"{self.per_item.median:g}, {self.per_item.max:,}"),
            (
                "items with half of all interactions",
                f"{self.head_items:,} ({self.head_items / max(self.items, 1):.1%})",
            ),
            (
                "ratings",
                "implicit (all 1)"
                if self.ratings is None
                else f"{self.ratings[0]:g} to {self.ratings[1]:g} ({self.ratings[2]} distinct values)",
            ),
            (
                "time range",
                "no timestamps"
                if self.time_range is None
                else f"{self.time_range[0]:%Y-%m-%d} to {self.time_range[1]:%Y-%m-%d}",
            ),
        ]
        return pd.DataFrame(rows, columns=["what", "value"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the logged artifact)."""
        return {
            "format": FORMAT_VERSION,
            "interactions": self.interactions,
            "users": self.users,
            "items": self.items,
            "per_user": vars(self.per_user),
            "per_item": vars(self.per_item),
            "head_items": self.head_items,
            "long_tail": self.long_tail.to_dict(orient="list"),
            "ratings": self.ratings,
            "time_range": None if self.time_range is None else [t.isoformat() for t in self.time_range],
            "sample": json.loads(self.sample.to_json(orient="split", index=False, date_format="iso")),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Profile | None:
        """The profile of :meth:`to_dict`; None for a format this code does not read."""
        if d.get("format") != FORMAT_VERSION:
            return None
        sample = pd.DataFrame(d["sample"]["data"], columns=d["sample"]["columns"])
        if "timestamp" in sample.columns:
            sample["timestamp"] = pd.to_datetime(sample["timestamp"], utc=True)
        return cls(
            interactions=int(d["interactions"]),
            users=int(d["users"]),
            items=int(d["items"]),
            per_user=_histogram(d["per_user"]),
            per_item=_histogram(d["per_item"]),
            head_items=int(d["head_items"]),
            long_tail=pd.DataFrame(d["long_tail"]),
            ratings=None
            if d["ratings"] is None
            else (float(d["ratings"][0]), float(d["ratings"][1]), int(d["ratings"][2])),
            time_range=None if d["time_range"] is None else tuple(pd.Timestamp(t) for t in d["time_range"]),  # type: ignore[arg-type]
            sample=sample,
        )


def _histogram(d: dict[str, Any]) -> Histogram:
    return Histogram(tuple(d["edges"]), tuple(d["counts"]), float(d["median"]), int(d["max"]))


def _counts(column: pd.Series) -> np.ndarray:
    """Rows per distinct ID: a bincount over the integer codes (IDs without rows dropped)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        counts = np.bincount(codes[codes >= 0], minlength=len(column.cat.categories))
        return counts[counts > 0]
    return column.value_counts().to_numpy()


def profile(interactions: pd.DataFrame, items: pd.DataFrame | None = None, seed: int = 0) -> Profile:
    """Profile recdash's normalised interactions (``user_id``, ``item_id``, ``weight``, optional ``timestamp``);
    ``items`` with a ``title`` column names the sample rows' items."""
    per_user = _counts(interactions["user_id"])
    per_item = np.sort(_counts(interactions["item_id"]))[::-1]
    n, n_items = len(interactions), len(per_item)
    cumulative = per_item.cumsum() / max(n, 1)
    head_items = int(np.searchsorted(cumulative, 0.5) + 1) if n_items else 0
    at = np.unique(np.linspace(0, max(n_items - 1, 0), TAIL_POINTS).round().astype(int)) if n_items else []
    long_tail = pd.DataFrame(
        {"share_of_items": (np.asarray(at) + 1) / max(n_items, 1), "share_of_interactions": cumulative[at]}
    )
    weights = interactions["weight"].to_numpy(dtype=float)
    ratings = None
    if len(weights) and not (weights == 1.0).all():
        ratings = (float(weights.min()), float(weights.max()), len(np.unique(weights)))
    time_range = None
    if "timestamp" in interactions.columns and interactions["timestamp"].notna().any():
        ts = pd.to_numeric(interactions["timestamp"], errors="coerce").dropna()
        unit = "ms" if ts.max() > 1e11 else "s"
        time_range = (pd.to_datetime(ts.min(), unit=unit, utc=True), pd.to_datetime(ts.max(), unit=unit, utc=True))
    return Profile(
        n,
        len(per_user),
        n_items,
        Histogram.of(per_user),
        Histogram.of(per_item),
        head_items,
        long_tail,
        ratings,
        time_range,
        _sample(interactions, items, seed),
    )


def _sample(interactions: pd.DataFrame, items: pd.DataFrame | None, seed: int) -> pd.DataFrame:
    """A few rows (seeded, so a page does not reshuffle on every rerun), IDs as text, with item titles."""
    rows = np.sort(np.random.default_rng(seed).choice(len(interactions), min(SAMPLE_ROWS, len(interactions)), False))
    sample = interactions.iloc[rows].reset_index(drop=True)
    sample = sample.assign(user_id=sample["user_id"].astype(str), item_id=sample["item_id"].astype(str))
    if "timestamp" in sample.columns:
        ts = pd.to_numeric(sample["timestamp"], errors="coerce")
        sample["timestamp"] = pd.to_datetime(ts, unit="ms" if ts.max() > 1e11 else "s", utc=True)
    if items is not None and "title" in items.columns:
        titles = pd.Series(items["title"].to_numpy(), index=items["item_id"].astype(str).to_numpy())
        titles = titles[~titles.index.duplicated()]
        sample.insert(2, "title", sample["item_id"].map(titles))
    return sample


def log(prof: Profile) -> None:
    """Log the profile with the active run (the training's own data, so its digest is the run's)."""
    mlflow.log_dict(prof.to_dict(), contract.PROFILE_ARTIFACT)


def read(run_id: str, uri: str | None = None) -> Profile | None:
    """The profile a run logged, or None (older runs, other tools' runs, an unreadable file)."""

    def parse(path: Path) -> Profile | None:
        return Profile.from_dict(json.loads(path.read_text(encoding="utf-8")))

    return read_run_file(run_id, contract.PROFILE_ARTIFACT, parse, uri)
