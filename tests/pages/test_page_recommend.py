"""The Recommend page in Streamlit's AppTest over a real store with two trained models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from stores import sqlite_store
from streamlit.testing.v1 import AppTest

from recdash.config import TrainConfig
from recdash.evaluation import per_user
from recdash.models.rankfm import Hyperparams
from recdash.training.run import TrainResult, train
from recdash.views.style import run_colors

APP = str(Path(__file__).parents[2] / "app.py")
SMALL = {"n_users": 120, "n_items": 80, "n_interactions": 3000}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Runs 'alpha' (registered as recs@champion) and 'beta' with models, trained once for the module."""
    root = tmp_path_factory.mktemp("store")
    with sqlite_store(root) as uri:
        runs = {}
        for name, hp in (("alpha", Hyperparams(factors=8, max_samples=10)), ("beta", Hyperparams(factors=4))):
            runs[name] = train(
                TrainConfig(
                    dataset="synthetic", dataset_options=SMALL, epochs=2, patience=0, experiment="page",
                    run_name=name, hparams=hp, registered_model_name="recs" if name == "alpha" else None,
                )
            )  # fmt: skip
        MlflowClient(uri).set_registered_model_alias("recs", "champion", "1")
    return {"uri": uri, **runs}


@pytest.fixture
def page(store: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(store["uri"]))
    mlflow.set_tracking_uri(str(store["uri"]))
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/recommend.py")  # through the router, so links to other pages resolve
    return at


def tables(page: AppTest, column: str) -> list[pd.DataFrame]:
    """Shown tables that have ``column``, top to bottom (display dataframes carry no key in AppTest):
    "weight" = history, "score" = recommendations (the page's list, then A and B when comparing),
    "similarity" = similar items."""
    return [d.value for d in page.dataframe if column in d.value.columns]


def ids(frame: pd.DataFrame) -> list[str]:
    """Item IDs of a shown history table, whose narrow ``item`` column reads "Title (id)"."""
    return [text.rsplit(" (", 1)[1].removesuffix(")") if text.endswith(")") else text for text in frame["item"]]


def headers(page: AppTest, column: str) -> list[list[str]]:
    """What the reader sees as the header of each table that has ``column``: the shown columns, in their order,
    under their labels (the data keeps contract names such as ``item_id`` and ``score``)."""
    out = []
    for frame in page.dataframe:
        if column not in frame.value.columns:
            continue
        config = json.loads(frame.proto.columns or "{}")
        order = list(frame.proto.column_order) or list(frame.value.columns)
        out.append([config.get(c, {}).get("label", c) for c in order])
    return out


def markdown(page: AppTest) -> list[str]:
    """Markdown and captions as a reader sees them: no bold markers, store text unescaped."""
    return [re.sub(r"\\(.)", r"\1", re.sub(r"(?<!\\)\*\*", "", m.value)) for m in [*page.markdown, *page.caption]]


def run_of(store: dict[str, object], name: str) -> TrainResult:
    result = store[name]
    assert isinstance(result, TrainResult)
    return result


def test_pick_a_run_and_a_known_user_shows_titles_history_and_hits(page: AppTest, store: dict[str, object]) -> None:
    alpha = run_of(store, "alpha")
    page.query_params["run"] = alpha.run_id
    page.run()
    assert not page.exception and not page.error
    assert "alpha" in page.selectbox(key="a_run").format_func(page.selectbox(key="a_run").value)
    user = str(alpha.recommender.user_ids[5])
    page.text_input(key="user_id").input(user)
    page.number_input(key="k").set_value(7)
    page.run()
    assert not page.exception and not page.error and not page.warning
    recs = tables(page, "score")[0]
    assert len(recs) == 7 and list(recs["rank"]) == list(range(1, 8))
    assert all(
        item.startswith("The ") and item.endswith(f" ({i})")
        for item, i in zip(recs["item"], recs["item_id"], strict=True)
    )  # "Title (id)": both in one narrow column
    assert list(recs["item_id"]) == list(alpha.recommender.recommend([user], k=7)["item_id"])
    assert set(recs["hit"]) <= {"✓", ""}
    # narrow enough for half the page: no genres, title and ID in one column (the browser test checks the widths)
    assert headers(page, "score")[0] == ["rank", "item", "year", "score", "popularity", "hit"]
    history = tables(page, "weight")[0]
    assert len(history) == len(alpha.recommender.seen_items(5)) and list(history.columns[:2]) == ["item", "year"]
    assert not set(ids(history)) & set(recs["item_id"])  # seen items are excluded by default
    assert any("held-out test items" in c.value for c in page.caption)
    assert f"Model A: run alpha ({alpha.run_id[:8]}) · experiment page" in markdown(page)


def test_unknown_user_sees_the_fallback_message_and_popular_items(page: AppTest, store: dict[str, object]) -> None:
    page.run()
    page.text_input(key="user_id").input("no-such-user")
    page.run()
    assert not page.exception and not page.error
    (warning,) = page.warning
    assert "User `no-such-user` is not in this model's training data" in warning.value
    assert "most popular items" in warning.value
    # the fallback ranks by a raw count (486 next to model scores near 2): shown as that count, not as a score
    (recs,) = tables(page, "score")
    assert headers(page, "score") == [["rank", "item", "year", "training interactions", "hit"]]
    popularity = run_of(store, "alpha").recommender.item_popularity
    assert list(recs["score"]) == sorted(popularity, reverse=True)[:10]
    assert any("Ranked by training interactions" in c and "not a model score" in c for c in markdown(page))
    assert any(s.value == "Popular items (fallback)" for s in page.subheader)


def test_compare_two_models_shows_both_lists_and_the_overlap(page: AppTest, store: dict[str, object]) -> None:
    alpha, beta = run_of(store, "alpha"), run_of(store, "beta")
    page.query_params["run"] = alpha.run_id
    user = str(alpha.recommender.user_ids[0])
    page.session_state["user_id"] = user
    page.run()
    toggle = page.toggle(key="compare")
    assert toggle.label == "Compare with another model (B)"
    assert toggle.proto.label_visibility.value == 0  # VISIBLE: the switch says what it does
    toggle.set_value(True)
    page.run()
    assert not page.exception and not page.error
    assert "beta" in page.selectbox(key="b_run").format_func(page.selectbox(key="b_run").value)
    _, table_a, table_b = tables(page, "score")
    a_items, b_items = set(table_a["item_id"]), set(table_b["item_id"])
    assert b_items == set(beta.recommender.recommend([user], k=10)["item_id"])
    shared = a_items & b_items
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["Overlap"] == f"{len(shared)} of 10"
    assert metrics["Jaccard"] == f"{len(shared) / len(a_items | b_items):.2f}"
    assert {"Hits, model A", "Hits, model B"} <= set(metrics)
    # the shared items are marked in both lists; the tables are narrow enough to sit side by side
    assert headers(page, "score")[1:] == [["rank", "item", "year", "score", "hit", "in both"]] * 2
    for table in (table_a, table_b):
        assert set(table.loc[table["in both"] == "✓", "item_id"]) == shared
    assert 0 < len(shared) < 10
    # each list is labelled by its run and experiment, not by models:/m-...
    shown = markdown(page)
    assert f"Model A: run alpha ({alpha.run_id[:8]}) · experiment page" in shown
    assert f"Model B: run beta ({beta.run_id[:8]}) · experiment page" in shown
    assert not [text for text in shown if text.startswith(("Model A: models:/", "Model B: models:/"))]
    # A and B in the colours the Runs and Compare pages give these runs (their places in the selection)
    page.session_state["selected_runs"] = [beta.run_id, alpha.run_id]
    page.run()
    (key,) = [json.loads(c.proto.spec) for c in page.get("plotly_chart") if c.key == "ab_colours"]
    colors = run_colors([beta.run_id, alpha.run_id])
    assert key["data"][0]["marker"]["color"] == [colors[alpha.run_id], colors[beta.run_id]]
    assert key["data"][0]["text"][0].startswith("A: run alpha")
    similar = [text for text in shown if "closest to the chosen one" in text]
    assert similar == [
        f"From model A (run alpha ({alpha.run_id[:8]}) · experiment page): the items closest to the chosen one "
        "by cosine similarity of the item factors."
    ]


def test_registered_alias_random_user_and_similar_items(page: AppTest, store: dict[str, object]) -> None:
    page.run()
    page.radio(key="a_source").set_value("Registered model")
    page.run()
    assert (
        page.selectbox(key="a_registered")
        .format_func(page.selectbox(key="a_registered").value)
        .startswith("recs@champion")
    )
    page.button(key="random_user").click()
    page.run()
    assert not page.exception and not page.error
    user = page.text_input(key="user_id").value
    assert user in set(run_of(store, "alpha").recommender.user_ids)
    similar = tables(page, "similarity")[0]
    assert len(similar) == 10 and "title" in similar.columns and similar["similarity"].is_monotonic_decreasing
    alpha = run_of(store, "alpha")
    assert f"Model A: recs@champion (v1) · run alpha ({alpha.run_id[:8]}) · experiment page" in markdown(page)
    page.selectbox(key="user_pick").set_value("u0003")
    page.run()
    assert page.text_input(key="user_id").value == "u0003"


def test_a_model_that_cannot_load_is_an_error_message_not_a_trace(page: AppTest) -> None:
    page.query_params["model"] = "runs:/0123456789abcdef/model"
    page.run()
    assert not page.exception
    assert "No model at runs:/0123456789abcdef/model" in page.error[0].value
    page.text_input(key="a_uri").input("models:/recs@champion")
    page.run()
    assert not page.exception and not page.error
    assert any("Enter a user ID" in i.value for i in page.info)


COLD = {"n_users": 300, "n_items": 200, "n_interactions": 9000}  # big enough for validation to choose the features


@pytest.fixture(scope="module")
def featured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A rankfm trained with built-in user and item features on the cold-users split (its own store)."""
    root = tmp_path_factory.mktemp("featured")
    with sqlite_store(root) as uri:
        result = train(
            TrainConfig(
                dataset="synthetic", dataset_options=COLD, split="cold-users", user_features="builtin",
                item_features="builtin", epochs=2, patience=0, experiment="features", run_name="with-features",
            )
        )  # fmt: skip
    return {"uri": uri, "result": result}


def _open(store: dict[str, object], monkeypatch: pytest.MonkeyPatch, run_id: str) -> AppTest:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(store["uri"]))
    mlflow.set_tracking_uri(str(store["uri"]))
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/recommend.py")
    at.query_params["run"] = run_id
    at.run()
    return at


def test_a_new_user_by_attributes_gets_the_models_feature_list(
    featured: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = featured["result"]
    assert isinstance(result, TrainResult)
    strategy = MlflowClient(str(featured["uri"])).get_run(result.run_id).data.params["cold_start_strategy"]
    assert strategy in ("features", "blend"), (
        strategy
    )  # chosen on validation: the synthetic data's features carry signal
    page = _open(featured, monkeypatch, result.run_id)
    page.radio(key="user_mode").set_value("A new user").run()
    assert not page.exception and not page.error
    assert page.number_input(key="new_user_age").label == "age (years)"
    assert page.selectbox(key="new_user_gender").options == ["F", "M"]
    page.number_input(key="new_user_age").set_value(62)
    page.selectbox(key="new_user_gender").set_value("F")
    page.selectbox(key="new_user_occupation").set_value("retired")
    page.run()
    assert not page.exception and not page.error and not page.warning
    (recs,) = tables(page, "score")
    attributes = pd.DataFrame({"user_id": ["x"], "age": [62.0], "gender": ["F"], "occupation": ["retired"]})
    expected = result.recommender.recommend(["x"], k=10, user_features=attributes)
    assert list(recs["item_id"]) == list(expected["item_id"]) and set(expected["source"]) == {strategy}
    popular = result.recommender.recommend(["x"], k=10)  # no attributes: the popular list, which this is not
    assert list(recs["item_id"]) != list(popular["item_id"])
    shown = markdown(page)
    assert any(c.startswith(f"Source: {strategy}. Ranked by the model from the attributes") for c in shown)
    assert any(f"Cold-start strategy {strategy}" in c and "chosen on validation cold users" in c for c in shown)
    assert any(s.value == "Top 10 for this new user" for s in page.subheader)

    # a known user of this model: their own attributes, raw from the dataset (age in years and its bucket)
    page.radio(key="user_mode").set_value("A known user").run()
    user = str(result.recommender.user_ids[3])
    page.text_input(key="user_id").input(user).run()
    assert not page.exception and not page.error
    (line,) = [m for m in markdown(page) if m.startswith("User features:")]
    assert re.fullmatch(r"User features: age \d+ \([^)]+\) · gender [FM] · occupation [a-z]+", line), line


def test_a_new_user_of_a_model_without_user_features_gets_the_popular_list(
    page: AppTest, store: dict[str, object]
) -> None:
    page.run()
    page.radio(key="user_mode").set_value("A new user").run()
    assert not page.exception and not page.error
    (info,) = page.info
    assert "trained without user features" in info.value and "popular list" in info.value
    assert not [w for w in page.number_input if str(w.key).startswith("new_user_")]
    (recs,) = tables(page, "score")
    popularity = run_of(store, "alpha").recommender.item_popularity
    assert list(recs["score"]) == sorted(popularity, reverse=True)[:10]
    assert any(c.startswith("Source: popular. The most popular items") for c in markdown(page))
    assert not any(m.startswith("User features:") for m in markdown(page))


def test_cold_start_notes_and_a_known_users_decoded_attributes(featured: dict[str, object]) -> None:
    """What the page says for each cold-start strategy, and a user's attributes read back from the model alone."""
    from recdash.training.run import NOT_VALIDATED
    from recdash.views import recommend as rv

    result = featured["result"]
    assert isinstance(result, TrainResult)
    rec = result.recommender.snapshot()
    rec.set_cold_start("popular", chosen_on=NOT_VALIDATED)
    note, matters = rv.cold_start_note(rec)
    assert not matters and "do not change the list" in note and "Train it on the cold-users split" in note
    rec.set_cold_start("popular", chosen_on="validation cold users, ndcg_at_10", value=0.25)
    note, matters = rv.cold_start_note(rec)
    assert not matters and "chosen on validation cold users, ndcg_at_10 = 0.2500" in note
    rec.set_cold_start("blend", 0.25, chosen_on="validation cold users, ndcg_at_10")
    assert rv.cold_start_note(rec) == (
        "Cold-start strategy blend: a new user's attribute scores mixed with popularity, 25% popularity (chosen on "
        "validation cold users, ndcg_at_10).",
        True,
    )
    user = str(rec.user_ids[3])
    decoded = rv.user_attributes(rec, user)  # no users table: the model's own encoded row, decoded
    assert set(decoded) == {"age", "gender", "occupation"} and decoded["gender"] in ("F", "M")
    assert decoded["age"] in rec.user_encoding.columns[0].values  # the bucket label
    raw = rv.user_attributes(
        rec, user, pd.DataFrame({"user_id": [user], "age": [33], "gender": ["F"], "occupation": ["x"]})
    )
    assert raw == decoded  # a users table that disagrees with what the model saw is not shown


# ---- issue 21: models on different data, IDs as typed, k's range, whole titles, links to no run ---------------------


@pytest.fixture(scope="module")
def two_groups(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A random-split and a cold-users model on the same synthetic data: two data groups, whose test metrics differ
    in scale (cold users score otherwise than known ones), so the picker must not list them as one ranking."""
    root = tmp_path_factory.mktemp("groups")
    with sqlite_store(root) as uri:
        runs = {}
        for split in ("random", "cold-users"):
            runs[split] = train(
                TrainConfig(
                    dataset="synthetic", dataset_options=SMALL, split=split, epochs=1, patience=0, experiment="groups",
                    run_name=f"on-{split}", hparams=Hyperparams(factors=4, max_samples=10),
                )
            )  # fmt: skip
    return {"uri": uri, **runs}


def test_the_run_picker_lists_models_by_data_group(
    two_groups: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    from recdash import recommend as rx

    random, cold = two_groups["random"], two_groups["cold-users"]
    assert isinstance(random, TrainResult) and isinstance(cold, TrainResult)
    sources = rx.model_sources(str(two_groups["uri"]))
    group = dict(zip(sources["run_id"], sources["data_group"], strict=True))
    assert "random split" in group[random.run_id] and "cold-users split" in group[cold.run_id]

    at = _open(two_groups, monkeypatch, random.run_id)
    assert not at.exception and not at.error
    data = at.selectbox(key="a_data")
    assert data.label == "Data (dataset and split)" and data.value == group[random.run_id]
    assert data.options == [  # AppTest holds the labels the reader sees
        f"{group[cold.run_id]} (1 model)",  # the newest model's group first
        f"{group[random.run_id]} (1 model)",
    ]
    picker = at.selectbox(key="a_run")
    assert picker.options == [  # only this group's models: nothing ranked across data groups
        sources.loc[sources["run_id"] == random.run_id, "label"].iat[0]
    ]
    data.set_value(group[cold.run_id]).run()
    assert not at.exception and not at.error
    assert "on-cold-users" in at.selectbox(key="a_run").format_func(at.selectbox(key="a_run").value)
    assert any(m.startswith(f"Model A: run on-cold-users ({cold.run_id[:8]})") for m in markdown(at))


def test_ids_are_echoed_exactly_and_a_link_to_no_run_says_so(page: AppTest, store: dict[str, object]) -> None:
    """Streamlit's Markdown makes `` -- `` a dash and ``->`` an arrow even when escaped: IDs are code spans."""
    page.query_params["run"] = "garbage"
    page.run()
    assert not page.exception and not page.error
    assert [w.value for w in page.warning] == ["There is no run `garbage` in this tracking store; pick a model below."]
    for user, shown in (("--", "`--`"), ("a -> b", "`a -> b`"), ("x`y", "``x`y``"), ("`", "`` ` ``")):
        page.text_input(key="user_id").input(user).run()
        assert not page.exception and not page.error
        assert [w.value for w in page.warning][-1].startswith(f"User {shown} is not in this model's training data")
    beta = run_of(store, "beta").run_id  # the newest model, picked by default
    (caption,) = [c.value for c in page.caption if c.value.startswith("`models:/")]
    assert re.fullmatch(rf"`models:/m-[0-9a-f]+` · run `{beta}`", caption), caption


def test_k_states_its_range_and_a_number_above_it_is_applied_as_the_maximum(page: AppTest) -> None:
    page.run()
    page.text_input(key="user_id").input("u0001").run()
    k = page.number_input(key="k")
    assert k.label == "k (1–500)"
    k.set_value(600).run()
    assert not page.exception and not page.error
    assert page.number_input(key="k").value == 500  # applied, not refused: the page shows what it uses
    assert "k is between 1 and 500: 600 was set to 500." in [c.value for c in page.caption]
    assert any(s.value == "Top 500 recommendations" for s in page.subheader)
    page.number_input(key="k").set_value(0).run()
    assert page.number_input(key="k").value == 1 and any(s.value == "Top 1 recommendations" for s in page.subheader)
    page.number_input(key="k").set_value(7).run()
    assert not [c.value for c in page.caption if c.value.startswith("k is between")]


def test_history_and_top_k_rows_wrap_whole_titles(page: AppTest) -> None:
    """Rows taller than 4rem are the ones Streamlit wraps text in: a long title is shown whole, over lines (the
    browser screenshots show it; the page sets the height so that ten rows are in view)."""
    page.run()
    page.text_input(key="user_id").input("u0001").run()
    for column in ("weight", "score"):  # the history, the top-k
        (frame,) = [d for d in page.dataframe if column in d.value.columns]
        assert frame.proto.row_height > 64


def test_compare_shows_the_users_own_test_metrics_from_each_run(page: AppTest, store: dict[str, object]) -> None:
    alpha, beta = run_of(store, "alpha"), run_of(store, "beta")
    results_a = per_user.read(alpha.run_id, str(store["uri"]))
    results_b = per_user.read(beta.run_id, str(store["uri"]))
    user = str(results_a["user_id"].iloc[3])  # a test user of both runs (same data and split)
    page.query_params["run"] = alpha.run_id
    page.session_state["user_id"] = user
    page.session_state["compare"] = True
    page.run()
    assert not page.exception and not page.error
    (shown,) = [d.value for d in page.dataframe if list(d.value.columns) == ["A", "B"]]
    for column, results in (("A", results_a), ("B", results_b)):
        row = results.set_index("user_id").loc[user]
        assert shown.loc["test_ndcg_at_10", column] == pytest.approx(row["test_ndcg_at_10"], abs=0)
        assert shown.loc["test_recall_at_10", column] == pytest.approx(row["test_recall_at_10"], abs=0)
    assert list(shown.index[:2]) == ["test_precision_at_10", "test_recall_at_10"]  # the logged order
    # a user without test interactions in the runs: said plainly, no numbers
    page.session_state["user_id"] = "no-such-user"
    page.run()
    assert not [d for d in page.dataframe if list(d.value.columns) == ["A", "B"]]
    assert any("no test interactions in its evaluation" in text for text in markdown(page))
