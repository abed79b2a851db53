"""The one shape every dataset is normalised to.

``interactions`` with ``user_id``/``item_id``, a float ``weight`` (the rating when there is one, else 1.0) and an
optional int64 ``timestamp``: training, evaluation and the UI never care where the data came from. The ID columns
are pandas Categoricals whose categories are the distinct IDs as strings, sorted (:func:`coded_ids`): each row holds
an integer code, never a string object, so 20 million rows cost 160 MB for both columns and every later step (the
split, the model's index, evaluation) works on the codes. IDs stay strings semantically: "007" never becomes 7.
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
        frame = self.interactions
        recoded = {c: coded_ids(frame[c]) for c in ID_COLUMNS if not is_coded(frame[c])}
        if recoded:  # every loader hands over coded IDs already; a hand-made frame is coded here, once
            object.__setattr__(self, "interactions", frame.assign(**recoded))

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


ID_COLUMNS = ("user_id", "item_id")


def is_coded(column: pd.Series) -> bool:
    """True when ``column`` already has :func:`coded_ids`' shape (string categories, sorted, distinct)."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return False
    categories = column.cat.categories
    if not pd.api.types.is_string_dtype(categories.dtype):
        return False
    if categories.dtype == object and pd.api.types.infer_dtype(categories) not in ("string", "empty"):
        return False  # object categories that are not all text (7 and "7"): coded again, as text
    return categories.is_monotonic_increasing


def coded_ids(column: pd.Series | pd.Categorical | np.ndarray) -> pd.Categorical:
    """IDs as a Categorical: the distinct IDs as strings, sorted (the order ``np.unique`` gives strings, so the
    model's indices are what they always were), and an integer code per row. A categorical column is recoded
    through its categories (no per-row string); other columns are factorized once. Numbers become their text
    (7 -> "7"); a missing ID keeps code -1."""
    values = column if isinstance(column, pd.Series) else pd.Series(column)
    if isinstance(values.dtype, pd.CategoricalDtype):
        categories = values.cat.categories
        names = np.asarray(categories.astype(str), dtype=object)
        if len(pd.unique(names)) == len(names):  # 7 and "7" would collide as text: factorize the text instead
            order = np.argsort(names.astype(str), kind="stable")
            new_code = np.empty(len(names), dtype=np.int32)
            new_code[order] = np.arange(len(names), dtype=np.int32)
            codes = _recode(values.cat.codes.to_numpy(), new_code)
            return pd.Categorical.from_codes(codes, categories=pd.Index(names[order], dtype=str))
        values = values.astype(str)
    elif not pd.api.types.is_string_dtype(values.dtype) or pd.api.types.infer_dtype(values) not in ("string", "empty"):
        values = values.astype(str)
    codes, uniques = pd.factorize(values, sort=False)
    names = np.asarray(uniques, dtype=object).astype(str)
    order = np.argsort(names, kind="stable")
    new_code = np.empty(len(names), dtype=np.int32)
    new_code[order] = np.arange(len(names), dtype=np.int32)
    return pd.Categorical.from_codes(_recode(codes, new_code), categories=pd.Index(names[order], dtype=str))


def _recode(codes: np.ndarray, new_code: np.ndarray) -> np.ndarray:
    """``new_code[codes]`` as int32, a missing value (-1) staying -1."""
    if not new_code.size:
        return np.full(len(codes), -1, dtype=np.int32)
    if (codes >= 0).all():
        return new_code[codes]
    return np.where(codes >= 0, new_code[np.maximum(codes, 0)], -1).astype(np.int32)


def id_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(integer code per row, the ID strings the codes point into) of an ID column, coded or not."""
    coded = column.array if is_coded(column) else coded_ids(column)
    assert isinstance(coded, pd.Categorical)
    return np.asarray(coded.codes), np.asarray(coded.categories, dtype=object)


_NULL_HASH = pd.util.hash_array(np.array([np.nan], dtype=object))[0]


def _hash_ids(column: pd.Series) -> np.ndarray:
    """Each row's ``pd.util.hash_array`` of its ID string: the categories hashed once and taken by code, which gives
    the same numbers as hashing every row's string (a missing ID hashes as NaN, as it did)."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        # Object array so pyarrow-backed and python-backed strings hash identically.
        return pd.util.hash_array(column.to_numpy(dtype=object))
    per_category = pd.util.hash_array(np.asarray(column.cat.categories, dtype=object))
    codes = column.cat.codes.to_numpy()
    if (codes >= 0).all():
        return per_category[codes]
    return np.where(codes >= 0, per_category[np.maximum(codes, 0)], _NULL_HASH)


def _digest(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    cols = [c for c in ("user_id", "item_id", "weight", "timestamp") if c in df.columns]
    h.update(("|".join(cols) + f"|{len(df)}").encode())
    for col in cols:
        s = df[col]
        if col in ("user_id", "item_id"):
            values = _hash_ids(s)
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
