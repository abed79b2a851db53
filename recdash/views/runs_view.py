"""The Runs page's table as data: which columns a person needs first on any store, numbers as numbers, and sweeps
as a parent with its trials nested under it. Pure pandas; the page only adds Streamlit's column formats."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from recdash import comparison as cmp
from recdash import contract
from recdash.contract import METRIC, PARAM, TAG
from recdash.views.tables import run_names

RUN = "run_name"
DATA = "data"  # the run's data group, short (recdash.comparison.short_data_labels)
SEARCH_SPACE = "search space"
BEST_TRIAL = "best trial"
TRIAL_STATE = "state"
TAIL_COLUMNS = ("status", "start_time", "duration_s", "experiment")
MAX_METRICS = 3
MAX_PARAMS = 5
_RANKING = ("ndcg", "recall", "precision", "map", "mrr", "hit_rate")


def _present_counts(runs: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    present = runs[list(columns)].notna() & (runs[list(columns)].astype(str) != "")
    return present.sum(axis=0)


def default_columns(runs: pd.DataFrame) -> list[str]:
    """The columns shown before the user picks, for a store of any origin: the data each run was evaluated on,
    the key metrics (validation ranking metrics at the kept epoch, ``best_val_*``, when logged, then test, then the
    last epoch's; else the metrics most runs have), the hyperparameters that vary (the algorithm and the models'
    own first: loss, factors...), then status, start, duration and (for several) experiment. Runs that have none
    of those metrics or params (another tool's runs next to recdash's) get their own most common ones added, so no
    run shows an empty row. Baselines, lineage and sweep bookkeeping are one click away."""
    metrics = _most_useful(runs, [c for c in runs.columns if str(c).startswith(METRIC) and "baseline" not in str(c)])
    params = [p for p in cmp.hyperparameters(runs) if p not in cmp.SEED_PARAMS]
    params = [PARAM + p for p in cmp.rank_hyperparameters(cmp.varying(runs, params, missing_counts=False))]
    several = "experiment" in runs.columns and runs["experiment"].nunique() > 1
    tail = [c for c in TAIL_COLUMNS if c in runs.columns and (c != "experiment" or several)]
    ratio = [REFERENCE_RATIO] if REFERENCE_RATIO in runs.columns else []
    data = [DATA] if DATA in runs.columns else []
    counts = _present_counts(runs, params) if params else pd.Series(dtype=int)
    params = [c for c in params if counts[c] > 0]
    return data + _cover(runs, metrics, MAX_METRICS) + ratio + _cover(runs, params, MAX_PARAMS) + tail


def with_data_groups(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs with column :data:`DATA` (each run's data group, in short) and their rows grouped by it (the groups
    in the order their newest run appears, the rows' order kept inside a group): numbers are read, and ranked by
    eye, only next to runs on the same data. ``frame.attrs["data_groups"]`` counts the groups."""
    if runs.empty:
        return runs.assign(**{DATA: pd.Series(dtype=object)})
    groups = cmp.data_groups(runs)
    short = cmp.short_data_labels(groups)
    order = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    out = runs.assign(**{DATA: groups.map(short).to_numpy(), "_group": groups.map(order).to_numpy()})
    out = out.sort_values("_group", kind="stable").drop(columns="_group")
    out.attrs = {**runs.attrs, "data_groups": len(order)}
    return out


REFERENCE_RATIO = "vs_best_reference"


def add_reference_ratio(runs: pd.DataFrame) -> pd.DataFrame:
    """Each run's key test metric (NDCG, else recall, at the run's own k) over the best reference's on the same data
    and split and at the same k, as column :data:`REFERENCE_RATIO`, when the listed runs include references
    (``recdash references``); else unchanged. The metrics used are named in ``frame.attrs["reference_metric"]``."""
    if not cmp.is_reference(runs).any():
        return runs
    groups = cmp.data_groups(runs)
    refs = cmp.references_for(groups, runs, groups)
    ratio = pd.Series(np.nan, index=runs.index)
    used: list[str] = []
    for metric in cmp.own_metrics(runs.columns, ("ndcg", "recall")):
        fill = ratio.isna() & runs[METRIC + metric].notna()
        if fill.any():
            ratio[fill] = cmp.reference_ratio(runs[fill], groups[fill], refs, metric)
            used.append(metric)
    if not used:
        return runs
    out = runs.assign(**{REFERENCE_RATIO: ratio.to_numpy()})
    out.attrs["reference_metric"] = ", ".join(used)
    return out


def _most_useful(runs: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """Ranking metrics first (validation, then test; NDCG, recall, ...), then by how many runs have the column."""
    if not columns:
        return []
    counts = _present_counts(runs, columns)
    columns = [c for c in columns if counts[c] > 0]

    def rank(col: str) -> tuple[int, int, int, str]:
        name = col.split(".", 1)[1]
        parsed = contract.MetricName.parse(name)
        kind = _RANKING.index(parsed.metric) if parsed and parsed.metric in _RANKING and not parsed.segment else None
        if parsed is None or kind is None or parsed.family not in ("", "best"):
            return (4, len(_RANKING), -int(counts[col]), name)
        # validation at the kept epoch, then test, then validation at the last epoch (past the kept one)
        split = {("best", "val"): 0, ("", "test"): 1, ("", "val"): 2}.get((parsed.family, parsed.split), 3)
        return (split, kind, -int(counts[col]), name)

    return sorted(columns, key=rank)


def _cover(runs: pd.DataFrame, ranked: Sequence[str], limit: int) -> list[str]:
    """The first ``limit`` of ``ranked``, plus one more for finished runs that have none of those (another tool's;
    not a pruned trial, which stopped before its kept-epoch values were logged)."""
    chosen = list(ranked[:limit])
    if not chosen:
        return chosen
    uncovered = ~(runs[chosen].notna() & (runs[chosen].astype(str) != "")).any(axis=1)
    if "status" in runs.columns:
        uncovered &= runs["status"].astype(str).eq("FINISHED")
    rest = [c for c in ranked if c not in chosen and runs.loc[uncovered, c].notna().any()]
    return chosen + rest[:1]


def numeric_params(runs: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """Param columns whose logged values are all numbers: shown (and sorted) as numbers, not text."""
    out = []
    for col in columns:
        if not str(col).startswith(PARAM) or col not in runs.columns:
            continue
        values = runs[col].dropna().astype(str).str.strip()
        values = values[values != ""]
        if len(values) and pd.to_numeric(values, errors="coerce").notna().all():
            out.append(col)
    return out


def display_frame(runs: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The table as shown: the run's label first, then ``columns``; numeric params as floats (rounding is the
    display's job, so the values keep full precision for the CSV and for sorting)."""
    table = runs[[c for c in columns if c in runs.columns]].copy()
    for col in numeric_params(runs, table.columns):
        table[col] = pd.to_numeric(table[col], errors="coerce")
    table.insert(0, RUN, run_names(runs).to_numpy())
    return table


# ------------------------------------------------------------------------------------------------ sweeps


def sweep_tree(runs: pd.DataFrame, expanded: Collection[str]) -> pd.DataFrame:
    """The runs in display order with sweeps nested: each sweep parent is followed by its trials when its id is in
    ``expanded`` (hidden otherwise); runs outside sweeps keep their order. Adds the columns the tree needs:

    * ``run_name``: "▸ name (N trials)" / "▾ ..." for a parent, "└ name" for a trial;
    * ``state``: a trial's outcome in a sweep's words ("pruned", not KILLED), else the run status;
    * ``search space`` and ``best trial`` on a parent (what was searched and what won), and the parent's own
      copies of searched hyperparameters blanked: they are the form's base values, not what ran.
    """
    if runs.empty:
        return runs.assign(**{TRIAL_STATE: pd.Series(dtype=object)})
    runs = runs.reset_index(drop=True)
    ids = runs["run_id"].astype(str)
    parents = cmp.sweep_parents(runs)
    parent_of = _parent_of(runs)
    children: dict[str, list[int]] = {}
    for i, run_id in enumerate(ids):
        parent = parent_of.get(run_id)
        if parent in parents:
            children.setdefault(parent, []).append(i)
    order: list[int] = []
    for i, run_id in enumerate(ids):
        if parent_of.get(run_id) in parents:
            continue  # placed under its parent
        order.append(i)
        if run_id in parents and run_id in expanded:
            kids = children.get(run_id, [])
            order += sorted(kids, key=lambda k: _trial_number(runs.iloc[k]))
    out = runs.iloc[order].reset_index(drop=True)
    names = run_names(out)
    state = cmp.trial_state(out)
    labels, spaces, bests = [], [], []
    for i, row in out.iterrows():
        run_id = str(row["run_id"])
        if run_id in parents:
            n = len(children.get(run_id, []))
            mark = "▾" if run_id in expanded else "▸"
            unit = (
                "trial" if row.get(TAG + contract.TAG_KIND) in (contract.KIND_SWEEP, None) else "run"
            )  # e.g. references' parent
            labels.append(f"{mark} {names[i]} ({n} {unit}{'s' if n != 1 else ''})")
            space = cmp.search_space(row)
            spaces.append(", ".join(f"{k}={v}" for k, v in space.items()) or None)
            best = cmp.best_params(row)
            bests.append(", ".join(f"{k}={_short(v)}" for k, v in best.items()) or None)
            for name in space:
                if PARAM + name in out.columns:
                    out.at[i, PARAM + name] = None
        elif parent_of.get(run_id) in parents:
            labels.append(f"   └ {names[i]}")
            spaces.append(None)
            bests.append(None)
        else:
            labels.append(names[i])
            spaces.append(None)
            bests.append(None)
    out[RUN] = labels
    out[TRIAL_STATE] = state.to_numpy()
    if parents:
        out[SEARCH_SPACE] = spaces
        out[BEST_TRIAL] = bests
    return out


def _parent_of(runs: pd.DataFrame) -> dict[str, str]:
    out: dict[str, str] = {}
    for col in (contract.PARENT, TAG + contract.TAG_SWEEP_RUN):
        if col in runs.columns:
            for run_id, parent in zip(runs["run_id"].astype(str), runs[col], strict=True):
                if isinstance(parent, str) and parent and run_id not in out:
                    out[run_id] = parent
    return out


def _trial_number(row: pd.Series) -> float:
    value = row.get(TAG + contract.TAG_TRIAL_NUMBER)
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.inf


def _short(value: str) -> str:
    try:
        return f"{float(value):.4g}"
    except ValueError:
        return value


def sweep_labels(runs: pd.DataFrame) -> Mapping[str, str]:
    """Parent id (a sweep's, the references') -> its label (for the "expand" picker)."""
    parents = cmp.sweep_parents(runs)
    names = run_names(runs)
    return {str(r): names[i] for i, r in runs["run_id"].astype(str).items() if str(r) in parents}


def parents_text(runs: pd.DataFrame, parents: Collection[str]) -> str:
    """What the expandable parents are, counted by kind: "1 sweep and 1 set of references", "2 parent runs"."""
    kinds = runs.set_index(runs["run_id"].astype(str)).get(TAG + contract.TAG_KIND, pd.Series(dtype=object))
    of = [kinds.get(p) for p in parents]
    sweeps = sum(k in (contract.KIND_SWEEP, None) or (isinstance(k, float) and np.isnan(k)) for k in of)
    references = sum(k == contract.KIND_REFERENCES for k in of)
    other = len(of) - sweeps - references
    parts = [f"{sweeps} sweep{'s' if sweeps != 1 else ''}" if sweeps else "",
             f"{references} set{'s' if references != 1 else ''} of references" if references else "",
             f"{other} parent run{'s' if other != 1 else ''}" if other else ""]  # fmt: skip
    return " and ".join(p for p in parts if p)
