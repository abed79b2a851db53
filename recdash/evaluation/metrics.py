"""Vectorised top-k ranking metrics for full-catalogue evaluation.

Why this module exists: rankfmc's own evaluation loops over users in Python (and its
``recommend(filter_previous=True)`` does too), which is far too slow to run after every training
run or inside a hyper-parameter search. Here every user in a block is scored, masked, ranked and
scored against the truth with array operations only, so the cost is one matmul-sized pass.

Definitions follow RecBole (the reference recdash reports against), for a top-k list of user u
with ``hit_i`` = 1 if the item at 1-based position i is relevant:

* precision = hits / k
* recall = hits / |truth_u|
* ndcg = DCG / IDCG, DCG = sum_i hit_i / log2(i + 1), IDCG over min(|truth_u|, k) positions
* mrr = 1 / rank of the first hit (0 if none)
* map = sum_{i<=k} P@i * hit_i / min(|truth_u|, k)
* hit_rate = 1 if any hit

and every metric is averaged over the users that have at least one truth item.

With ``segments=True`` :func:`evaluate` adds, in the same pass over the users (definitions and sources in
``docs/metrics.md``): recall and NDCG per quartile of user activity (``recall_at_k_q1`` .. ``_q4``, q1 = least
active in training), the share of hits on long-tail items, novelty, Gini index, long-tail share and
personalization of the lists, and intra-list diversity on genres when an item x genre matrix is given.

scipy is imported lazily (only by :func:`interaction_matrix`) so that this module stays importable
where only numpy/pandas are available (see ``recdash/__init__.py``); :func:`evaluate` only needs
the ``indptr``/``indices``/``shape`` attributes of a CSR matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

__all__ = [
    "BEYOND_ACCURACY",
    "METRICS",
    "SEGMENTED",
    "UserResults",
    "evaluate",
    "evaluate_users",
    "gini_index",
    "interaction_matrix",
    "top_k",
]

METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "mrr", "map", "hit_rate")
SEGMENTED: tuple[str, ...] = ("recall", "ndcg")  # reported per user-activity quartile
QUARTILES: tuple[str, ...] = ("q1", "q2", "q3", "q4")
BEYOND_ACCURACY: tuple[str, ...] = ("tail_hit_share", "novelty", "gini", "tail_share", "personalization", "ild")
HEAD_FRACTION = 0.2  # the most popular 20% of the training catalogue is the head; the rest is the long tail
PERSONALIZATION_PAIRS = 2000  # user pairs sampled (with a fixed seed) for personalization; all pairs when fewer


def interaction_matrix(user_idx: np.ndarray, item_idx: np.ndarray, n_users: int, n_items: int) -> csr_matrix:
    """Binary users x items CSR matrix from already-mapped integer indices.

    Duplicates collapse to a single 1 because the metrics are defined on *sets* of relevant or
    excluded items; a user who rated an item twice must not count it twice.
    """
    from scipy.sparse import csr_matrix

    users = np.asarray(user_idx).ravel()
    items = np.asarray(item_idx).ravel()
    if users.shape != items.shape:
        raise ValueError(f"user_idx and item_idx differ in length: {users.size} != {items.size}")
    if n_users < 0 or n_items < 0:
        raise ValueError(f"n_users and n_items must be >= 0, got {n_users} and {n_items}")
    if users.size and not (np.issubdtype(users.dtype, np.integer) and np.issubdtype(items.dtype, np.integer)):
        raise ValueError("user_idx and item_idx must be integer arrays (map raw ids to indices first)")
    users = users.astype(np.int64, copy=False)
    items = items.astype(np.int64, copy=False)
    if users.size and (users.min() < 0 or users.max() >= n_users):
        raise ValueError(f"user_idx out of range [0, {n_users})")
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"item_idx out of range [0, {n_items})")

    # One sort of the linear cell ids dedupes and leaves rows/columns in canonical CSR order
    # (sort + neighbour diff: several times faster than np.unique here).
    cells = np.sort(users * max(n_items, 1) + items)
    if cells.size:
        cells = cells[np.concatenate(([True], cells[1:] != cells[:-1]))]
    rows, cols = np.divmod(cells, max(n_items, 1))
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
    idx_dtype = np.int32 if max(n_items, cells.size) < np.iinfo(np.int32).max else np.int64
    return csr_matrix(
        (np.ones(cells.size, dtype=np.float32), cols.astype(idx_dtype), indptr.astype(idx_dtype)),
        shape=(n_users, n_items),
    )


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Row-wise indices of the k highest scores, best first.

    Only the k survivors are ever sorted (O(n_items + k log k) per row instead of a full argsort);
    when k >= n_items every column is returned, fully sorted. NaN ranks last; ties go to the
    lower column index on the exact paths.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
    k = int(k)
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D [n_users, n_items], got shape {scores.shape}")
    n_items = scores.shape[1]
    if k >= n_items:
        return np.argsort(-scores, axis=1, kind="stable")
    if n_items >= _PREFILTER_MIN_ITEMS and n_items >= _PREFILTER_RATIO * k and scores.shape[0] > 0:
        return _top_k_prefiltered(scores, k)
    neg = -scores
    part = np.argpartition(neg, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(neg, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


_PREFILTER_MIN_ITEMS = 512
_PREFILTER_RATIO = 16
_PREFILTER_GROUPS = 128


def _top_k_prefiltered(scores: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k via a cheap lower bound on each row's k-th best score.

    Why: a per-row argpartition over the whole catalogue dominates evaluate()'s run time. The
    maxima of G >= k disjoint (strided) column groups are G distinct entries, so the k-th largest of them is
    <= the row's true k-th best score; every entry >= that bound is a candidate (usually ~2k per
    row) and only candidates are sorted. Same result as argpartition + sort, ties broken by column.
    """
    n_rows, n_items = scores.shape
    floats = scores.dtype if np.issubdtype(scores.dtype, np.floating) else np.float64
    s = np.asarray(scores, dtype=floats)
    if np.isnan(s).any():  # NaN would poison the group maxima; it ranks last anyway
        s = np.where(np.isnan(s), -np.inf, s)
    groups = max(k, min(_PREFILTER_GROUPS, n_items // 4))
    size = -(-n_items // groups)
    pad = groups * size - n_items
    padded = s if pad == 0 else np.concatenate([s, np.full((n_rows, pad), -np.inf, dtype=s.dtype)], axis=1)
    # group g = columns {g, g + G, g + 2G, ...}: reducing over the middle axis keeps the inner loop
    # contiguous (about 10x faster than a max over many short contiguous groups)
    maxima = padded.reshape(n_rows, size, groups).max(axis=1)
    bound = np.partition(maxima, groups - k, axis=1)[:, groups - k]
    # >= k candidates per row, in row-major order; flatnonzero + divmod beats 2-D np.nonzero
    rows, cols = np.divmod(np.flatnonzero(s >= bound[:, None]), n_items)
    order = np.lexsort((cols, -s[rows, cols], rows))  # by row, then best score, then column
    counts = np.bincount(rows, minlength=n_rows)
    starts = np.cumsum(counts) - counts
    return cols[order][starts[:, None] + np.arange(k)]


def _gather_rows(matrix: csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position-in-block, column) pairs of the stored entries of ``rows``, without a Python loop.

    Reads ``indptr``/``indices`` directly: cheaper than scipy fancy row indexing for every block.
    """
    indptr = matrix.indptr
    starts = indptr[rows].astype(np.int64)
    lengths = indptr[rows + 1].astype(np.int64) - starts
    total = int(lengths.sum())
    block_pos = np.repeat(np.arange(rows.size), lengths)
    if total == 0:
        return block_pos, np.empty(0, dtype=np.int64)
    # offset of each entry inside its row, added to that row's start in ``indices``
    first = np.cumsum(lengths) - lengths
    within = np.arange(total, dtype=np.int64) - np.repeat(first, lengths)
    return block_pos, matrix.indices[np.repeat(starts, lengths) + within]


def _as_csr(matrix: object, name: str) -> csr_matrix:
    """Accept any scipy sparse matrix/array; only CSR gives O(1) row access."""
    if not hasattr(matrix, "indptr") or getattr(matrix, "format", "csr") != "csr":
        if not hasattr(matrix, "tocsr"):
            raise TypeError(f"{name} must be a scipy.sparse CSR matrix, got {type(matrix).__name__}")
        matrix = matrix.tocsr()
    return matrix  # type: ignore[return-value]


@dataclass(frozen=True)
class UserResults:
    """Each evaluated user's value of every ranking metric (the rows of ``truth`` with a held-out item, in row order):
    what the logged averages are the means of (:func:`evaluate_users`), and what paired comparisons of runs work on
    (:mod:`recdash.evaluation.significance`). ``quartile`` is each user's activity quartile (0 = the least active),
    when segments were computed."""

    users: np.ndarray  # row indices into truth
    values: dict[str, np.ndarray]  # metric name (precision, recall, ...) -> float64 per user
    quartile: np.ndarray | None = None  # int8 per user, 0..3


def evaluate(*args: Any, **kwargs: Any) -> dict[str, float]:
    """The averages of :func:`evaluate_users` (same arguments), when the per-user values are not needed."""
    return evaluate_users(*args, **kwargs)[0]


def evaluate_users(
    score_fn: Callable[[np.ndarray], np.ndarray],
    truth: csr_matrix,
    exclude: csr_matrix | None,
    k: int = 10,
    item_popularity: np.ndarray | None = None,
    block_size: int = 1024,
    *,
    segments: bool = False,
    user_activity: np.ndarray | None = None,
    item_genres: np.ndarray | None = None,
    seed: int = 0,
    n_catalogue: int | None = None,
    user_order: np.ndarray | None = None,
) -> tuple[dict[str, float], UserResults]:
    """Full-catalogue top-k metrics averaged over every user with at least one truth item, and each of those users'
    own values (the averages are exactly the means of them: one computation).

    ``score_fn(users)`` must return float scores of shape [len(users), n_items]. Items stored in
    ``exclude`` (train, or train+validation for test) are set to -inf before ranking so that
    already-seen items can neither take a slot nor count as hits. Users are processed
    ``block_size`` at a time so peak memory stays at a few block_size x n_items arrays.

    Returns ``{metric}_at_{k}`` for every name in :data:`METRICS`, ``coverage_at_{k}`` (the share of the
    first ``n_catalogue`` columns, the items the model can recommend, that appear in any top-k list; default every
    column), ``mean_popularity_at_{k}`` (mean ``item_popularity``
    of recommended items; NaN when ``item_popularity`` is None, so the key set is stable for
    logging) and ``n_users_evaluated``. With no evaluable user the averages are NaN.

    ``segments=True`` adds the segment and beyond-accuracy metrics (``docs/metrics.md``): it needs
    ``item_popularity`` (training interactions per item; items with none are outside the training
    catalogue) and ``user_activity`` (training interactions per user row of ``truth``); ``item_genres``
    (bool [n_items, n_genres]) adds ``ild_at_{k}``; ``seed`` fixes the personalization pair sample;
    ``user_order`` (one number per row of ``truth``) orders users of equal activity for the quartiles (default: the
    row index).

    Notes: precision always divides by k, also when k > n_items (RecBole's convention). A list
    slot whose score is -inf or NaN (an excluded item, reached only when fewer than k items remain
    unmasked) is not a recommendation: it is never a hit, nor counted in coverage/popularity.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, int | np.integer) or block_size < 1:
        raise ValueError(f"block_size must be an integer >= 1, got {block_size!r}")
    k = int(k)
    truth = _as_csr(truth, "truth")
    n_items = truth.shape[1]
    if exclude is not None:
        exclude = _as_csr(exclude, "exclude")
        if exclude.shape != truth.shape:
            raise ValueError(f"exclude shape {exclude.shape} does not match truth shape {truth.shape}")
    popularity = None
    if item_popularity is not None:
        popularity = np.asarray(item_popularity, dtype=np.float64).ravel()
        if popularity.size != n_items:
            raise ValueError(f"item_popularity has {popularity.size} entries, expected n_items={n_items}")

    if segments and (popularity is None or user_activity is None):
        raise ValueError("segments=True needs item_popularity and user_activity")
    activity = None
    if user_activity is not None:
        activity = np.asarray(user_activity, dtype=np.float64).ravel()
        if activity.size != truth.shape[0]:
            raise ValueError(f"user_activity has {activity.size} entries, expected n_users={truth.shape[0]}")
    catalogue = n_items if n_catalogue is None else int(n_catalogue)
    if not 0 <= catalogue <= n_items:
        raise ValueError(f"n_catalogue must be between 0 and n_items={n_items}, got {n_catalogue!r}")
    tiebreak = np.zeros(truth.shape[0], dtype=np.uint64)
    if user_order is not None:
        tiebreak = np.asarray(user_order).ravel()
        if tiebreak.size != truth.shape[0]:
            raise ValueError(f"user_order has {tiebreak.size} entries, expected n_users={truth.shape[0]}")
    genres = None
    if item_genres is not None:
        genres = np.asarray(item_genres, dtype=np.float32)
        if genres.ndim != 2 or genres.shape[0] != n_items:
            raise ValueError(f"item_genres must be [n_items={n_items}, n_genres]; got shape {genres.shape}")

    # Distinct truth items per user: duplicates stored in a non-canonical CSR must count once.
    if not truth.has_canonical_format:
        truth = truth.copy()
        truth.sum_duplicates()
    n_truth_all = np.diff(truth.indptr)
    users = np.flatnonzero(n_truth_all > 0)

    length = min(k, n_items)  # slots that can actually be filled
    positions = np.arange(1, length + 1, dtype=np.float64)
    discounts = 1.0 / np.log2(positions + 1.0)
    # ideal DCG for a user with j relevant items is the sum of the first min(j, k) discounts
    idcg_table = np.concatenate(([0.0], np.cumsum(discounts)))

    per_user: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    recommended = np.zeros(n_items, dtype=bool)
    pop_sum, pop_count = 0.0, 0
    extra = _Extended(users, k, popularity, genres, seed) if segments else None

    for start in range(0, users.size, block_size):
        block = users[start : start + block_size]
        n_block = block.size
        raw = np.asarray(score_fn(block))
        if raw.shape != (n_block, n_items):
            raise ValueError(f"score_fn returned shape {raw.shape}, expected ({n_block}, {n_items}) for this block")
        # Copy (never mask the caller's array in place, it may be a cached buffer); keep float32 if given.
        scores = np.array(raw, dtype=np.result_type(raw.dtype, np.float32))
        if exclude is not None:
            ex_rows, ex_cols = _gather_rows(exclude, block)
            scores[ex_rows, ex_cols] = -np.inf

        top = top_k(scores, k)
        top_scores = np.take_along_axis(scores, top, axis=1)
        valid = top_scores > -np.inf  # False for masked (-inf) and NaN slots

        relevant = np.zeros((n_block, n_items), dtype=bool)
        tr_rows, tr_cols = _gather_rows(truth, block)
        relevant[tr_rows, tr_cols] = True
        hits = np.take_along_axis(relevant, top, axis=1) & valid
        hits_f = hits.astype(np.float64)

        n_hits = hits_f.sum(axis=1)
        n_truth = n_truth_all[block].astype(np.float64)
        denom = np.minimum(n_truth_all[block], k)  # min(|truth_u|, k), >= 1 for evaluated users
        any_hit = n_hits > 0

        per_user["precision"].append(n_hits / k)
        recall_u = n_hits / n_truth
        ndcg_u = (hits_f @ discounts) / idcg_table[np.minimum(denom, length)]
        per_user["recall"].append(recall_u)
        per_user["ndcg"].append(ndcg_u)
        first = np.argmax(hits, axis=1)
        per_user["mrr"].append(np.where(any_hit, 1.0 / (first + 1.0), 0.0))
        precision_at_i = np.cumsum(hits_f, axis=1) / positions
        per_user["map"].append((precision_at_i * hits_f).sum(axis=1) / denom)
        per_user["hit_rate"].append(any_hit.astype(np.float64))

        rec_items = top[valid]
        recommended[rec_items] = True
        if popularity is not None:
            pop_sum += float(popularity[rec_items].sum())
            pop_count += int(rec_items.size)
        if extra is not None:
            extra.add_block(start, top, valid, hits, rec_items, {"recall": recall_u, "ndcg": ndcg_u})

    n_eval = int(users.size)
    values = {n: np.concatenate(parts).astype(np.float64) if parts else np.zeros(0) for n, parts in per_user.items()}
    # the averages are these arrays' means (np.mean): a reader of the per-user values gets the logged numbers back
    result: dict[str, float] = {
        f"{name}_at_{k}": (float(np.mean(values[name])) if n_eval else float("nan")) for name in METRICS
    }
    result[f"coverage_at_{k}"] = float(recommended[:catalogue].sum()) / catalogue if catalogue else float("nan")
    result[f"mean_popularity_at_{k}"] = pop_sum / pop_count if pop_count else float("nan")
    if extra is not None:
        assert activity is not None
        result |= extra.finish(activity, tiebreak)
    result["n_users_evaluated"] = n_eval
    quartile = extra.quartile.astype(np.int8) if extra is not None else None
    return result, UserResults(users, values, quartile)


def gini_index(counts: np.ndarray) -> float:
    """Gini index of non-negative counts (0: all equal, towards 1: all on one), as RecBole's GiniIndex:
    sum_i (2i - n - 1) c_(i) / (n sum c) over the counts sorted ascending, i = 1..n. NaN when all are 0."""
    c = np.sort(np.asarray(counts, dtype=np.float64).ravel())
    n, total = c.size, c.sum()
    if n == 0 or total <= 0:
        return float("nan")
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * i - n - 1) * c).sum() / (n * total))


class _Extended:
    """Accumulates the segment and beyond-accuracy metrics over the blocks of :func:`evaluate`.

    Everything is a lookup on arrays evaluate() already has (the top-k, hits, per-user recall and NDCG), plus
    the genre overlap of each list's k x k pairs; the personalization lists are kept only for sampled users.
    """

    def __init__(self, users: np.ndarray, k: int, popularity: np.ndarray, genres: np.ndarray | None, seed: int):
        n_items = popularity.size
        self.k, self.users, self.genres = k, users, genres
        in_catalogue = popularity > 0
        self.catalogue = in_catalogue
        order = np.argsort(-popularity, kind="stable")
        n_head = int(np.ceil(HEAD_FRACTION * int(in_catalogue.sum())))
        self.tail = np.ones(n_items, dtype=bool)
        self.tail[order[:n_head]] = False
        total = float(popularity.sum())
        # self-information -log2 p(i), p(i) = the item's share of training interactions (one interaction at least)
        self.information = -np.log2(np.maximum(popularity, 1.0) / max(total, 1.0))
        self.per_user = {name: np.zeros(users.size) for name in SEGMENTED}
        self.counts = np.zeros(n_items, dtype=np.int64)
        self.hits = self.tail_hits = self.slots = self.tail_slots = 0
        self.information_sum = 0.0
        self.ild_sum, self.ild_users = 0.0, 0
        self.pairs = _sample_pairs(users.size, seed)
        needed = np.unique(self.pairs) if self.pairs.size else np.array([], dtype=np.int64)
        self.row_of = np.full(users.size, -1, dtype=np.int64)
        self.row_of[needed] = np.arange(needed.size)
        self.lists = np.full((needed.size, k), -1, dtype=np.int64)

    def add_block(
        self,
        start: int,
        top: np.ndarray,
        valid: np.ndarray,
        hits: np.ndarray,
        rec_items: np.ndarray,
        per_user: dict[str, np.ndarray],
    ) -> None:
        n_block = top.shape[0]
        for name, values in per_user.items():
            self.per_user[name][start : start + n_block] = values
        self.hits += int(hits.sum())
        self.tail_hits += int((hits & self.tail[top]).sum())
        self.slots += int(rec_items.size)
        self.tail_slots += int(self.tail[rec_items].sum())
        self.information_sum += float(self.information[rec_items].sum())
        self.counts += np.bincount(rec_items, minlength=self.counts.size)
        rows = self.row_of[start : start + n_block]
        keep = rows >= 0
        if keep.any():
            width = min(top.shape[1], self.k)
            self.lists[rows[keep], :width] = np.where(valid[keep], top[keep], -1)[:, :width]
        if self.genres is not None:
            self._add_ild(top, valid)

    def _add_ild(self, top: np.ndarray, valid: np.ndarray) -> None:
        """Mean pairwise genre distance (1 - Jaccard of genre sets) within each list; pairs involving an empty
        slot or two items without any genre are left out."""
        g = self.genres[top]  # type: ignore[index]  # [n_block, k, n_genres]
        inter = np.einsum("ukg,ulg->ukl", g, g)
        size = g.sum(axis=2)
        union = size[:, :, None] + size[:, None, :] - inter
        k = top.shape[1]
        upper = np.triu(np.ones((k, k), dtype=bool), 1)
        pair_ok = upper[None] & valid[:, :, None] & valid[:, None, :] & (union > 0)
        distance = 1.0 - np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        n_pairs = pair_ok.sum(axis=(1, 2))
        has = n_pairs > 0
        if has.any():
            per_list = np.where(pair_ok, distance, 0.0).sum(axis=(1, 2))[has] / n_pairs[has]
            self.ild_sum += float(per_list.sum())
            self.ild_users += int(has.sum())

    def finish(self, activity: np.ndarray, tiebreak: np.ndarray) -> dict[str, float]:
        k, nan = self.k, float("nan")
        out: dict[str, float] = {}
        n = self.users.size
        # quartiles of training activity among the evaluated users, by rank (equal activity ordered by ``tiebreak``,
        # then the row index) so the four groups differ in size by at most one however many users share a count
        order = np.lexsort((self.users, tiebreak[self.users], activity[self.users]))
        quartile = np.empty(n, dtype=np.int64)
        quartile[order] = (4 * np.arange(n)) // max(n, 1)
        self.quartile = quartile
        for name in SEGMENTED:
            for q, label in enumerate(QUARTILES):
                members = quartile == q
                out[f"{name}_at_{k}_{label}"] = float(self.per_user[name][members].mean()) if members.any() else nan
        out[f"tail_hit_share_at_{k}"] = self.tail_hits / self.hits if self.hits else nan
        out[f"novelty_at_{k}"] = self.information_sum / self.slots if self.slots else nan
        out[f"gini_at_{k}"] = gini_index(self.counts[self.catalogue]) if self.slots else nan
        out[f"tail_share_at_{k}"] = self.tail_slots / self.slots if self.slots else nan
        out[f"personalization_at_{k}"] = self._personalization()
        if self.genres is not None:
            out[f"ild_at_{k}"] = self.ild_sum / self.ild_users if self.ild_users else nan
        return out

    def _personalization(self) -> float:
        """1 - mean Jaccard overlap of the sampled pairs' lists (pairs where both lists are empty are skipped)."""
        if not self.pairs.size:
            return float("nan")
        a = self.lists[self.row_of[self.pairs[:, 0]]]
        b = self.lists[self.row_of[self.pairs[:, 1]]]
        inter = ((a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)).sum(axis=(1, 2))
        union = (a >= 0).sum(axis=1) + (b >= 0).sum(axis=1) - inter
        ok = union > 0
        if not ok.any():
            return float("nan")
        return float(1.0 - (inter[ok] / union[ok]).mean())


def _sample_pairs(n: int, seed: int, limit: int = PERSONALIZATION_PAIRS) -> np.ndarray:
    """Pairs (a, b), a != b, of positions among ``n`` users: every unordered pair when there are at most ``limit``,
    else ``limit`` pairs drawn with ``seed`` (the same users for every model evaluated on the same data)."""
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    if n * (n - 1) // 2 <= limit:
        a, b = np.triu_indices(n, 1)
        return np.stack([a, b], axis=1).astype(np.int64)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, limit)
    b = rng.integers(0, n - 1, limit)
    b = b + (b >= a)
    return np.stack([a, b], axis=1).astype(np.int64)
