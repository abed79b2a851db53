"""A user's own interactions file (CSV/TSV, compressed or not, or Parquet), read with its column mapping into the
normalised shape; every refusal names the file, the column and the line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recdash.data.dataset import Dataset, DatasetError, short_error


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
    check_roles(wanted, p.name)
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
        raise DatasetError(f"Could not parse {p.name} as CSV: {short_error(exc)}") from None
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
        raise DatasetError(f"{p.name} is not a readable Parquet file: {short_error(exc)}") from None
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


ROLE_NAMES = {"user_id": "user", "item_id": "item", "weight": "rating/weight", "timestamp": "timestamp"}


def check_roles(wanted: dict[str, str], fname: str) -> None:
    """Refuse one column chosen for two roles (user and item, ...): a user who is their own item is never what was
    meant, and the file could not be read back into both roles. Every path (CLI, Train page, a job) says this."""
    roles: dict[str, list[str]] = {}
    for role, col in wanted.items():
        roles.setdefault(str(col).strip(), []).append(ROLE_NAMES.get(role, role))
    for col, named in roles.items():
        if len(named) > 1:
            raise DatasetError(
                f"{fname}: column '{col}' is chosen as both the {' and the '.join(named)} column; "
                "choose a different column for each."
            )


# Column names that say what a column holds (lower case, without "_", "-", " "): the Train page preselects a
# column only when its name says so, and otherwise asks.
_ROLE_WORDS = {
    "user_id": ("user", "userid", "uid", "users", "customer", "customerid", "visitor", "visitorid", "member",
                "memberid", "account", "accountid", "client", "clientid", "reader", "listener", "viewer"),
    "item_id": ("item", "itemid", "iid", "items", "movie", "movieid", "product", "productid", "sku", "article",
                "articleid", "song", "songid", "track", "trackid", "book", "bookid", "isbn", "asin", "artist",
                "artistid", "video", "videoid", "course", "courseid", "post", "postid", "recipe", "recipeid"),
}  # fmt: skip


def guess_id_columns(columns: list[str]) -> dict[str, str | None]:
    """The user and item columns of a file whose names say so (``user_id``, ``movieId``, ``customer``...), per
    role; None where no name says it (the page then asks instead of taking the first columns)."""
    out: dict[str, str | None] = {}
    for role, words in _ROLE_WORDS.items():
        found = [c for c in columns if re.sub(r"[\s_\-]", "", str(c).lower()) in words]
        out[role] = found[0] if found else None
    if out["user_id"] is not None and out["user_id"] == out["item_id"]:
        out["item_id"] = None
    return out


def _where(mask: np.ndarray, offset: int, unit: str) -> str:
    idx = np.flatnonzero(mask)[:5] + offset
    return f"{unit}{'s' if len(idx) > 1 else ''} {', '.join(map(str, idx))}"


def _normalise(
    raw: pd.DataFrame, wanted: dict[str, str], fname: str, offset: int, unit: str
) -> tuple[pd.DataFrame, list[str]]:
    check_roles(wanted, fname)
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


def table_header(path: str | Path) -> list[str]:
    """The column names of a CSV/TSV (for the Train page's column mapping); [] when it cannot be read (the page
    says so, and :func:`load_table` gives the precise reason)."""
    try:
        head = pd.read_csv(path, sep=None, engine="python", nrows=5, encoding_errors="replace")
    except Exception:  # any unreadable file: a header is a courtesy here, the real check is load_table's
        return []
    return [str(c) for c in head.columns]
