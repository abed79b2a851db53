"""Side-feature tables (user and item attributes) and the encoding that turns them into model inputs.

A :class:`FeatureTable` is one ID column plus attribute columns; its :class:`FeatureEncoding` (one-hot for
categories, multi-hot for ``a|b|c`` lists, buckets for ages, standardised numbers) is fitted once on the table and
travels with the model as JSON, so a user the model never saw is encoded at predict time exactly as in training.
Tables come from a dataset's own metadata (``builtin``: MovieLens-100K and the synthetic data) or from an uploaded
CSV/Parquet file, checked with messages that name the file, column and rows.

This module needs numpy and pandas only: the logged pyfunc imports it to encode request rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recdash.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from recdash.data import Dataset

KINDS = ("category", "multi", "bucket", "number")
MAX_CATEGORIES = 200  # above this a text column is an identifier or free text, not a category
FEATURE_CHOICES = ("none", "builtin")  # or a path to a CSV/Parquet table
# MovieLens-1M's age groups, the usual way to bucket MovieLens ages
AGE_EDGES = (18.0, 25.0, 35.0, 45.0, 50.0, 56.0)
AGE_LABELS = ("under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
BUILTIN_USER_COLUMNS = {"age": "bucket", "gender": "category", "occupation": "category"}
BUILTIN_ITEM_COLUMNS = {"genres": "multi", "decade": "category"}


class FeatureError(UserError, ValueError):
    """A feature table or feature value that cannot be used; the message is shown to users as is."""


# ---- encoding ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnEncoding:
    """How one attribute column becomes model inputs."""

    name: str
    kind: str  # one of KINDS
    values: tuple[str, ...] = ()  # category / multi: the known values; bucket: the labels
    edges: tuple[float, ...] = ()  # bucket: upper-exclusive edges between labels
    mean: float = 0.0  # number: standardised as (x - mean) / std
    std: float = 1.0

    @property
    def width(self) -> int:
        return 1 if self.kind == "number" else len(self.values)

    def names(self) -> list[str]:
        """Names of the encoded inputs (``gender=F``, ``age=25-34``, ``score``)."""
        return [self.name] if self.kind == "number" else [f"{self.name}={v}" for v in self.values]

    def encode(self, column: pd.Series) -> np.ndarray:
        """[len(column), width] float32; a missing value encodes as zeros (nothing known), an unknown one raises."""
        out = np.zeros((len(column), self.width), dtype=np.float32)
        present = column.notna().to_numpy()
        if not present.any():
            return out
        rows = np.flatnonzero(present)
        values = column[present]
        if self.kind == "number":
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(numbers)
            if bad.any():
                raise FeatureError(f"{self.name} must be a number; got {values.iloc[int(np.argmax(bad))]!r}")
            out[rows, 0] = (numbers - self.mean) / self.std
            return out
        if self.kind == "bucket":
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(numbers)
            if bad.any():
                raise FeatureError(f"{self.name} must be a number; got {values.iloc[int(np.argmax(bad))]!r}")
            out[rows, np.searchsorted(np.asarray(self.edges), numbers, side="right")] = 1.0
            return out
        index = pd.Index(self.values)
        if self.kind == "category":
            codes = index.get_indexer(values.astype(str).str.strip())
            self._check_known(values, codes)
            out[rows, codes] = 1.0
            return out
        parts = values.astype(str).str.split("|")  # multi: "a|b|c"
        lengths = parts.str.len().to_numpy()
        flat = pd.Series(np.concatenate(parts.to_numpy()) if len(parts) else [], dtype=object).str.strip()
        keep = flat.to_numpy() != ""
        codes = index.get_indexer(flat[keep])
        self._check_known(flat[keep], codes)
        out[np.repeat(rows, lengths)[keep], codes] = 1.0
        return out

    def _check_known(self, values: pd.Series, codes: np.ndarray) -> None:
        if (codes < 0).any():
            unknown = values.iloc[int(np.argmax(codes < 0))]
            shown = ", ".join(self.values[:30]) + (", ..." if len(self.values) > 30 else "")
            raise FeatureError(f"{self.name} must be one of {shown}; got {unknown!r}")

    def describe(self) -> str:
        if self.kind == "number":
            return f"{self.name}: number (standardised)"
        return f"{self.name}: {self.kind} ({len(self.values)})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.values:
            out["values"] = list(self.values)
        if self.edges:
            out["edges"] = list(self.edges)
        if self.kind == "number":
            out |= {"mean": self.mean, "std": self.std}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnEncoding:
        return cls(
            str(d["name"]),
            str(d["kind"]),
            tuple(str(v) for v in d.get("values", ())),
            tuple(float(e) for e in d.get("edges", ())),
            float(d.get("mean", 0.0)),
            float(d.get("std", 1.0)),
        )


@dataclass(frozen=True)
class FeatureEncoding:
    """The encoding of a whole table: the ID column and one :class:`ColumnEncoding` per attribute."""

    id_column: str
    columns: tuple[ColumnEncoding, ...]

    @property
    def width(self) -> int:
        return sum(c.width for c in self.columns)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def names(self) -> list[str]:
        return [n for c in self.columns for n in c.names()]

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """[len(frame), width] float32 from the attribute columns present in ``frame`` (absent ones: zeros)."""
        blocks = [
            c.encode(frame[c.name]) if c.name in frame.columns else np.zeros((len(frame), c.width), np.float32)
            for c in self.columns
        ]
        return np.hstack(blocks) if blocks else np.zeros((len(frame), 0), dtype=np.float32)

    def describe(self) -> str:
        """One line for a run param: ``age: bucket (7), gender: category (2), ...``."""
        return ", ".join(c.describe() for c in self.columns)

    def to_dict(self) -> dict[str, Any]:
        return {"id_column": self.id_column, "columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureEncoding:
        return cls(str(d["id_column"]), tuple(ColumnEncoding.from_dict(c) for c in d["columns"]))


def fit_column(name: str, column: pd.Series, kind: str) -> ColumnEncoding:
    """The encoding of one column of kind ``kind`` (categories sorted, numbers' mean and std)."""
    if kind == "number":
        numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        std = float(np.nanstd(numbers)) if len(numbers) else 1.0
        return ColumnEncoding(name, kind, mean=float(np.nanmean(numbers)), std=std if std > 0 else 1.0)
    if kind == "bucket":
        return ColumnEncoding(name, kind, values=AGE_LABELS, edges=AGE_EDGES)
    if kind == "multi":
        flat = column.dropna().astype(str).str.split("|").explode().str.strip()
        return ColumnEncoding(name, kind, values=tuple(sorted(v for v in flat.unique() if v)))
    if kind == "category":
        return ColumnEncoding(name, kind, values=tuple(sorted(column.dropna().astype(str).str.strip().unique())))
    raise FeatureError(f"unknown feature kind {kind!r}; use one of {', '.join(KINDS)}")


def infer_kind(column: pd.Series) -> str:
    """number for numeric columns, multi for text holding ``a|b`` lists, category for other text."""
    if pd.api.types.is_bool_dtype(column):
        return "category"
    if pd.api.types.is_numeric_dtype(column):
        return "number"
    text = column.dropna().astype(str)
    return "multi" if text.str.contains("|", regex=False).any() else "category"


# ---- tables ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FeatureTable:
    """Attributes of users or items: ``frame`` holds the ID column (strings) and the attribute columns used."""

    kind: str  # "user" or "item"
    name: str  # "builtin" or the file name
    source: str  # where it came from (dataset source or file path)
    frame: pd.DataFrame
    encoding: FeatureEncoding
    warnings: tuple[str, ...] = field(default=())

    @property
    def id_column(self) -> str:
        return self.encoding.id_column

    @property
    def digest(self) -> str:
        """Content hash of the table as used (rows sorted by ID), so a changed table is a different input."""
        frame = self.frame.sort_values(self.id_column, kind="stable").reset_index(drop=True)
        h = hashlib.sha256("|".join(map(str, frame.columns)).encode())
        h.update(pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy().tobytes())
        return h.hexdigest()[:16]

    def matrix(self, ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Encoded rows for ``ids`` in that order; IDs without a row get zeros (nothing known about them)."""
        rows = self.rows(ids)
        return self.encoding.encode(rows)

    def rows(self, ids: Sequence[str] | np.ndarray) -> pd.DataFrame:
        """The raw attribute rows for ``ids`` in that order (missing IDs: empty values)."""
        table = self.frame.set_index(self.id_column)
        out = table.reindex(pd.Index(np.asarray(ids, dtype=str), dtype=object))
        return out.reset_index(names=self.id_column)

    def params(self, spec: str) -> dict[str, str]:
        """Run params recording which table and encoding a run used (lineage, and Compare's "what differs")."""
        p = f"{self.kind}_features"
        return {
            p: spec,
            f"{p}_digest": self.digest,
            f"{p}_encoding": self.encoding.describe()[:6000],
            f"{p}_width": str(self.encoding.width),
        }


def _require(frame: pd.DataFrame, columns: dict[str, str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FeatureError(f"{what} has no {', '.join(missing)} column(s); found {', '.join(map(str, frame.columns))}")


def builtin_features(ds: Dataset, kind: str) -> FeatureTable:
    """The dataset's own attributes: users' age (bucketed), gender and occupation; items' genres and decade."""
    if kind == "user":
        meta, wanted, id_column = ds.users, BUILTIN_USER_COLUMNS, "user_id"
    elif kind == "item":
        meta, wanted, id_column = ds.items, BUILTIN_ITEM_COLUMNS, "item_id"
    else:
        raise FeatureError(f"kind must be user or item; got {kind!r}")
    if meta is None:
        raise FeatureError(
            f"--{kind}-features builtin: dataset {ds.name!r} has no built-in {kind} attributes "
            f"(movielens-100k and synthetic do); give a CSV/Parquet table with an {id_column} column instead"
        )
    frame = meta.copy()
    if kind == "item" and "decade" not in frame.columns and "year" in frame.columns:
        year = pd.to_numeric(frame["year"], errors="coerce")
        frame["decade"] = [f"{int(y) // 10 * 10}s" if pd.notna(y) else None for y in year]
    _require(frame, {id_column: "", **wanted}, f"dataset {ds.name!r}'s {kind} metadata")
    frame = frame[[id_column, *wanted]].drop_duplicates(id_column).reset_index(drop=True)
    frame[id_column] = frame[id_column].astype(str)
    if kind == "user":
        frame["age"] = pd.to_numeric(frame["age"], errors="coerce")
    known = set(np.asarray(ds.interactions[id_column].unique(), dtype=str))
    frame = frame[frame[id_column].isin(known)].reset_index(drop=True)
    encoding = FeatureEncoding(id_column, tuple(fit_column(c, frame[c], k) for c, k in wanted.items()))
    return FeatureTable(kind, "builtin", ds.source, frame, encoding)


def read_feature_table(path: str | Path, kind: str, ds: Dataset | None = None) -> FeatureTable:
    """An uploaded user or item attribute table (CSV or Parquet), checked with messages naming what is wrong.

    Refused: no ID column, duplicate IDs, missing values, a column with one value (it tells nobody apart), a text
    column with more than ``MAX_CATEGORIES`` values, no attribute column. Reported as warnings (the run goes on):
    IDs the data does not have (ignored) and IDs of the data without a row (encoded as "nothing known")."""
    id_column = f"{kind}_id"
    p = Path(path).expanduser()
    if not p.is_file():
        raise FeatureError(f"--{kind}-features: file not found: {p}")
    try:
        with p.open("rb") as fh:
            head = fh.read(4096)  # enough to tell Parquet and find the CSV separator; the file is read once below
        if p.suffix.lower() in (".parquet", ".pq") or head[:4] == b"PAR1":
            raw = pd.read_parquet(p)
        else:
            header = head.decode("utf-8", errors="replace").splitlines()[:1] or [""]
            # comma, tab or semicolon, whichever the header uses ("|" separates a multi-hot column's values)
            sep = max([",", "\t", ";"], key=header[0].count)
            raw = pd.read_csv(p, sep=sep, dtype={id_column: str}, encoding="utf-8-sig")
    except Exception as exc:
        raise FeatureError(f"{p.name}: not a readable CSV or Parquet table ({type(exc).__name__}: {exc})") from None
    where = p.name
    raw.columns = [str(c).strip() for c in raw.columns]
    if id_column not in raw.columns:
        raise FeatureError(f"{where}: needs a {id_column} column; found {', '.join(raw.columns) or 'no columns'}")
    if raw.empty:
        raise FeatureError(f"{where}: has a header but no rows")
    ids = raw[id_column]
    if ids.isna().any():
        raise FeatureError(
            f"{where}: {int(ids.isna().sum())} row(s) have no {id_column} (e.g. line {_line(ids.isna())})"
        )
    raw[id_column] = ids.astype(str).str.strip()
    dup = raw[id_column].duplicated(keep=False)
    if dup.any():
        examples = ", ".join(raw.loc[dup, id_column].unique()[:5])
        raise FeatureError(f"{where}: {id_column} must be unique; repeated: {examples}")
    attrs = [c for c in raw.columns if c != id_column]
    if not attrs:
        raise FeatureError(f"{where}: has no attribute column besides {id_column}")
    columns: list[ColumnEncoding] = []
    for c in attrs:
        col = raw[c]
        if col.isna().any():
            raise FeatureError(
                f"{where}: column {c!r} has {int(col.isna().sum())} missing value(s) (e.g. line {_line(col.isna())}); "
                "fill them or drop the column"
            )
        kind_c = infer_kind(col)
        if kind_c == "number" and not np.isfinite(pd.to_numeric(col, errors="coerce").to_numpy(np.float64)).all():
            raise FeatureError(f"{where}: column {c!r} has infinite or non-numeric values")
        if col.astype(str).nunique() < 2:
            raise FeatureError(
                f"{where}: column {c!r} has one value ({col.iloc[0]!r}) for every {kind}, so it tells none apart; "
                "drop it"
            )
        enc = fit_column(c, col, kind_c)
        if kind_c in ("category", "multi") and len(enc.values) > MAX_CATEGORIES:
            raise FeatureError(
                f"{where}: column {c!r} has {len(enc.values)} distinct values, more than {MAX_CATEGORIES} categories "
                "(an identifier or free text?); group it into fewer values or drop it"
            )
        columns.append(enc)
    frame = raw[[id_column, *attrs]].reset_index(drop=True)
    warnings: list[str] = []
    if ds is not None:
        known = pd.Index(np.asarray(ds.interactions[id_column].unique(), dtype=str))
        unknown = ~frame[id_column].isin(known)
        if unknown.any():
            examples = ", ".join(frame.loc[unknown, id_column].head(5))
            warnings.append(
                f"{p.name}: {int(unknown.sum())} {id_column}(s) are not in the data and are ignored (e.g. {examples})"
            )
            frame = frame[~unknown].reset_index(drop=True)
        without = int((~known.isin(frame[id_column])).sum())
        if without:
            warnings.append(f"{p.name}: {without} {kind}(s) of the data have no row; nothing is known about them")
        if frame.empty:
            raise FeatureError(f"{where}: none of its {id_column}s are in the data ({ds.name})")
    return FeatureTable(
        kind, p.name, str(p.resolve()), frame, FeatureEncoding(id_column, tuple(columns)), tuple(warnings)
    )


def _line(mask: pd.Series) -> int:
    """The CSV line of the first True row (header is line 1)."""
    return int(np.argmax(mask.to_numpy())) + 2


def load_features(spec: str | None, kind: str, ds: Dataset) -> FeatureTable | None:
    """``none`` (or empty): no features; ``builtin``: the dataset's own; anything else: a table file."""
    text = (spec or "none").strip()
    if text.lower() == "none" or not text:
        return None
    if text.lower() == "builtin":
        return builtin_features(ds, kind)
    return read_feature_table(text, kind, ds)


def feature_dataset(table: FeatureTable, dataset_name: str) -> Any:
    """An MLflow dataset for ``mlflow.log_input(..., context="features")``: the table as used, its digest."""
    import warnings

    import mlflow.data
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.types.utils import _infer_schema

    with warnings.catch_warnings():  # schema inference nags about int columns (an age); they hold no NaN here
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(
            table.frame,
            source=LocalArtifactDatasetSource(table.source),
            name=f"{dataset_name}-{table.kind}-features",
            digest=table.digest,
        )
        dataset.__dict__["schema"] = _infer_schema(table.frame.head(1000))  # computed now, under the filter
    return dataset
