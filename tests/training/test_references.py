"""Every algorithm through the same training run layout, and reference runs on the same data group as rankfm's."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from stores import sqlite_store

from recdash import tracking
from recdash.cli import main as cli_main
from recdash.comparison import data_groups
from recdash.config import ConfigError, TrainConfig
from recdash.models import get_model
from recdash.models.ease import EASEParams
from recdash.models.rankfm import Hyperparams
from recdash.training.references import train_references
from recdash.training.run import load_data, train

SMALL = {"n_users": 120, "n_items": 80, "n_interactions": 3000}
SEGMENT_METRICS = [
    *(f"test_{m}_at_10_q{q}" for m in ("recall", "ndcg") for q in range(1, 5)),
    *(f"test_{m}_at_10" for m in ("tail_hit_share", "novelty", "gini", "tail_share", "personalization", "ild")),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A rankfm run and one references job on the same data and split, in a store of their own."""
    root = tmp_path_factory.mktemp("references")
    with sqlite_store(root) as uri:
        base = TrainConfig(dataset="synthetic", dataset_options=SMALL, epochs=3, patience=0, experiment="refs")
        data = load_data(base)
        rankfm = train(
            TrainConfig(**{**base.__dict__, "hparams": Hyperparams(factors=8, max_samples=10), "run_name": "fm"}), data
        )
        refs = train_references(base, data)
    return {"uri": uri, "rankfm": rankfm, "refs": refs}


def _runs(store: dict[str, object]) -> pd.DataFrame:
    """The store's runs as the Runs and Compare pages load them."""
    exp = MlflowClient(str(store["uri"])).get_experiment_by_name("refs")
    return tracking.RunsLoader(str(store["uri"])).load([exp.experiment_id])


def test_references_are_ordinary_runs_tagged_and_nested_under_one_parent(store: dict[str, object]) -> None:
    client = MlflowClient(str(store["uri"]))
    refs = store["refs"]
    parent = client.get_run(refs.parent_run_id)  # type: ignore[attr-defined]
    assert parent.info.status == "FINISHED" and parent.data.tags["recdash.kind"] == "references"
    assert set(refs.runs) == {"popularity", "ease", "itemknn"}  # type: ignore[attr-defined]
    for name, result in refs.runs.items():  # type: ignore[attr-defined]
        run = client.get_run(result.run_id)
        assert run.info.status == "FINISHED" and run.info.run_name == f"reference-{name}"
        assert (
            run.data.tags["recdash.reference"] == "true" and run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        )
        assert run.data.params["model"] == name and run.data.tags["recdash.model"] == name
        assert result.model_uri and run.data.metrics["best_epoch"] == 1.0
        # one validation step, test metrics with segments and beyond-accuracy, the popularity baseline
        history = client.get_metric_history(result.run_id, "val_ndcg_at_10")
        assert [h.step for h in history] == [1]
        for key in ("test_recall_at_10", "baseline_test_recall_at_10", *SEGMENT_METRICS):
            assert key in run.data.metrics, key
        assert parent.data.tags[f"recdash.reference_run.{name}"] == result.run_id


def test_regularisation_is_chosen_on_validation_from_the_grid(store: dict[str, object]) -> None:
    client = MlflowClient(str(store["uri"]))
    for name in ("ease", "itemknn"):
        result = store["refs"].runs[name]  # type: ignore[attr-defined]
        run = client.get_run(result.run_id)
        searched = client.get_metric_history(result.run_id, "search_val_ndcg_at_10")
        assert [h.step for h in searched] == list(range(1, len(get_model(name).reference_grid) + 1))
        best = max(searched, key=lambda h: (h.value, -h.step))
        chosen = get_model(name).reference_grid[best.step - 1]
        assert {key: float(run.data.params[key]) for key in chosen} == {k: float(v) for k, v in chosen.items()}
        assert run.data.metrics["val_ndcg_at_10"] == pytest.approx(best.value)
        assert json.loads(run.data.params["search_space"]) == [
            {k: float(v) if isinstance(v, float) else v for k, v in c.items()} for c in get_model(name).reference_grid
        ]


def test_references_land_in_the_same_data_group_as_rankfm_runs(store: dict[str, object]) -> None:
    runs = _runs(store)
    groups = data_groups(runs)
    assert groups.nunique() == 1, groups.tolist()  # rankfm, three references and the references parent
    assert len(runs) == 5


def test_each_model_trains_with_the_same_layout(store: dict[str, object]) -> None:
    """rankfm logs per-epoch validation; closed-form models one step; both carry model and the same metric keys."""
    client = MlflowClient(str(store["uri"]))
    fm = client.get_run(store["rankfm"].run_id)  # type: ignore[attr-defined]
    ease = client.get_run(store["refs"].runs["ease"].run_id)  # type: ignore[attr-defined]
    assert [h.step for h in client.get_metric_history(fm.info.run_id, "val_ndcg_at_10")] == [1, 2, 3]
    assert fm.data.params["model"] == "rankfm" and fm.data.params["epochs"] == "3"
    assert "epochs" not in ease.data.params and "factors" not in ease.data.params
    assert set(fm.data.metrics) - {"epoch_seconds", "epoch_fit_seconds"} >= set(SEGMENT_METRICS)
    test_keys = {k for k in fm.data.metrics if k.startswith(("test_", "baseline_test_"))}
    assert test_keys == {k for k in ease.data.metrics if k.startswith(("test_", "baseline_test_"))}


def test_a_model_gets_only_its_own_hyperparameters() -> None:
    with pytest.raises(ConfigError, match="--model ease takes EASEParams"):
        TrainConfig(model="ease", hparams=Hyperparams())
    with pytest.raises(ConfigError, match="--model must be one of"):
        TrainConfig(model="bpr")
    assert TrainConfig(model="EASE", hparams={"l2": "20"}).hparams == EASEParams(l2=20.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "ease", "--l2", "-5"], "l2 (--l2) must be between"),
        (["--model", "ease", "--factors", "8"], "--model ease does not take --factors (rankfm, als); it takes --l2"),
        (["--model", "itemknn", "--neighbours", "2.5"], "neighbours (--neighbours) must be an integer"),
        (["--model", "popularity", "--shrink", "1"], "it takes no hyperparameters"),
        (["--l2", "10"], "--model rankfm does not take --l2 (ease)"),
    ],
)
def test_cli_refuses_bad_or_foreign_hyperparameters_without_a_traceback(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["train", "--dataset", "synthetic", "--experiment", "cli", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert mlflow.get_experiment_by_name("cli") is None


def test_cli_trains_itemknn_and_refuses_unknown_reference_models(capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--dataset", "synthetic", "--synthetic-users", "100", "--synthetic-items", "60"]
    data += ["--synthetic-interactions", "2000", "--experiment", "cli", "--no-model"]
    assert cli_main(["train", "--model", "itemknn", "--neighbours", "7", "--shrink", "2", *data]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == "itemknn" and summary["params"] == {"neighbours": 7, "shrink": 2.0}
    assert 0 < summary["test_recall_at_10"] <= 1 and "test_personalization_at_10" in summary
    # (the references command itself runs as the Train page's job in test_page_train)
    assert cli_main(["references", *data, "--models", "popularity,bpr"]) == 2
    assert "--model must be one of" in capsys.readouterr().err


def test_cli_help_lists_every_model_and_its_ranges(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for needle in ("--model", "rankfm", "ease", "itemknn", "popularity", "--l2", "--neighbours", "--shrink"):
        assert needle in text
    assert "Range 0.001..1e+06 (log scale)" in text and "Range 1..10000." in text
