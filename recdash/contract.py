"""The run contract: what a recdash run records in MLflow, and how every part of recdash reads it back.

One place for every tag name, the param families (which params describe the data and split, which a sweep writes
about itself, which are seeds), the metric-name grammar (``{family_}{split}_{metric}_at_{k}[_q{n}]``, parsed and
formatted here), each metric's direction and label, and the key metric. Writers (training, sweeps, jobs) and
readers (Runs, Compare, Discover, Models) import these names; nothing else spells them out. Runs that recdash did
not write are read with the same functions: an unknown metric gets a direction from its name (losses and times are
lower-is-better), an unknown param is a hyperparameter.

Pure Python: importable by the logged model and by the CLI without pandas-heavy or plotting imports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import Enum

# ---------------------------------------------------------------------------------------------------- frame columns

PARAM = "params."
METRIC = "metrics."
TAG = "tags."
PARENT = "parent_run_id"  # the runs frame's column for mlflow.parentRunId
MISSING = "(missing)"  # a param a run did not log, where values are compared as text
NO_DATA = "data not recorded"

# ---------------------------------------------------------------------------------------------------- MLflow's tags
MLFLOW_PARENT_RUN = "mlflow.parentRunId"
MLFLOW_RUN_NAME = "mlflow.runName"
MLFLOW_NOTE = "mlflow.note.content"  # a run's, experiment's or model's description in MLflow's UI
MLFLOW_USER = "mlflow.user"
MLFLOW_LOG_MODEL_HISTORY = "mlflow.log-model.history"  # MLflow 2's list of a run's logged models
# An experiment's kind: "custom_model_development" is what MLflow's UI writes for "Machine learning"
# (ExperimentKind.CUSTOM_MODEL_DEVELOPMENT in mlflow/server/js). MLflow 3.4-3.8's UIs take the kind, its tabs and
# landing page from it; 3.17's decides by a per-browser switch instead (recdash.views.tables.MLFLOW_UI_TRAINING_MODE).
# Set only on the experiments recdash creates.
MLFLOW_EXPERIMENT_KIND = "mlflow.experimentKind"
TRAINING_EXPERIMENT_KIND = "custom_model_development"
NEW_EXPERIMENT_TAGS = {MLFLOW_EXPERIMENT_KIND: TRAINING_EXPERIMENT_KIND}

# ---------------------------------------------------------------------------------------------------- recdash's tags
TAG_CREATED_BY = "recdash.created_by"  # "recdash" on every run and experiment recdash made
TAG_VERSION = "recdash.version"
TAG_KIND = "recdash.kind"  # KIND_TRAIN, KIND_SWEEP or KIND_REFERENCES
TAG_MODEL = "recdash.model"  # the algorithm (also the ``model`` param)
TAG_MODEL_ID = "recdash.model_id"  # the run's MLflow 3 logged model
TAG_ERROR = "recdash.error"  # why a run ended FAILED or KILLED
TAG_END_REASON = "recdash.end_reason"  # why a run ended when it was not an error (early stopping, pruning)
TAG_PID = "recdash.pid"
TAG_HOST = "recdash.host"
TAG_PROCESS_START = "recdash.process_start"  # "<boot id>:<start ticks>": the process, not only its PID
TAG_EPOCHS_TOTAL = "recdash.epochs_total"
TAG_STAGE = "recdash.stage"  # what a training is doing now ("splitting 20,000,263 interactions", "epoch 2/5", ...)
TAG_FEATURE_NOTES = "recdash.feature_notes"
TAG_REFERENCE = "recdash.reference"  # "true" on a reference run (popularity, EASE, ItemKNN on the same data)
TAG_REFERENCE_RUN_PREFIX = "recdash.reference_run."  # on a references parent: <model> -> its child run
TAG_DEMO = "recdash.demo"
# jobs (a run created SCHEDULED by the dashboard, started by its queue)
TAG_JOB_STATE = "recdash.job_state"
TAG_ARGV = "recdash.argv"
TAG_LOG = "recdash.log"
TAG_SLOTS = "recdash.job_slots"
TAG_LAUNCHED_AT = "recdash.launched_at"
TAG_CANCEL_AT = "recdash.cancel_requested_at"
# sweeps
TAG_TRIAL_STATE = "recdash.trial_state"  # complete | pruned | failed | running
TAG_TRIAL_NUMBER = "recdash.trial_number"
TAG_SWEEP_RUN = "recdash.sweep_run_id"  # on a trial: its sweep's parent run
TAG_STUDY = "recdash.study_name"
TAG_TRIALS_TOTAL = "recdash.trials_total"
TAG_BEST_RUN = "recdash.best_run_id"
# descriptions of datasets live as experiment tags under this prefix (recdash.annotations)
TAG_DATASET_PREFIX = "recdash.dataset/"
# on a job's run whose process refused its data or options before training: why (the run ends FAILED, the Jobs
# panel shows it, Runs, Compare, Home and Discover leave it out: it is no result)
TAG_REFUSED = "recdash.refused"
# recdash's bookkeeping tags: not words anyone searches for, not notes anyone reads
BOOKKEEPING_TAG_PREFIXES = (
    "mlflow.",
    TAG_PID,
    TAG_HOST,
    "recdash.proc",
    "recdash.epochs",
    TAG_STAGE,
    TAG_VERSION,
    TAG_SWEEP_RUN,
    TAG_CREATED_BY,
    "recdash.job",
)

# artifacts recdash writes into a run besides the model
PER_USER_ARTIFACT = "per_user/test.parquet"  # each evaluated test user's metric values (recdash.evaluation.per_user)
PROFILE_ARTIFACT = "dataset/profile.json"  # the training data's shape, for Discover (recdash.data.profile)

KIND_TRAIN = "train"
KIND_SWEEP = "sweep"
KIND_REFERENCES = "references"
KINDS = (KIND_TRAIN, KIND_SWEEP, KIND_REFERENCES)

# ---------------------------------------------------------------------------------------------------- params

MODEL_PARAM = "model"
K_PARAM = "k"
# Params that say what data a run saw and how it was split: never hyperparameters, always part of "same data".
# the validation sample (its size follows the data: min(--validation-users, the split's validation users)) is data too
LINEAGE_EXACT = frozenset({"dataset", "data_path", "min_rating", "validation_users", "validation_users_seed"})
LINEAGE_PREFIXES = ("dataset_", "split_")
SPLIT_KEYS = ("split_method", "split_train", "split_validation", "split_test", "split_seed", "min_rating")
FEATURE_LINEAGE_SUFFIXES = ("_features_digest", "_features_encoding", "_features_width")
# What a sweep's parent run logs about the search itself (its best_* params copy the best trial's values).
SWEEP_BOOKKEEPING = frozenset(
    {"search_space", "sampler", "n_trials", "n_workers", "objective_metric", "pruner", "storage", "study_name"}
)
SEED_PARAMS = frozenset({"seed", "random_seed", "random_state"})
# What a references parent logs about itself (its models are its children, each with its own params).
REFERENCES_BOOKKEEPING = frozenset({"reference_models"})
# Values a run chose for itself and records as params: results, not settings. How a model serves users it never saw
# is chosen on the validation cold users after training (cold-users split), or fixed to the popular list without
# validation (other splits); no flag sets it, and only models with user encodings log it. Grouping or naming
# configurations by it would split repeats of one setting by an outcome, and show "(missing)" for every other model.
RUN_CHOICES = frozenset({"cold_start_strategy", "cold_start_blend_weight"})


def is_lineage(name: str) -> bool:
    """A param that describes the data, the split (its validation sample too) or a side-feature table, not the
    model."""
    return name in LINEAGE_EXACT or name.startswith(LINEAGE_PREFIXES) or name.endswith(FEATURE_LINEAGE_SUFFIXES)


def is_bookkeeping(name: str) -> bool:
    """A parent's description of itself: a sweep's search (search space, sampler, best_* copies of the best trial),
    the references' list of models."""
    return (
        name in SWEEP_BOOKKEEPING or name in REFERENCES_BOOKKEEPING or name.startswith("best_") or name == "selected_on"
    )


def is_run_choice(name: str) -> bool:
    """A value the run chose itself and logged as a param (:data:`RUN_CHOICES`): a result, never a setting."""
    return name in RUN_CHOICES


# ---------------------------------------------------------------------------------------------------- metric names

# ranking metrics at k, in the order evaluation logs them; NDCG is the key metric (what "best" means by default)
RANKING = ("precision", "recall", "ndcg", "mrr", "map", "hit_rate")
KEY_METRIC = "ndcg"
LIST_METRICS = ("coverage", "mean_popularity")  # properties of all lists together, logged with every evaluation
SEGMENTED = ("recall", "ndcg")  # also logged per user-activity quartile
SEGMENTS = ("q1", "q2", "q3", "q4")  # quartiles of training activity, q1 the least active
BEYOND_ACCURACY = ("novelty", "gini", "tail_share", "tail_hit_share", "personalization", "ild")
SPLITS = ("val", "test")
FAMILIES = ("", "baseline", "features", "best", "search", "cold_start")  # "" = the model's own value
COLD_STRATEGIES = ("popular", "features", "blend")


class Direction(Enum):
    """Which way a metric is better. NEUTRAL: a count or an index (best epoch, trials finished), not a score."""

    HIGHER = "higher"
    LOWER = "lower"
    NEUTRAL = "neutral"


_AT_K_DIRECTIONS: dict[str, Direction] = {
    **dict.fromkeys(RANKING, Direction.HIGHER),
    "coverage": Direction.HIGHER,
    "mean_popularity": Direction.LOWER,  # recommending less popular items: more novel lists
    "novelty": Direction.HIGHER,
    "gini": Direction.LOWER,  # 0 = every item recommended equally often
    "tail_share": Direction.HIGHER,
    "tail_hit_share": Direction.HIGHER,
    "personalization": Direction.HIGHER,
    "ild": Direction.HIGHER,
}
# recdash's metrics outside the grammar
_OTHER_DIRECTIONS: dict[str, Direction] = {
    "epoch_seconds": Direction.LOWER,
    "epoch_fit_seconds": Direction.LOWER,
    "train_seconds": Direction.LOWER,
    "best_epoch": Direction.NEUTRAL,
    "trial_value": Direction.HIGHER,  # a sweep's objective (always maximised)
    "best_value_so_far": Direction.HIGHER,
    "trials_finished": Direction.NEUTRAL,
    "n_trials_complete": Direction.NEUTRAL,
    "n_trials_pruned": Direction.NEUTRAL,
    "n_trials_failed": Direction.NEUTRAL,
    "best_trial_number": Direction.NEUTRAL,
}
_LOWER_BY_NAME = re.compile(r"loss|error|rmse|mae|mse|seconds|(^|_)time|duration|popularity|perplexity|gini")
_LABELS = {
    "ndcg": "NDCG",
    "recall": "Recall",
    "precision": "Precision",
    "map": "MAP",
    "mrr": "MRR",
    "hit_rate": "Hit rate",
    "coverage": "Coverage",
    "mean_popularity": "Mean popularity",
    "novelty": "Novelty",
    "gini": "Gini",
    "tail_share": "Long-tail share",
    "tail_hit_share": "Long-tail hit share",
    "personalization": "Personalization",
    "ild": "Intra-list diversity",
}

_GRAMMAR = re.compile(
    r"^(?:(?P<family>baseline|features|best|search)_)?"
    r"(?:cold_start_(?P<cold_split>val|test)_(?P<strategy>popular|features|blend_[0-9.]+)_)?"
    r"(?:(?P<split>val|test)_)?"
    r"(?P<metric>[a-z][a-z_]*?)_at_(?P<k>[1-9][0-9]*)"
    r"(?:_(?P<segment>q[1-4]))?$"
)


@dataclass(frozen=True)
class MetricName:
    """A parsed metric name: ``test_ndcg_at_10`` is split test, metric ndcg, k 10; ``baseline_test_recall_at_20_q1``
    adds family baseline and segment q1; ``cold_start_val_blend_0.5_ndcg_at_10`` has family cold_start and a
    strategy."""

    metric: str
    k: int
    split: str = "test"
    family: str = ""
    segment: str | None = None
    strategy: str | None = None

    @classmethod
    def parse(cls, name: str) -> MetricName | None:
        """The parts of a ``..._at_{k}`` metric name, or None for any other name (``epoch_seconds``, other tools')."""
        match = _GRAMMAR.match(str(name).removeprefix(METRIC))
        if match is None:
            return None
        if match["strategy"]:
            if match["family"] or match["split"]:
                return None
            return cls(match["metric"], int(match["k"]), match["cold_split"], "cold_start", match["segment"],
                       match["strategy"])  # fmt: skip
        if match["split"] is None:
            return None
        return cls(match["metric"], int(match["k"]), match["split"], match["family"] or "", match["segment"])

    def format(self) -> str:
        if self.family == "cold_start":
            head = f"cold_start_{self.split}_{self.strategy}_"
        else:
            head = (f"{self.family}_" if self.family else "") + f"{self.split}_"
        return head + f"{self.metric}_at_{self.k}" + (f"_{self.segment}" if self.segment else "")

    def with_(self, **changes: object) -> MetricName:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def is_own(self) -> bool:
        """The model's own value on its split (not the baseline's, a feature-only or cold-start variant, a best copy
        or one candidate of a search)."""
        return self.family == ""

    @property
    def label(self) -> str:
        """What a person reads: ``NDCG@10 (test)``, ``Recall@20 (test, q1: least active)``."""
        base = f"{_LABELS.get(self.metric, self.metric)}@{self.k}"
        where = {"val": "validation", "test": "test"}.get(self.split, self.split)
        extra = {"baseline": "popularity baseline", "features": "features only", "best": "kept epoch",
                 "search": "candidate", "cold_start": f"new users, {self.strategy}"}.get(self.family)  # fmt: skip
        parts = [p for p in (extra, where, _segment_label(self.segment)) if p]
        return f"{base} ({', '.join(parts)})"


def _segment_label(segment: str | None) -> str | None:
    if segment is None:
        return None
    return {"q1": "q1: least active", "q4": "q4: most active"}.get(segment, segment)


def metric_name(split: str, metric: str, k: int, *, family: str = "", segment: str | None = None) -> str:
    """Format a metric name: ``metric_name("test", "ndcg", 10) == "test_ndcg_at_10"``."""
    return MetricName(metric, int(k), split, family, segment).format()


def key_metric(k: int, split: str = "test") -> str:
    """The key metric of a run evaluated at ``k``: ``test_ndcg_at_{k}``."""
    return metric_name(split, KEY_METRIC, k)


def is_own_test_metric(name: str) -> bool:
    """A model's own overall test metric (``test_ndcg_at_10``; not a baseline's, a segment's or a variant's)."""
    parsed = MetricName.parse(name)
    return parsed is not None and parsed.is_own and parsed.split == "test" and parsed.segment is None


def direction(name: str) -> Direction:
    """Which way ``name`` is better: from the grammar for recdash's metrics, else from the name (losses, errors and
    times are lower-is-better, anything else higher)."""
    bare = str(name).removeprefix(METRIC)
    known = known_direction(bare)
    if known is not None:
        return known
    return Direction.LOWER if _LOWER_BY_NAME.search(bare.lower()) else Direction.HIGHER


def known_direction(name: str) -> Direction | None:
    """The stated direction of a metric recdash logs, None for a name recdash does not log."""
    bare = str(name).removeprefix(METRIC)
    if bare in _OTHER_DIRECTIONS:
        return _OTHER_DIRECTIONS[bare]
    parsed = MetricName.parse(bare)
    if parsed is None:
        return None
    return _AT_K_DIRECTIONS.get(parsed.metric)


def lower_is_better(name: str) -> bool:
    return direction(name) is Direction.LOWER


def label(name: str) -> str:
    """A metric's label for people (``NDCG@10 (test)``); names outside the grammar are shown as they are."""
    parsed = MetricName.parse(name)
    return parsed.label if parsed is not None else str(name).removeprefix(METRIC)


def parse_all(names: Iterable[str]) -> list[MetricName]:
    """The names among ``names`` that follow the grammar, parsed (``metrics.`` prefixes allowed)."""
    out = []
    for name in names:
        parsed = MetricName.parse(str(name))
        if parsed is not None:
            out.append(parsed)
    return out


def ks_of(names: Iterable[str]) -> list[int]:
    """The cut-offs the metrics ``names`` were evaluated at, ascending."""
    return sorted({m.k for m in parse_all(names)})


_PREFERRED = (("best", "val"), ("", "val"), ("", "test"))


def preferred_metric(names: Sequence[str]) -> str | None:
    """A sensible metric to show first among ``names``: NDCG then recall, on validation at the epoch the run kept
    (``best_val_*``), else on validation, else test; never the baseline's; else the first name."""
    parsed = {n: MetricName.parse(n) for n in names}
    for metric in ("ndcg", "recall"):
        for family, split in _PREFERRED:
            for name, m in parsed.items():
                if m and m.metric == metric and m.family == family and m.split == split and m.segment is None:
                    return name
    for name in names:
        if str(name).startswith(("val_", "test_")):
            return name
    return names[0] if names else None


def run_label(name: object, run_id: object) -> str:
    """What a run is called everywhere: its name if it has one, else the first 8 characters of its ID."""
    text = name.strip() if isinstance(name, str) else ""
    return text or str(run_id)[:8]


__all__ = [
    "BEYOND_ACCURACY",
    "KEY_METRIC",
    "KINDS",
    "METRIC",
    "PARAM",
    "RANKING",
    "SEGMENTED",
    "SEGMENTS",
    "TAG",
    "Direction",
    "MetricName",
    "direction",
    "is_bookkeeping",
    "is_lineage",
    "is_run_choice",
    "key_metric",
    "known_direction",
    "label",
    "lower_is_better",
    "metric_name",
    "preferred_metric",
    "run_label",
]
