"""The Models page's comparisons as data: champion against challenger, metric by metric, with which way is better
(:func:`recdash.contract.direction`) and what the difference means."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from recdash import contract
from recdash.registry import CHALLENGER, CHAMPION, RegistryInputError, get_model, model_versions

BETTER, WORSE, EQUAL, UNKNOWN = "better", "worse", "equal", "unknown"


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
