"""Training at scale: the per-epoch validation runs on a fixed, seeded sample of the validation users, stated on the
run; early stopping keeps working on it; the test evaluation stays full; and what the training is doing (reading,
coding, splitting, epochs, test users) is printed and kept on the run as ``recdash.stage`` for the job panel."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from recdash import contract
from recdash.cli import main as cli_main
from recdash.config import ConfigError, TrainConfig
from recdash.models.rankfm import Hyperparams
from recdash.training import jobs, progress, stages
from recdash.training.run import load_data, train
from recdash.views.jobs import progress_text

DATA = {"n_users": 400, "n_items": 120, "n_interactions": 9000}


def config(**overrides: object) -> TrainConfig:
    base: dict[str, object] = dict(
        dataset="synthetic", dataset_options=DATA, epochs=3, patience=0, experiment="scale", log_model=False,
        hparams=Hyperparams(factors=8, max_samples=10),
    )  # fmt: skip
    return TrainConfig(**(base | overrides))  # type: ignore[arg-type]


def val_history(run_id: str) -> list[float]:
    history = MlflowClient().get_metric_history(run_id, "val_ndcg_at_10")
    return [m.value for m in sorted(history, key=lambda m: m.step)]


def test_the_validation_sample_is_seeded_and_stated_on_the_run() -> None:
    sampled = train(config(validation_users=150))
    again = train(config(validation_users=150))
    everyone = train(config(validation_users=0))
    params = {r.run_id: MlflowClient().get_run(r.run_id).data.params for r in (sampled, again, everyone)}
    assert params[sampled.run_id]["validation_users"] == "150"
    assert params[sampled.run_id]["validation_users_seed"] == "42"  # the split's seed: every model, the same users
    assert params[everyone.run_id]["validation_users"] == "400"  # every validation user (all have some here)
    assert val_history(sampled.run_id) == val_history(again.run_id) != val_history(everyone.run_id)
    # the test evaluation is full whatever the validation sample
    assert sampled.metrics["test_ndcg_at_10"] == everyone.metrics["test_ndcg_at_10"]


def test_early_stopping_works_on_the_sample() -> None:
    result = train(
        config(epochs=40, patience=2, validation_users=100, hparams=Hyperparams(factors=8, learning_rate=0.5))
    )
    history = val_history(result.run_id)
    assert len(history) < 40
    run = MlflowClient().get_run(result.run_id)
    assert run.data.metrics["best_epoch"] == 1 + history.index(max(history))
    assert "early stopping" in run.data.tags[contract.TAG_END_REASON]


def test_the_flag_round_trips_and_is_checked() -> None:
    assert TrainConfig.from_argv(["--validation-users", "500"]).validation_users == 500
    assert "--validation-users" not in TrainConfig().to_argv()  # the default keeps command lines as they were
    sampled = TrainConfig(validation_users=0)
    assert TrainConfig.from_argv(sampled.to_argv()) == sampled
    assert TrainConfig.from_run_params({"validation_users": "2500"})[0].validation_users == 2500
    with pytest.raises(ConfigError, match="--validation-users"):
        TrainConfig.from_argv(["--validation-users", "-1"])


def test_stages_are_printed_and_kept_on_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--dataset", "synthetic", "--synthetic-users", "400", "--synthetic-items", "120",
            "--synthetic-interactions", "9000", "--epochs", "2", "--factors", "8", "--validation-users", "100",
            "--experiment", "stages", "--no-model"]  # fmt: skip
    assert cli_main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    expected = [
        "reading synthetic data: generating 9,000 interactions (400 users x 120 items)",
        "coded 9,000 interactions: 400 users, 120 items",
        "splitting 9,000 interactions (random 0.8/0.1/0.1)",
        "split: ",
        "validating on 100 of 400 validation users (seed 42)",
        "epoch 1/2: training",
        "epoch 1/2: validating on 100 users",
        "epoch 2/2: training",
        "evaluating test users 400/400",
        "evaluating the popularity baseline on test users 400/400",
    ]
    found = [next((i for i, line in enumerate(out) if line.startswith(text)), -1) for text in expected]
    assert -1 not in found and found == sorted(found), out
    run_id = __import__("json").loads(out[-1])["run_id"]
    stage = MlflowClient().get_run(run_id).data.tags[contract.TAG_STAGE]
    assert stage == "evaluating the popularity baseline on test users 400/400"  # the last stage it reached


def test_a_jobs_stages_reach_its_run_before_the_run_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dashboard job's run exists from the queue on (MLFLOW_RUN_ID): reading and splitting show in its panel."""
    run_id = jobs.submit(config(epochs=2))
    MlflowClient().update_run(run_id, status="RUNNING")
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    load_data(config(epochs=2))
    seen = progress.progress(run_id)
    assert seen.stage is not None and seen.stage.startswith("split: ")
    assert progress_text(seen) == f"Epoch 0 of 2; now: {seen.stage}"
    stages.report_count("evaluating test users", 1024, 138_493)
    assert progress.progress(run_id).stage == "evaluating test users 1,024/138,493"
    stages.report_count("evaluating test users", 2048, 138_493)  # within a second of the last: not written
    assert progress.progress(run_id).stage == "evaluating test users 1,024/138,493"
    stages.report_count("evaluating test users", 138_493, 138_493)  # the last always is
    assert progress.progress(run_id).stage == "evaluating test users 138,493/138,493"
    MlflowClient().set_terminated(run_id, "FINISHED")
    assert progress_text(progress.progress(run_id)) == "Epoch 0 of 2"  # a finished job: no "now"
