"""A held-out set (validation or test) mapped onto a model's ID maps once, then evaluated every epoch or for every
candidate: full-ranking metrics, segments and beyond-accuracy metrics of :mod:`recdash.evaluation.metrics`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recdash.data.features import FeatureTable
from recdash.evaluation.metrics import UserResults, evaluate_users, interaction_matrix
from recdash.models import Recommender


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
        cls, rec: Recommender, truth: pd.DataFrame, exclude: list[pd.DataFrame], items: pd.DataFrame | None = None
    ) -> HeldOut:
        catalogue, n_extra, popularity = _catalogue(rec, truth)

        def matrix(frame: pd.DataFrame) -> Any:
            u = rec.user_index(frame["user_id"])
            i = catalogue.get_indexer(pd.Index(frame["item_id"], dtype=object).astype(str))
            keep = (u >= 0) & (i >= 0)
            return interaction_matrix(u[keep], i[keep], rec.n_users, len(catalogue))

        masks = [matrix(f) for f in exclude]
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
        users = pd.Index(pd.unique(truth["user_id"].astype(str)))
        u = users.get_indexer(truth["user_id"].astype(str))
        i = catalogue.get_indexer(pd.Index(truth["item_id"], dtype=object).astype(str))
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

    def strategies(self) -> list[str]:
        """The cold-start strategies this held-out set can measure (``popular`` always)."""
        return ["popular", "features", "blend"] if self.user_x is not None else ["popular"]

    def evaluate(
        self,
        rec: Recommender,
        k: int,
        segments: bool = False,
        strategy: str | None = None,
        blend_weight: float | None = None,
    ) -> dict[str, float]:
        """The averages of :meth:`evaluate_users`."""
        return self.evaluate_users(rec, k, segments, strategy, blend_weight)[0]

    def evaluate_users(
        self,
        rec: Recommender,
        k: int,
        segments: bool = False,
        strategy: str | None = None,
        blend_weight: float | None = None,
    ) -> tuple[dict[str, float], pd.DataFrame]:
        """Full-ranking metrics of ``rec`` (same ID maps as the one this was built with); ``segments`` adds the
        per-quartile and beyond-accuracy metrics (cold users have no training activity: no quartiles).
        Cold users are served by ``strategy`` (default: the model's cold start; ``features`` when it has user
        features and has none chosen yet is the caller's to ask)."""

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
            score, self.truth, self.exclude, k=k, item_popularity=self.popularity, n_catalogue=n_catalogue, **extended
        )
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
    truth_items = truth["item_id"]
    extra = pd.Index(truth_items[rec.item_index(truth_items) < 0].astype(str).unique())
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
    return HeldOut.build(rec, truth, exclude, items).evaluate(rec, k, segments)
