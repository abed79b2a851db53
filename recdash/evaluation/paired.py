"""Paired comparisons of runs from their per-user results: what Compare, Models, the sweep view and Recommend show.

Callers pass the per-user frames (:mod:`recdash.evaluation.per_user`) of runs of ONE data group, keyed by run id
(None for a run without per-user results: it is left out, and named in ``missing``). Users are matched by ID and
only users every compared run evaluated count (:func:`recdash.evaluation.significance.align_users`). Each metric's
direction is :func:`recdash.contract.direction`. The statistics (bootstrap, paired t, Holm) are
:mod:`recdash.evaluation.significance`'s; here they are applied to runs and put in frames a page can show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recdash import contract
from recdash.evaluation import significance as sig

Frames = Mapping[str, pd.DataFrame | None]
COLUMNS = ["run_id", "difference", "low", "high", "p_value", "p_adjusted", "beyond_noise", "verdict", "n_users"]


@dataclass(frozen=True)
class Matrix:
    """One metric's per-user values of several runs on their common users (rows: users, columns: runs)."""

    run_ids: list[str]
    users: np.ndarray
    values: np.ndarray
    missing: list[str] = field(default_factory=list)  # runs without per-user results for this metric

    def column(self, run_id: str) -> np.ndarray:
        return self.values[:, self.run_ids.index(run_id)]


def matrix(frames: Frames, metric: str, quartile: int | None = None) -> Matrix:
    """The runs' per-user values of ``metric`` (e.g. ``test_ndcg_at_10``) on the users they all evaluated, in the
    order of ``frames``; ``quartile`` keeps the users of one activity quartile (0 = the least active)."""
    ids, columns, users, missing = [], [], [], []
    for run_id, frame in frames.items():
        if frame is None or metric not in frame.columns:
            missing.append(run_id)
            continue
        if quartile is not None:
            frame = frame[frame["quartile"] == quartile]
        ids.append(run_id)
        users.append(frame["user_id"].to_numpy(dtype=str))
        columns.append(frame[metric].to_numpy(dtype=np.float64))
    if not ids:
        return Matrix([], np.array([], dtype=str), np.zeros((0, 0)), missing)
    common, values = sig.align_users(users, columns)
    return Matrix(ids, common, values, missing)


def _higher(metric: str) -> bool:
    return contract.direction(metric) is not contract.Direction.LOWER


def against(frames: Frames, metric: str, reference: str, *, correction: sig.Correction = "holm") -> pd.DataFrame:
    """Each run's difference to ``reference`` (candidate − reference) on ``metric``: its 95% bootstrap interval over
    users, the paired t-test's p-value and Holm's over the runs compared, and whether it is beyond noise (better or
    worse, by the metric's direction). Rows in the order of ``frames``, the reference left out."""
    m = matrix(frames, metric)
    if reference not in m.run_ids or len(m.run_ids) < 2 or len(m.users) < 2:
        return pd.DataFrame(columns=COLUMNS)
    ref = m.column(reference)
    others = [r for r in m.run_ids if r != reference]
    found = sig.compare_to_reference(ref, m.values[:, [m.run_ids.index(r) for r in others]], correction=correction)
    higher = _higher(metric)
    rows = []
    for run_id, c in zip(others, found, strict=True):
        rows.append(
            {
                "run_id": run_id,
                "difference": c.difference,
                "low": c.low,
                "high": c.high,
                "p_value": c.p_value,
                "p_adjusted": c.p_adjusted,
                "beyond_noise": c.beyond_noise(),
                "verdict": verdict(c, higher),
                "n_users": c.n_users,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def pair(frames: Frames, metric: str, reference: str, candidate: str) -> sig.Comparison | None:
    """``candidate`` against ``reference`` alone on ``metric`` (one comparison: no correction), or None when either
    has no per-user results for it or they share fewer than two users: Models' champion against challenger."""
    m = matrix({reference: frames.get(reference), candidate: frames.get(candidate)}, metric)
    if m.missing or len(m.users) < 2:
        return None
    return sig.compare_to_reference(m.column(reference), m.column(candidate)[:, None], correction="none")[0]


def verdict(c: sig.Comparison, higher_is_better: bool) -> str:
    """'better beyond noise', 'worse beyond noise' or 'within noise', by the metric's direction."""
    if not c.beyond_noise():
        return "within noise"
    better = (c.difference > 0) == higher_is_better
    return "better beyond noise" if better else "worse beyond noise"


def mean_intervals(frames: Frames, metric: str, quartile: int | None = None) -> pd.DataFrame:
    """Each run's mean of ``metric`` over its own evaluated users (its logged value) with a 95% bootstrap interval
    over those users: the whiskers of a bar. Rows ``run_id, mean, low, high, n_users``."""
    return mean_intervals_of(frames, [metric], quartile)[metric]


def mean_intervals_of(frames: Frames, metrics: Sequence[str], quartile: int | None = None) -> dict[str, pd.DataFrame]:
    """:func:`mean_intervals` of several metrics at once.

    Runs evaluated on the same users (a data group) are resampled together, every metric of every run in one
    matrix product: the bootstrap weights depend only on the number of users, so each run's interval is the one it
    gets alone, and drawing them (most of the cost: 2,000 x 138k users at MovieLens-20M's size) is done once for
    all the metrics shown instead of once per metric."""
    by_users: dict[bytes, tuple[list[tuple[str, str]], list[np.ndarray]]] = {}
    for run_id, frame in frames.items():
        if frame is None:
            continue
        if quartile is not None:
            frame = frame[frame["quartile"] == quartile]
        if len(frame) < 2:
            continue
        key = "\0".join(frame["user_id"].astype(str)).encode()
        for metric in metrics:
            if metric in frame.columns:
                cells, columns = by_users.setdefault(key, ([], []))
                cells.append((run_id, metric))
                columns.append(frame[metric].to_numpy(dtype=np.float64))
    rows: dict[str, list[tuple]] = {metric: [] for metric in metrics}
    for cells, columns in by_users.values():
        values = np.column_stack(columns)
        low, high = sig.bootstrap_interval(values)
        means = values.mean(axis=0)
        for j, (run_id, metric) in enumerate(cells):
            rows[metric].append((run_id, float(means[j]), float(low[j]), float(high[j]), values.shape[0]))
    order = {r: i for i, r in enumerate(frames)}
    out = {}
    for metric, found in rows.items():
        found.sort(key=lambda row: order[row[0]])
        out[metric] = pd.DataFrame(found, columns=["run_id", "mean", "low", "high", "n_users"])
    return out


def best_note(frames: Frames, metric: str, names: Mapping[str, str]) -> tuple[str, str] | None:
    """(best run id, "best, but within noise of X" / "best, beyond noise of X") among the runs on ``metric``, or None
    with fewer than two runs that have per-user results."""
    m = matrix(frames, metric)
    if len(m.run_ids) < 2 or len(m.users) < 2:
        return None
    found = sig.best_vs_runner_up(m.values, higher_is_better=_higher(metric))
    best, runner_up = m.run_ids[found.best], m.run_ids[found.runner_up]
    return best, found.text(names.get(runner_up, runner_up[:8]))


def within_noise(frames: Frames, metric: str) -> tuple[str | None, list[str]]:
    """The best run on ``metric`` and the runs the test users cannot tell from it (the best first), Holm over the
    comparisons with the best: the sweep view's "the top N trials are within noise"."""
    m = matrix(frames, metric)
    if not m.run_ids:
        return None, []
    if len(m.run_ids) == 1 or len(m.users) < 2:
        return m.run_ids[0], [m.run_ids[0]]
    found = sig.within_noise_of_best(m.values, higher_is_better=_higher(metric))
    return m.run_ids[found.best], [m.run_ids[i] for i in found.within_noise]


def seed_spread(frames: Frames, metric: str) -> sig.SpreadParts | None:
    """Seed noise and user sampling of one configuration's repeats (each frame one seed), None with fewer than two
    repeats that have per-user results."""
    m = matrix(frames, metric)
    if len(m.run_ids) < 2 or len(m.users) < 2:
        return None
    return sig.seed_noise_vs_user_sampling(m.values)


def user_values(frames: Frames, user_id: str, metrics: Sequence[str]) -> pd.DataFrame:
    """One user's values of ``metrics`` in each run (rows: runs; NaN where a run has no value for the user): what
    Recommend shows next to two models' lists."""
    rows = {}
    for run_id, frame in frames.items():
        if frame is None:
            continue
        hit = frame[frame["user_id"] == str(user_id)]
        rows[run_id] = {m: float(hit[m].iloc[0]) if len(hit) and m in hit.columns else np.nan for m in metrics}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(metrics))
