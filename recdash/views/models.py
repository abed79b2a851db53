"""The Models page's comparisons as data: champion against challenger, metric by metric, with which way is better
(:func:`recdash.contract.direction`) and what the difference means."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from recdash import comparison, contract
from recdash.evaluation import paired
from recdash.evaluation import significance as sig
from recdash.evaluation.per_user import NOT_LOGGED
from recdash.registry import CHALLENGER, CHAMPION, RegistryInputError, get_model, model_versions
from recdash.tracking import frame as run_frame

BETTER, WORSE, EQUAL, UNKNOWN, NOISE = "better", "worse", "equal", "unknown", "within noise"
INTERVAL, P_VALUE = "95% interval", "p-value"


def champion_vs_challenger(name: str, a: str = CHAMPION, b: str = CHALLENGER, client: Any = None) -> pd.DataFrame:
    """Test metrics of the versions behind aliases ``a`` and ``b`` side by side, ``b - a``, and what it means.

    Rows are metrics; columns are ``"<a> (v<n>)"``, ``"<b> (v<m>)"``, ``difference`` (``b - a``), ``better when``
    (``higher`` or ``lower``: a bare difference does not say whether ``b`` is ahead), ``verdict`` (e.g.
    ``"challenger better by 0.0120"``) and ``outcome`` (see :func:`outcome`, for colouring). ``frame.attrs`` holds
    the two versions, their ``models:/`` URIs (pinned to the version, so a later alias move cannot change what a
    link compares) and their runs.
    """
    aliases = get_model(name, client)["aliases"]
    missing = [alias for alias in (a, b) if alias not in aliases]
    if missing:
        raise RegistryInputError(f"model {name!r} has no version with alias {', '.join(map(repr, missing))}")
    versions = model_versions(name, client).set_index("version")
    metrics = [c for c in versions.columns if contract.is_own_test_metric(str(c))]
    va, vb = aliases[a], aliases[b]
    col_a, col_b = f"{a} (v{va})", f"{b} (v{vb})"
    frame = pd.DataFrame(
        {
            col_a: [versions.at[va, m] for m in metrics],
            col_b: [versions.at[vb, m] for m in metrics],
        },
        index=pd.Index(metrics, name="metric"),
    ).astype(float)
    frame["difference"] = frame[col_b] - frame[col_a]
    lower = [contract.lower_is_better(m) for m in metrics]
    outcomes = [outcome(x, y, low) for x, y, low in zip(frame[col_a], frame[col_b], lower, strict=True)]
    frame["better when"] = ["lower" if low else "higher" for low in lower]
    frame["verdict"] = [verdict(b, o, d) for o, d in zip(outcomes, frame["difference"], strict=True)]
    frame["outcome"] = outcomes
    frame.attrs.update(
        {
            "versions": {a: va, b: vb},
            "uris": {a: f"models:/{name}/{va}", b: f"models:/{name}/{vb}"},
            "runs": {a: versions.at[va, "run_id"], b: versions.at[vb, "run_id"]},
        }
    )
    return frame


def outcome(a: float, b: float, lower_is_better: bool) -> str:
    """How ``b`` compares with ``a`` on one metric: better, worse, equal (within float noise) or unknown (NaN)."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return UNKNOWN
    if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12):
        return EQUAL
    return BETTER if (b < a) == lower_is_better else WORSE


def verdict(who: str, result: str, difference: float) -> str:
    """The difference in words: ``"challenger better by 0.0120"``; the sign is in the ``difference`` column."""
    if result == UNKNOWN:
        return "not comparable (missing value)"
    if result == EQUAL:
        return "equal"
    return f"{who} {result} by {abs(difference):.4f}"


def data_difference(run_ids: Mapping[str, str], client: Any) -> str | None:
    """None when the runs (ids by label) were evaluated on the same data group, else a sentence naming each one's:
    a paired comparison is only meaningful on the same test users and held-out items."""
    if len(set(run_ids.values())) == 1:  # one run: one data group
        return None
    runs = []
    for run_id in run_ids.values():
        try:
            runs.append(client.get_run(run_id))
        except Exception:  # deleted, or a store that cannot be read: nothing says the data was the same
            return "a version's source run cannot be read, so nothing says they were tested on the same data"
    groups = comparison.data_groups(run_frame.assemble(run_frame.parts_from_runs(runs))).tolist()
    if len(set(groups)) == 1:
        return None
    named = "; ".join(f"{label}: {group}" for label, group in zip(run_ids, groups, strict=True))
    return f"they were evaluated on different data ({named}), so their difference has no paired interval"


def key_metric(metrics: list[str]) -> str | None:
    """The metric that decides a promotion: the key metric (NDCG) at the smallest cut-off the versions logged."""
    found = [
        (parsed.k, m)
        for m in metrics
        if (parsed := contract.MetricName.parse(m)) and parsed.metric == contract.KEY_METRIC
    ]
    return min(found)[1] if found else None


def with_intervals(
    frame: pd.DataFrame, per_user: Mapping[str, pd.DataFrame | None], why_not: str | None = None
) -> pd.DataFrame:
    """:func:`champion_vs_challenger`'s frame with each metric's paired 95% bootstrap interval of the difference and
    the paired t-test's p-value, over the test users both versions' runs evaluated.

    ``per_user`` maps the two aliases to their source runs' per-user results (None: not logged). ``why_not`` says why
    no paired comparison is possible even so (different data). A metric with an interval is coloured only when its
    difference is beyond noise (p < 0.05); list-level metrics (coverage, Gini...) are properties of all the lists
    together and have no per-user values, so no interval. p-values are per metric, not corrected across metrics:
    the promotion is decided on the key metric alone (``frame.attrs["key"]``, ``frame.attrs["key_text"]``).
    """
    out = frame.copy()
    a, b = list(frame.attrs["versions"])
    frames = {a: per_user.get(a), b: per_user.get(b)}
    if why_not is None and any(f is None for f in frames.values()):
        missing = [alias for alias, f in frames.items() if f is None]
        why_not = f"{NOT_LOGGED} ({' and '.join(missing)})"
    intervals, p_values = [], []
    for metric in out.index:
        found = None if why_not else paired.pair(frames, str(metric), reference=a, candidate=b)
        result = out.at[metric, "outcome"]
        if found is None:
            intervals.append(None)
            p_values.append(float("nan"))
            if result in (BETTER, WORSE):
                out.at[metric, "verdict"] = f"{result}, no interval"
            continue
        intervals.append(f"{found.low:+.4f} … {found.high:+.4f}")
        p_values.append(found.p_value)
        if result in (BETTER, WORSE):
            beyond = found.beyond_noise()
            out.at[metric, "outcome"] = result if beyond else NOISE
            out.at[metric, "verdict"] = f"{result} beyond noise" if beyond else f"{NOISE} ({result})"
    out.insert(out.columns.get_loc("difference") + 1, INTERVAL, intervals)
    out.insert(out.columns.get_loc(INTERVAL) + 1, P_VALUE, p_values)
    key = key_metric([str(m) for m in out.index])
    out.attrs["key"] = key
    out.attrs["key_text"] = _key_text(frames, key, a, b, why_not)
    return out


def _key_text(frames: Mapping[str, pd.DataFrame | None], key: str | None, a: str, b: str, why_not: str | None) -> str:
    """The promotion's verdict in one plain sentence."""
    if key is None:
        return f"Neither version logged the key metric ({contract.KEY_METRIC}), so nothing says whether {b} is better."
    if why_not:
        return f"Whether {b} is better than {a} on {key} beyond noise is unknown: {why_not}."
    found = paired.pair(frames, key, reference=a, candidate=b)
    if found is None:
        return f"Whether {b} is better than {a} on {key} beyond noise is unknown: their runs share too few test users."
    higher = contract.direction(key) is not contract.Direction.LOWER
    detail = sig.summary(found, higher_is_better=higher)
    if not found.beyond_noise():
        return (
            f"On {key}, the key metric, {b} is NOT distinguishable from {a}: the difference is within noise over "
            f"{found.n_users} test users ({detail})."
        )
    better = (found.difference > 0) == higher
    word = "better" if better else "WORSE"
    return f"On {key}, the key metric, {b} is {word} than {a} beyond noise over {found.n_users} test users ({detail})."
