"""Discover's search index: a vocabulary of the words in names, ids, params, tags and descriptions and a sparse
entity x word matrix; a query word is matched against the vocabulary with rapidfuzz (typos: Indel ratio; partial
words: prefix and substring), so a query costs a few vectorised operations over the vocabulary, not a string
comparison per entity. Ranking is match x usage x recency."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

KINDS = ("dataset", "model", "version", "run", "experiment", "person")


KIND_TITLES = {
    "dataset": "Datasets",
    "model": "Registered models",
    "version": "Model versions",
    "run": "Runs",
    "experiment": "Experiments",
    "person": "People",
}


# the query parameter each kind's detail view is opened with (/discover?dataset=<digest>, ?model=<name>, ...)
KIND_PARAMS = {
    "dataset": "dataset",
    "model": "model",
    "version": "model",
    "run": "run",
    "experiment": "experiment",
    "person": "user",
}


_MAX_QUERY_WORDS = 8


_MAX_VALUE_CHARS = 200  # longer param/tag values (a sweep's search space JSON) are not words anyone searches for


_WORD = re.compile(r"[\w.\-]+")


_PART = re.compile(r"[^\W_]+")


def words(text: object) -> list[str]:
    """The searchable words of a text: each run of letters/digits, plus the whole compound when it has several
    (``movielens-100k`` gives ``movielens``, ``100k`` and ``movielens-100k``; ``0.05`` stays one word too)."""
    out: list[str] = []
    for compound in _WORD.findall(str(text).lower()):
        parts = _PART.findall(compound)
        out.extend(parts)
        if len(parts) != 1 or parts[0] != compound:
            out.append(compound.strip(".-"))
    return [w for w in out if w]


def query_words(query: str) -> list[str]:
    """A query's words: its whitespace-separated compounds (each matched against every word of the index)."""
    found = [w.strip(".-") for w in _WORD.findall(str(query).lower())]
    return list(dict.fromkeys(w for w in found if w))[:_MAX_QUERY_WORDS]


class _IndexBuilder:
    """Collects (entity row, word id, field weight) triples, one vectorised step per field."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self._words: dict[str, list[int]] = {}
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []

    def _ids(self, value: str) -> list[int]:
        ids = self._words.get(value)
        if ids is None:
            ids = [self.vocab.setdefault(w, len(self.vocab)) for w in dict.fromkeys(words(value))]
            self._words[value] = ids
        return ids

    def add(self, rows: np.ndarray, values: Sequence[object] | pd.Series, weight: float) -> None:
        """Index ``values[i]`` (text; None/NaN skipped) as words of entity ``rows[i]``."""
        series = pd.Series(list(values) if not isinstance(values, pd.Series) else values.to_numpy(), dtype=object)
        present = series.notna().to_numpy() & series.astype(str).str.len().between(1, _MAX_VALUE_CHARS).to_numpy()
        if not present.any():
            return
        rows = np.asarray(rows)[present]
        codes, uniques = pd.factorize(series[present].astype(str))
        per_value = [self._ids(u) for u in uniques]
        lengths = np.fromiter((len(x) for x in per_value), dtype=np.int64, count=len(per_value))
        flat = np.fromiter(itertools.chain.from_iterable(per_value), dtype=np.int64, count=int(lengths.sum()))
        starts = np.concatenate([[0], np.cumsum(lengths)])[codes]
        counts = lengths[codes]
        total = int(counts.sum())
        if not total:
            return
        before = np.cumsum(counts) - counts
        self.rows.append(np.repeat(rows, counts))
        self.cols.append(flat[np.repeat(starts - before, counts) + np.arange(total)])
        self.weights.append(np.full(total, weight, dtype=np.float32))

    def matrix(self, n_rows: int) -> sparse.csc_matrix:
        """Entity x word, the best field weight where an entity has the word (duplicates keep their maximum)."""
        if not self.rows:
            return sparse.csc_matrix((n_rows, max(len(self.vocab), 1)), dtype=np.float32)
        rows, cols, data = (np.concatenate(x) for x in (self.rows, self.cols, self.weights))
        order = np.lexsort((-data, cols, rows))
        rows, cols, data = rows[order], cols[order], data[order]
        first = np.ones(len(rows), dtype=bool)
        first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
        shape = (n_rows, len(self.vocab))
        return sparse.csc_matrix((data[first], (rows[first], cols[first])), shape=shape, dtype=np.float32)


def word_scores(query_word: str, vocab: np.ndarray) -> np.ndarray:
    """How well ``query_word`` matches each vocabulary word, 0..1 (0 below the cut-off): rapidfuzz's Indel ratio
    for typos (stricter for short words, where one letter makes another word), 0.95 for a word it begins,
    0.85 for a word it is inside of (partial words: ``movielen``, ``lens``)."""
    from rapidfuzz import fuzz, process

    if not len(vocab):
        return np.zeros(0, dtype=np.float32)
    ratio = process.cdist([query_word], vocab, scorer=fuzz.ratio, dtype=np.uint8)[0].astype(np.float32)
    cutoff = 90 if len(query_word) <= 4 else 80
    ratio[ratio < cutoff] = 0
    if len(query_word) >= 2:
        ratio = np.maximum(ratio, np.where(np.char.startswith(vocab, query_word), 95, 0))
    if len(query_word) >= 3:
        ratio = np.maximum(ratio, np.where(np.char.find(vocab, query_word) >= 0, 85, 0))
    return ratio / 100


@dataclass(frozen=True, eq=False)
class SearchIndex:
    """Entities (``kind``, ``key``, ``title``, ``subtitle``, ``usage``, ``last_used``, ``weight``) and their words."""

    entries: pd.DataFrame
    vocab: np.ndarray
    matrix: sparse.csc_matrix

    def search(self, query: str) -> pd.DataFrame:
        """Entities that match every word of ``query`` (each fuzzily), best first within each kind: ``match`` is
        the mean word match (0..1), ``score`` = match³ x ``weight`` (usage x recency), so a close match of a
        little-used entity still beats a loose match of a popular one."""
        found = query_words(query)
        empty = self.entries.iloc[0:0].assign(match=pd.Series(dtype=float), score=pd.Series(dtype=float))
        if not found or self.entries.empty:
            return empty
        total = np.zeros(len(self.entries), dtype=np.float32)
        matched = np.ones(len(self.entries), dtype=bool)
        for word in found:
            scores = word_scores(word, self.vocab)
            hits = np.flatnonzero(scores)
            if not hits.size:
                return empty
            best = self.matrix[:, hits].multiply(scores[hits][None, :]).tocsr().max(axis=1)
            best = np.asarray(best.todense()).ravel()
            matched &= best > 0
            total += best
        if not matched.any():
            return empty
        match = total / len(found)
        out = self.entries[matched].assign(match=match[matched])
        out["score"] = out["match"] ** 3 * out["weight"]
        return _by_kind(out, "score")

    def popular(self, per_kind: int = 5) -> pd.DataFrame:
        """The landing state, as Amundsen's popular tables: the most used (usage x recency) entities of each kind."""
        out = self.entries.assign(match=np.nan, score=self.entries["weight"])
        return _by_kind(out, "score").groupby("kind", sort=False).head(per_kind).reset_index(drop=True)


def _by_kind(frame: pd.DataFrame, score: str) -> pd.DataFrame:
    order = {k: i for i, k in enumerate(KINDS)}
    ranked = frame.assign(_kind=frame["kind"].map(order))
    ranked = ranked.sort_values(["_kind", score, "title"], ascending=[True, False, True], kind="stable")
    return ranked.drop(columns="_kind").reset_index(drop=True)


def _weight(usage: pd.Series, last_used: pd.Series, now: pd.Timestamp) -> pd.Series:
    """Usage (log-damped) x recency (half-life 30 days, never below 0.6: an old, well-used dataset stays found)."""
    age_days = ((now - pd.to_datetime(last_used, utc=True)).dt.total_seconds() / 86400).fillna(365).clip(lower=0)
    recency = 0.6 + 0.4 * np.power(0.5, age_days.to_numpy(dtype=float) / 30)
    return pd.Series((1 + np.log1p(usage.to_numpy(dtype=float))) * recency, index=usage.index)
