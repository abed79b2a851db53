"""The rankfm wrapper, the plain-array model format and its scoring.

A fitted model is exported to a :class:`Recommender`: a handful of numpy arrays plus JSON ID maps. It scores
with one matrix product, so serving and the dashboard need numpy and pandas only (never rankfmc, never
pickle). Module level imports stay light for the same reason: the logged pyfunc imports this file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recdash.metrics import top_k

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.models.model import ModelInfo

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.npz"
IDS_FILE = "ids.json"
OUTPUT_COLUMNS = ["user_id", "rank", "item_id", "score", "source"]
PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")


class HyperparameterError(ValueError):
    """A hyperparameter outside its allowed range; the message names the parameter and the bound."""


@dataclass(frozen=True)
class ParamSpec:
    """One rankfm hyperparameter: its type, bounds and help, shared by the CLI, the Train page and sweeps."""

    name: str
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    log: bool = False


HYPERPARAMS: dict[str, ParamSpec] = {
    p.name: p
    for p in (
        ParamSpec("factors", int, 64, "Latent factor rank (embedding size).", 1, 1024),
        ParamSpec(
            "loss",
            str,
            "warp",
            "bpr: one sampled negative per positive; warp: search up to "
            "max_samples negatives for a violating one (usually better top-k).",
            choices=("bpr", "warp"),
        ),
        ParamSpec("max_samples", int, 30, "WARP only: negatives sampled per positive before giving up.", 1, 1000),
        ParamSpec("alpha", float, 0.01, "L2 penalty on user and item weights.", 1e-8, 10.0, log=True),
        ParamSpec("beta", float, 0.1, "L2 penalty on user-feature and item-feature weights.", 1e-8, 10.0, log=True),
        ParamSpec("sigma", float, 0.1, "Standard deviation of the random factor initialisation.", 1e-6, 10.0, log=True),
        ParamSpec("learning_rate", float, 0.1, "Initial SGD step size.", 1e-6, 10.0, log=True),
        ParamSpec(
            "learning_schedule",
            str,
            "constant",
            "constant, or invscaling: rate / (epoch+1)^exponent.",
            choices=("constant", "invscaling"),
        ),
        ParamSpec("learning_exponent", float, 0.25, "Exponent of the invscaling schedule.", 1e-6, 10.0),
    )
}


@dataclass(frozen=True)
class Hyperparams:
    """rankfm's hyperparameters, validated up front so a bad value never starts a run."""

    factors: int = 64
    loss: str = "warp"
    max_samples: int = 30
    alpha: float = 0.01
    beta: float = 0.1
    sigma: float = 0.1
    learning_rate: float = 0.1
    learning_schedule: str = "constant"
    learning_exponent: float = 0.25

    def __post_init__(self) -> None:
        for f in fields(self):
            spec = HYPERPARAMS[f.name]
            value = getattr(self, f.name)
            object.__setattr__(self, f.name, coerce_param(spec, value))

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> Hyperparams:
        """Build from e.g. MLflow params (strings); unknown keys are ignored."""
        return cls(**{k: v for k, v in values.items() if k in HYPERPARAMS})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def coerce_param(spec: ParamSpec, value: Any) -> Any:
    """Convert ``value`` to the parameter's type and check its bounds, naming the parameter on failure."""
    flag = "--" + spec.name.replace("_", "-")
    if spec.choices is not None:
        text = str(value).strip().lower()
        if text not in spec.choices:
            raise HyperparameterError(f"{spec.name} ({flag}) must be one of {', '.join(spec.choices)}; got {value!r}")
        return text
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if spec.kind is int:
            if not number.is_integer():
                raise ValueError
            number = int(number)
    except (TypeError, ValueError, OverflowError):
        kind = "an integer" if spec.kind is int else "a finite number"
        raise HyperparameterError(f"{spec.name} ({flag}) must be {kind}; got {value!r}") from None
    if not math.isfinite(number):
        raise HyperparameterError(f"{spec.name} ({flag}) must be finite; got {value!r}")
    if (spec.low is not None and number < spec.low) or (spec.high is not None and number > spec.high):
        raise HyperparameterError(f"{spec.name} ({flag}) must be between {spec.low:g} and {spec.high:g}; got {value!r}")
    return number


class Recommender:
    """A fitted factorization model as plain arrays: scoring, top-k, similar items, export and import.

    Scores are ``user_factors @ item_factors.T + item_bias`` in float32, exactly what rankfmc's ``recommend``
    computes for a model without side features, so rankings match rankfmc's.
    """

    def __init__(
        self,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        user_factors: np.ndarray,
        item_factors: np.ndarray,
        item_bias: np.ndarray,
        seen_indptr: np.ndarray,
        seen_indices: np.ndarray,
        item_popularity: np.ndarray,
    ) -> None:
        self.user_ids = np.asarray(user_ids, dtype=str)
        self.item_ids = np.asarray(item_ids, dtype=str)
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self.item_bias = np.ascontiguousarray(item_bias, dtype=np.float32)
        self.seen_indptr = np.asarray(seen_indptr, dtype=np.int64)
        self.seen_indices = np.asarray(seen_indices, dtype=np.int32)
        self.item_popularity = np.asarray(item_popularity, dtype=np.int64)
        n_users, n_items = len(self.user_ids), len(self.item_ids)
        if self.user_factors.shape[0] != n_users or self.item_factors.shape[0] != n_items:
            raise ValueError("factor matrices do not match the ID maps")
        if self.item_bias.shape != (n_items,) or self.item_popularity.shape != (n_items,):
            raise ValueError("item bias/popularity do not match the item map")
        if self.seen_indptr.shape != (n_users + 1,):
            raise ValueError("seen-items index does not match the user map")
        self._user_index = pd.Index(self.user_ids)
        self._item_index = pd.Index(self.item_ids)
        self._popular_order = np.argsort(-self.item_popularity, kind="stable")

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    # ---- lookups -------------------------------------------------------------------------------------------
    def user_index(self, user_ids: Iterable[str]) -> np.ndarray:
        """Internal indices of ``user_ids``; -1 for users the model has never seen."""
        return self._user_index.get_indexer(_str_index(user_ids))

    def item_index(self, item_ids: Iterable[str]) -> np.ndarray:
        """Internal indices of ``item_ids``; -1 for unknown items."""
        return self._item_index.get_indexer(_str_index(item_ids))

    def seen_items(self, user_idx: int) -> np.ndarray:
        """Item indices the user interacted with in training."""
        return self.seen_indices[self.seen_indptr[user_idx] : self.seen_indptr[user_idx + 1]]

    # ---- scoring -------------------------------------------------------------------------------------------
    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores of every item for the given internal user indices, shape [len(user_idx), n_items]."""
        return self.user_factors[np.asarray(user_idx)] @ self.item_factors.T + self.item_bias

    def recommend(self, user_ids: Iterable[str], k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-k items per user as a long frame ``user_id, rank, item_id, score, source``.

        Users the model never saw get the most popular items with ``source="popular"`` (never an error).
        ``k`` above the number of available items returns all of them.
        """
        k = validate_k(k)
        users = [str(u) for u in user_ids]
        idx = self.user_index(users)
        known = idx >= 0
        blocks: list[pd.DataFrame] = []
        if known.any():
            scores = self.scores(idx[known])
            if exclude_seen:
                for row, u in enumerate(idx[known]):
                    scores[row, self.seen_items(u)] = -np.inf
            top = top_k(scores, k)
            top_scores = np.take_along_axis(scores, top, axis=1)
            valid = np.isfinite(top_scores)
            n_per_user = valid.sum(axis=1)
            known_users = np.asarray(users, dtype=object)[known]
            blocks.append(
                pd.DataFrame(
                    {
                        "user_id": np.repeat(known_users, n_per_user),
                        "rank": np.concatenate([np.arange(1, n + 1) for n in n_per_user]),
                        "item_id": self.item_ids[top[valid]],
                        "score": top_scores[valid].astype(np.float64),
                        "source": "model",
                    }
                )
            )
        if not known.all():
            popular = self._popular_order[:k]
            unknown_users = np.asarray(users, dtype=object)[~known]
            n = len(popular)
            blocks.append(
                pd.DataFrame(
                    {
                        "user_id": np.repeat(unknown_users, n),
                        "rank": np.tile(np.arange(1, n + 1), len(unknown_users)),
                        "item_id": np.tile(self.item_ids[popular], len(unknown_users)),
                        "score": np.tile(self.item_popularity[popular].astype(np.float64), len(unknown_users)),
                        "source": "popular",
                    }
                )
            )
        if not blocks:
            return empty_recommendations()
        out = pd.concat(blocks, ignore_index=True) if len(blocks) > 1 else blocks[0]
        # keep the caller's user order
        order = pd.Series(range(len(users)), index=pd.Index(users)).groupby(level=0).first()
        out = out.iloc[np.lexsort((out["rank"].to_numpy(), out["user_id"].map(order).to_numpy()))]
        return out.reset_index(drop=True)[OUTPUT_COLUMNS]

    def similar_items(self, item_id: str, k: int = 10) -> pd.DataFrame:
        """Nearest items to ``item_id`` by cosine similarity of item factors (dot products favour long vectors)."""
        k = validate_k(k)
        (idx,) = self.item_index([item_id])
        if idx < 0:
            raise KeyError(f"item {item_id!r} is not in this model's catalogue")
        norms = np.linalg.norm(self.item_factors, axis=1)
        norms[norms == 0] = 1.0
        sims = (self.item_factors @ self.item_factors[idx]) / (norms * norms[idx])
        sims[idx] = -np.inf
        top = top_k(sims[None, :], k)[0]
        top = top[np.isfinite(sims[top])]
        return pd.DataFrame(
            {"rank": np.arange(1, len(top) + 1), "item_id": self.item_ids[top], "similarity": sims[top].astype(float)}
        )

    # ---- export / import -----------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``weights.npz`` (numbers) and ``ids.json`` (ID maps); no pickle anywhere."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(
            directory / WEIGHTS_FILE,
            user_factors=self.user_factors,
            item_factors=self.item_factors,
            item_bias=self.item_bias,
            seen_indptr=self.seen_indptr,
            seen_indices=self.seen_indices,
            item_popularity=self.item_popularity,
        )
        ids = {
            "format_version": FORMAT_VERSION,
            "user_ids": self.user_ids.tolist(),
            "item_ids": self.item_ids.tolist(),
        }
        (directory / IDS_FILE).write_text(json.dumps(ids), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Recommender:
        """Read a directory written by :meth:`save`; raises ValueError on a missing or corrupt file."""
        directory = Path(directory)
        try:
            ids = json.loads((directory / IDS_FILE).read_text(encoding="utf-8"))
            with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files}
            return cls(user_ids=ids["user_ids"], item_ids=ids["item_ids"], **arrays)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a readable recdash model in {directory}: {exc}") from exc

    @classmethod
    def from_rankfm(cls, model: Any, train: pd.DataFrame) -> Recommender:
        """Export a fitted ``rankfmc.RankFM`` (no side features) and the training interactions it saw."""
        user_ids = model.index_to_user.astype(str).to_numpy()
        item_ids = model.index_to_item.astype(str).to_numpy()
        u = pd.Index(user_ids).get_indexer(train["user_id"].astype(str))
        i = pd.Index(item_ids).get_indexer(train["item_id"].astype(str))
        keep = (u >= 0) & (i >= 0)
        indptr, indices = csr_rows(u[keep], i[keep], len(user_ids))
        return cls(
            user_ids=user_ids,
            item_ids=item_ids,
            user_factors=model.v_u,
            item_factors=model.v_i,
            item_bias=model.w_i,
            seen_indptr=indptr,
            seen_indices=indices,
            item_popularity=np.bincount(i[keep], minlength=len(item_ids)),
        )

    def copy(self) -> Recommender:
        """A snapshot that later training epochs cannot change (rankfmc updates its arrays in place)."""
        return Recommender(
            self.user_ids,
            self.item_ids,
            self.user_factors.copy(),
            self.item_factors.copy(),
            self.item_bias.copy(),
            self.seen_indptr,
            self.seen_indices,
            self.item_popularity,
        )


def _str_index(ids: Iterable[str]) -> pd.Index:
    """IDs as a string Index, vectorised (IDs are strings end to end; numbers given by callers are converted)."""
    values = ids if isinstance(ids, (pd.Series, pd.Index, np.ndarray)) else list(ids)
    return pd.Index(values, dtype=object).astype(str)


def csr_rows(rows: np.ndarray, cols: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique column indices per row in CSR form (indptr, indices), rows sorted."""
    pairs = np.unique(np.stack([np.asarray(rows, np.int64), np.asarray(cols, np.int64)]), axis=1)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs[0], minlength=n_rows), out=indptr[1:])
    return indptr, pairs[1].astype(np.int32)


def validate_k(k: Any) -> int:
    """k must be a positive integer (``5``, ``5.0`` or ``"5"``); the message is shown to users as is."""
    value: int | None = None
    if (isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))) or (
        isinstance(k, float) and k.is_integer()
    ):
        value = int(k)
    elif isinstance(k, str) and k.strip().isdigit():
        value = int(k.strip())
    if value is None or value < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    return value


def empty_recommendations() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.Series(dtype=str),
            "rank": pd.Series(dtype=np.int64),
            "item_id": pd.Series(dtype=str),
            "score": pd.Series(dtype=np.float64),
            "source": pd.Series(dtype=str),
        }
    )


def check_training_data(hparams: Hyperparams, train: pd.DataFrame) -> None:
    """Refuse settings rankfmc cannot train on this data. WARP samples up to ``max_samples`` negatives per positive;
    with as many or more than the catalogue's items, rankfmc's C kernel writes past its buffer and the process dies
    with heap corruption (``free(): invalid next size``) instead of an error."""
    n_items = int(train["item_id"].nunique())
    if hparams.loss == "warp" and hparams.max_samples >= n_items:
        raise HyperparameterError(
            f"max_samples (--max-samples) must be below the number of items in the training data ({n_items}) for "
            f"the WARP loss; got {hparams.max_samples}. Use at most {max(n_items - 1, 1)}, or the BPR loss."
        )


class RankFMTrainer:
    """Fits rankfmc's RankFM one epoch at a time so callers can evaluate, log and stop between epochs."""

    def __init__(self, hparams: Hyperparams, seed: int = 42) -> None:
        from rankfmc import RankFM  # imported here: serving the exported model never needs rankfmc

        self.hparams = hparams
        self.seed = seed
        self.model = RankFM(n_jobs=1, **hparams.as_dict())
        self.epochs_done = 0
        self._template: Recommender | None = None
        self._prepared: tuple[np.ndarray, ...] | None = None

    def fit_epoch(self, train: pd.DataFrame) -> None:
        """One SGD pass over the training interactions.

        rankfmc's ``fit_partial`` re-indexes the data and rebuilds its user-item sets on every call, which costs
        more than the epoch itself, and restarts its learning-rate schedule at each call. So the first epoch
        initialises through rankfmc, the prepared arrays are kept, and every epoch calls rankfmc's own SGD kernel
        with that epoch's learning rate (``rate / (epoch + 1) ** exponent`` for invscaling, as rankfmc defines it).
        rankfmc draws from numpy's global RNG (initialisation, shuffling), so it is seeded per epoch.
        """
        from rankfmc._rankfm import _fit

        np.random.seed((self.seed * 100_003 + self.epochs_done) % 2**32)
        m = self.model
        if self._prepared is None:
            check_training_data(self.hparams, train)  # before rankfmc's kernel can crash the process
            interactions, weights = m._init_all(train[["user_id", "item_id"]])
            self._prepared = (interactions, weights, *m._build_ui_csr())
            m.is_fit = True
        interactions, weights, ui_ptr, ui_idx = self._prepared
        rate = m.learning_rate
        if m.learning_schedule == "invscaling":
            rate = m.learning_rate / (self.epochs_done + 1) ** m.learning_exponent
        max_samples = m.max_samples if m.loss == "warp" else 1
        _fit(
            interactions,
            weights,
            ui_ptr,
            ui_idx,
            m.x_uf,
            m.x_if,
            m.w_i,
            m.w_if,
            m.v_u,
            m.v_i,
            m.v_uf,
            m.v_if,
            m.alpha,
            m.beta,
            rate,
            "constant",
            m.learning_exponent,
            max_samples,
            1,
            False,
            m.n_jobs,
        )
        self.epochs_done += 1

    def export(self, train: pd.DataFrame) -> Recommender:
        """The current weights as a Recommender sharing rankfmc's arrays (``copy()`` it to keep a snapshot).

        The ID maps and seen-items index are built once: they do not change between epochs."""
        if self._template is None:
            self._template = Recommender.from_rankfm(self.model, train)
        t = self._template
        return Recommender(
            t.user_ids,
            t.item_ids,
            self.model.v_u,
            self.model.v_i,
            self.model.w_i,
            t.seen_indptr,
            t.seen_indices,
            t.item_popularity,
        )


def popularity_recommender(train: pd.DataFrame) -> Recommender:
    """The popularity baseline as a zero-factor Recommender: score = train interaction count."""
    users = np.sort(train["user_id"].astype(str).unique())
    items = np.sort(train["item_id"].astype(str).unique())
    u = pd.Index(users).get_indexer(train["user_id"].astype(str))
    i = pd.Index(items).get_indexer(train["item_id"].astype(str))
    indptr, indices = csr_rows(u, i, len(users))
    popularity = np.bincount(i, minlength=len(items))
    return Recommender(
        users,
        items,
        np.zeros((len(users), 1)),
        np.zeros((len(items), 1)),
        popularity.astype(np.float32),
        indptr,
        indices,
        popularity,
    )


def model_signature() -> Any:
    """Input ``user_id``; params ``k`` and ``exclude_seen``; output the recommendation frame (declared, not inferred,
    so ``rank`` is a long that MLflow does not warn about)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types import schema

    return ModelSignature(
        inputs=schema.Schema([schema.ColSpec("string", "user_id")]),
        outputs=schema.Schema(
            [
                schema.ColSpec("string", "user_id"),
                schema.ColSpec("long", "rank"),
                schema.ColSpec("string", "item_id"),
                schema.ColSpec("double", "score"),
                schema.ColSpec("string", "source"),
            ]
        ),
        params=schema.ParamSchema(
            [schema.ParamSpec("k", "long", 10), schema.ParamSpec("exclude_seen", "boolean", True)]
        ),
    )


def log_model(
    recommender: Recommender,
    name: str = "model",
    *,
    registered_model_name: str | None = None,
    input_example_user: str | None = None,
    workdir: str | Path | None = None,
) -> ModelInfo:
    """Log ``recommender`` to the active MLflow run as a models-from-code pyfunc.

    The model is ``recdash/pyfunc_model.py`` plus the weights directory as an artifact; the recdash package is
    shipped as code so the model loads wherever MLflow, numpy and pandas are installed.
    """
    import tempfile

    import mlflow

    example_user = input_example_user or (recommender.user_ids[0] if recommender.n_users else "1")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        weights_dir = recommender.save(Path(tmp) / "weights")
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(PYFUNC_FILE),
            artifacts={"weights": str(weights_dir)},
            code_paths=[str(Path(__file__).parent)],
            signature=model_signature(),
            input_example=pd.DataFrame({"user_id": [str(example_user)]}),
            pip_requirements=_model_requirements(),
            registered_model_name=registered_model_name,
        )


def _model_requirements() -> list[str]:
    """What loading the model needs: mlflow, numpy and pandas at the versions it was logged with."""
    from importlib.metadata import version

    return [f"mlflow=={version('mlflow')}", f"numpy=={version('numpy')}", f"pandas=={version('pandas')}"]
