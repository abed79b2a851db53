"""Adding a model is one module plus its registration: a toy model defined here (nothing else in recdash changes)
appears in the CLI's --model choices and flags, the Train form and sweeps, trains as an ordinary run, and shares a
hyperparameter name (``factors``) with rankfm, each model validating it with its own range."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from apps import page

from recdash import models
from recdash.cli import build_parser, main
from recdash.config import TrainConfig
from recdash.models import HyperparameterError, Interactions, Params, ParamSpec, Recommender
from recdash.models.base import spec_table
from recdash.training.sweep import run_sweep
from recdash.training.sweep_spec import SweepSpec, parse_space

SPECS = spec_table(
    ParamSpec("factors", int, 3, "Items blended per user (toy).", 1, 5),  # rankfm's factors is 1..1024
    ParamSpec("damping", float, 0.5, "Weight of an item's popularity (toy).", 0.0, 1.0),
)


@dataclass(frozen=True)
class ToyParams(Params):
    SPECS: ClassVar[dict[str, ParamSpec]] = SPECS
    factors: int = 3
    damping: float = 0.5


class Toy(Recommender):
    """Popularity tilted by how often an item was seen with the user's own items: enough to be a real model."""

    name = "toy"
    Params = ToyParams
    description = "A test-only model."
    default_space = ("damping=0:1",)

    def _fit(self, train: Interactions) -> None:
        self.weights = np.log1p(self.item_popularity.astype(np.float32)) * np.float32(self.params.damping)

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.weights, (len(user_idx), self.n_items)).astype(np.float32)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights = arrays["weights"]


@pytest.fixture
def toy() -> Iterator[type[Recommender]]:
    models.register(Toy)
    try:
        yield Toy
    finally:
        models.unregister("toy")


SMALL = ["--dataset", "synthetic", "--synthetic-users", "60", "--synthetic-items", "40",
         "--synthetic-interactions", "1200"]  # fmt: skip


def test_the_cli_offers_and_trains_the_new_model(toy: type[Recommender], capsys: pytest.CaptureFixture) -> None:
    parser = build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    model_flag = next(a for a in train_parser._actions if a.dest == "model")
    assert "toy" in model_flag.choices and "--damping" in train_parser.format_help()
    assert main(["train", "--model", "toy", *SMALL, "--factors", "2", "--damping", "0.25"]) == 0
    assert '"model": "toy"' in capsys.readouterr().out


def test_two_models_share_a_parameter_name_each_with_its_own_range(toy: type[Recommender]) -> None:
    assert models.models_of_param("factors") == ["rankfm", "als", "toy"]
    assert TrainConfig(model="toy", hparams={"factors": 5}).params_.as_dict()["factors"] == 5
    assert TrainConfig(model="rankfm", hparams={"factors": 500}).params_.as_dict()["factors"] == 500
    with pytest.raises(HyperparameterError, match="between 1 and 5"):
        TrainConfig.from_argv(["--model", "toy", "--factors", "500"])
    config = TrainConfig.from_argv(["--model", "toy", "--factors", "4"])
    assert TrainConfig.from_argv(config.to_argv()) == config


def test_a_sweep_searches_the_new_models_default_space(toy: type[Recommender]) -> None:
    config = TrainConfig.from_argv(["--model", "toy", *SMALL, "--experiment", "toy-sweep"])
    spec = SweepSpec(config, parse_space(None, "toy"), n_trials=3, prune=False)
    assert list(spec.space) == ["damping"]
    result = run_sweep(spec)
    assert result.n_complete == 3 and result.best_run_id


def test_the_train_form_shows_the_new_model_and_its_hyperparameters(toy: type[Recommender]) -> None:
    at = page("train")
    assert "toy: A test-only model." in at.selectbox(key="t_model").options
    at.selectbox(key="t_model").set_value("toy").run()
    keys = {w.key for w in at.number_input}
    assert {"t_toy__factors", "t_toy__damping"} <= keys and "t_rankfm__factors" not in keys
    assert at.number_input(key="t_toy__factors").max == 5
    assert "toy" in at.selectbox(key="s_model").options  # it has a default space: sweeps offer it
