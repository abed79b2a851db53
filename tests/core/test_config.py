"""One training configuration, one conversion each way: the command line, the Train form and a run's params give the
same TrainConfig back, so the page, the job queue and the job's process cannot disagree about what is trained."""

from __future__ import annotations

import pytest

from recdash.config import ConfigError, TrainConfig
from recdash.training.references import ReferencesSpec
from recdash.training.sweep_spec import SweepSpec, parse_space

SYNTHETIC = {"n_users": 50, "n_items": 40, "n_interactions": 900, "seed": 7}
CONFIGS = [
    TrainConfig(),
    TrainConfig(model="ease", hparams={"l2": 50}, k=20, early_stopping_metric="recall", experiment="e x"),
    TrainConfig(
        dataset="synthetic",
        dataset_options=SYNTHETIC,
        split_seed=7,
        seed=3,
        epochs=3,
        patience=0,
        run_name="r",
        split="temporal",
        split_fractions=(0.7, 0.2, 0.1),
        min_rating=3.5,
        tags={"a": "b=c"},
        user_features="builtin",
        hparams={"factors": 8, "loss": "bpr", "learning_rate": 0.02},
    ),
    TrainConfig(
        model="itemknn",
        dataset="csv",
        data_path="/tmp/x.csv",
        log_model=False,
        registered_model_name="m",
        dataset_options={"user_col": "u", "item_col": "i", "weight_col": None, "timestamp_col": "t"},
    ),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.model + "-" + c.dataset)
def test_the_command_line_gives_the_config_back(config: TrainConfig) -> None:
    assert TrainConfig.from_argv(config.to_argv()) == config
    assert config.to_argv() == TrainConfig.from_argv(config.to_argv()).to_argv()  # one spelling per config


@pytest.mark.parametrize("config", CONFIGS[:3], ids=lambda c: c.model + "-" + c.dataset)
def test_the_form_gives_the_config_back(config: TrainConfig) -> None:
    back = TrainConfig.from_form(config.to_form())
    # the form has no place for tags, model logging, registration or a rating threshold: those stay the defaults
    expected = config.replace(tags={}, min_rating=None, log_model=True, registered_model_name=None)
    assert back == expected


@pytest.mark.parametrize("config", CONFIGS[:3], ids=lambda c: c.model + "-" + c.dataset)
def test_a_runs_params_give_the_config_back(config: TrainConfig) -> None:
    from recdash.data import Split

    split = Split(None, None, None, config.split, config.split_fractions, config.split_seed)  # type: ignore[arg-type]
    params = {k: str(v) for k, v in {**config.params(), **split.params(), "dataset": config.dataset}.items()}
    params |= {"user_features": config.user_features, "item_features": config.item_features}
    back, notes = TrainConfig.from_run_params(params)
    assert not notes
    expected = config.replace(tags={}, run_name=None, experiment=TrainConfig().experiment)
    assert back == expected


def test_sweep_and_references_specs_round_trip() -> None:
    base = CONFIGS[2]
    sweep = SweepSpec(base, parse_space(["factors=4:16", "loss=bpr,warp"], "rankfm"), n_trials=5, n_workers=2,
                      sampler="random", prune=False, study_name="s")  # fmt: skip
    assert SweepSpec.from_argv(sweep.to_argv()) == sweep
    refs = ReferencesSpec(CONFIGS[1].replace(model="rankfm", hparams=None), ("ease", "popularity"))
    back = ReferencesSpec.from_argv(refs.to_argv())
    assert back.model_names == ("ease", "popularity") and back.config.data_key() == refs.config.data_key()


def test_out_of_range_run_params_keep_their_defaults_and_say_so() -> None:
    back, notes = TrainConfig.from_run_params({"k": "5000", "epochs": "0", "seed": "-4", "factors": "5000"})
    assert (back.k, back.epochs, back.seed) == (10, 30, 42) and back.params_.as_dict()["factors"] == 64
    assert len(notes) == 4


def test_bad_values_name_their_flag() -> None:
    with pytest.raises(ConfigError, match="--split-fractions"):
        TrainConfig.from_argv(["--split-fractions", "abc"])
    with pytest.raises(ConfigError, match="--k"):
        TrainConfig(k=0)
    with pytest.raises(ConfigError, match="invalid choice"):
        TrainConfig.from_argv(["--split", "sideways"])
