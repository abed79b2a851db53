"""Discover's entities: one frame per kind (datasets, registered models and versions, runs, experiments, people)
with its usage, built from what the tracking store already records, and the search index over them.

:func:`build` turns the runs frame of :mod:`recdash.tracking`, the experiments and a registry
:func:`~recdash.registry.snapshot` into a :class:`Catalog` (Amundsen's idea: finding the right data and model is
the slow part, and what one person knows should be findable by others). The entity views that pages show live in
:mod:`recdash.views.discover`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recdash import annotations, comparison, contract, registry
from recdash.catalog.index import KIND_PARAMS, SearchIndex, _IndexBuilder, _weight
from recdash.errors import UserError

NOTE_TAG = contract.MLFLOW_NOTE
_LINEAGE_COUNTS = ("dataset_rows", "dataset_users", "dataset_items")


class NotFound(UserError, LookupError):
    """A detail view was asked for something the store does not have; the message names it."""


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
        user_tag = column.startswith("tags.") and not column[5:].startswith(contract.BOOKKEEPING_TAG_PREFIXES)
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
