"""What makes a comparison of runs fair, as pure functions over the runs frame of :mod:`recdash.tracking`.

Used by every chart and table of the Runs, Compare, Models and Discover pages:

* **Only like is compared with like**: :func:`data_groups` puts runs evaluated on the same dataset digest and split
  in one group; "best", rankings and importance are only ever computed within a group. Lineage params and sweep
  bookkeeping never count as hyperparameters (:func:`hyperparameters`; the families are in
  :mod:`recdash.contract`).
* **Is the difference real?**: :func:`config_groups` groups runs by a set of params (by default every
  hyperparameter but the seed) and :func:`aggregate` gives mean, standard deviation and n per group.
* **Against what?**: :func:`references_for` finds the reference runs on the same data, :func:`reference_ratio`
  measures a run against the best of them.

Metric names are read with :mod:`recdash.contract`'s grammar, so nothing here assumes a cut-off k.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from recdash import contract
from recdash.contract import (
    METRIC,
    MISSING,
    MODEL_PARAM,
    NO_DATA,
    PARAM,
    PARENT,
    SEED_PARAMS,
    SPLIT_KEYS,
    TAG,
    TAG_KIND,
    TAG_REFERENCE,
    TAG_TRIAL_STATE,
    is_bookkeeping,
    is_lineage,
    is_run_choice,
    run_label,
)
from recdash.models import MODELS

# ------------------------------------------------------------------------------------------------ identity


def run_labels(runs: pd.DataFrame) -> dict[str, str]:
    """One unique label per run, the same on every page: :func:`recdash.contract.run_label`; names that repeat get
    the short id appended."""
    if runs.empty:
        return {}
    ids = runs["run_id"].astype(str).tolist()
    names = runs["run_name"] if "run_name" in runs.columns else pd.Series([None] * len(runs), index=runs.index)
    base = [run_label(n, r) for n, r in zip(names, ids, strict=True)]
    counts = pd.Series(base).value_counts()
    labels = [f"{b} ({r[:8]})" if counts[b] > 1 else b for b, r in zip(base, ids, strict=True)]
    if len(set(labels)) < len(labels):  # short ids clash too (hand-made ids): the full id is unique
        labels = [f"{b} ({r})" if counts[b] > 1 else b for b, r in zip(base, ids, strict=True)]
    return dict(zip(ids, labels, strict=True))


# ------------------------------------------------------------------------------------------------ params


def param_names(runs: pd.DataFrame) -> list[str]:
    return sorted(c[len(PARAM) :] for c in runs.columns if str(c).startswith(PARAM))


def hyperparameters(runs: pd.DataFrame) -> list[str]:
    """Params that are settings of the model or its training: not lineage, not a parent's bookkeeping, not a value
    the run chose itself (:func:`recdash.contract.is_run_choice`)."""
    return [p for p in param_names(runs) if not (is_lineage(p) or is_bookkeeping(p) or is_run_choice(p))]


def run_choices(runs: pd.DataFrame) -> list[str]:
    """The params the runs logged about choices they made themselves (how cold users are served): results."""
    return [p for p in param_names(runs) if is_run_choice(p)]


def _model_params() -> set[str]:
    """Every registered model's own hyperparameters (what a person tunes first), the algorithm included."""
    return {MODEL_PARAM} | {name for model in MODELS.values() for name in model.hyperparameters()}


def _present(values: pd.Series) -> pd.Series:
    return values.notna() & (values.astype(str).str.strip() != "")


def normalized(values: pd.Series) -> pd.Series:
    """Param values as comparable text: numbers in one spelling ("0.1" == "0.10" == "1e-1"), missing as MISSING."""
    text = values.where(_present(values), None)
    numbers = pd.to_numeric(text, errors="coerce")
    out = text.astype(object).where(text.notna(), MISSING).astype(str).str.strip()
    is_number = numbers.notna() & text.notna()
    out[is_number] = [f"{v:.12g}" for v in numbers[is_number]]
    return out


def varying(runs: pd.DataFrame, params: Iterable[str], *, missing_counts: bool = True) -> list[str]:
    """The params among ``params`` whose value differs between the runs; a param missing in some runs differs
    from one they have unless ``missing_counts`` is False (runs of other tools simply lack recdash's params)."""
    out = []
    for name in params:
        col = PARAM + name
        if col not in runs.columns:
            continue
        values = normalized(runs[col])
        if not missing_counts:
            values = values[values != MISSING]
        if values.nunique() > 1:
            out.append(name)
    return out


def rank_hyperparameters(params: Iterable[str]) -> list[str]:
    """``params`` in the order a person tunes them: the algorithm, then the models' own hyperparameters (loss,
    factors... in name order), then training and data choices (epochs, side features), then anything else."""
    own = _model_params()
    return sorted(params, key=lambda p: (p != MODEL_PARAM, p not in own, p))


def default_axes(runs: pd.DataFrame, limit: int = 8) -> list[str]:
    """The hyperparameters that actually vary among the runs, at most ``limit``, in :func:`rank_hyperparameters`
    order; seeds are left out (they are noise to average over, not settings to choose)."""
    params = [p for p in varying(runs, hyperparameters(runs)) if p not in SEED_PARAMS]
    return rank_hyperparameters(params)[:limit]


# ------------------------------------------------------------------------------------------------ like with like


def _value(runs: pd.DataFrame, *columns: str) -> list[str | None]:
    """The first present value among ``columns`` per run (e.g. the dataset input, else the lineage param)."""
    out: list[str | None] = [None] * len(runs)
    for col in columns:
        if col not in runs.columns:
            continue
        for i, value in enumerate(runs[col].tolist()):
            if out[i] is None and not _missing(value):
                out[i] = str(value).strip()
    return out


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() in ("", "None")


def dataset_identity(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run, the ``name`` and ``digest`` of the data it saw: its MLflow dataset input, else recdash's lineage
    params. The one definition of "which dataset" that data groups, the catalog and the Discover page share."""
    return pd.DataFrame(
        {
            "name": _value(runs, "dataset_name", PARAM + "dataset_name", PARAM + "dataset"),
            "digest": _value(runs, "dataset_digest", PARAM + "dataset_digest"),
        },
        index=runs.index,
        dtype=object,
    )


def data_groups(runs: pd.DataFrame) -> pd.Series:
    """Per run, the full name of what it was evaluated on: dataset name and digest, split method, fractions and
    seed (and a rating threshold). A sweep's parent, which records no data of its own, is in its trials' group.
    Runs with no recorded data are grouped per experiment, since nothing says that runs of different experiments
    saw the same data."""
    if runs.empty:
        return pd.Series([], dtype=object, index=runs.index)
    identity = dataset_identity(runs)
    digest, name = identity["digest"].tolist(), identity["name"].tolist()
    split = {key: _value(runs, PARAM + key) for key in SPLIT_KEYS}
    labels: list[str | None] = []
    for i in range(len(runs)):
        parts = []
        if digest[i] is not None:
            parts.append(" ".join(x for x in (name[i], digest[i]) if x is not None))
        fractions = [split[k][i] for k in ("split_train", "split_validation", "split_test")]
        method, seed = split["split_method"][i], split["split_seed"][i]
        if method is not None or seed is not None or any(f is not None for f in fractions):
            text = f"{method} split" if method is not None else "split"
            if any(f is not None for f in fractions):
                text += " " + "/".join(_short_number(f) for f in fractions)
            parts.append(text + (f", seed {seed}" if seed is not None else ""))
        if parts and split["min_rating"][i] is not None:
            parts.append(f"rating ≥ {split['min_rating'][i]}")
        labels.append(" · ".join(parts) or None)
    out = pd.Series(labels, index=runs.index, dtype=object)
    ids = runs["run_id"].astype(str)
    if PARENT in runs.columns:  # a sweep parent: the one group all its trials share
        by_parent = out.groupby(runs[PARENT].astype(object).where(runs[PARENT].notna(), None)).agg(
            lambda g: g.iloc[0] if g.notna().all() and g.nunique() == 1 else None
        )
        inherited = ids.map(by_parent)
        out = out.where(out.notna(), inherited)
    experiments = runs["experiment"] if "experiment" in runs.columns else pd.Series([None] * len(runs), runs.index)
    unknown = [f"{e or 'unknown experiment'}: {NO_DATA}" for e in experiments]
    return out.where(out.notna(), pd.Series(unknown, index=runs.index)).astype(object)


def _short_number(value: object) -> str:
    """4 significant digits for a number (labels must stay readable), anything else as it is."""
    if value is None:
        return "?"
    try:
        return f"{float(str(value)):.4g}"
    except ValueError:
        return str(value)


def short_data_labels(labels: Iterable[str]) -> dict[str, str]:
    """Data group -> a short name for narrow places (a table column): the dataset and split method
    ("synthetic · cold-users split"), with the digest's first 8 characters where two datasets share a name
    ("synthetic e115d2b1 · random split"), or the full group where even that would not tell two groups apart."""
    full = list(dict.fromkeys(map(str, labels)))
    candidates = []
    for label in full:
        parts = label.split(" · ")
        words = parts[0].split(" ")
        method = next((p.split(",")[0].split(" ")[0] for p in parts[1:] if " split" in p), None)
        if len(words) != 2 or not method or method == "split":
            candidates.append((label, label))  # no dataset digest or no split method: nothing to shorten safely
            continue
        candidates.append((f"{words[0]} · {method} split", f"{words[0]} {words[1][:8]} · {method} split"))
    out = {}
    for level in (0, 1):
        chosen = [c[level] for c in candidates]
        counts = pd.Series(chosen).value_counts()
        for label, text in zip(full, chosen, strict=True):
            if label not in out and counts[text] == 1:
                out[label] = text
    return {label: out.get(label, label) for label in full}


def mixed_data_warning(groups: pd.Series) -> str | None:
    """When runs on different data are shown together: a message naming every group in full, else None."""
    counts = groups.value_counts(sort=False)
    if len(counts) < 2:
        return None
    named = "; ".join(f"{label} ({n} run{'s' if n > 1 else ''})" for label, n in counts.items())
    return (
        f"These runs were evaluated on {len(counts)} different datasets or splits, so their metrics are not "
        f"comparable across groups. Each chart shows the groups apart, and every “best” is within its group: {named}."
    )


# ------------------------------------------------------------------------------------------------ metrics


def as_float(values: pd.Series) -> np.ndarray:
    """Floats; anything non-numeric or non-finite becomes NaN (it cannot be drawn or ranked)."""
    out = np.array(pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan))
    out[~np.isfinite(out)] = np.nan
    return out


def metric_names(runs: pd.DataFrame) -> list[str]:
    """Metric names (without the ``metrics.`` prefix) that at least one run has a finite value for, sorted."""
    names = []
    for c in runs.columns:
        if str(c).startswith(METRIC) and np.isfinite(as_float(runs[c])).any():
            names.append(c[len(METRIC) :])
    return sorted(names)


def most_logged(runs: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """The metrics among ``names`` that the most runs have a finite value for (in ``names``' order): a default a
    chart can draw for every run it can, rather than one run's metric and a legend of empty entries."""
    counts = {n: int(np.isfinite(as_float(runs[METRIC + n])).sum()) for n in names if METRIC + n in runs.columns}
    top = max(counts.values(), default=0)
    return [n for n in names if counts.get(n) == top and top > 0]


def _metric_columns(columns: Iterable[object]) -> list[str]:
    return [str(c) for c in columns if str(c).startswith(METRIC)]


def own_metrics(columns: Iterable[object], metrics: Iterable[str] = contract.RANKING, split: str = "test") -> list[str]:
    """The model's own ``split`` metrics among ``metrics`` (ndcg, recall, ...) logged in a runs frame with these
    ``columns``, at every cut-off k, in the order of ``metrics`` then k: ``test_ndcg_at_10``, ``test_ndcg_at_20``..."""
    wanted = list(metrics)
    found = [
        m
        for m in contract.parse_all(_metric_columns(columns))
        if m.is_own and m.split == split and m.segment is None and m.metric in wanted
    ]
    found.sort(key=lambda m: (wanted.index(m.metric), m.k))
    return [m.format() for m in found]


def segment_bases(columns: Iterable[object]) -> list[str]:
    """The test metrics logged per user-activity quartile in a runs frame with these ``columns``
    (``test_recall_at_10`` for ``..._q1``...), at every k: what the Segments view can draw."""
    found = {
        m.with_(segment=None).format(): (contract.SEGMENTED.index(m.metric), m.k)
        for m in contract.parse_all(_metric_columns(columns))
        if m.is_own and m.split == "test" and m.segment and m.metric in contract.SEGMENTED
    }
    return sorted(found, key=found.get)


def segment_metrics(runs: pd.DataFrame, base: str) -> list[str]:
    """The per-quartile metrics of ``base`` the runs logged (``test_recall_at_10_q1`` ...), in quartile order."""
    return [f"{base}_{q}" for q in contract.SEGMENTS if METRIC + f"{base}_{q}" in runs.columns]


def beyond_accuracy_metrics(columns: Iterable[object]) -> list[str]:
    """The beyond-accuracy test metrics (novelty, Gini, long-tail shares, personalization, ILD) logged in a runs
    frame with these ``columns``, at every k."""
    return own_metrics(columns, contract.BEYOND_ACCURACY)


def best_in_groups(runs: pd.DataFrame, metric: str, groups: pd.Series) -> dict[str, str]:
    """Data group -> the run id with the best finite value of ``metric`` in that group (its direction from
    :func:`recdash.contract.direction`). A group with fewer than two runs that have the metric has no "best"
    (there is nothing to beat) and is omitted."""
    col = metric if metric.startswith(METRIC) else METRIC + metric
    if runs.empty or col not in runs.columns:
        return {}
    lower = contract.lower_is_better(col)
    values = pd.Series(as_float(runs[col]), index=runs.index)
    out = {}
    for group, idx in groups.groupby(groups, sort=False).groups.items():
        group_values = values.loc[idx].dropna()
        if len(group_values) < 2:
            continue
        best = group_values.idxmin() if lower else group_values.idxmax()
        out[str(group)] = str(runs.at[best, "run_id"])
    return out


# ------------------------------------------------------------------------------------------------ seeds and groups


def default_group_params(runs: pd.DataFrame) -> list[str]:
    """Group repeats of one configuration: every hyperparameter except the seed (those that vary: grouping by a
    param all runs share changes nothing)."""
    return [p for p in varying(runs, hyperparameters(runs)) if p not in SEED_PARAMS]


def config_groups(runs: pd.DataFrame, by: Sequence[str]) -> pd.Series:
    """Per run, a label of its values of the ``by`` params that differ among the runs ("loss=warp, factors=64"),
    or "all runs" when none differ. Runs with the same label are repeats of one configuration."""
    shown = varying(runs, by)
    if not shown:
        return pd.Series(["all runs"] * len(runs), index=runs.index, dtype=object)
    columns = {name: normalized(runs[PARAM + name]).map(_short_number) for name in shown}
    # runs of different models (rankfm against EASE): each is named by its model and by what varies among that
    # model's runs, values it did not log left out, so EASE is not "alpha=(missing), beta=(missing), ..."; every
    # param that tells two configurations apart is still in one of their labels
    by_model = MODEL_PARAM in shown
    models = columns[MODEL_PARAM] if by_model else pd.Series("", index=runs.index)
    named = {m: [n for n in varying(runs[models == m], shown) if n != MODEL_PARAM] for m in models.unique()}
    labels = []
    for idx in runs.index:
        model = models[idx]
        parts = [f"{MODEL_PARAM}={model}"] if by_model else []
        parts += [f"{n}={columns[n][idx]}" for n in named[model] if columns[n][idx] != MISSING]
        labels.append(", ".join(parts) or "(none of these params logged)")
    return pd.Series(labels, index=runs.index, dtype=object)


def aggregate(runs: pd.DataFrame, metrics: Sequence[str], groups: pd.Series) -> pd.DataFrame:
    """Mean, sample standard deviation (ddof=1; NaN for one run) and n of each metric per group.

    Columns: ``group`` then ``<metric> mean``, ``<metric> std``, ``<metric> n`` for each metric; only finite
    values count, so n can differ between metrics.
    """
    rows = []
    for group, idx in groups.groupby(groups, sort=False).groups.items():
        row: dict[str, object] = {"group": group}
        for metric in metrics:
            col = metric if metric.startswith(METRIC) else METRIC + metric
            values = as_float(runs.loc[idx, col]) if col in runs.columns else np.array([])
            values = values[np.isfinite(values)]
            name = col.removeprefix(METRIC)
            row[f"{name} mean"] = float(values.mean()) if values.size else np.nan
            row[f"{name} std"] = float(values.std(ddof=1)) if values.size > 1 else np.nan
            row[f"{name} n"] = int(values.size)
        rows.append(row)
    return pd.DataFrame(rows)


def config_letters(configs: Iterable[str]) -> dict[str, str]:
    """Configuration label -> its letter (A, B, ..., Z, AA, AB, ...) in order of first appearance: a short name the
    legend, the table and the hover text share."""
    out: dict[str, str] = {}
    for config in configs:
        if config not in out:
            out[config] = _letters(len(out))
    return out


def _letters(i: int) -> str:
    text = ""
    i += 1
    while i:
        i, rest = divmod(i - 1, 26)
        text = chr(ord("A") + rest) + text
    return text


def run_keys(runs: pd.DataFrame, groups: pd.Series) -> pd.Series:
    """Per run, what makes it the same draw as another: its data group, every hyperparameter and its seed (as
    comparable text). Two runs with one key ran the same configuration with the same seed on the same data."""
    seeds = [p for p in param_names(runs) if p in SEED_PARAMS]
    key = groups.astype(str)
    for name in sorted(set(hyperparameters(runs)) | set(seeds)):
        key = key + "\x1f" + normalized(runs[PARAM + name])
    return key


def duplicate_runs(runs: pd.DataFrame, groups: pd.Series) -> pd.Series:
    """True for a run that repeats an earlier run exactly (:func:`run_keys`: the same data group, every
    hyperparameter and the same seed; e.g. the default run with seed 42 and a "repeat" with seed 42). Its metrics
    are the same draw again, so averaging it in would count one seed twice. Only runs that logged a seed can be
    duplicates (another tool's runs without one may differ in a seed nobody recorded). The earliest run counts."""
    out = pd.Series(False, index=runs.index)
    seeds = [p for p in param_names(runs) if p in SEED_PARAMS]
    if runs.empty or not seeds:
        return out
    has_seed = pd.Series(False, index=runs.index)
    for seed in seeds:
        has_seed |= _present(runs[PARAM + seed])
    key = run_keys(runs, groups)
    order = runs.sort_values("start_time", kind="stable").index if "start_time" in runs.columns else runs.index
    repeated = key.loc[order].duplicated() & has_seed.loc[order]
    out.loc[repeated.index] = repeated
    return out


def has_repeats(groups: pd.Series) -> bool:
    """True when at least one configuration was run more than once (so a spread can be shown)."""
    return bool((groups.value_counts() > 1).any())


# ------------------------------------------------------------------------------------------------ importance

MIN_IMPORTANCE_RUNS = 10


def importance(runs: pd.DataFrame, metric: str, params: Sequence[str]) -> tuple[pd.DataFrame, str]:
    """fANOVA importance (Optuna's evaluator) of ``params`` for ``metric`` over ``runs`` (one data group).

    Returns (param, importance) rows, most important first, and a note. With fewer than
    :data:`MIN_IMPORTANCE_RUNS` runs that have the metric and vary in at least one param, no numbers are made up:
    the frame is empty and the note says how many more runs are needed.
    """
    col = metric if metric.startswith(METRIC) else METRIC + metric
    empty = pd.DataFrame(columns=["param", "importance"])
    if runs.empty or col not in runs.columns:
        return empty, "No run has this metric."
    y = as_float(runs[col])
    usable = runs.loc[np.isfinite(y)]
    y = y[np.isfinite(y)]
    params = varying(usable, params)
    if len(usable) < MIN_IMPORTANCE_RUNS or not params:
        more = max(MIN_IMPORTANCE_RUNS - len(usable), 0)
        reason = (
            f"{len(usable)} run(s) have this metric; importance needs at least {MIN_IMPORTANCE_RUNS} runs on the "
            f"same data with varying hyperparameters"
        )
        if not params:
            return empty, reason + "; none of the hyperparameters vary among them."
        return empty, reason + f": {more} more."
    study = _study(usable, params, y, contract.lower_is_better(col))
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    scores = optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=True)
    frame = pd.DataFrame({"param": list(scores), "importance": [float(v) for v in scores.values()]})
    note = (
        f"fANOVA (Optuna) over {len(usable)} runs on the same data: the share of the metric's variance each "
        "hyperparameter explains on its own. A guide to where to look, not proof of cause."
    )
    return frame, note


def _distribution(values: pd.Series) -> tuple[object, list[object]]:
    """An Optuna distribution covering the observed values, and the values in its type."""
    text = normalized(values)
    numbers = pd.to_numeric(text.where(text != MISSING), errors="coerce")
    if numbers.notna().all():
        if (numbers == numbers.round()).all():
            ints = numbers.astype(int).tolist()
            low, high = min(ints), max(ints)
            return IntDistribution(low, high if high > low else low + 1), ints
        floats = numbers.astype(float).tolist()
        low, high = min(floats), max(floats)
        log = low > 0 and high / low >= 100
        return FloatDistribution(low, high if high > low else low + abs(low) * 1e-9 + 1e-12, log=log), floats
    choices = sorted(set(text))
    return CategoricalDistribution(choices), text.tolist()


def _study(runs: pd.DataFrame, params: Sequence[str], values: np.ndarray, lower_is_better: bool) -> object:
    """An in-memory Optuna study with one finished trial per run (Optuna's own tools then work on any runs)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if lower_is_better else "maximize")
    columns = {name: _distribution(runs[PARAM + name]) for name in params}
    for i in range(len(runs)):
        trial_params = {name: columns[name][1][i] for name in params}
        distributions = {name: columns[name][0] for name in params}
        study.add_trial(
            optuna.trial.create_trial(params=trial_params, distributions=distributions, value=float(values[i]))
        )
    return study


def study_from_runs(runs: pd.DataFrame, metric: str, params: Sequence[str]) -> object | None:
    """The Optuna study behind a sweep, rebuilt from its trial runs (no study storage needed), trials in start
    order; None when fewer than two trials have the metric."""
    col = metric if metric.startswith(METRIC) else METRIC + metric
    if col not in runs.columns:
        return None
    ordered = runs.sort_values("start_time", kind="stable") if "start_time" in runs.columns else runs
    y = as_float(ordered[col])
    usable = ordered.loc[np.isfinite(y)]
    params = [p for p in params if PARAM + p in usable.columns]
    if len(usable) < 2 or not params:
        return None
    return _study(usable, params, y[np.isfinite(y)], contract.lower_is_better(col))


# ------------------------------------------------------------------------------------------------ sweeps


def trial_state(runs: pd.DataFrame) -> pd.Series:
    """What a run ended as, in a sweep's words: a pruned trial is "pruned", not KILLED."""
    state = runs["status"].astype(str) if "status" in runs.columns else pd.Series("", index=runs.index)
    col = TAG + TAG_TRIAL_STATE
    if col in runs.columns:
        tagged = runs[col].where(_present(runs[col]), None)
        state = state.where(tagged.isna() | ~tagged.isin(["pruned"]), "PRUNED")
    return state.astype(object)


def sweep_parents(runs: pd.DataFrame) -> set[str]:
    """Runs that are the parent of a sweep: a recdash sweep (kind tag) or any run other runs name as parent."""
    parents = set(runs[PARENT].dropna().astype(str)) if PARENT in runs.columns else set()
    if TAG + TAG_KIND in runs.columns:
        parents |= set(runs.loc[runs[TAG + TAG_KIND] == contract.KIND_SWEEP, "run_id"].astype(str))
    return parents & set(runs["run_id"].astype(str))


def children_of(runs: pd.DataFrame) -> dict[str, list[str]]:
    """Parent run id -> its child runs' ids (a sweep's trials, the references' models), in the frame's order."""
    out: dict[str, list[str]] = {}
    seen: set[str] = set()
    for col in (PARENT, TAG + contract.TAG_SWEEP_RUN):
        if col not in runs.columns:
            continue
        for run_id, parent in zip(runs["run_id"].astype(str), runs[col], strict=True):
            if isinstance(parent, str) and parent and run_id not in seen:
                out.setdefault(parent, []).append(run_id)
                seen.add(run_id)
    return out


def expand_parents(runs: pd.DataFrame, selected: Sequence[str], verb: str = "selected") -> tuple[list[str], list[str]]:
    """The selection with every parent (a sweep, the references) replaced by its finished children (oldest first:
    trial 0 first), and a sentence per parent saying what was done ("... are ``verb`` instead"). A parent has no
    metrics of its own: drawn alone it is a colour, a legend entry and empty rows."""
    ordered = runs.sort_values("start_time", kind="stable") if "start_time" in runs.columns else runs
    children = children_of(ordered)
    parents = sweep_parents(runs) & set(map(str, selected))
    if not parents:
        return list(selected), []
    status = dict(zip(runs["run_id"].astype(str), trial_state(runs), strict=True))
    labels = run_labels(runs)
    kinds = dict(zip(runs["run_id"].astype(str), runs.get(TAG + TAG_KIND, pd.Series(None, index=runs.index)),
                     strict=True))  # fmt: skip
    out: list[str] = []
    notes: list[str] = []
    for run_id in map(str, selected):
        if run_id not in parents:
            out.append(run_id)
            continue
        kids = children.get(run_id, [])
        finished = [k for k in kids if status.get(k) == "FINISHED"]
        out += [k for k in finished if k not in out]
        unit = "reference runs" if kinds.get(run_id) == contract.KIND_REFERENCES else "trials"
        what = "holds the reference models" if unit == "reference runs" else "is a sweep"
        rest = len(kids) - len(finished)
        left = f" ({rest} not finished: left out)" if rest else ""
        if finished:
            notes.append(f"{labels.get(run_id, run_id[:8])} {what}: its {len(finished)} finished {unit} are "
                         f"{verb} instead{left}.")  # fmt: skip
        else:
            notes.append(f"{labels.get(run_id, run_id[:8])} {what}, none of its {unit} has finished yet: nothing "
                         f"of it is {verb}.")  # fmt: skip
    return list(dict.fromkeys(out)), notes


def search_space(run: pd.Series) -> dict[str, str]:
    """A recdash sweep parent's search space: {param: "low:high[:log]" or "a,b,c"} ({} when not recorded)."""
    text = run.get(PARAM + "search_space")
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        space = json.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in space.items()} if isinstance(space, dict) else {}


def best_params(run: pd.Series) -> dict[str, str]:
    """A recdash sweep parent's best trial params (logged as ``best_<name>``), empty when none finished."""
    out = {}
    for col, value in run.items():
        name = str(col).removeprefix(PARAM)
        if str(col).startswith(PARAM + "best_") and _present(pd.Series([value])).iloc[0]:
            out[name.removeprefix("best_")] = str(value)
    return out


# ------------------------------------------------------------------------------------------------ references


def is_reference(runs: pd.DataFrame) -> pd.Series:
    """Runs logged as references (popularity, EASE, ItemKNN fitted by ``recdash references``)."""
    column = runs.get(TAG + TAG_REFERENCE)
    if column is None:
        return pd.Series(False, index=runs.index)
    return column.astype(str).str.lower().eq("true")


def references_for(groups: pd.Series, all_runs: pd.DataFrame, all_groups: pd.Series | None = None) -> pd.DataFrame:
    """The finished reference runs on the same data as the runs whose data groups are ``groups``.

    One per (data group, model): the newest, if references were trained twice on the same data. The frame is
    ``all_runs``' rows with ``data`` (the group) and ``reference`` (the model's name) added, best first is not
    implied. Groups are those of ``all_runs`` (``all_groups``, computed when not given) so a reference lands in
    the group a run of that data is in."""
    wanted = set(groups.dropna())
    mask = is_reference(all_runs)
    if "status" in all_runs.columns:
        mask &= all_runs["status"].astype(str).eq("FINISHED")
    if not wanted or not mask.any():
        return all_runs.iloc[0:0].assign(data=pd.Series(dtype=object), reference=pd.Series(dtype=object))
    data = (all_groups if all_groups is not None else data_groups(all_runs))[mask]
    refs = all_runs[mask].assign(data=data)
    refs = refs[refs["data"].isin(wanted)]
    names = refs.get(PARAM + MODEL_PARAM, pd.Series(None, index=refs.index, dtype=object))
    refs = refs.assign(reference=names.fillna(refs.get("run_name", pd.Series("reference", index=refs.index))))
    if "start_time" in refs.columns:
        refs = refs.sort_values("start_time", ascending=False)
    return refs.drop_duplicates(["data", "reference"]).sort_values(["data", "reference"]).reset_index(drop=True)


def best_reference(refs: pd.DataFrame, metric: str) -> dict[str, tuple[str, float]]:
    """Per data group, the best reference on ``metric``: (model name, value). Groups whose references lack the
    metric are left out."""
    column = METRIC + metric
    if refs.empty or column not in refs.columns:
        return {}
    values = pd.Series(as_float(refs[column]), index=refs.index)
    out: dict[str, tuple[str, float]] = {}
    for group, members in values.groupby(refs["data"], sort=False):
        members = members[np.isfinite(members)]
        if members.empty:
            continue
        best = members.idxmin() if contract.lower_is_better(metric) else members.idxmax()
        out[str(group)] = (str(refs.at[best, "reference"]), float(members[best]))
    return out


def reference_ratio(runs: pd.DataFrame, groups: pd.Series, refs: pd.DataFrame, metric: str) -> pd.Series:
    """Each run's ``metric`` divided by the best reference's on the same data (NaN where there is none): 1.10 is
    10% above the strongest simple model for a higher-is-better metric."""
    best = best_reference(refs, metric)
    column = METRIC + metric
    if column not in runs.columns or not best:
        return pd.Series(np.nan, index=runs.index)
    values = as_float(runs[column])
    denominators = np.array([best.get(g, (None, np.nan))[1] for g in groups], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = values / denominators
    return pd.Series(np.where(np.isfinite(ratio), ratio, np.nan), index=runs.index)
