"""Discover's entity cards as data: a dataset's history, profile charts and leaderboard, a model card (badges, metrics
against the baseline, lineage graph, versions, serve command), a person's runs and models. Pure functions over a
:class:`recdash.catalog.Catalog`; the page lays them out."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from recdash import comparison, contract, registry
from recdash.catalog.entities import Catalog, _col
from recdash.data.profile import Histogram, Profile
from recdash.errors import UserError

BASELINE = "baseline_"
# the metrics a model card and a leaderboard lead with, in this order (at the run's own k)
KEY_METRICS = ("ndcg", "recall", "precision", "map", "mrr", "hit_rate", "coverage")


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


def _key_metrics(columns: Iterable[object]) -> list[str]:
    """The model's own key test metrics among ``columns`` (at every k they were logged at), NDCG first."""
    return comparison.own_metrics(columns, KEY_METRICS)


def metric_choices(runs: pd.DataFrame) -> list[str]:
    """Metrics a leaderboard can rank by: the model's own (not the baseline's), key test metrics first (NDCG at the
    runs' k leads), then other test metrics, then the rest."""
    names = [c[len("metrics.") :] for c in runs.columns if c.startswith("metrics.") and runs[c].notna().any()]
    names = [n for n in names if not n.startswith(BASELINE)]
    rank = {m: i for i, m in enumerate(_key_metrics(f"metrics.{n}" for n in names))}
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
    ranked = ranked.sort_values("_v", ascending=contract.lower_is_better(metric), kind="stable")
    model = _col(ranked, contract.PARAM + contract.MODEL_PARAM).fillna(_col(ranked, contract.TAG + contract.TAG_MODEL))
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
    raise UserError("no run on this data logged how to load it (recdash's 'dataset' params)")


def needs_download(name: str, options: Mapping[str, Any]) -> bool:
    """True when loading the data would download it (MovieLens-100K not yet in recdash's cache and no local path):
    the page then asks before starting a download that can take minutes."""
    from recdash.data.movielens import _resolve_cache_dir

    if name.strip().lower() not in ("movielens-100k", "ml-100k", "movielens") or options.get("path"):
        return False
    return not (_resolve_cache_dir(options.get("cache_dir")) / "movielens-100k" / "meta.json").is_file()


PROFILE_RUNS_TRIED = 5  # the newest runs on a dataset whose logged profile is looked for
PROFILE_LOAD_LIMIT = 2_000_000  # rows: data this large is never loaded on a page visit (older runs: no profile)


def long_tail_figure(prof: Profile) -> go.Figure:
    """The cumulative share of interactions of the most popular items."""
    fig = px.line(prof.long_tail, x="share_of_items", y="share_of_interactions", title="Long tail")
    fig.update_layout(xaxis_tickformat=".0%", yaxis_tickformat=".0%", height=300, margin=dict(t=40, b=10))
    fig.update_xaxes(title="share of items, most popular first")
    fig.update_yaxes(title="share of interactions")
    return fig


def activity_figure(hist: Histogram, title: str) -> go.Figure:
    """A histogram of interactions per user (or item) from the profile's bins, on a log count axis."""
    edges = np.asarray(hist.edges)
    fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=hist.counts, width=np.diff(edges), marker_line_width=0))
    fig.update_layout(title=title, height=260, margin=dict(t=40, b=10), showlegend=False, bargap=0)
    fig.update_xaxes(title="interactions")
    fig.update_yaxes(title="count (log)", type="log", dtick=1)
    return fig


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
    for metric in _key_metrics(run.index[run.notna()]):
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
    key = [_key_value(runs, r) for r in versions["run_id"]]
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
            "key metric": [k[0] for k in key],
            "value": [k[1] for k in key],
            "created": versions["created"].to_numpy(),
            "description": versions["description"].to_numpy(),
        }
    )


def key_values(runs: pd.DataFrame) -> pd.DataFrame:
    """Each run's key metric (test NDCG at its own k) as ``key metric`` (the name) and ``value``, row by row."""
    indexed = runs.set_index("run_id", drop=False)
    pairs = [_key_value(indexed, r) for r in runs["run_id"]]
    return pd.DataFrame({"key metric": [p[0] for p in pairs], "value": [p[1] for p in pairs]}, index=runs.index)


def _key_value(runs: pd.DataFrame, run_id: object) -> tuple[str | None, float]:
    """A run's key metric (test NDCG at its own k) and its value; (None, NaN) when it has none."""
    if run_id not in runs.index:
        return None, math.nan
    row = runs.loc[run_id]
    names = comparison.own_metrics(row.index[row.notna()], (contract.KEY_METRIC,))
    return (names[0], float(row["metrics." + names[0]])) if names else (None, math.nan)


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
        and not str(key)[5:].startswith(contract.BOOKKEEPING_TAG_PREFIXES)
        and not str(key)[5:].startswith(("recdash.",))
    }
