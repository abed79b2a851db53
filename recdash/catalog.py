"""Discover: one search box and a detail view per dataset, model, run, experiment and person, over what the
tracking store already records (Amundsen's idea: finding the right data and model is the slow part, and what
one person knows should be findable by others).

:func:`build` turns the runs frame of :mod:`recdash.tracking`, the experiments and a registry
:func:`~recdash.registry.snapshot` into a :class:`Catalog`: one row per entity with its usage (runs per dataset,
versions and aliases per model, runs per person) and a :class:`SearchIndex`. The index keeps a vocabulary of the
words in names, ids, params, tags and descriptions and a sparse entity x word matrix; a query word is matched
against the vocabulary with rapidfuzz (typos: Indel ratio; partial words: prefix and substring), so a query costs
a few vectorised operations over the vocabulary, not a string comparison per entity. Ranking is match x usage x
recency. The entity views (dataset profile and history, leaderboard, model card with badges and lineage) are
plain functions returning frames and small dataclasses. No Streamlit here.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from recdash import annotations, comparison, registry

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
NOTE_TAG = annotations.NOTE_TAG
KEY_METRICS = (
    "test_ndcg_at_10",
    "test_recall_at_10",
    "test_precision_at_10",
    "test_map_at_10",
    "test_mrr_at_10",
    "test_hit_rate_at_10",
    "test_coverage_at_10",
)
BASELINE = "baseline_"
_LINEAGE_COUNTS = ("dataset_rows", "dataset_users", "dataset_items")
_MAX_QUERY_WORDS = 8
_MAX_VALUE_CHARS = 200  # longer param/tag values (a sweep's search space JSON) are not words anyone searches for
_WORD = re.compile(r"[\w.\-]+")
_PART = re.compile(r"[^\W_]+")
# tag keys whose values are bookkeeping, not words people search for
_SKIP_TAG_PREFIXES = (
    "mlflow.",
    "recdash.pid",
    "recdash.host",
    "recdash.proc",
    "recdash.epochs",
    "recdash.version",
    "recdash.sweep_run_id",
    "recdash.created_by",
    "recdash.job",
)


class NotFound(LookupError):
    """A detail view was asked for something the store does not have; the message names it."""


# ------------------------------------------------------------------------------------------------ the index


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


# ------------------------------------------------------------------------------------------------ the catalog


@dataclass(frozen=True, eq=False)
class Catalog:
    """Every entity of a store as frames, plus the search index over them.

    ``runs``: the tracking runs frame (active runs) with ``ds_name``, ``ds_digest``, ``data_group``, ``label``;
    ``datasets``: one row per digest; ``models`` / ``versions``: the registry with owners and source runs;
    ``experiments``; ``people``. ``notes`` say what could not be read (e.g. a store without a registry)."""

    runs: pd.DataFrame
    experiments: pd.DataFrame
    datasets: pd.DataFrame
    models: pd.DataFrame
    versions: pd.DataFrame
    people: pd.DataFrame
    index: SearchIndex
    notes: tuple[str, ...] = field(default=())

    def run(self, run_id: str) -> pd.Series:
        rows = self.runs[self.runs["run_id"] == run_id]
        if rows.empty:
            raise NotFound(f"No run {run_id!r} in this store (it may be deleted, or the link is from another store).")
        return rows.iloc[0]

    def dataset(self, digest: str) -> pd.Series:
        rows = self.datasets[self.datasets["digest"] == digest]
        if rows.empty:
            raise NotFound(f"No run in this store was trained on a dataset with digest {digest!r}.")
        return rows.iloc[0]

    def model(self, name: str) -> pd.Series:
        rows = self.models[self.models["name"] == name]
        if rows.empty:
            raise NotFound(f"No registered model named {name!r} in this store.")
        return rows.iloc[0]

    def experiment(self, experiment_id: str) -> pd.Series:
        rows = self.experiments[self.experiments["experiment_id"] == experiment_id]
        if rows.empty:
            raise NotFound(f"No experiment with id {experiment_id!r} in this store.")
        return rows.iloc[0]

    def person(self, user: str) -> pd.Series:
        rows = self.people[self.people["user"] == user]
        if rows.empty:
            raise NotFound(f"Nobody called {user!r} has runs or models in this store.")
        return rows.iloc[0]


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series(None, index=frame.index, dtype=object)


def _first_number(values: pd.Series) -> float | None:
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    return float(numbers.iloc[0]) if len(numbers) else None


def build(
    runs: pd.DataFrame,
    experiments: pd.DataFrame,
    models: pd.DataFrame | None = None,
    versions: pd.DataFrame | None = None,
    notes: Sequence[str] = (),
    now: pd.Timestamp | None = None,
) -> Catalog:
    """The catalog of a store: ``runs`` as :class:`recdash.tracking.RunsLoader` loads them (deleted runs are left
    out), ``experiments`` as :func:`recdash.tracking.list_experiments`, the registry as
    :func:`recdash.registry.snapshot` (None: no registry)."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    if "lifecycle_stage" in runs.columns:
        runs = runs[runs["lifecycle_stage"].astype(str) != "deleted"]
    runs = runs.reset_index(drop=True)
    identity = comparison.dataset_identity(runs)
    labels = comparison.run_labels(runs)
    runs = runs.assign(
        ds_name=identity["name"].to_numpy(),
        ds_digest=identity["digest"].to_numpy(),
        data_group=comparison.data_groups(runs).to_numpy(),
        label=[labels[str(r)] for r in runs["run_id"]],
    )
    if "experiment" not in runs.columns:
        runs["experiment"] = None
    experiments = experiments[experiments["lifecycle_stage"].astype(str) != "deleted"].copy()
    experiments["experiment_id"] = experiments["experiment_id"].astype(str)
    if "tags" not in experiments.columns:
        experiments["tags"] = [{} for _ in range(len(experiments))]
    experiments["description"] = [t.get(NOTE_TAG, "") for t in experiments["tags"]]
    models = models if models is not None else pd.DataFrame(columns=registry.MODEL_COLUMNS)
    versions = versions if versions is not None else pd.DataFrame(columns=registry.VERSION_COLUMNS)
    datasets = _datasets(runs, experiments)
    versions = _versions(versions, runs, datasets)
    models = _models(models, versions)
    people = _people(runs, models)
    index = _index(runs, experiments, datasets, models, versions, people, now)
    return Catalog(runs, experiments.reset_index(drop=True), datasets, models, versions, people, index, tuple(notes))


def _datasets(runs: pd.DataFrame, experiments: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset digest: its name (the most common), runs, users, experiments, when it was first and
    last used, and the counts recdash logs with it (rows, users, items)."""
    columns = [
        "digest",
        "name",
        "family",
        "runs",
        "users",
        "experiment_ids",
        "first_used",
        "last_used",
        "rows",
        "n_users",
        "n_items",
        "source",
        "description",
        "tags",
    ]
    used = runs[runs["ds_digest"].notna()]
    if used.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    exp_tags = dict(zip(experiments["experiment_id"], experiments["tags"], strict=True))
    for digest, group in used.groupby("ds_digest", sort=False):
        name = str(group["ds_name"].dropna().mode().iloc[0]) if group["ds_name"].notna().any() else str(digest)
        exp_ids = tuple(sorted(group["experiment_id"].astype(str).unique()))
        description, tags = annotations.dataset_annotations((exp_tags.get(e, {}) for e in exp_ids), name)
        counts = [_first_number(_col(group, f"params.{c}")) for c in _LINEAGE_COUNTS]
        source = _col(group, "params.dataset_source").dropna()
        source_text = str(source.iloc[0]) if len(source) else None
        rows.append(
            (
                str(digest),
                name,
                _family(name, source_text),
                len(group),
                int(group["user"].nunique()),
                exp_ids,
                group["start_time"].min(),
                group["start_time"].max(),
                *counts,
                source_text,
                description,
                tags,
            )
        )
    return pd.DataFrame(rows, columns=columns)


def _family(name: str, source: str | None) -> str:
    """What makes two digests versions of one dataset: the same name (a file that changed keeps its name), except
    for generated data, where other generator options make another dataset, not a newer version of it."""
    if source and source.startswith("generated("):
        return f"{name} {source}"
    return name


def _versions(versions: pd.DataFrame, runs: pd.DataFrame, datasets: pd.DataFrame) -> pd.DataFrame:
    """Versions with their source run's label, user, experiment, dataset and data group (None when the run is
    gone or in another store)."""
    by_run = runs.set_index("run_id")
    known = versions["run_id"].isin(by_run.index)
    out = versions.copy()
    for column, source in (
        ("run_label", "label"),
        ("user", "user"),
        ("experiment", "experiment"),
        ("ds_name", "ds_name"),
        ("ds_digest", "ds_digest"),
        ("data_group", "data_group"),
    ):
        out[column] = [by_run.at[r, source] if ok else None for r, ok in zip(out["run_id"], known, strict=True)]
    return out.reset_index(drop=True)


def _models(models: pd.DataFrame, versions: pd.DataFrame) -> pd.DataFrame:
    """Registered models with their owner (an ``owner`` tag, else who trained the first version), number of
    versions and aliases."""
    out = models.copy()
    counts = versions.groupby("name").size()
    first_user = versions.sort_values("version").groupby("name")["user"].first()
    out["n_versions"] = out["name"].map(counts).fillna(0).astype(int)
    out["n_aliases"] = [len(a) for a in out["aliases"]]
    out["owner"] = [
        (tags.get("owner") or first_user.get(name) or None) for name, tags in zip(out["name"], out["tags"], strict=True)
    ]
    return out.reset_index(drop=True)


def _people(runs: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    columns = ["user", "runs", "experiments", "datasets", "models", "last_active"]
    users = runs[runs["user"].notna() & (runs["user"].astype(str) != "")]
    rows: dict[str, list[Any]] = {}
    for user, group in users.groupby("user", sort=False):
        rows[str(user)] = [
            str(user),
            len(group),
            int(group["experiment_id"].nunique()),
            int(group["ds_digest"].nunique()),
            0,
            group["start_time"].max(),
        ]
    for owner in models["owner"].dropna():
        rows.setdefault(str(owner), [str(owner), 0, 0, 0, 0, pd.NaT])[4] += 1
    return pd.DataFrame(list(rows.values()), columns=columns)


def _index(
    runs: pd.DataFrame,
    experiments: pd.DataFrame,
    datasets: pd.DataFrame,
    models: pd.DataFrame,
    versions: pd.DataFrame,
    people: pd.DataFrame,
    now: pd.Timestamp,
) -> SearchIndex:
    """Entities in KINDS order and the words each is found by (field weights: names and ids 1.0, descriptions
    0.9, owners and places 0.8, params and tags 0.7, the kind's own name 0.5)."""
    frames: list[pd.DataFrame] = []
    builder = _IndexBuilder()
    offset = 0

    def add(kind: str, frame: pd.DataFrame, fields: Iterable[tuple[pd.Series | Sequence[object], float]]) -> None:
        nonlocal offset
        rows = np.arange(offset, offset + len(frame))
        builder.add(rows, [kind] * len(frame), 0.5)
        for values, weight in fields:
            builder.add(rows, values, weight)
        frames.append(frame.assign(kind=kind))
        offset += len(frame)

    ds = datasets
    add(
        "dataset",
        pd.DataFrame(
            {
                "key": ds["digest"],
                "title": ds["name"],
                "subtitle": [
                    f"digest {d} · {n} run{'s' * (n != 1)} · {u} user{'s' * (u != 1)}"
                    for d, n, u in zip(ds["digest"], ds["runs"], ds["users"], strict=True)
                ],
                "usage": ds["runs"].astype(float),
                "last_used": ds["last_used"],
            }
        ),
        [(ds["name"], 1.0), (ds["digest"], 1.0), (ds["description"], 0.9), (ds["source"], 0.6)],
    )

    md = models
    trained_on = (
        versions.groupby("name").apply(
            lambda g: " ".join(dict.fromkeys(str(x) for x in [*g["ds_name"], *g["ds_digest"]] if isinstance(x, str))),
            include_groups=False,
        )
        if len(versions)
        else pd.Series(dtype=object)
    )
    add(
        "model",
        pd.DataFrame(
            {
                "key": md["name"],
                "title": md["name"],
                "subtitle": [
                    _model_subtitle(o, n, a)
                    for o, n, a in zip(md["owner"], md["n_versions"], md["aliases"], strict=True)
                ],
                "usage": (md["n_versions"] + 2 * md["n_aliases"]).astype(float),
                "last_used": md["updated"],
            }
        ),
        [
            (md["name"], 1.0),
            (md["description"], 0.9),
            (md["owner"], 0.8),
            ([" ".join(a) for a in md["aliases"]], 0.8),
            ([" ".join(t.values()) for t in md["tags"]], 0.7),
            (md["name"].map(trained_on), 0.7),
        ],
    )

    vs = versions
    add(
        "version",
        pd.DataFrame(
            {
                "key": [f"{n}/{v}" for n, v in zip(vs["name"], vs["version"], strict=True)],
                "title": [f"{n} v{v}" for n, v in zip(vs["name"], vs["version"], strict=True)],
                "subtitle": [
                    " · ".join(x for x in (", ".join(a), f"run {r}" if r else "", d or "") if x)
                    for a, r, d in zip(vs["aliases"], vs["run_label"], vs["ds_name"], strict=True)
                ],
                "usage": pd.Series([float(len(a)) for a in vs["aliases"]], index=vs.index),
                "last_used": vs["created"],
            }
        ),
        [
            (vs["name"], 1.0),
            ([f"v{v}" for v in vs["version"]], 1.0),
            ([" ".join(a) for a in vs["aliases"]], 0.9),
            (vs["description"], 0.9),
            (vs["run_label"], 0.7),
            (vs["ds_name"], 0.7),
            (vs["ds_digest"], 0.7),
        ],
    )

    registered = versions.groupby("run_id").size() if len(versions) else pd.Series(dtype=int)
    run_fields: list[tuple[pd.Series | Sequence[object], float]] = [
        (runs["label"], 1.0),
        (runs["run_id"], 1.0),
        (_col(runs, "tags." + NOTE_TAG), 0.9),
        (runs["experiment"], 0.8),
        (runs["user"], 0.8),
        (runs["ds_name"], 0.8),
        (runs["ds_digest"], 0.8),
    ]
    for column in runs.columns:
        user_tag = column.startswith("tags.") and not column[5:].startswith(_SKIP_TAG_PREFIXES)
        if column.startswith("params.") or user_tag:
            run_fields.append((runs[column], 0.7))
    add(
        "run",
        pd.DataFrame(
            {
                "key": runs["run_id"],
                "title": runs["label"],
                "subtitle": [
                    " · ".join(str(x) for x in parts if isinstance(x, str) and x)
                    for parts in zip(runs["experiment"], runs["user"], runs["ds_name"], runs["status"], strict=True)
                ],
                "usage": runs["run_id"].map(registered).fillna(0).astype(float),
                "last_used": runs["start_time"],
            }
        ),
        run_fields,
    )

    ex = experiments
    add(
        "experiment",
        pd.DataFrame(
            {
                "key": ex["experiment_id"],
                "title": ex["name"],
                "subtitle": [f"{n} run{'s' * (n != 1)}" for n in ex["run_count"]],
                "usage": ex["run_count"].astype(float),
                "last_used": ex["last_update"],
            }
        ),
        [
            (ex["name"], 1.0),
            (ex["experiment_id"], 1.0),
            (ex["description"], 0.9),
            (
                [
                    " ".join(v for k, v in t.items() if not k.startswith(("mlflow.", annotations.DATASET_PREFIX)))
                    for t in ex["tags"]
                ],
                0.7,
            ),
        ],
    )

    pp = people
    add(
        "person",
        pd.DataFrame(
            {
                "key": pp["user"],
                "title": pp["user"],
                "subtitle": [
                    f"{r} run{'s' * (r != 1)} · {m} model{'s' * (m != 1)}"
                    for r, m in zip(pp["runs"], pp["models"], strict=True)
                ],
                "usage": (pp["runs"] + 3 * pp["models"]).astype(float),
                "last_used": pp["last_active"],
            }
        ),
        [(pp["user"], 1.0), (["user"] * len(pp), 0.5)],
    )

    entries = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    entries["last_used"] = pd.to_datetime(entries["last_used"], utc=True)
    entries["weight"] = _weight(entries["usage"], entries["last_used"], now)
    vocab = np.array(list(builder.vocab), dtype=str)
    return SearchIndex(entries, vocab, builder.matrix(len(entries)))


def _model_subtitle(owner: object, n_versions: int, aliases: Mapping[str, int]) -> str:
    parts = [f"{n_versions} version{'s' * (n_versions != 1)}"]
    parts += [f"{a} → v{v}" for a, v in sorted(aliases.items())]
    if isinstance(owner, str) and owner:
        parts.append(f"owner {owner}")
    return " · ".join(parts)


def link(kind: str, key: str) -> str:
    """The Discover URL (relative, with its query) of an entity's detail view."""
    from urllib.parse import urlencode

    if kind == "version":
        name, _, version = key.rpartition("/")
        return "discover?" + urlencode({"model": name, "version": version})
    return "discover?" + urlencode({KIND_PARAMS[kind]: key})


def with_links(found: pd.DataFrame) -> pd.DataFrame:
    """Search results for a table: title, subtitle and the link to each entity's view."""
    return found.assign(link=[link(k, str(v)) for k, v in zip(found["kind"], found["key"], strict=True)])


# ------------------------------------------------------------------------------------------------ dataset view


def digest_history(catalog: Catalog, digest: str) -> pd.DataFrame:
    """Every digest the dataset of ``digest`` has had (same name; for generated data also the same generator
    options), oldest first: when each was first and last used, its runs, the
    counts logged with it and how they changed from the previous digest (the data changed in between)."""
    family = catalog.dataset(digest)["family"]
    same = catalog.datasets[catalog.datasets["family"] == family].sort_values("first_used", kind="stable")
    out = same[["digest", "first_used", "last_used", "runs", "rows", "n_users", "n_items"]].reset_index(drop=True)
    for column in ("rows", "n_users", "n_items"):
        out[f"Δ {column}"] = out[column].astype(float).diff()
    out["latest"] = False
    if len(out):
        out.loc[out.index[-1], "latest"] = True
    return out


def newer_digest(catalog: Catalog, digest: object) -> str | None:
    """The latest digest of the dataset of ``digest`` when it is not ``digest`` (the data changed since), else None."""
    if not isinstance(digest, str) or not (catalog.datasets["digest"] == digest).any():
        return None
    history = digest_history(catalog, digest)
    if len(history) < 2:
        return None
    latest = str(history["digest"].iloc[-1])
    return latest if latest != digest else None


def runs_on(catalog: Catalog, digest: str) -> pd.DataFrame:
    return catalog.runs[catalog.runs["ds_digest"] == digest]


def metric_choices(runs: pd.DataFrame) -> list[str]:
    """Metrics a leaderboard can rank by: the model's own (not the baseline's), key test metrics first (nDCG@10
    leads), then other test metrics, then the rest."""
    names = [c[len("metrics.") :] for c in runs.columns if c.startswith("metrics.") and runs[c].notna().any()]
    names = [n for n in names if not n.startswith(BASELINE)]
    rank = {m: i for i, m in enumerate(KEY_METRICS)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), not n.startswith("test_"), n))


def leaderboard(runs: pd.DataFrame, metric: str, group: str | None = None) -> pd.DataFrame:
    """Runs ranked on ``metric`` within one data group (same digest and split: only like is ranked with like),
    best first, with their popularity baseline's value on the same metric when logged."""
    column = "metrics." + metric
    if group is not None:
        runs = runs[runs["data_group"] == group]
    if column not in runs.columns:
        return pd.DataFrame(columns=["rank", "run", "run_id", "model", "user", "experiment", metric, "baseline"])
    values = pd.Series(comparison.as_float(runs[column]), index=runs.index)
    ranked = runs.assign(_v=values)[values.notna()]
    ranked = ranked.sort_values("_v", ascending=registry.metric_lower_is_better(metric), kind="stable")
    model = _col(ranked, "params.model").fillna(_col(ranked, "tags.recdash.model"))
    baseline = _col(ranked, f"metrics.{BASELINE}{metric}")
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(ranked) + 1),
            "run": ranked["label"].to_numpy(),
            "run_id": ranked["run_id"].to_numpy(),
            "model": model.to_numpy(),
            "user": ranked["user"].to_numpy(),
            "experiment": ranked["experiment"].to_numpy(),
            metric: ranked["_v"].to_numpy(),
            "baseline": pd.to_numeric(baseline, errors="coerce").to_numpy(),
        }
    )


def top_users(runs: pd.DataFrame) -> pd.DataFrame:
    """Who trains on this data most, with their last run on it."""
    users = runs[runs["user"].notna()]
    if users.empty:
        return pd.DataFrame(columns=["user", "runs", "last_run"])
    out = users.groupby("user").agg(runs=("run_id", "size"), last_run=("start_time", "max")).reset_index()
    return out.sort_values(["runs", "last_run"], ascending=False, kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class LoggedDataset:
    """What MLflow recorded about a dataset when a run logged it as an input (no data needed)."""

    name: str
    digest: str
    source_type: str
    source: str
    schema: dict[str, Any] | None
    profile: dict[str, Any] | None


def logged_dataset(client: Any, run_id: str, digest: str) -> LoggedDataset | None:
    """The dataset input of ``run_id`` with ``digest`` (source, schema, profile), or None when the run logged none."""
    run = client.get_run(run_id)
    for dataset_input in getattr(run.inputs, "dataset_inputs", None) or []:
        d = dataset_input.dataset
        if d.digest == digest:
            return LoggedDataset(
                d.name, d.digest, d.source_type or "", _source_text(d.source), _json(d.schema), _json(d.profile)
            )
    return None


def _source_text(source: object) -> str:
    parsed = _json(source)
    if isinstance(parsed, dict):
        for key in ("uri", "url", "path"):
            if parsed.get(key):
                return str(parsed[key])
    return str(source or "")


def _json(text: object) -> Any:
    if not text:
        return None
    try:
        return json.loads(str(text))
    except ValueError:
        return None


def dataset_arguments(runs: pd.DataFrame) -> tuple[str, dict[str, Any]]:
    """How to load the data of these runs: ``load_dataset`` name and options from the first run with recdash's
    params (:func:`recdash.recommend.dataset_arguments`); raises ValueError when no run says."""
    from recdash.recommend import ContextError
    from recdash.recommend import dataset_arguments as from_params

    param_columns = [c for c in runs.columns if c.startswith("params.")]
    for _, row in runs.iterrows():
        params = {c[len("params.") :]: str(row[c]) for c in param_columns if isinstance(row[c], str)}
        try:
            return from_params(params)
        except ContextError:
            continue
    raise ValueError("no run on this data logged how to load it (recdash's 'dataset' params)")


def needs_download(name: str, options: Mapping[str, Any]) -> bool:
    """True when loading the data would download it (MovieLens-100K not yet in recdash's cache and no local path):
    the page then asks before starting a download that can take minutes."""
    from recdash.datasets import _resolve_cache_dir

    if name.strip().lower() not in ("movielens-100k", "ml-100k", "movielens") or options.get("path"):
        return False
    return not (_resolve_cache_dir(options.get("cache_dir")) / "movielens-100k" / "meta.json").is_file()


@dataclass(frozen=True, eq=False)
class Profile:
    """A dataset's shape: counts, density, activity distributions, the long tail, rating and time range."""

    interactions: int
    users: int
    items: int
    density: float
    per_user: pd.Series  # interactions per user
    per_item: pd.Series  # interactions per item, most popular first
    long_tail: pd.DataFrame  # share_of_items, share_of_interactions (cumulative, most popular first)
    ratings: tuple[float, float, int] | None  # min, max, distinct values; None for implicit (all 1.0)
    time_range: tuple[pd.Timestamp, pd.Timestamp] | None

    def summary(self) -> pd.DataFrame:
        """The profile as label/value rows, for a table."""
        head_items = int(np.searchsorted(self.long_tail["share_of_interactions"].to_numpy(), 0.5) + 1)
        rows = [
            ("interactions", f"{self.interactions:,}"),
            ("users", f"{self.users:,}"),
            ("items", f"{self.items:,}"),
            ("density", f"{self.density:.4%}"),
            ("interactions per user (median, max)", f"{self.per_user.median():g}, {self.per_user.max():,}"),
            ("interactions per item (median, max)", f"{self.per_item.median():g}, {self.per_item.max():,}"),
            ("items with half of all interactions", f"{head_items:,} ({head_items / max(self.items, 1):.1%})"),
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


def profile(interactions: pd.DataFrame) -> Profile:
    """Profile recdash's normalised interactions (``user_id``, ``item_id``, ``weight``, optional ``timestamp``)."""
    per_user = interactions["user_id"].value_counts()
    per_item = interactions["item_id"].value_counts()
    n, users, items = len(interactions), len(per_user), len(per_item)
    cumulative = per_item.to_numpy().cumsum() / max(n, 1)
    long_tail = pd.DataFrame(
        {"share_of_items": np.arange(1, items + 1) / max(items, 1), "share_of_interactions": cumulative}
    )
    weights = interactions["weight"].astype(float)
    ratings = None if weights.eq(1.0).all() else (float(weights.min()), float(weights.max()), int(weights.nunique()))
    time_range = None
    if "timestamp" in interactions.columns and interactions["timestamp"].notna().any():
        ts = pd.to_numeric(interactions["timestamp"], errors="coerce").dropna()
        unit = "ms" if ts.max() > 1e11 else "s"
        time_range = (pd.to_datetime(ts.min(), unit=unit, utc=True), pd.to_datetime(ts.max(), unit=unit, utc=True))
    density = n / (users * items) if users and items else 0.0
    return Profile(n, users, items, density, per_user, per_item, long_tail, ratings, time_range)


def preview(interactions: pd.DataFrame, items: pd.DataFrame | None, n: int = 10, seed: int = 0) -> pd.DataFrame:
    """``n`` sample rows (seeded, so the page does not reshuffle on every rerun) with the item titles."""
    sample = interactions.sample(min(n, len(interactions)), random_state=seed).reset_index(drop=True)
    if "timestamp" in sample.columns:
        ts = pd.to_numeric(sample["timestamp"], errors="coerce")
        sample["timestamp"] = pd.to_datetime(ts, unit="ms" if ts.max() > 1e11 else "s", utc=True)
    if items is not None and "title" in items.columns:
        titles = items.drop_duplicates("item_id").set_index("item_id")["title"]
        sample.insert(2, "title", sample["item_id"].astype(str).map(titles))
    return sample


# ------------------------------------------------------------------------------------------------ model card


@dataclass(frozen=True)
class Badge:
    label: str
    color: str  # one of st.badge's colours
    icon: str
    help: str = ""


def metrics_vs_baseline(run: pd.Series) -> pd.DataFrame:
    """The run's key test metrics next to its popularity baseline's (``baseline_test_*``, logged by every recdash
    training run on the same test split) and their ratio."""
    rows = []
    for metric in KEY_METRICS:
        value = run.get("metrics." + metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        base = run.get(f"metrics.{BASELINE}{metric}")
        base = float(base) if base is not None and not pd.isna(base) else math.nan
        ratio = float(value) / base if base and not math.isnan(base) else math.nan
        rows.append((metric, float(value), base, ratio))
    return pd.DataFrame(rows, columns=["metric", "model", "baseline", "ratio"])


def badges(catalog: Catalog, version: pd.Series) -> list[Badge]:
    """What a model card says at a glance about one version: its aliases, how it does against its baseline, stale
    data, missing test metrics."""
    out = []
    aliases = list(version["aliases"] or [])
    if registry.CHAMPION in aliases:
        out.append(Badge("champion", "green", ":material/trophy:", "The version the champion alias points to."))
    if registry.CHALLENGER in aliases:
        out.append(Badge("challenger", "orange", ":material/swords:", "The version the challenger alias points to."))
    run = catalog.runs[catalog.runs["run_id"] == version["run_id"]]
    if run.empty:
        out.append(Badge("source run not in this store", "gray", ":material/help:"))
        return out
    table = metrics_vs_baseline(run.iloc[0])
    if table.empty:
        out.append(Badge("no test metrics", "gray", ":material/block:", "The source run logged no test_* metric."))
    else:
        key = table.iloc[0]
        if not math.isnan(key["ratio"]):
            if abs(key["ratio"] - 1) < 0.005:
                out.append(Badge(f"matches its baseline ({key['metric']})", "gray", ":material/drag_handle:"))
            elif key["ratio"] > 1:
                label = f"beats its baseline by {key['ratio'] - 1:+.0%} ({key['metric']})"
                out.append(
                    Badge(
                        label,
                        "blue",
                        ":material/trending_up:",
                        "Test metric over the popularity baseline's on the same split.",
                    )
                )
            else:
                label = f"does not beat its baseline ({key['metric']} {key['ratio'] - 1:+.0%})"
                out.append(Badge(label, "red", ":material/trending_down:"))
    newer = newer_digest(catalog, version.get("ds_digest"))
    if newer is not None:
        out.append(
            Badge(
                "trained on an older version of its dataset",
                "violet",
                ":material/history:",
                f"{version['ds_name']} has newer data (digest {newer}) than this version was trained on "
                f"({version['ds_digest']}).",
            )
        )
    return out


def main_version(catalog: Catalog, name: str) -> pd.Series | None:
    """The version a card is about: the champion's, else the newest."""
    versions = catalog.versions[catalog.versions["name"] == name]
    if versions.empty:
        return None
    champion = versions[[registry.CHAMPION in (a or []) for a in versions["aliases"]]]
    return (champion if len(champion) else versions.sort_values("version", ascending=False)).iloc[0]


def _dot_text(text: object) -> str:
    """A DOT string label: quotes and backslashes escaped (labels are data; no HTML labels are used)."""
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")[:60]


def lineage_dot(catalog: Catalog, name: str, max_versions: int = 6) -> str:
    """The model's lineage as Graphviz DOT, left to right: dataset digest → run → logged model → registered
    version → alias, for its newest versions (and every version an alias points to)."""
    versions = catalog.versions[catalog.versions["name"] == name].sort_values("version", ascending=False)
    aliased = versions[[bool(a) for a in versions["aliases"]]]
    shown = pd.concat([aliased, versions.head(max_versions)]).drop_duplicates("version")
    lines = [
        "digraph lineage {",
        "rankdir=LR;",
        'node [shape=box, style="rounded,filled", fontname="sans-serif", '
        'fontsize=11, fillcolor="#f0f2f6", color="#bbbbbb"];',
        'edge [color="#888888"];',
    ]
    nodes: dict[str, str] = {}

    def node(key: str, label: str, fill: str) -> str:
        if key not in nodes:
            nodes[key] = f"n{len(nodes)}"
            lines.append(f'{nodes[key]} [label="{_dot_text(label)}", fillcolor="{fill}"];')
        return nodes[key]

    edges: list[tuple[str, str]] = []
    for _, v in shown.iterrows():
        version = node(f"v:{v['version']}", f"{name} v{v['version']}", "#d5e8d4")
        upstream = version
        model_key = v["model_id"] or (v["source"] if isinstance(v["source"], str) else None)
        if model_key:
            logged = node(f"m:{model_key}", f"logged model {str(model_key).removeprefix('models:/')[:20]}", "#fff2cc")
            edges.append((logged, version))
            upstream = logged
        if v["run_id"]:
            run = node(f"r:{v['run_id']}", f"run {v['run_label'] or str(v['run_id'])[:8]}", "#dae8fc")
            edges.append((run, upstream))
            if v["ds_digest"]:
                label = f"{v['ds_name'] or 'dataset'} {v['ds_digest'][:12]}"
                edges.append((node(f"d:{v['ds_digest']}", label, "#e1d5e7"), run))
        for alias in v["aliases"] or []:
            edges.append((version, node(f"a:{alias}", f"@{alias}", "#f8cecc")))
    lines += [f"{a} -> {b};" for a, b in dict.fromkeys(edges)]
    lines.append("}")
    return "\n".join(lines)


def serve_command(name: str, aliases: Iterable[str], version: int | None = None) -> str:
    """``mlflow models serve`` for the model: by its champion alias when it has one, else by version."""
    target = f"@{registry.CHAMPION}" if registry.CHAMPION in set(aliases) else f"/{version}"
    return f"mlflow models serve -m 'models:/{name}{target}' --env-manager local -p 5001"


def version_table(catalog: Catalog, name: str) -> pd.DataFrame:
    """The model's versions, newest first: aliases, badges (as text), source run, dataset and key metric."""
    versions = catalog.versions[catalog.versions["name"] == name].sort_values("version", ascending=False)
    runs = catalog.runs.set_index("run_id")
    key = [
        runs.at[r, "metrics." + KEY_METRICS[0]]
        if r in runs.index and "metrics." + KEY_METRICS[0] in runs.columns
        else math.nan
        for r in versions["run_id"]
    ]
    return pd.DataFrame(
        {
            "version": versions["version"].to_numpy(),
            "aliases": [", ".join(a) for a in versions["aliases"]],
            "badges": [
                " · ".join(
                    b.label for b in badges(catalog, v) if b.label not in (registry.CHAMPION, registry.CHALLENGER)
                )
                for _, v in versions.iterrows()
            ],
            "run": versions["run_label"].to_numpy(),
            "run_id": versions["run_id"].to_numpy(),
            "dataset": versions["ds_name"].to_numpy(),
            "digest": versions["ds_digest"].to_numpy(),
            KEY_METRICS[0]: key,
            "created": versions["created"].to_numpy(),
            "description": versions["description"].to_numpy(),
        }
    )


# ------------------------------------------------------------------------------------------------ people, runs


def person_runs(catalog: Catalog, user: str) -> pd.DataFrame:
    return catalog.runs[catalog.runs["user"] == user]


def person_models(catalog: Catalog, user: str) -> pd.DataFrame:
    """Registered models the person owns (owner tag, else trained the first version) or trained a version of."""
    trained = set(catalog.versions.loc[catalog.versions["user"] == user, "name"])
    mask = (catalog.models["owner"] == user) | catalog.models["name"].isin(trained)
    return catalog.models[mask]


def datasets_of(catalog: Catalog, runs: pd.DataFrame) -> pd.DataFrame:
    """The datasets ``runs`` used, with how many of those runs used each."""
    counts = runs["ds_digest"].dropna().value_counts()
    found = catalog.datasets[catalog.datasets["digest"].isin(counts.index)]
    return found.assign(used_by=found["digest"].map(counts)).sort_values("used_by", ascending=False)


def run_tags(run: pd.Series) -> dict[str, str]:
    """A run's tags people set (not MLflow's or recdash's own bookkeeping, not the description)."""
    return {
        key[5:]: str(value)
        for key, value in run.items()
        if str(key).startswith("tags.")
        and isinstance(value, str)
        and not str(key)[5:].startswith(_SKIP_TAG_PREFIXES)
        and not str(key)[5:].startswith(("recdash.",))
    }
