"""Synthetic data with the structure of real interactions (latent taste, Zipf popularity, activity skew), and
MovieLens's user and item columns derived from each user's and item's taste, so side features carry signal."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recdash.data.dataset import Dataset, DatasetError
from recdash.data.movielens import ML100K_OCCUPATIONS
from recdash.data.split import grouped_order

_SYN_GENRES = ("Action", "Comedy", "Drama", "Sci-Fi", "Romance", "Thriller", "Documentary", "Animation")


_ADJECTIVES = (
    "Silent", "Golden", "Broken", "Hidden", "Last", "Crimson", "Electric", "Frozen", "Wild", "Lonely",
    "Midnight", "Secret", "Lucky", "Distant", "Burning", "Paper",
)  # fmt: skip


_NOUNS = (
    "Harbor", "Empire", "Garden", "River", "Signal", "Machine", "Winter", "Horizon", "Letter", "Circus",
    "Mirror", "Orchard", "Voyage", "Station", "Kingdom", "Echo",
)  # fmt: skip


def make_synthetic(
    n_users: int = 500, n_items: int = 400, n_interactions: int = 20_000, n_factors: int = 8, seed: int = 0
) -> Dataset:
    """Seeded data with learnable structure: latent factors + Zipf popularity, so MF can beat popularity.

    Each user's items are drawn without replacement from softmax(user·item + log popularity) via
    Gumbel-top-k, fully vectorised (100k interactions in well under a second).
    """
    for label, value, low in (("n_users", n_users, 1), ("n_items", n_items, 1), ("n_factors", n_factors, 1)):
        if int(value) != value or value < low:
            raise DatasetError(f"synthetic: {label} must be an integer >= {low}, got {value!r}.")
    n_users, n_items, n_interactions, n_factors = int(n_users), int(n_items), int(n_interactions), int(n_factors)
    if not n_users <= n_interactions <= n_users * n_items:
        raise DatasetError(
            f"synthetic: n_interactions must be between n_users ({n_users:,}) and n_users*n_items "
            f"({n_users * n_items:,}), got {n_interactions:,}."
        )
    rng = np.random.default_rng(seed)
    user_f = rng.normal(size=(n_users, n_factors)).astype(np.float32)
    item_f = rng.normal(size=(n_items, n_factors)).astype(np.float32)
    scale = np.float32(2.5 / np.sqrt(n_factors))  # taste strong enough to matter next to popularity
    log_pop = (-1.0 * np.log(rng.permutation(n_items) + 1.0)).astype(np.float32)  # Zipf, shuffled over ids
    counts = _activity_counts(rng, n_users, n_items, n_interactions)

    if n_users * n_items <= EXACT_CELLS:
        u, i, aff = _draw_exact(rng, user_f, item_f, scale, log_pop, counts)
    else:
        u, i, aff = _draw_sampled(rng, user_f, item_f, scale, log_pop, counts)

    # Timestamps: each user starts sometime in the first half-year, then consumes in sampled order.
    gaps = 60 + rng.exponential(86_400.0, size=len(u)).astype(np.int64)
    cum = np.cumsum(gaps)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    per_user = cum - np.repeat(cum[first] - gaps[first], counts)
    start_t = 1_600_000_000 + rng.integers(0, 180 * 86_400, size=n_users)
    ts = start_t[u] + per_user
    del gaps, cum, per_user  # 20M rows: every temporary is 160 MB

    # Ratings follow affinity so min_rating keeps the "liked" items.
    z = (aff - aff.mean()) / (aff.std() + 1e-9)
    rating = np.clip(np.rint(3.5 + z + rng.normal(0.0, 0.7, size=len(u))), 1, 5).astype(np.float32)
    del z, aff

    wu, wi = max(4, len(str(n_users))), max(4, len(str(n_items)))
    user_ids = np.array([f"u{j + 1:0{wu}d}" for j in range(n_users)], dtype=object)
    item_ids = np.array([f"i{j + 1:0{wi}d}" for j in range(n_items)], dtype=object)
    order = grouped_order(np.zeros(len(ts), dtype=np.int8), ts)  # = np.argsort(ts, kind="stable"), faster
    # zero-padded IDs sort as their numbers: user j's code is j, item j's is j (the Dataset's coded shape as it is)
    inter = pd.DataFrame(
        {
            "user_id": pd.Categorical.from_codes(u[order].astype(np.int32), pd.Index(user_ids, dtype=str)),
            "item_id": pd.Categorical.from_codes(i[order].astype(np.int32), pd.Index(item_ids, dtype=str)),
            "weight": rating[order],
            "timestamp": ts[order].astype(np.int64),
        }
    )

    n_g = len(_SYN_GENRES)
    primary = np.argmax(item_f[:, : min(n_factors, n_g)], axis=1) % n_g
    secondary = rng.integers(0, n_g, size=n_items)
    has_second = (rng.random(n_items) < 0.35) & (secondary != primary)
    genres = [
        _SYN_GENRES[p] + (f"|{_SYN_GENRES[s]}" if h else "")
        for p, s, h in zip(primary, secondary, has_second, strict=True)
    ]
    adj = rng.integers(0, len(_ADJECTIVES), size=n_items)
    noun = rng.integers(0, len(_NOUNS), size=n_items)
    titles = [f"The {_ADJECTIVES[a]} {_NOUNS[b]} {j + 1}" for j, (a, b) in enumerate(zip(adj, noun, strict=True))]
    items = pd.DataFrame(
        {
            "item_id": pd.array(item_ids, dtype=str),
            "title": pd.array(titles, dtype=str),
            "genres": pd.array(genres, dtype=str),
            "year": pd.array(rng.integers(1960, 2024, size=n_items), dtype="Int64"),
        }
    )
    fav = np.argmax(user_f[:, : min(n_factors, n_g)], axis=1) % n_g
    # MovieLens's user columns, each a noisy function of the user's latent taste, so side features carry signal
    # by construction: age follows one factor, gender the sign of another, occupation the best-aligned of random
    # directions in taste space (drawn after everything else, so the interactions do not depend on them)
    age = np.clip(np.rint(38 + 13 * user_f[:, 0 % n_factors] + rng.normal(0, 4, n_users)), 16, 75)
    female = user_f[:, 1 % n_factors] + rng.normal(0, 0.5, n_users) > 0
    directions = rng.normal(size=(n_factors, len(ML100K_OCCUPATIONS))).astype(np.float32)
    job = np.argmax(user_f @ directions + rng.gumbel(size=(n_users, len(ML100K_OCCUPATIONS))), axis=1)
    users = pd.DataFrame(
        {
            "user_id": pd.array(user_ids, dtype=str),
            "age": pd.array(age.astype(np.int64), dtype="Int64"),
            "gender": pd.array(np.where(female, "F", "M"), dtype=str),
            "occupation": pd.array(np.asarray(ML100K_OCCUPATIONS, dtype=object)[job], dtype=str),
            "favourite_genre": pd.array([_SYN_GENRES[g] for g in fav], dtype=str),
        }
    )
    source = (
        f"generated(seed={seed}, n_users={n_users}, n_items={n_items}, "
        f"n_interactions={n_interactions}, n_factors={n_factors})"
    )
    return Dataset("synthetic", source, inter, items, users)


# Up to this many user x item pairs every pair gets a Gumbel key (the exact draw, unchanged since the generator was
# written, so the data and digest of every size up to here stay what they were: runs already in a store keep their
# data group, tests keep their numbers). MovieLens-1M's shape (6,040 x 3,706 = 22.4M pairs) is below; MovieLens-20M's
# (138,493 x 26,744 = 3.7 billion pairs, 5 minutes of Gumbel draws) is far above and takes the sampled draw.
EXACT_CELLS = 50_000_000
# sampled draw: candidates per interaction a user makes, drawn from a flattened popularity (popularity ** 0.5)
CANDIDATES_PER_PICK = 4
PROPOSAL_EXPONENT = 0.5
_CANDIDATE_CHUNK = 4_000_000  # candidate cells per block (about 250 MB of temporaries)


def _draw_exact(
    rng: np.random.Generator,
    user_f: np.ndarray,
    item_f: np.ndarray,
    scale: np.float32,
    log_pop: np.ndarray,
    counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's items drawn without replacement from softmax(taste + log popularity): Gumbel-top-k over every
    item, in the Plackett-Luce order (the order the items were "found"). Users, items and taste of each pick."""
    n_users, n_items = len(user_f), len(item_f)
    users_idx, items_idx, affinity = [], [], []
    chunk = max(1, 2_000_000 // n_items)
    for start in range(0, n_users, chunk):
        stop = min(start + chunk, n_users)
        k = counts[start:stop]
        kmax = int(k.max())
        taste = (user_f[start:stop] @ item_f.T) * scale
        keys = taste + log_pop + rng.gumbel(size=taste.shape).astype(np.float32)
        if kmax < n_items:
            top = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax]
        else:
            top = np.tile(np.arange(n_items), (stop - start, 1))
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)  # Plackett-Luce order = the order items were "found"
        mask = np.arange(kmax)[None, :] < k[:, None]
        rows = np.repeat(np.arange(start, stop), k)
        picked = top[mask]
        users_idx.append(rows)
        items_idx.append(picked)
        affinity.append(taste[rows - start, picked])
    return np.concatenate(users_idx), np.concatenate(items_idx), np.concatenate(affinity)


def _draw_sampled(
    rng: np.random.Generator,
    user_f: np.ndarray,
    item_f: np.ndarray,
    scale: np.float32,
    log_pop: np.ndarray,
    counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same kind of draw without a key for every pair: each user's candidates are ``CANDIDATES_PER_PICK`` x
    their count drawn from popularity ** ``PROPOSAL_EXPONENT`` (duplicates dropped), and Gumbel-top-k over the
    candidates with key taste + (1 - exponent) * log popularity picks the user's items in order. The proposal
    carries part of the popularity and the key the rest, so the picks still follow taste x Zipf popularity (a
    sampled Gumbel-top-k; the exact one needs every pair). A user whose candidates would cover a quarter of the
    catalogue, or who drew too few distinct ones, gets the exact draw over every item."""
    n_items = len(item_f)
    alias = _alias_table(np.exp(PROPOSAL_EXPONENT * log_pop.astype(np.float64)))
    rest = np.float32(1.0 - PROPOSAL_EXPONENT) * log_pop
    want = counts * CANDIDATES_PER_PICK
    dense = np.flatnonzero(want * 4 >= n_items)
    sparse = np.flatnonzero(want * 4 < n_items)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    retry: list[np.ndarray] = []
    # users of similar counts together (rows of one block share a width); ascending counts
    sparse = sparse[np.argsort(counts[sparse], kind="stable")]
    start = 0
    while start < sparse.size:
        # as many users as keep the widest row's block under the chunk size (counts ascend, so the last is widest)
        stop = min(sparse.size, start + max(1, _CANDIDATE_CHUNK // int(want[sparse[start]])))
        while stop - start > 1 and (stop - start) * int(want[sparse[stop - 1]]) > _CANDIDATE_CHUNK:
            stop = start + max(1, _CANDIDATE_CHUNK // int(want[sparse[stop - 1]]))
        width = int(want[sparse[stop - 1]])
        rows = sparse[start:stop]
        got, short = _pick_candidates(rng, rows, user_f, item_f, scale, rest, alias, counts[rows], width)
        parts.append(got)
        retry.append(rows[short])
        start = stop
    exact_rows = np.sort(np.concatenate([dense, *retry]))
    for begin in range(0, exact_rows.size, max(1, 2_000_000 // n_items)):
        rows = exact_rows[begin : begin + max(1, 2_000_000 // n_items)]
        parts.append(_pick_exact_rows(rng, rows, user_f, item_f, scale, log_pop, counts[rows]))
    # users in order, each user's picks in the order they were found: every user's picks are one run of one part
    offsets = np.cumsum(counts) - counts
    u = np.empty(int(counts.sum()), dtype=np.int32)
    i = np.empty_like(u)
    aff = np.empty(u.size, dtype=np.float32)
    for users, items, taste in parts:
        if not users.size:
            continue
        first = np.concatenate(([True], users[1:] != users[:-1]))
        run_start = np.maximum.accumulate(np.where(first, np.arange(users.size), 0))
        at = offsets[users] + np.arange(users.size) - run_start
        u[at], i[at], aff[at] = users, items, taste
    return u, i, aff


def _pick_candidates(
    rng: np.random.Generator,
    rows: np.ndarray,
    user_f: np.ndarray,
    item_f: np.ndarray,
    scale: np.float32,
    rest: np.ndarray,
    alias: tuple[np.ndarray, np.ndarray],
    k: np.ndarray,
    width: int,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """One block of :func:`_draw_sampled`: the picks of the users in ``rows`` (users, items, taste) and a mask of
    the rows that drew fewer distinct candidates than they pick (they go to the exact draw instead)."""
    n = rows.size
    n_draws = k * CANDIDATES_PER_PICK
    threshold, other = alias
    items = rng.integers(0, len(threshold), size=(n, width), dtype=np.int32)
    items = np.where(rng.random((n, width), dtype=np.float32) < threshold.take(items), items, other.take(items))
    items.sort(axis=1)
    valid = np.arange(width)[None, :] < n_draws[:, None]
    valid[:, 1:] &= items[:, 1:] != items[:, :-1]
    short = valid.sum(axis=1) < k
    # taste = user . item, one factor at a time: each gather reads a column small enough to stay in cache
    user = user_f[rows] * scale
    columns = np.ascontiguousarray(item_f.T)
    taste = columns[0].take(items)
    taste *= user[:, :1]
    part = np.empty_like(taste)
    for f in range(1, columns.shape[0]):
        np.take(columns[f], items, out=part)
        part *= user[:, f : f + 1]
        taste += part
    # Gumbel keys as -log(E), E ~ Exp(1): the same distribution as rng.gumbel, a quarter of its cost
    keys = rest.take(items)
    keys += taste
    noise = rng.standard_exponential(size=(n, width), dtype=np.float32)
    np.maximum(noise, np.float32(1e-30), out=noise)
    keys -= np.log(noise, out=noise)
    keys[~valid] = -np.inf
    kmax = int(k.max())
    top = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax] if kmax < width else np.tile(np.arange(width), (n, 1))
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    take = (np.arange(kmax)[None, :] < k[:, None]) & ~short[:, None]
    block_rows = np.repeat(np.arange(n), kmax).reshape(n, kmax)[take]
    cols = top[take]
    return (rows[block_rows].astype(np.int32), items[block_rows, cols], taste[block_rows, cols]), short


def _alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table of ``weights``: draw ``j`` uniformly, keep it with probability ``threshold[j]``, else
    take ``other[j]`` (one comparison per draw, where a binary search over the catalogue's CDF misses the cache)."""
    n = len(weights)
    scaled = weights / weights.sum() * n
    threshold = np.ones(n, dtype=np.float64)
    other = np.arange(n, dtype=np.int32)
    small = [int(j) for j in np.flatnonzero(scaled < 1.0)]
    large = [int(j) for j in np.flatnonzero(scaled >= 1.0)]
    while small and large:
        s, g = small.pop(), large.pop()
        threshold[s], other[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return threshold.astype(np.float32), other


def _pick_exact_rows(
    rng: np.random.Generator,
    rows: np.ndarray,
    user_f: np.ndarray,
    item_f: np.ndarray,
    scale: np.float32,
    log_pop: np.ndarray,
    k: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact draw (Gumbel-top-k over every item) for the given users."""
    n_items = len(item_f)
    taste = (user_f[rows] @ item_f.T) * scale
    keys = taste + log_pop + rng.gumbel(size=taste.shape).astype(np.float32)
    kmax = int(k.max())
    if kmax < n_items:
        top = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax]
    else:
        top = np.tile(np.arange(n_items), (len(rows), 1))
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    take = np.arange(kmax)[None, :] < k[:, None]
    block_rows = np.repeat(np.arange(len(rows)), kmax).reshape(len(rows), kmax)[take]
    cols = top[take]
    return rows[block_rows].astype(np.int32), cols.astype(np.int32), taste[block_rows, cols]


def _activity_counts(rng: np.random.Generator, n_users: int, n_items: int, total: int) -> np.ndarray:
    """Heavy-tailed per-user counts summing to ``total``, each >= min(5, total // n_users).

    Capped at half the catalogue when that is feasible, so no user has "seen everything".
    """
    floor = min(5, n_items, total // n_users)
    cap = max(n_items // 2, floor) if total <= n_users * max(n_items // 2, floor) else n_items
    counts = np.full(n_users, floor, dtype=np.int64)
    p = rng.lognormal(0.0, 1.0, size=n_users)
    remaining = total - counts.sum()
    while remaining > 0:
        room = cap - counts
        w = p * (room > 0)
        counts += np.minimum(rng.multinomial(remaining, w / w.sum()), room)
        remaining = total - counts.sum()
    return counts
