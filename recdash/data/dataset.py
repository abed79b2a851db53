"""The one shape every dataset is normalised to, and the entry point that picks a loader.

``interactions`` with string ``user_id``/``item_id``, a float ``weight`` (the rating when there is one, else 1.0)
and an optional int64 ``timestamp``: training, evaluation and the UI never care where the data came from. IDs stay
strings end to end so "007" never silently becomes 7.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from recdash.errors import UserError


class DatasetError(UserError, ValueError):
    """Bad or unavailable data; the message is shown to users verbatim, so it names the file/column/problem."""


def short_error(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line for a user message."""
    text = str(exc).strip().replace("\n", " ") or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
