"""The Models page driven with AppTest over a real SQLite store: register, alias, describe, tag, compare."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs

import pandas as pd
import pytest
import streamlit as st
from mlflow.tracking import MlflowClient
from stores import sqlite_store
from streamlit.testing.v1 import AppTest

from recdash import contract, registry
from recdash.config import TrainConfig
from recdash.evaluation import per_user
from recdash.models.rankfm import Hyperparams
from recdash.training.run import load_data, train
from recdash.views import models as model_views

APP = str(Path(__file__).parents[2] / "app.py")
TIMEOUT = 60
SMALL = {"n_users": 120, "n_items": 80, "n_interactions": 3000}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two trained runs with models, in a store each test gets a fresh copy of."""
    root = tmp_path_factory.mktemp("models_page_template")
    with sqlite_store(root):
        base = TrainConfig(
            dataset="synthetic", dataset_options=SMALL, epochs=2, patience=0, experiment="page",
            hparams=Hyperparams(factors=8, max_samples=10),
        )  # fmt: skip
        data = load_data(base)
        a = train(TrainConfig(**{**base.__dict__, "run_name": "run *a*"}), data).run_id
        b = train(TrainConfig(**{**base.__dict__, "run_name": "run-b", "seed": 7}), data).run_id
    return {"db": root / "mlflow.db", "a": a, "b": b}


@pytest.fixture
def store(template: dict[str, object], tracking_store: str, tmp_path: Path) -> dict[str, object]:
    shutil.copy(template["db"], tmp_path / "mlflow.db")  # type: ignore[arg-type]
    return {**template, "uri": tracking_store}


def models_page(**query: str) -> AppTest:
    """A fresh session on the Models page. st.cache_data is process-wide: changes made behind the page's back
    (through recdash.registry here) would otherwise show only after the cache ttl, as in a real deployment."""
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page("pages/models.py")
    return at.run()


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _unescape(text: str) -> str:
    """The page escapes Markdown in registry messages; compare against the plain text."""
    return re.sub(r"\\(.)", r"\1", text)


def _successes(at: AppTest) -> list[str]:
    return [_unescape(s.value) for s in at.success]


# each table on the page is recognised by a column only it has
_MARKER = {"models_table": "latest_version", "versions_table": "run_name", "model_tags_table": "key"}


def _table(at: AppTest, name: str) -> pd.DataFrame:
    found = [df.value for df in at.dataframe if _MARKER[name] in df.value.columns]
    assert len(found) == 1, f"{name}: {len(found)} tables"
    return found[0]


def test_register_alias_move_and_delete_from_the_page(store: dict[str, object]) -> None:
    at = _ok(models_page())
    assert any("No registered models yet" in i.value for i in at.info)
    at.selectbox(key="register_run").set_value(store["a"])
    at.text_input(key="register_name").set_value("recs")
    _ok(at.button(key="register").click().run())
    assert _successes(at) == [f"Registered run {store['a']}'s model as recs version 1."]
    assert _table(at, "models_table")["name"].tolist() == ["recs"]
    versions = _table(at, "versions_table")
    assert versions["version"].tolist() == [1] and versions["run_id"].tolist() == [store["a"]]
    assert versions["run_name"].tolist() == ["run *a*"] and versions["dataset_name"].tolist() == ["synthetic"]
    assert "test_ndcg_at_10" in versions.columns

    at.selectbox(key="alias_version").set_value(1)
    at.text_input(key="alias").set_value("champion")
    _ok(at.button(key="set_alias").click().run())
    assert _successes(at) == ["Alias champion now points to recs version 1."]
    assert _table(at, "versions_table").set_index("version")["aliases"].to_dict() == {1: "champion"}
    assert MlflowClient().get_registered_model("recs").aliases == {"champion": 1}

    # a second version from the other run, then move the alias there
    at.selectbox(key="register_run").set_value(store["b"])
    _ok(at.button(key="register").click().run())
    assert _successes(at) == [f"Registered run {store['b']}'s model as recs version 2."]
    at.selectbox(key="alias_version").set_value(2)
    at.text_input(key="alias").set_value("champion")
    _ok(at.button(key="set_alias").click().run())
    assert _successes(at) == ["Moved alias champion of recs from version 1 to version 2."]
    assert _table(at, "versions_table").set_index("version")["aliases"].to_dict() == {2: "champion", 1: ""}
    assert _table(at, "models_table")["aliases"].tolist() == ["champion→v2"]
    assert any("models:/recs@champion" in c.value for c in at.code)  # the serve command for the champion

    at.selectbox(key="delete_alias_name").set_value("champion")
    _ok(at.button(key="delete_alias").click().run())
    assert _successes(at) == ["Deleted alias champion (was version 2) of recs."]
    assert _table(at, "versions_table")["aliases"].tolist() == ["", ""]
    assert MlflowClient().get_registered_model("recs").aliases == {}


def test_bad_alias_is_refused_with_a_message(store: dict[str, object]) -> None:
    registry.register_run_model(str(store["a"]), "recs")
    at = _ok(models_page())
    at.text_input(key="alias").set_value("v2")
    _ok(at.button(key="set_alias").click().run())
    assert not at.success
    assert [_unescape(e.value) for e in at.error] == [
        "alias 'v2' looks like a version (v<number>) and is reserved by MLflow"
    ]
    assert MlflowClient().get_registered_model("recs").aliases == {}


def test_edit_description_and_tags(store: dict[str, object]) -> None:
    registry.register_run_model(str(store["a"]), "recs")
    at = _ok(models_page())
    at.text_area(key="description").set_value("WARP, 64 factors — *the* baseline")
    _ok(at.button(key="save_description").click().run())
    assert _successes(at) == ["Saved the description of recs."]
    assert MlflowClient().get_registered_model("recs").description == "WARP, 64 factors — *the* baseline"
    assert _table(at, "models_table")["description"].tolist() == ["WARP, 64 factors — *the* baseline"]

    at.text_input(key="tag_key").set_value("team")
    at.text_input(key="tag_value").set_value("recsys")
    _ok(at.button(key="set_tag").click().run())
    assert _successes(at) == ["Set tag team on recs."]
    assert _table(at, "model_tags_table").to_dict("records") == [{"key": "team", "value": "recsys"}]
    at.selectbox(key="delete_tag_key").set_value("team")
    _ok(at.button(key="delete_tag").click().run())
    assert _successes(at) == ["Deleted tag team of recs."]
    assert MlflowClient().get_registered_model("recs").tags == {}


def test_run_query_param_preselects_the_run_to_register(store: dict[str, object]) -> None:
    at = _ok(models_page(run=str(store["b"])))
    assert at.selectbox(key="register_run").value == store["b"]
    _ok(at.button(key="register").click().run())
    assert _successes(at) == [f"Registered run {store['b']}'s model as recdash version 1."]
    assert [v.run_id for v in MlflowClient().search_model_versions("name = 'recdash'")] == [store["b"]]
    at = _ok(models_page(run="f" * 32))
    assert any("has no logged model" in w.value for w in at.warning)


def test_champion_vs_challenger_with_a_link_to_recommend(store: dict[str, object]) -> None:
    registry.register_run_model(str(store["a"]), "recs")
    registry.register_run_model(str(store["b"]), "recs")
    at = _ok(models_page())
    assert any("Set the aliases champion and challenger" in i.value for i in at.info)
    registry.set_alias("recs", "champion", 1)
    registry.set_alias("recs", "challenger", 2)
    at = _ok(models_page())
    frames = [df for df in at.dataframe if "difference" in df.value.columns]
    assert len(frames) == 1
    side = frames[0].value
    columns = ["champion (v1)", "challenger (v2)", "difference", "95% interval", "p-value", "verdict"]
    assert list(side.columns) == columns
    metrics = MlflowClient().get_run(str(store["a"])).data.metrics
    assert side.loc["test_ndcg_at_10", "champion (v1)"] == pytest.approx(metrics["test_ndcg_at_10"])
    plain = model_views.champion_vs_challenger("recs")
    results = per_user.read_many([str(store["a"]), str(store["b"])])
    expected = model_views.with_intervals(
        plain, {registry.CHAMPION: results[str(store["a"])], registry.CHALLENGER: results[str(store["b"])]}
    )
    assert (side["95% interval"] != "–").sum() == len(contract.RANKING)  # every ranking metric has its interval
    assert side["verdict"].tolist() == expected["verdict"].tolist()
    # better (beyond noise) green, worse red, on the difference and the verdict; within noise, equal, unknown plain
    colours = _cell_colours(frames[0])
    columns = list(side.columns)
    for row, result in enumerate(expected["outcome"]):
        want = {model_views.BETTER: "green", model_views.WORSE: "red"}.get(result)
        for col in ("difference", "verdict"):
            assert colours.get((row, columns.index(col))) == want, (side.index[row], col, result)
        assert colours.get((row, 0)) is None
    assert {"green", "red"} & set(colours.values())
    captions = " ".join(_unescape(c.value) for c in at.caption)
    assert (
        "Higher is better for every metric except test_gini_at_10, test_mean_popularity_at_10, where lower is better"
        in captions
    )
    assert "more novel recommendations" in captions
    counts = expected["outcome"].value_counts()
    better, worse, noise = (counts.get(o, 0) for o in (model_views.BETTER, model_views.WORSE, model_views.NOISE))
    assert f"better on {better}, worse on {worse} and within noise on {noise}." in captions
    assert any(_unescape(m.value) == expected.attrs["key_text"] for m in at.markdown)
    assert expected.attrs["key_text"].startswith("On test_ndcg_at_10, the key metric, challenger is")
    links = [link for link in at.get("page_link") if "Recommend" in link.proto.label]
    assert len(links) == 1
    assert links[0].proto.page.endswith("recommend")
    assert parse_qs(links[0].proto.query_string) == {"model": ["models:/recs/1"], "compare": ["models:/recs/2"]}


def _cell_colours(frame: object) -> dict[tuple[int, int], str]:
    """(row, column) -> "green" / "red" from the pandas Styler CSS the page sends with the table."""
    css = frame.proto.arrow_data.styler.styles  # type: ignore[attr-defined]
    colours = {}
    for selectors, rule in re.findall(r"([^{}]+)\{([^}]*)\}", css):  # cells with the same style share one rule
        rgb = re.search(r"rgba?\((\d+),\s*(\d+),\s*(\d+)", rule)
        if rgb:
            r, g, _ = map(int, rgb.groups())
            for row, col in re.findall(r"_row(\d+)_col(\d+)", selectors):
                colours[(int(row), int(col))] = "green" if g > r else "red"
    return colours


def _aliases() -> dict[str, int]:
    return {a: int(v) for a, v in MlflowClient().get_registered_model("recs").aliases.items()}


def test_promote_challenger_after_a_confirmation(store: dict[str, object]) -> None:
    registry.register_run_model(str(store["a"]), "recs")
    registry.register_run_model(str(store["b"]), "recs")
    registry.set_alias("recs", "champion", 1)
    registry.set_alias("recs", "challenger", 2)
    at = _ok(models_page())
    assert at.button(key="promote").label == "Promote challenger (v2) to champion"
    assert not at.button(key="promote").disabled
    assert not [b for b in at.button if b.key == "confirm_promote"]

    _ok(at.button(key="promote").click().run())  # the first click only asks
    assert _aliases() == {"champion": 1, "challenger": 2}
    (question,) = [_unescape(w.value) for w in at.warning]
    assert "Move alias champion of recs from version 1 to version 2?" in question
    assert "The challenger alias is then removed" in question
    assert "On test_ndcg_at_10, the key metric, challenger is" in question  # the verdict, where the decision is made
    assert at.button(key="promote").disabled  # no second question while one is open
    _ok(at.button(key="cancel_promote").click().run())
    assert _aliases() == {"champion": 1, "challenger": 2} and not at.warning
    assert not [b for b in at.button if b.key == "confirm_promote"]

    _ok(at.button(key="promote").click().run())
    _ok(at.button(key="confirm_promote").click().run())
    assert _aliases() == {"champion": 2}
    assert _successes(at) == [
        "Promoted recs version 2 to champion (it was version 1). The challenger alias was removed, since it pointed "
        "to the new champion; set it on another version to compare again. To roll back, set champion on version 1."
    ]
    assert _table(at, "versions_table").set_index("version")["aliases"].to_dict() == {2: "champion", 1: ""}
    assert any("Set the aliases champion and challenger" in i.value for i in at.info)
    assert not [b for b in at.button if b.key in ("promote", "confirm_promote")]
    registry.set_alias("recs", "challenger", 2)  # both on one version: compared, but nothing to promote
    at = _ok(models_page())
    assert not [b for b in at.button if b.key == "promote"]
    assert any("Both aliases point to version 2: there is nothing to promote." in c.value for c in at.caption)


def test_a_stale_confirmation_promotes_nothing(store: dict[str, object]) -> None:
    for run in ("a", "b", "a"):
        registry.register_run_model(str(store[run]), "recs")
    registry.set_alias("recs", "champion", 1)
    registry.set_alias("recs", "challenger", 2)
    at = _ok(models_page())
    _ok(at.button(key="promote").click().run())
    registry.set_alias("recs", "challenger", 3)  # someone else moves the challenger before the confirmation
    _ok(at.button(key="confirm_promote").click().run())
    assert _aliases() == {"champion": 1, "challenger": 3}
    assert [_unescape(e.value) for e in at.error] == [
        "challenger of 'recs' now points to version 3, not version 2 as confirmed; "
        "review the comparison again before promoting"
    ]


_LEGACY_REGISTRY = """
import sys, mlflow
from mlflow import MlflowClient
client = MlflowClient("file://" + sys.argv[1])
experiment = client.create_experiment("old")
for number, ndcg in ((1, 0.20), (2, 0.25)):
    run = client.create_run(experiment, run_name=f"old-{number}")
    client.log_metric(run.info.run_id, "test_ndcg_at_10", ndcg)
    client.log_metric(run.info.run_id, "test_mean_popularity_at_10", 300.0 - 10 * number)
    client.set_terminated(run.info.run_id)
    if number == 1:
        client.create_registered_model("old")
    client.create_model_version("old", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
client.set_registered_model_alias("old", "champion", "1")
client.set_registered_model_alias("old", "challenger", "2")
"""


def test_promote_is_disabled_on_a_read_only_legacy_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A legacy file store with a registry: the comparison shows, promoting is not offered, no byte changes."""
    import subprocess
    import sys

    import mlflow
    from legacy_store import snapshot

    root = tmp_path / "legacy" / "mlruns"
    env = {"MLFLOW_ALLOW_FILE_STORE": "true", "PATH": str(Path(sys.executable).parent)}
    subprocess.run(  # MLflow's own FileStore, in a process where recdash has not made file stores read-only
        [sys.executable, "-c", _LEGACY_REGISTRY, str(root)], check=True, env=env, capture_output=True, timeout=120
    )
    before = snapshot(root)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", root.as_uri())
    mlflow.set_tracking_uri(root.as_uri())
    at = _ok(models_page())
    frames = [df.value for df in at.dataframe if "verdict" in df.value.columns]
    assert len(frames) == 1 and frames[0].loc["test_ndcg_at_10", "verdict"] == "better, no interval"
    assert frames[0].loc["test_ndcg_at_10", "difference"] == pytest.approx(0.05)
    (verdict,) = [_unescape(m.value) for m in at.markdown if "beyond noise is unknown" in _unescape(m.value)]
    assert per_user.NOT_LOGGED in verdict and "unknown" in verdict  # a plain note, no error
    assert not at.error
    assert at.button(key="promote").disabled
    assert any("not possible here" in i.value for i in at.info)
    assert snapshot(root) == before


def test_a_registry_that_refuses_shows_a_clear_error(store: dict[str, object], refusing_registry: str) -> None:
    url = refusing_registry
    at = _ok(models_page())
    errors = [_unescape(e.value) for e in at.error]
    assert len(errors) == 1 and f"not available for {url}" in errors[0] and "disabled" in errors[0]
    assert "Traceback" not in errors[0]
    assert not at.dataframe
