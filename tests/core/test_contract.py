"""The run contract: the metric-name grammar parses and formats every name recdash logs, and every one of them has
one stated direction (a test walks the names a real run logs: baseline_, val_, test_, segments, features_,
cold_start_, and a sweep parent's)."""

from __future__ import annotations

import mlflow
import pytest

from recdash import contract
from recdash.config import TrainConfig
from recdash.contract import Direction, MetricName
from recdash.training.run import load_data, train
from recdash.training.sweep import run_sweep
from recdash.training.sweep_spec import SweepSpec, parse_space

SMALL = {"n_users": 120, "n_items": 80, "n_interactions": 3000}


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("test_ndcg_at_10", ("ndcg", 10, "test", "", None, None)),
        ("val_hit_rate_at_5", ("hit_rate", 5, "val", "", None, None)),
        ("baseline_test_recall_at_20_q1", ("recall", 20, "test", "baseline", "q1", None)),
        ("best_val_map_at_10", ("map", 10, "val", "best", None, None)),
        ("features_test_tail_hit_share_at_10", ("tail_hit_share", 10, "test", "features", None, None)),
        ("cold_start_val_blend_0.25_ndcg_at_10", ("ndcg", 10, "val", "cold_start", None, "blend_0.25")),
        ("search_val_ndcg_at_10", ("ndcg", 10, "val", "search", None, None)),
    ],
)
def test_metric_names_parse_and_format_back(name: str, parts: tuple) -> None:
    parsed = MetricName.parse(name)
    assert parsed is not None
    assert (parsed.metric, parsed.k, parsed.split, parsed.family, parsed.segment, parsed.strategy) == parts
    assert parsed.format() == name


@pytest.mark.parametrize("name", ["loss", "epoch_seconds", "ndcg@10", "test_ndcg_at_0", "val_at_10", "x_ndcg_at_10"])
def test_other_names_are_not_read_as_recdash_metrics(name: str) -> None:
    assert MetricName.parse(name) is None


def test_directions_are_stated_once() -> None:
    assert contract.lower_is_better("test_gini_at_10") and contract.lower_is_better("metrics.baseline_test_gini_at_20")
    assert contract.lower_is_better("test_mean_popularity_at_10")
    assert not contract.lower_is_better("test_novelty_at_10") and not contract.lower_is_better("val_ndcg_at_10")
    assert contract.direction("best_epoch") is Direction.NEUTRAL
    # other tools' metrics: by name
    assert (
        contract.lower_is_better("val_loss")
        and contract.lower_is_better("rmse")
        and not contract.lower_is_better("auc")
    )


def test_every_metric_a_real_run_logs_has_a_stated_direction(tmp_path: object) -> None:
    config = TrainConfig(dataset="synthetic", dataset_options=SMALL, epochs=2, patience=0, split="cold-users",
                         user_features="builtin", hparams={"factors": 8}, log_model=False)  # fmt: skip
    data = load_data(config)
    names = set(train(config, data).metrics)
    client = mlflow.MlflowClient()
    closed = train(TrainConfig(dataset="synthetic", dataset_options=SMALL, model="ease", log_model=False), None)
    names |= set(client.get_run(closed.run_id).data.metrics)
    spec = SweepSpec(config.replace(split="random", user_features="none"), parse_space(["factors=4:8"]),
                     n_trials=2, prune=False)  # fmt: skip
    sweep = run_sweep(spec)
    names |= set(client.get_run(sweep.parent_run_id).data.metrics)
    families = {MetricName.parse(n).family if MetricName.parse(n) else n for n in names}
    assert {"", "baseline", "features", "best", "cold_start"} <= families
    assert any(n.endswith("_q1") for n in names) and "trial_value" in names
    missing = sorted(n for n in names if contract.known_direction(n) is None)
    assert missing == [], f"no stated direction for {missing}"
