"""Synthetic data with the structure of real interactions (latent taste, Zipf popularity, activity skew), and
MovieLens's user and item columns derived from each user's and item's taste, so side features carry signal."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recdash.data.dataset import Dataset, DatasetError
from recdash.data.movielens import ML100K_OCCUPATIONS

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
    u = np.concatenate(users_idx)
    i = np.concatenate(items_idx)
    aff = np.concatenate(affinity)

    # Timestamps: each user starts sometime in the first half-year, then consumes in sampled order.
    gaps = 60 + rng.exponential(86_400.0, size=len(u)).astype(np.int64)
    cum = np.cumsum(gaps)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    per_user = cum - np.repeat(cum[first] - gaps[first], counts)
    start_t = 1_600_000_000 + rng.integers(0, 180 * 86_400, size=n_users)
    ts = start_t[u] + per_user

    # Ratings follow affinity so min_rating keeps the "liked" items.
    z = (aff - aff.mean()) / (aff.std() + 1e-9)
    rating = np.clip(np.rint(3.5 + z + rng.normal(0.0, 0.7, size=len(u))), 1, 5).astype(np.float32)

    wu, wi = max(4, len(str(n_users))), max(4, len(str(n_items)))
    user_ids = np.array([f"u{j + 1:0{wu}d}" for j in range(n_users)], dtype=object)
    item_ids = np.array([f"i{j + 1:0{wi}d}" for j in range(n_items)], dtype=object)
    order = np.argsort(ts, kind="stable")
    inter = pd.DataFrame(
        {
            "user_id": pd.array(user_ids, dtype=str).take(u[order]),
            "item_id": pd.array(item_ids, dtype=str).take(i[order]),
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
