"""A user's own interactions file (CSV/TSV, compressed or not, or Parquet), read with its column mapping into the
normalised shape; every refusal names the file, the column and the line."""

from __future__ import annotations

import lzma
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recdash.data.dataset import Dataset, DatasetError, coded_ids, short_error


def load_table(
    path: str,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    weight_col: str | None = None,
    timestamp_col: str | None = None,
    fmt: str | None = None,
    max_bytes: int | None = None,
) -> Dataset:
    """Load user interactions from CSV/TSV/Parquet with a column mapping and user-readable errors. ``max_bytes``
    refuses a larger file before reading it (a caller's own limit); a path given on the command line has none, memory
    is the bound (pyarrow reads into integer codes: 20M interactions from Parquet in seconds, ``bench/scale.py``)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"File not found: {p}")
    if not p.is_file():
        raise DatasetError(f"Not a file: {p}")
    size = p.stat().st_size
    if size == 0:
        raise DatasetError(f"File is empty: {p.name}")
    if max_bytes is not None and size > max_bytes:
        raise DatasetError(
            f"{p.name} is {size / 2**20:,.1f} MB, over the {max_bytes / 2**20:,.1f} MB limit. Use a smaller sample."
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
        try:  # the separator is sniffed from the first line of the decompressed text
            with _open_stream(p) as stream:
                text = bytes(stream.read(65_536)).decode("utf-8", errors="ignore")
            first = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
        except Exception:  # unreadable archive: the read below says why
            first = ""
    if not first.strip() and not _compressed(p):
        raise DatasetError(f"File is empty: {p.name} (no header line).")
    sep = max((",", "\t", ";", "|"), key=first.count) if first else ","
    if first and first.count(sep) == 0:
        sep = ","

    import pyarrow as pa
    import pyarrow.csv as pacsv

    def read(encoding: str, columns: dict[str, str] | None = None) -> Any:
        """The header's column names (``columns`` None), else the mapped columns as an Arrow table, IDs as
        dictionaries (codes and the distinct texts: no string object per row, "007" stays "007")."""
        read_options = pacsv.ReadOptions(encoding=encoding, block_size=1 << 24)
        parse_options = pacsv.ParseOptions(delimiter=sep)
        with _open_stream(p) as stream:
            if columns is None:
                return pacsv.open_csv(stream, read_options=read_options, parse_options=parse_options).schema.names
            ids = pa.dictionary(pa.int32(), pa.string())
            convert = pacsv.ConvertOptions(
                include_columns=list(columns.values()),
                column_types={columns[k]: ids for k in ("user_id", "item_id")},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            )
            return pacsv.read_csv(
                stream, read_options=read_options, parse_options=parse_options, convert_options=convert
            )

    encoding = "utf8"
    try:
        try:
            names = read(encoding)
            columns = _match_columns(names, wanted, p.name)
            table = read(encoding, columns)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            if isinstance(exc, pa.ArrowInvalid) and "utf8" not in str(exc).lower():
                raise
            encoding = "latin-1"
            columns = _match_columns(read(encoding), wanted, p.name)
            table = read(encoding, columns)
    except pa.ArrowInvalid as exc:
        if "empty" in str(exc).lower():
            raise DatasetError(f"File is empty: {p.name}") from None
        raise DatasetError(f"Could not parse {p.name} as CSV: {short_error(exc)}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"Could not read {p.name}: {short_error(exc)}") from None
    raw = table.to_pandas(ignore_metadata=True)
    for role in ("user_id", "item_id"):  # as the spaces after a separator were always skipped
        raw[columns[role]] = _skip_initial_space(raw[columns[role]])
    if encoding == "latin-1":
        notes.append(f"{p.name} is not valid UTF-8; it was read as Latin-1 (check accented names).")
    raw.columns = [str(c).strip() for c in raw.columns]
    return raw.rename(columns={v: k for k, v in columns.items()})


def _open_stream(p: Path) -> Any:
    """The file's bytes, decompressed by its suffix (gzip, bzip2, xz, zstd, or the one file in a zip)."""
    import pyarrow as pa

    suffix = p.suffix.lower()
    if suffix == ".zip":
        archive = zipfile.ZipFile(p)
        members = [m for m in archive.infolist() if not m.is_dir() and "__MACOSX" not in m.filename]
        if not members:
            raise DatasetError(f"{p.name} holds no file")
        return archive.open(members[0])
    if suffix == ".xz":
        return lzma.open(p)
    return pa.input_stream(str(p), compression="detect")


def _skip_initial_space(ids: pd.Series) -> pd.Series:
    """Leading spaces off the distinct IDs (" 42" and "42" are one ID), through the categories only."""
    if not isinstance(ids.dtype, pd.CategoricalDtype):
        return ids
    names = ids.cat.categories.astype(str)
    stripped = names.str.lstrip(" ")
    if (stripped == names).all():
        return ids
    new_codes, uniques = pd.factorize(stripped)
    codes = ids.cat.codes.to_numpy()
    return pd.Series(pd.Categorical.from_codes(np.where(codes >= 0, new_codes[np.maximum(codes, 0)], -1), uniques))


def _read_parquet(p: Path, wanted: dict[str, str]) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(p).names
        columns = _match_columns(names, wanted, p.name)
        ids = [columns[k] for k in ("user_id", "item_id")]
        # text IDs come out dictionary-encoded (codes, no string object per row); other ID types are coded later
        table = pq.read_table(p, columns=list(columns.values()), read_dictionary=ids)
        raw = table.to_pandas(ignore_metadata=True)
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
        out[role] = _id_codes(raw[role], role, wanted, fname, offset, unit)
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
    notes: list[str] = []
    repeated = _repeated_pairs(inter)
    dups = int(repeated.sum())
    if dups:
        notes.append(
            f"{dups:,} duplicate (user_id, item_id) row(s) kept as repeated interactions "
            f"(first at {_where(repeated, offset, unit)})."
        )
    return inter, notes


def _id_codes(s: pd.Series, role: str, wanted: dict[str, str], fname: str, offset: int, unit: str) -> pd.Categorical:
    """An ID column as the Dataset's coded IDs (:func:`~recdash.data.dataset.coded_ids`), refusing empty IDs. The
    checks run on the distinct values, then reach the rows through the codes (no string work per row)."""
    was_null = None
    if isinstance(s.dtype, pd.CategoricalDtype):
        categories = s.cat.categories
        if pd.api.types.is_float_dtype(categories) and (categories % 1 == 0).all():
            s = s.cat.rename_categories(categories.astype("int64"))  # parquet floats like 7.0 -> "7"
    else:
        if pd.api.types.is_float_dtype(s) and s.dropna().mod(1).eq(0).all():
            s = s.astype("Int64")
        was_null = s.isna().to_numpy(dtype=bool)
    coded = coded_ids(s)
    codes = np.asarray(coded.codes)
    blank = np.asarray(coded.categories.str.strip() == "", dtype=bool)
    null = (codes < 0) | (blank[np.maximum(codes, 0)] if blank.any() else False)
    if was_null is not None:
        null |= was_null
    if null.any():
        raise DatasetError(
            f"{fname}: {int(null.sum()):,} row(s) have an empty {role.replace('_id', '')} ID in column "
            f"'{wanted[role]}' (first at {_where(null, offset, unit)}). Remove or fill those rows."
        )
    return coded


def _repeated_pairs(inter: pd.DataFrame) -> np.ndarray:
    """Rows whose (user, item) pair came before (``DataFrame.duplicated``), on one integer per pair of codes."""
    users, items = inter["user_id"].cat.codes.to_numpy(), inter["item_id"].cat.codes.to_numpy()
    pairs = users.astype(np.int64) * len(inter["item_id"].cat.categories) + items
    ordered = np.sort(pairs)  # a sort finds out whether any pair repeats several times faster than a hash table
    if not (ordered[1:] == ordered[:-1]).any():
        return np.zeros(len(pairs), dtype=bool)
    return pd.Series(pairs).duplicated().to_numpy()


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
