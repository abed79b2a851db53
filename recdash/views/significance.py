"""Compare's "is the difference real?" as frames: each run's difference to a chosen run of its data group with a
paired interval and p-value, the ★ best's "within noise of X", interval whiskers, per-quartile intervals, seed
noise against user sampling for repeats, and the sweep trials the test users cannot tell from the best.

Only runs of one data group are ever paired (the same test users and held-out items); the statistics are
:mod:`recdash.evaluation.paired`'s. ``frames`` maps run ids to their per-user results (None: not logged).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from recdash import comparison as cmp
from recdash import contract
from recdash.evaluation import paired
from recdash.evaluation import significance as sig
from recdash.evaluation.per_user import NOT_LOGGED

Frames = Mapping[str, pd.DataFrame | None]
METHOD = (
    f"Paired over the test users both runs evaluated: 95% interval of the mean difference from a bootstrap over users "
    f"({sig.RESAMPLES:,} resamples, seed {sig.SEED}), p-value from the paired t-test, Holm's correction over the runs "
    f"compared with the same run; beyond noise when the corrected p < {sig.ALPHA}. Method: docs/metrics.md."
)


def has_per_user(metric: str) -> bool:
    """Whether runs keep per-user values of ``metric``: a model's own overall test ranking metric."""
    parsed = contract.MetricName.parse(metric)
    return contract.is_own_test_metric(metric) and parsed is not None and parsed.metric in contract.RANKING


def _values(runs: pd.DataFrame, metric: str) -> pd.Series:
    column = contract.METRIC + metric
    if column not in runs.columns:
        return pd.Series(np.nan, index=runs["run_id"].astype(str).to_numpy())
    return pd.Series(cmp.as_float(runs[column]), index=runs["run_id"].astype(str).to_numpy())


def _best(values: pd.Series, metric: str) -> str | None:
    values = values[np.isfinite(values.to_numpy(dtype=float))]
    if values.empty:
        return None
    return str(values.idxmin() if contract.lower_is_better(metric) else values.idxmax())


def default_references(runs: pd.DataFrame, groups: pd.Series, refs: pd.DataFrame, metric: str) -> dict[str, str]:
    """Per data group, the run the others are measured against by default: the best reference run (popularity,
    EASE, ItemKNN fitted on that data) on ``metric``, else the group's best run."""
    out = {}
    ref_values = _values(refs, metric) if not refs.empty else pd.Series(dtype=float)
    for group, members in runs.groupby(groups, sort=False):
        in_group = refs[refs["data"] == group] if not refs.empty else refs
        choice = _best(ref_values.loc[in_group["run_id"].astype(str)], metric) if len(in_group) else None
        choice = choice or _best(_values(members, metric), metric)
        if choice:
            out[str(group)] = choice
    return out


def difference_table(
    runs: pd.DataFrame,
    groups: pd.Series,
    frames: Frames,
    metric: str,
    reference_of: Mapping[str, str],
    label: Callable[[str], str],
) -> pd.DataFrame:
    """Per data group, each run against the group's reference run (``reference_of``): its value, the difference
    (run − reference), the 95% interval and p-values (raw and Holm over the group's comparisons), the verdict and
    how many users were paired. The reference's own row comes first in its group, marked as such; a run without
    per-user results says so instead of an interval."""
    rows = []
    run_ids = runs["run_id"].astype(str).tolist()
    values = _values(runs, metric)
    for group, reference in reference_of.items():
        members = [r for r, g in zip(run_ids, groups, strict=True) if g == group]
        if not members:
            continue
        candidates = [r for r in members if r != reference]
        found = paired.against({reference: frames.get(reference), **{r: frames.get(r) for r in candidates}}, metric,
                               reference).set_index("run_id")  # fmt: skip
        ref_frame = frames.get(reference)
        ref_value = values.get(reference, np.nan)
        if ref_frame is not None and metric in ref_frame.columns:  # a reference outside the selection
            ref_value = float(np.mean(ref_frame[metric].to_numpy(dtype=np.float64)))  # = its logged value
        rows.append(_row(group, reference, label, ref_value, verdict="reference (the rows below: run − it)"))
        for run_id in candidates:
            value = float(values.get(run_id, np.nan))
            if run_id in found.index:
                hit = found.loc[run_id]
                rows.append(
                    _row(
                        group,
                        run_id,
                        label,
                        value,
                        difference=hit["difference"],
                        low=hit["low"],
                        high=hit["high"],
                        p=hit["p_value"],
                        p_holm=hit["p_adjusted"],
                        verdict=hit["verdict"],
                        users=hit["n_users"],
                    )
                )
            else:
                missing = reference if frames.get(reference) is None else run_id
                rows.append(_row(group, run_id, label, value, verdict=f"{NOT_LOGGED} ({label(missing)})"))
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)


DIFFERENCE_COLUMNS = ["data", "run", "value", "difference", "low", "high", "p", "p (Holm)", "verdict", "users"]


def _row(
    group: str, run_id: str, label: Callable[[str], str], value: float | None, *, difference: float = np.nan,
    low: float = np.nan, high: float = np.nan, p: float = np.nan, p_holm: float = np.nan, verdict: str = "",
    users: float = np.nan,
) -> dict[str, object]:  # fmt: skip
    return dict(zip(DIFFERENCE_COLUMNS, [group, label(run_id), value, difference, low, high, p, p_holm, verdict, users],
                    strict=True))  # fmt: skip


def best_notes(
    runs: pd.DataFrame, groups: pd.Series, frames: Frames, metric: str, label: Callable[[str], str]
) -> dict[str, tuple[str, str]]:
    """Per data group with at least two runs with per-user results: (best run id, "best, but within noise of X" or
    "best, beyond noise of X"), X the runner-up."""
    out = {}
    run_ids = runs["run_id"].astype(str).tolist()
    for group in dict.fromkeys(groups):
        members = {r: frames.get(r) for r, g in zip(run_ids, groups, strict=True) if g == group}
        note = paired.best_note(members, metric, {r: label(r) for r in members})
        if note is not None:
            out[str(group)] = note
    return out


def interval_whiskers(frames: Frames, metric: str, run_ids: Sequence[str]) -> pd.DataFrame:
    """Each run's mean of ``metric`` with its 95% bootstrap interval over its users (``run_id, mean, low, high,
    n_users``): the whiskers of Compare's bars."""
    return paired.mean_intervals({r: frames.get(r) for r in run_ids}, metric)


def quartile_intervals(frames: Frames, metric: str, run_ids: Sequence[str]) -> pd.DataFrame:
    """Per run and activity quartile (q1 the least active), the mean of ``metric`` with its 95% interval over that
    quartile's users: ``run_id, segment, mean, low, high, n_users``."""
    parts = []
    for q in range(4):
        found = paired.mean_intervals({r: frames.get(r) for r in run_ids}, metric, quartile=q)
        parts.append(found.assign(segment=f"q{q + 1}"))
    out = pd.concat(parts, ignore_index=True)
    return out[["run_id", "segment", "mean", "low", "high", "n_users"]]


def repeat_spreads(
    runs: pd.DataFrame, groups: pd.Series, configs: pd.Series, frames: Frames, metric: str
) -> pd.DataFrame:
    """For each configuration repeated with seeds on one data group: its mean, the seed noise (std of the repeats'
    means on the same users) and the user sampling error (standard error over users of the seed-averaged values).
    Two different questions, each named: "would another seed move it?" and "would other test users move it?"."""
    rows = []
    run_ids = runs["run_id"].astype(str).to_numpy()
    for (group, config), idx in runs.groupby([groups.to_numpy(), configs.to_numpy()], sort=False).groups.items():
        members = [str(r) for r in run_ids[runs.index.get_indexer(idx)]]
        if len(members) < 2:
            continue
        parts = paired.seed_spread({r: frames.get(r) for r in members}, metric)
        missing = sum(frames.get(r) is None for r in members)
        rows.append(
            {
                "data": group,
                "configuration": config,
                "repeats": len(members),
                "mean": parts.mean if parts else np.nan,
                "seed noise (std over seeds)": parts.seed_noise_std if parts else np.nan,
                "user sampling (SE over users)": parts.user_sampling_se if parts else np.nan,
                "users": parts.n_users if parts else np.nan,
                "note": "" if parts and not missing else f"{NOT_LOGGED} ({missing} of {len(members)} repeats)",
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "data",
            "configuration",
            "repeats",
            "mean",
            "seed noise (std over seeds)",
            "user sampling (SE over users)",
            "users",
            "note",
        ],
    )


def within_noise_sentence(
    trials: pd.DataFrame, frames: Frames, metric: str, label: Callable[[str], str]
) -> tuple[list[str], str]:
    """The trials the test users cannot tell from the best on ``metric`` (the best first) and the sentence that
    says it ("The top 4 trials are within noise of the best, #12: ..."), or ([], why not)."""
    ids = trials["run_id"].astype(str).tolist()
    with_results = {r: frames.get(r) for r in ids if frames.get(r) is not None}
    if len(with_results) < 2:
        return [], f"Fewer than two trials have per-user results ({NOT_LOGGED}), so no trial is marked."
    best, close = paired.within_noise(with_results, metric)
    others = len(with_results) - 1
    if len(close) == 1:
        return close, (f"The best trial, {label(best)}, is beyond noise of all {others} other trials on {metric} "
                       f"(paired t, Holm over {others}).")  # fmt: skip
    names = ", ".join(label(r) for r in close[1:6]) + (" …" if len(close) > 6 else "")
    return close, (
        f"The top {len(close)} trials are within noise on {metric}: the test users cannot tell the best, "
        f"{label(best)}, from {names} (paired t, Holm over {others}). Do not over-read the winner."
    )


# ---- what the Compare page shows ---------------------------------------------------------------------------------


def interval_map(frames: Frames, metrics: Sequence[str], run_ids: Sequence[str]) -> dict[str, dict[str, tuple]]:
    """metric -> run id -> (low, high) of the runs' 95% intervals over users: the bars' whiskers."""
    found = paired.mean_intervals_of({r: frames.get(r) for r in run_ids}, list(metrics))  # one resampling for all
    return {
        metric: {r: (lo, hi) for r, lo, hi in table[["run_id", "low", "high"]].itertuples(index=False)}
        for metric, table in found.items()
    }


def quartile_interval_map(frames: Frames, base: str, run_ids: Sequence[str]) -> dict[str, dict[str, tuple]]:
    """``<base>_q<n>`` -> run id -> (low, high): the Segments bars' whiskers, over each quartile's users."""
    found = quartile_intervals(frames, base, run_ids)
    out: dict[str, dict[str, tuple]] = {}
    for r, segment, lo, hi in found[["run_id", "segment", "low", "high"]].itertuples(index=False):
        out.setdefault(f"{base}_{segment}", {})[r] = (lo, hi)
    return out


def best_note_map(
    runs: pd.DataFrame, groups: pd.Series, frames: Frames, metrics: Sequence[str], label: Callable[[str], str]
) -> tuple[dict[str, dict[str, str]], list[str]]:
    """For the bars' ★: metric -> data group -> "best, but within noise of X" / "best, beyond noise of X", and the
    same as sentences naming the best run, for the caption under the chart."""
    marks: dict[str, dict[str, str]] = {}
    lines = []
    several = groups.nunique() > 1
    for metric in metrics:
        for group, (best, text) in best_notes(runs, groups, frames, metric, label).items():
            marks.setdefault(metric, {})[group] = text
            where = f" on {group}" if several else ""
            lines.append(f"★ {metric}{where}: {label(best)} is {text}.")
    return marks, lines


def shown_differences(table: pd.DataFrame, several_groups: bool) -> pd.DataFrame:
    """:func:`difference_table` for reading: the interval as one column, the data column only when it varies."""
    interval = [
        f"{lo:+.4f} … {hi:+.4f}" if np.isfinite(lo) and np.isfinite(hi) else None
        for lo, hi in zip(table["low"], table["high"], strict=True)
    ]
    p_text = {c: [_p_text(p) for p in table[c]] for c in ("p", "p (Holm)")}
    out = table.drop(columns=["low", "high"]).assign(**{"95% interval": interval, **p_text})
    columns = ["data", "run", "value", "difference", "95% interval", "p", "p (Holm)", "verdict", "users"]
    return out[columns if several_groups else columns[1:]]


def _p_text(p: float) -> str | None:
    """A p-value as read: three decimals, "< 0.001" below that (0.0000 would claim a certainty nobody has)."""
    if not np.isfinite(p):
        return None
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def test_metric_of(objective: str) -> str | None:
    """The test metric a sweep's validation objective stands for (``val_ndcg_at_10`` -> ``test_ndcg_at_10``)."""
    parsed = contract.MetricName.parse(objective.removeprefix("best_"))
    if parsed is None:
        return None
    name = parsed.with_(split="test").format()
    return name if has_per_user(name) else None


def sweep_table(trials: pd.DataFrame, metric: str, close: Sequence[str], label: Callable[[str], str]) -> pd.DataFrame:
    """The finished trials by ``metric`` (test), best first, each marked when the test users cannot tell it from
    the best."""
    values = _values(trials, metric)
    values = values[np.isfinite(values.to_numpy(dtype=float))]
    values = values.sort_values(ascending=contract.lower_is_better(metric))
    marks = {r: "✓" for r in close[1:]} | ({close[0]: "★ the best"} if close else {})
    return pd.DataFrame(
        {
            "trial": [label(r) for r in values.index],
            metric: values.to_numpy(),
            "within noise of the best": [marks.get(r, "") for r in values.index],
        }
    )
