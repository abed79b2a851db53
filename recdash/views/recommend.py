"""The Recommend page's tables and texts as data: a model's name on the page, a user's history and attributes, the
recommendations decorated with titles, popularity and held-out hits, and how a model serves a new user."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from recdash import contract, tracking
from recdash.data.features import FeatureEncoding
from recdash.evaluation import paired
from recdash.evaluation.per_user import NOT_LOGGED
from recdash.models import Recommender
from recdash.recommend import is_fallback, with_metadata


def data_groups_in_order(sources: pd.DataFrame) -> list[str]:
    """The data groups of :func:`recdash.recommend.model_sources` (newest model first), the newest group first:
    models are picked within one, since their key metrics compare only there."""
    return list(dict.fromkeys(str(g) for g in sources["data_group"]))


def data_group_label(group: str, sources: pd.DataFrame) -> str:
    """A data group as a choice: its full name and how many models it holds."""
    n = int((sources["data_group"] == group).sum())
    return f"{group} ({n} model{'s' if n != 1 else ''})"


def model_label(model_uri: str, tracking_uri: str | None = None) -> str:
    """What a model is called on the page: its run (label, short ID) and experiment, and for a registered model
    also its name, version and aliases -- ``models:/m-a6002…`` alone does not tell two models apart.

    ``"recs v3 (challenger) · run ml-warp (186019b9) · experiment shots"``; the URI itself when the store cannot
    say more (a foreign URI, a deleted run, a store that refuses the read).
    """
    uri = (model_uri or "").strip()
    client = tracking.client(tracking_uri)
    parts: list[str] = []
    run_id: str | None = None
    artifact: str | None = None
    try:
        rest = uri.removeprefix("models:/")
        if uri.startswith("runs:/"):
            run_id, _, artifact = uri.removeprefix("runs:/").partition("/")
        elif uri.startswith("models:/") and "@" in rest:
            name, _, alias = rest.rpartition("@")
            mv = client.get_model_version_by_alias(name, alias)
            parts.append(f"{name}@{alias} (v{mv.version})")
            run_id = mv.run_id
        elif uri.startswith("models:/") and "/" in rest:
            name, _, version = rest.rpartition("/")
            mv = client.get_model_version(name, version)
            aliases = sorted(getattr(mv, "aliases", None) or [])
            parts.append(f"{name} v{mv.version}" + (f" ({', '.join(aliases)})" if aliases else ""))
            run_id = mv.run_id
        elif uri.startswith("models:/"):
            logged = client.get_logged_model(rest)
            run_id, artifact = logged.source_run_id, logged.name
        else:
            return uri
    except Exception:  # the label is a courtesy: loading reports real problems
        return uri
    if run_id:
        try:
            run = client.get_run(run_id)
            experiment = client.get_experiment(run.info.experiment_id).name
        except Exception:  # a registered version whose run is gone still has a name; a bare run URI does not
            if not parts:
                return uri
            parts.append(f"run {run_id[:8]}")
        else:
            label = contract.run_label(run.info.run_name, run_id)
            parts.append(f"run {label}" + (f" ({run_id[:8]})" if label != run_id[:8] else ""))
            parts.append(f"experiment {experiment}")
    if artifact and artifact != "model":
        parts.append(f"model {artifact}")
    return " · ".join(parts) or uri


def cold_start_note(rec: Recommender | None) -> tuple[str, bool]:
    """How the model serves a new user, in a sentence, and whether their attributes change the list: the
    cold-start strategy and what it was chosen on (a popular list chosen on no cold users says so, and how to get
    a validated choice)."""
    if rec is None:
        return "Only recdash models say which user attributes they take; this one can be asked for known users.", False
    if rec.user_encoding is None:
        return (
            "This model was trained without user features, so a new user gets the popular list whatever their "
            "attributes (train rankfm with user features for attribute-based recommendations).",
            False,
        )
    info = rec.cold_start or {}
    strategy = str(info.get("strategy", "popular"))
    chosen_on = str(info.get("chosen_on") or "nothing recorded")
    value = info.get("value")
    if isinstance(value, int | float) and math.isfinite(value):
        chosen_on += f" = {value:.4f}"
    if strategy == "features":
        return (
            f"Cold-start strategy features: a new user is ranked by their attributes alone (chosen on {chosen_on}).",
            True,
        )
    if strategy == "blend":
        weight = info.get("blend_weight")
        share = f", {float(weight):.0%} popularity" if isinstance(weight, int | float) else ""
        return (
            f"Cold-start strategy blend: a new user's attribute scores mixed with popularity{share} (chosen on "
            f"{chosen_on}).",
            True,
        )
    if chosen_on.startswith("not validated"):
        return (
            "Cold-start strategy popular: the attributes below do not change the list. It was not validated: the "
            "model was trained on a split without cold users, so nothing chose between its features and popularity. "
            "Train it on the cold-users split to let validation choose.",
            False,
        )
    return (
        f"Cold-start strategy popular (chosen on {chosen_on}): the attributes did no better than popularity for "
        "the validation's new users, so the attributes below do not change the list.",
        False,
    )


def decode_features(encoding: FeatureEncoding, x: np.ndarray) -> dict[str, str]:
    """An encoded row back to readable values (one-hot -> the value, multi-hot -> ``a|b``, bucket -> its label,
    standardised number -> the number); "unknown" where the row encodes nothing."""
    out: dict[str, str] = {}
    at = 0
    for column in encoding.columns:
        block = np.asarray(x[at : at + column.width], dtype=np.float64)
        at += column.width
        if column.kind == "number":
            out[column.name] = f"{block[0] * column.std + column.mean:.4g}"
            continue
        on = [column.values[j] for j in np.flatnonzero(block > 0.5)]
        out[column.name] = "|".join(on) if on else "unknown"
    return out


def user_attributes(rec: Recommender | None, user_id: Any, users: pd.DataFrame | None = None) -> dict[str, str]:
    """A known user's attribute values as the model was trained on them ({} for a model without user features).

    The raw values from the dataset's users table (age in years) when it has the model's attribute columns and
    they encode to the row the model holds; otherwise the model's encoded row decoded (what an uploaded table
    said, e.g.)."""
    encoding = rec.user_encoding if rec is not None else None
    if rec is None or encoding is None:
        return {}
    idx = int(rec.user_index([str(user_id)])[0])
    stored = getattr(rec, "user_x", None)
    x = np.asarray(stored[idx]) if stored is not None and idx >= 0 else None
    names = encoding.column_names
    if users is not None and "user_id" in users.columns and all(c in users.columns for c in names):
        rows = users[users["user_id"].astype(str) == str(user_id)]
        if len(rows):
            raw = rows.iloc[:1][names].reset_index(drop=True)
            try:
                same = x is None or np.allclose(encoding.encode(raw)[0], x)
            except ValueError:  # FeatureError: a value the encoding does not know, so not what the model saw
                same = False
            if same:
                return {c.name: _raw_value(c, raw[c.name].iat[0]) for c in encoding.columns}
    return decode_features(encoding, x) if x is not None else {}


def _raw_value(column: Any, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return "unknown"
    if column.kind == "bucket":
        label = column.values[int(np.searchsorted(np.asarray(column.edges), float(value), side="right"))]
        return f"{float(value):g} ({label})"
    return str(value)


def overlap(a: pd.DataFrame | Iterable[Any], b: pd.DataFrame | Iterable[Any]) -> tuple[int, float]:
    """Items two lists share: (count, Jaccard = shared / union); 0.0 when both are empty."""
    sa, sb = _item_set(a), _item_set(b)
    union = len(sa | sb)
    shared = len(sa & sb)
    return shared, (shared / union if union else 0.0)


def _item_set(x: pd.DataFrame | Iterable[Any]) -> set[str]:
    values = x["item_id"] if isinstance(x, pd.DataFrame) else x
    return {str(v) for v in values}


def decorate(
    recs: pd.DataFrame,
    items: pd.DataFrame | None = None,
    popularity: pd.Series | None = None,
    test_items: set[str] | None = None,
) -> pd.DataFrame:
    """Recommendations for display: rank, item, metadata, score, item popularity and whether it is a test hit."""
    out = recs.drop(columns=[c for c in ("user_id",) if c in recs.columns]).copy()
    out["item_id"] = out["item_id"].astype(str)
    out = with_metadata(out, items)
    if popularity is not None:
        out["popularity"] = popularity.reindex(pd.Index(out["item_id"])).fillna(0).astype(np.int64).to_numpy()
    if test_items is not None:
        out["hit"] = out["item_id"].isin({str(i) for i in test_items}).to_numpy()
    return out


def item_labels(item_ids: Iterable[Any], items: pd.DataFrame | None) -> dict[str, str]:
    """'Title (id)' for pickers, the bare ID where there is no title."""
    ids = [str(i) for i in item_ids]
    titles: dict[str, str] = {}
    if items is not None and "title" in items.columns:
        titles = dict(zip(items["item_id"].astype(str), items["title"].astype(str), strict=False))
    return {i: f"{titles[i]} ({i})" if i in titles else i for i in ids}


# What the popularity fallback ranks by: recdash's pyfunc puts this count in ``score`` (the predict contract stays as
# it is), which next to model scores near 2 reads like a score of 486; the page names it for what it is.
FALLBACK_SCORE = "training interactions"


CHECK = "✓"


def compact(frame: pd.DataFrame, keep_id: bool = False) -> pd.DataFrame:
    """A table for half the page width: title and ID in one ``item`` column ("Title (id)", the ID alone where there
    is no title) and no genres (the widest column; the full-width Similar items table keeps them). ``keep_id``
    keeps ``item_id`` too, right before ``item``, for callers that look items up by ID."""
    out = frame.drop(columns=[c for c in ("genres",) if c in frame.columns])
    if "item_id" not in out.columns:
        return out
    ids = out["item_id"].astype(str)
    item = ids
    if "title" in out.columns:
        titles = out.pop("title")
        known = titles.notna() & (titles.astype(str).str.strip() != "")
        item = ids.where(~known, titles.astype(str) + " (" + ids + ")")
    at = list(out.columns).index("item_id")
    if not keep_id:
        out = out.drop(columns="item_id")
    else:
        at += 1
    out.insert(at, "item", item.to_numpy())
    return out


def display_recs(table: pd.DataFrame, shared: set[str] | None = None, *, popularity: bool = True) -> pd.DataFrame:
    """A :func:`decorate` table as shown: compact, hits and shared items as ✓, the fallback's count named.

    The frame keeps ``item_id`` and ``score`` under their contract names (what callers look items up by);
    ``attrs["shown"]`` lists the columns to show, in order (``item`` stands for ``item_id``), and ``attrs["labels"]``
    renames some for the reader: for the popularity fallback ``score`` holds the raw training-interaction count
    (the popularity column, which would repeat it, goes) and is labelled :data:`FALLBACK_SCORE`. ``shared`` (items
    the other model also recommends) adds an ``in both`` column; ``popularity=False`` leaves popularity out
    (side-by-side tables are narrow).
    """
    fallback = "source" in table.columns and is_fallback(table)
    out = table.drop(columns=[c for c in ("source", "user_id") if c in table.columns])
    if "hit" in out.columns:
        out["hit"] = np.where(out["hit"].to_numpy(dtype=bool), CHECK, "")
    if shared is not None:
        out["in both"] = np.where(out["item_id"].astype(str).isin(shared), CHECK, "")
    labels: dict[str, str] = {}
    if fallback and "popularity" in out.columns:
        out["score"] = out.pop("popularity").to_numpy()  # the same count the pyfunc put there, as an integer
        labels["score"] = FALLBACK_SCORE
    elif not popularity:
        out = out.drop(columns=[c for c in ("popularity",) if c in out.columns])
    out = compact(out, keep_id=True)
    out.attrs["shown"] = [c for c in out.columns if c != "item_id"]
    out.attrs["labels"] = labels
    return out


def user_results(frames: dict[str, pd.DataFrame | None], user: str) -> tuple[pd.DataFrame, str | None]:
    """One user's test metrics in each model's run (columns: the models' labels; rows: the ranking metrics at k),
    from the runs' per-user results, and a note when some model has none for this user (not logged, or the user is
    not among its test users). What the lists above it scored for this very user."""
    present = {name: f for name, f in frames.items() if f is not None}
    metrics = sorted({c for f in present.values() for c in f.columns if c not in ("user_id", "quartile")},
                     key=lambda m: (contract.RANKING.index(p.metric) if (p := contract.MetricName.parse(m)) and
                                    p.metric in contract.RANKING else 99, m))  # fmt: skip
    table = paired.user_values(present, user, metrics).T if present else pd.DataFrame()
    notes = [f"model {name}: {NOT_LOGGED}" for name, f in frames.items() if f is None]
    missing = [name for name in present if table[name].isna().all()]
    if missing:
        notes.append(f"model {', '.join(missing)}: this user has no test interactions in its evaluation")
    table = table.reindex(columns=[n for n in frames if n in table.columns])
    table.index.name = "metric"
    return table, ("; ".join(notes) + ".") if notes else None
