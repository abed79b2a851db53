"""A held-out set (validation or test) mapped onto a model's ID maps once, then evaluated every epoch or for every
candidate: full-ranking metrics, segments and beyond-accuracy metrics of :mod:`recdash.evaluation.metrics`."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recdash.data.dataset import id_codes
from recdash.data.features import FeatureTable
from recdash.evaluation.metrics import UserResults, evaluate_users, interaction_matrix
from recdash.models import Recommender
from recdash.models.base import lookup

BLOCK_USERS = 1024  # users scored at once: 1024 x 26,744 items is 110 MB of float32 scores


@dataclass(frozen=True)
class HeldOut:
    """A held-out set mapped onto a model's ID maps once, then evaluated every epoch (or every candidate).

    Held-out items the model never saw stay in the catalogue (scored -inf), so recall's denominator counts them
    as RecBole does; held-out users the model never saw are skipped. Every model fitted on the same
    :class:`~recdash.models.Interactions` shares the ID maps, so one HeldOut serves them all.
    """

    truth: Any  # csr users x catalogue
    exclude: Any  # csr users x catalogue, or None
    popularity: np.ndarray
    n_extra_items: int
    activity: np.ndarray  # training items per user (the segments' quartiles)
    genres: np.ndarray | None  # bool catalogue x genres, when the items have genres
    tiebreak: np.ndarray | None = None  # order of users of equal activity (user_order), see user_order()
    # cold users (the cold-users split): rows are users the model never saw, scored by rec.cold_scores on these
    # encoded features (None: no user features, only the popular list can serve them)
    cold: bool = False
    user_x: np.ndarray | None = None
    row_ids: np.ndarray | None = None  # the user ID of each row of truth (for per-user results)

    @classmethod
    def build(
        cls,
        rec: Recommender,
        truth: pd.DataFrame,
        exclude: list[pd.DataFrame],
        items: pd.DataFrame | None = None,
        *,
        exclude_seen: bool = False,
    ) -> HeldOut:
        """``truth`` held out, the items of the ``exclude`` frames masked; ``exclude_seen`` also masks the items each
        user saw in ``rec``'s training data, from the index the model already has (what ``exclude=[train]`` gives
        when ``rec`` was fitted on ``train``, without indexing 16 million training rows again)."""
        catalogue, n_extra, popularity = _catalogue(rec, truth)

        def matrix(frame: pd.DataFrame) -> Any:
            u = rec.user_index(frame["user_id"])  # coded IDs: looked up once per distinct ID, taken by code
            i = lookup(catalogue, frame["item_id"])
            keep = (u >= 0) & (i >= 0)
            return interaction_matrix(u[keep], i[keep], rec.n_users, len(catalogue))

        masks = [matrix(f) for f in exclude]
        if exclude_seen:
            from scipy.sparse import csr_matrix

            seen = np.ones(len(rec.seen_indices), dtype=np.float32)
            masks.append(csr_matrix((seen, rec.seen_indices, rec.seen_indptr), shape=(rec.n_users, len(catalogue))))
        activity = np.diff(rec.seen_indptr)
        return cls(
            matrix(truth),
            sum(masks[1:], masks[0]) if masks else None,
            popularity,
            n_extra,
            activity,
            genre_matrix(items, catalogue),
            user_order(rec.user_ids),
            row_ids=rec.user_ids,
        )

    @classmethod
    def build_cold(
        cls,
        rec: Recommender,
        truth: pd.DataFrame,
        user_features: FeatureTable | None,
        items: pd.DataFrame | None = None,
    ) -> HeldOut:
        """Held-out users the model never saw (the cold-users split), with their encoded features when the model
        was trained with user features; nothing to exclude (they have no training items)."""
        catalogue, n_extra, popularity = _catalogue(rec, truth)
        codes, names = id_codes(truth["user_id"])
        first_seen = pd.unique(codes)  # the users in the order they first appear
        users = pd.Index(np.asarray(names[first_seen], dtype=object).astype(str))
        row_of_code = np.full(len(names), -1, dtype=np.int64)
        row_of_code[first_seen] = np.arange(len(first_seen))
        u = row_of_code[codes]
        i = lookup(catalogue, truth["item_id"])
        user_x = None
        if user_features is not None:
            user_x = user_features.matrix(users.to_numpy(dtype=str))
        return cls(
            interaction_matrix(u, i, len(users), len(catalogue)),
            None,
            popularity,
            n_extra,
            np.zeros(len(users), dtype=np.int64),
            genre_matrix(items, catalogue),
            None,
            cold=True,
            user_x=user_x,
            row_ids=users.to_numpy(dtype=str),
        )

    @property
    def n_users(self) -> int:
        """The users this set evaluates: those with at least one held-out item."""
        return int(np.count_nonzero(np.diff(self.truth.indptr)))

    def sample(self, n_users: int, seed: int) -> HeldOut:
        """The same set restricted to a fixed sample of ``n_users`` of its users, drawn with ``seed`` (the same users
        for the same data and seed, every epoch and every model); ``self`` when it has no more than that. What a
        per-epoch validation of 138k users costs a fraction of; the rest of the set (what is excluded, popularity,
        genres) is unchanged, so the sample's metrics are the full set's metrics over fewer users."""
        lengths = np.diff(self.truth.indptr)
        rows = np.flatnonzero(lengths)
        if n_users <= 0 or rows.size <= n_users:
            return self
        keep = np.zeros(len(lengths), dtype=bool)
        keep[np.random.default_rng(seed).choice(rows, size=n_users, replace=False)] = True
        entries = np.repeat(keep, lengths)
        indptr = np.concatenate(([0], np.cumsum(lengths * keep))).astype(self.truth.indptr.dtype)
        truth = type(self.truth)(
            (self.truth.data[entries], self.truth.indices[entries], indptr), shape=self.truth.shape
        )
        return dataclasses.replace(self, truth=truth)

    def strategies(self) -> list[str]:
        """The cold-start strategies this held-out set can measure (``popular`` always)."""
        return ["popular", "features", "blend"] if self.user_x is not None else ["popular"]

    def evaluate(self, rec: Recommender, k: int, **options: Any) -> dict[str, float]:
        """The averages of :meth:`evaluate_users` (the same keyword options)."""
        return self.evaluate_users(rec, k, **options)[0]

    def evaluate_users(
        self,
        rec: Recommender,
        k: int,
        segments: bool = False,
        strategy: str | None = None,
        blend_weight: float | None = None,
        *,
        block_size: int = BLOCK_USERS,
        on_block: Callable[[int, int], None] | None = None,
    ) -> tuple[dict[str, float], pd.DataFrame]:
        """Full-ranking metrics of ``rec`` (same ID maps as the one this was built with); ``segments`` adds the
        per-quartile and beyond-accuracy metrics (cold users have no training activity: no quartiles).
        Cold users are served by ``strategy`` (default: the model's cold start; ``features`` when it has user
        features and has none chosen yet is the caller's to ask). Users are scored ``block_size`` at a time
        (memory: a few block x catalogue arrays, whatever the number of users; the same numbers for any block
        size); ``on_block(done, total)`` reports progress after each block."""

        def score(users: np.ndarray) -> np.ndarray:
            if self.cold:
                x = self.user_x[users] if self.user_x is not None else np.zeros((len(users), 0), np.float32)
                s = rec.cold_scores(x, strategy, blend_weight)
            else:
                s = rec.scores(users)
            if self.n_extra_items:
                s = np.hstack([s, np.full((len(users), self.n_extra_items), -np.inf, dtype=s.dtype)])
            return s

        extended: dict[str, Any] = {}
        if segments:
            extended = {"segments": True, "user_activity": self.activity, "item_genres": self.genres}
            extended["user_order"] = self.tiebreak
        # coverage over the model's catalogue (its training items), not the held-out-only items appended after it
        n_catalogue = self.truth.shape[1] - self.n_extra_items
        out, users = evaluate_users(
            score, self.truth, self.exclude, k=k, item_popularity=self.popularity, n_catalogue=n_catalogue,
            block_size=block_size, on_block=on_block, copy_scores=False, **extended,
        )  # fmt: skip
        if self.cold:
            out = {name: v for name, v in out.items() if not re.search(r"_q[1-4]$", name)}
        return out, self._user_frame(users, k)

    def _user_frame(self, users: UserResults, k: int) -> pd.DataFrame:
        """Per-user results as a frame: ``user_id``, ``quartile`` (-1 without segments or for cold users, who have
        no training activity) and one ``<metric>_at_<k>`` column per ranking metric."""
        ids = self.row_ids[users.users] if self.row_ids is not None else users.users.astype(str)
        quartile = users.quartile if users.quartile is not None and not self.cold else np.full(users.users.size, -1)
        frame = pd.DataFrame({"user_id": pd.array(ids, dtype=object), "quartile": quartile.astype(np.int8)})
        for name, values in users.values.items():
            frame[f"{name}_at_{k}"] = values
        return frame


def user_order(user_ids: Any) -> np.ndarray:
    """The order of users of equal training activity in the segment quartiles: the first 8 bytes of the BLAKE2b
    hash of each user ID (UTF-8), as an unsigned integer. A fixed pseudo-random order, the same in every process
    and for every model on the same data, that does not follow how the IDs are numbered or spelled (string order
    would put "10" before "9")."""
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(str(u).encode(), digest_size=8).digest(), "big") for u in user_ids),
        dtype=np.uint64,
        count=len(user_ids),
    )


def _catalogue(rec: Recommender, truth: pd.DataFrame) -> tuple[pd.Index, int, np.ndarray]:
    """The model's items plus held-out items it never saw (kept, scored -inf, so recall counts them as RecBole
    does), and the popularity of that catalogue."""
    codes, names = id_codes(truth["item_id"])
    known = rec.item_index(pd.Index(np.asarray(names, dtype=object).astype(str)))
    unknown = codes[known[codes] < 0] if len(names) else codes
    extra = pd.Index(np.asarray(names[pd.unique(unknown)], dtype=object).astype(str))  # in order of appearance
    popularity = np.concatenate([rec.item_popularity, np.zeros(len(extra), dtype=np.int64)])
    return pd.Index(rec.item_ids).append(extra), len(extra), popularity


def genre_matrix(items: pd.DataFrame | None, catalogue: pd.Index) -> np.ndarray | None:
    """Bool [catalogue, genres] from the items' ``genres`` column ("a|b|c"), None when there are no genres."""
    if items is None or "genres" not in items.columns or "item_id" not in items.columns:
        return None
    meta = items.drop_duplicates("item_id").set_index(items["item_id"].drop_duplicates().astype(str))["genres"]
    text = meta.reindex(catalogue).fillna("").astype(str)
    dummies = text.str.get_dummies(sep="|")
    dummies = dummies.loc[:, [c for c in dummies.columns if c.strip()]]
    if dummies.shape[1] == 0:
        return None
    return dummies.to_numpy(dtype=bool)


def evaluate_recommender(
    rec: Recommender,
    truth: pd.DataFrame,
    exclude: list[pd.DataFrame],
    k: int,
    *,
    segments: bool = False,
    items: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Full-ranking metrics of ``rec`` against ``truth`` interactions, masking ``exclude`` interactions."""
    return HeldOut.build(rec, truth, exclude, items).evaluate(rec, k, segments=segments)
