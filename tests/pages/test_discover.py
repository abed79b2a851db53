"""Discover (issue 15): the catalog, its search and the page, driven with AppTest over a real SQLite store with real
trainings (tests/discover_store.py). Edits are read back with MlflowClient from MLflow's own fields."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import streamlit as st
from discover_store import build_discover_store
from mlflow.tracking import MlflowClient
from mlflow.utils.file_utils import local_file_uri_to_path
from streamlit.testing.v1 import AppTest

from recdash import annotations, catalog, contract, registry, tracking
from recdash.views import cards

APP = str(Path(__file__).parents[2] / "app.py")
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("discover_template")
    return {"root": root, **build_discover_store(root)}


@pytest.fixture
def store(template: dict[str, Any], tracking_store: str, tmp_path: Path) -> dict[str, Any]:
    """A fresh copy of the template store as this test's tracking store (artifacts stay in the template's folder,
    where the runs recorded them; the CSV too)."""
    shutil.copy(template["root"] / "mlflow.db", tmp_path / "mlflow.db")
    return {**template, "uri": tracking_store}


def build(uri: str) -> catalog.Catalog:
    experiments = tracking.list_experiments(uri)
    runs = tracking.RunsLoader(uri).load(list(experiments["experiment_id"]))
    return catalog.build(runs, experiments, *registry.snapshot(MlflowClient(uri)))


def artifact_dir(run_id: str) -> Path:
    return Path(local_file_uri_to_path(MlflowClient().get_run(run_id).info.artifact_uri))


def discover(**query: str) -> AppTest:
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page("pages/discover.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# read-only tables carry no key in AppTest: each is recognised by its columns
_COLUMNS = {
    "profile_summary": {"what", "value"},
    "preview": {"user_id", "item_id", "title"},
    "leaderboard": {"rank", "run"},
    "dataset_models": {"model", "version", "aliases", "run"},
    "dataset_people": {"user", "runs", "last_run"},
    "logged_counts": {"rows"},
    "model_versions": {"badges", "run_link"},
    "vs_baseline": {"metric", "baseline", "ratio"},
    "tags_table": {"tag", "value"},
}
_RESULT = re.compile(r"^discover\?(dataset|model|run|experiment|user)=[^&]*(&version=)?")


def table(at: AppTest, key: str) -> pd.DataFrame:
    """A table by what it shows: ``results_<kind>`` by its links, the others by their columns."""
    if key.startswith("results_"):
        kinds = {"user": "person"}
        found = []
        for df in at.dataframe:
            frame = df.value
            if list(frame.columns) != ["title", "subtitle", "link"] or frame.empty:
                continue
            match = _RESULT.match(str(frame["link"].iloc[0]))
            kind = (
                "version" if match and match.group(2) else kinds.get(match.group(1), match.group(1)) if match else None
            )
            if kind == key.removeprefix("results_"):
                found.append(frame)
    else:
        found = [df.value for df in at.dataframe if _COLUMNS[key] <= set(df.value.columns)]
    assert len(found) == 1, f"{key}: {len(found)} tables"
    return found[0]


def plain(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


_BADGE = re.compile(r"^:[a-z]+-badge\[(?::[\w/]+: )?(.*)\]$", re.DOTALL)


def badge_labels(at: AppTest) -> list[str]:
    """The labels of st.badge elements (AppTest sees them as markdown ``:color-badge[:icon: label]``)."""
    return [plain(m.group(1)) for m in (_BADGE.match(md.value) for md in at.markdown) if m]


# ---- search ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["movielens", "movielen", "MovieLens 100k"])
def test_search_finds_the_ml100k_dataset_its_runs_and_models(store: dict[str, Any], query: str) -> None:
    at = discover(q=query)
    assert table(at, "results_dataset")["title"].tolist() == ["movielens-100k"]
    assert "pop-ml" in table(at, "results_run")["title"].tolist()
    assert table(at, "results_model")["title"].tolist() == ["ml-recs"]
    assert table(at, "results_dataset")["link"].iloc[0].startswith("discover?dataset=")
    assert any(s.value.startswith("Datasets (1)") for s in at.subheader)


def test_search_ranks_and_tolerates_but_does_not_invent(template: dict[str, Any]) -> None:
    cat = build(template["uri"])
    found = cat.index.search("syn-recs")
    assert found[found["kind"] == "model"]["title"].tolist() == ["syn-recs"]
    versions = found[found["kind"] == "version"]["title"].tolist()
    assert set(versions) == {"syn-recs v1", "syn-recs v2"}
    for typo in ("movilens", "moveilens", "moviel"):  # a dropped or swapped letter, a partial word
        assert cat.index.search(typo).query("kind == 'dataset'")["title"].tolist() == ["movielens-100k"], typo
    assert cat.index.search("qwertyuiop").empty
    assert cat.index.search("movielens zzzzzz").empty  # every word must match
    # a dataset used by more runs ranks first among equal matches: "syn" matches synthetic (2 runs) and others
    datasets = cat.index.search("ratings")
    assert datasets[datasets["kind"] == "dataset"]["title"].tolist() == ["ratings", "ratings"]
    landing = cat.index.popular(per_kind=1)
    assert landing.groupby("kind").size().max() == 1 and "dataset" in set(landing["kind"])


def test_runs_another_tool_logged_are_found_by_name_params_tags_and_user(template: dict[str, Any]) -> None:
    cat = build(template["uri"])
    for query in ("lgbm", "lightgbm", "ads-ranking", "alice"):
        found = cat.index.search(query)
        assert "lgbm-ranker" in found.loc[found["kind"] == "run", "title"].tolist(), query
    assert cat.index.search("alice").query("kind == 'person'")["title"].tolist() == ["alice"]


def test_landing_and_bad_links_show_messages_not_tracebacks(store: dict[str, Any]) -> None:
    at = discover()
    for kind in ("dataset", "model", "version", "run", "experiment", "person"):
        assert 1 <= len(table(at, f"results_{kind}")) <= 5, kind
    for query in ({"dataset": "0000"}, {"model": "nope"}, {"user": "<b>x</b>"}, {"run": "[x](javascript:1)"},
                  {"experiment": "999"}, {"q": "(("}, {"q": "\"'%_*"}):  # fmt: skip
        at = discover(**query)
        assert not at.error, query
        assert at.warning or at.info or at.dataframe, query


# ---- dataset view ------------------------------------------------------------------------------------------------


def test_dataset_view_profiles_the_data_and_ranks_runs_on_it(store: dict[str, Any]) -> None:
    cat = build(store["uri"])
    digest = cat.run(store["pop-ml"])["ds_digest"]
    at = discover(dataset=digest)
    summary = table(at, "profile_summary").set_index("what")["value"]
    assert summary["interactions"] == "100,000" and summary["users"] == "943" and summary["items"] == "1,682"
    assert summary["ratings"].startswith("1 to 5")
    preview = table(at, "preview")
    assert len(preview) == 10 and "title" in preview.columns and preview["title"].notna().all()
    board = table(at, "leaderboard")
    ndcg = {n: MlflowClient().get_run(store[n]).data.metrics["test_ndcg_at_10"] for n in ("pop-ml", "knn-ml")}
    assert board["run"].tolist() == sorted(ndcg, key=ndcg.get, reverse=True) and board["rank"].tolist() == [1, 2]
    assert table(at, "dataset_models")["version"].tolist() == [2, 1]
    assert sorted(table(at, "dataset_people")["user"]) == sorted(
        {"bob", MlflowClient().get_run(store["pop-ml"]).info.user_id}
    )
    assert len(at.get("plotly_chart")) == 3  # long tail, per-user and per-item distributions


def test_leaderboard_ranks_only_within_one_split(template: dict[str, Any]) -> None:
    cat = build(template["uri"])
    runs = cards.runs_on(cat, cat.run(template["syn-a"])["ds_digest"])
    board = cards.leaderboard(runs, "test_ndcg_at_10")
    assert set(board["run"]) == {"syn-a", "syn-b"}
    values = board["test_ndcg_at_10"].tolist()
    assert values == sorted(values, reverse=True) and board["baseline"].notna().all()
    other = runs.assign(data_group=["split A", "split B"])
    assert cards.leaderboard(other, "test_ndcg_at_10", "split A")["run"].tolist() == [other["label"].iloc[0]]


def test_changed_data_has_a_history_and_is_explained(store: dict[str, Any]) -> None:
    cat = build(store["uri"])
    old, new = (cat.run(store[n])["ds_digest"] for n in ("csv-old", "csv-new"))
    assert old != new
    history = cards.digest_history(cat, old)
    assert history["digest"].tolist() == [old, new] and history["Δ rows"].iloc[1] == 240  # 20 users x 12 rows
    assert cards.newer_digest(cat, old) == new and cards.newer_digest(cat, new) is None
    at = discover(dataset=old)
    assert any("older version of ratings" in plain(w.value) for w in at.warning)
    # the old run logged its data's profile when it trained: the page shows that data, not today's file
    assert table(at, "profile_summary").set_index("what")["value"]["interactions"] == "720"
    assert any("As logged by run csv-old" in plain(c.value) for c in at.caption)
    # a run without that artifact (older code): the file now loads with the new digest, and the page says so
    # and shows what the run logged instead
    (artifact_dir(store["csv-old"]) / contract.PROFILE_ARTIFACT).unlink()
    at = discover(dataset=old)
    assert any("it changed since these runs" in plain(i.value) for i in at.info)
    logged = [df.value for df in at.dataframe if list(df.value.columns) == ["rows", "n_users", "n_items"]]
    assert [frame["rows"].tolist() for frame in logged] == [[720]]
    assert at.json  # MLflow's logged profile / schema


def test_large_data_without_a_logged_profile_is_not_loaded(
    store: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs that predate the logged profile: above the row limit the page never loads the data on a visit."""
    new = build(store["uri"]).run(store["csv-new"])["ds_digest"]
    (artifact_dir(store["csv-new"]) / contract.PROFILE_ARTIFACT).unlink()

    def no_loading(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the page loaded the data")

    monkeypatch.setattr("recdash.data.load_dataset", no_loading)
    monkeypatch.setattr(cards, "PROFILE_LOAD_LIMIT", 500)  # csv-new has 960 rows
    at = discover(dataset=new)
    assert any("960 rows are too many to load" in plain(i.value) for i in at.info), [i.value for i in at.info]
    assert not at.error and not at.exception
    logged = [df.value for df in at.dataframe if list(df.value.columns) == ["rows", "n_users", "n_items"]]
    assert [frame["rows"].tolist() for frame in logged] == [[960]]


# ---- model card ----------------------------------------------------------------------------------------------------


def test_model_card_shows_lineage_badges_and_serve_command(store: dict[str, Any]) -> None:
    at = discover(model="syn-recs")
    labels = badge_labels(at)
    assert "champion" in labels
    run = MlflowClient().get_run(store["syn-a"]).data.metrics
    beats = run["test_ndcg_at_10"] > run["baseline_test_ndcg_at_10"]
    prefix = "beats its baseline by" if beats else "does not beat its baseline"
    assert any(label.startswith(prefix) for label in labels), labels
    dot = at.get("graphviz_chart")[0].proto.spec
    for node in ("syn-recs v1", "run syn-a", "logged model m-", "@champion", "@challenger", "synthetic"):
        assert node in dot, node
    assert dot.count("->") >= 8  # dataset -> run -> logged model -> version -> alias, for both versions
    assert any("mlflow models serve -m 'models:/syn-recs@champion'" in c.value for c in at.code)
    versions = table(at, "model_versions")
    assert versions["version"].tolist() == [2, 1] and versions["aliases"].tolist() == ["challenger", "champion"]
    vs = table(at, "vs_baseline").set_index("metric")
    assert vs.loc["test_ndcg_at_10", "model"] == pytest.approx(run["test_ndcg_at_10"])


def test_model_trained_on_older_data_is_badged(store: dict[str, Any]) -> None:
    cat = build(store["uri"])
    older = "trained on an older version of its dataset"
    assert older in [b.label for b in cards.badges(cat, cards.main_version(cat, "csv-recs"))]
    assert older not in [b.label for b in cards.badges(cat, cards.main_version(cat, "ml-recs"))]
    at = discover(model="csv-recs")
    assert older in table(at, "model_versions")["badges"].iloc[0]
    v1 = cat.versions[(cat.versions["name"] == "ml-recs") & (cat.versions["version"] == 1)].iloc[0]
    pop = [b.label for b in cards.badges(cat, v1)]
    assert pop[0] == "challenger" and pop[1].startswith("matches its baseline")  # popularity is its own baseline


# ---- descriptions and tags -------------------------------------------------------------------------------------------


def test_descriptions_edited_on_the_page_are_mlflow_fields(store: dict[str, Any]) -> None:
    client = MlflowClient()
    text = "Trained for the *spring* review <b>not html</b>"

    def edit(at: AppTest, value: str) -> AppTest:
        at.text_area(key="description").set_value(value)
        at.button(key="save_description").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert at.success
        return at

    edit(discover(run=store["pop-ml"]), text)
    assert client.get_run(store["pop-ml"]).data.tags["mlflow.note.content"] == text
    edit(discover(model="ml-recs"), text)
    assert client.get_registered_model("ml-recs").description == text
    experiment = client.get_experiment_by_name("syn")
    edit(discover(experiment=experiment.experiment_id), text)
    assert client.get_experiment(experiment.experiment_id).tags["mlflow.note.content"] == text
    cat = build(store["uri"])
    at = edit(discover(dataset=cat.run(store["csv-new"])["ds_digest"]), "Ratings export, one row per rating")
    csv = client.get_experiment_by_name("csv")
    assert client.get_experiment(csv.experiment_id).tags["recdash.dataset/ratings/description"] == (
        "Ratings export, one row per rating"
    )
    # and the catalog reads them back: searchable, shown on the views
    cat = build(store["uri"])
    assert "pop-ml" in cat.index.search("spring review").query("kind == 'run'")["title"].tolist()
    assert cat.index.search("export").query("kind == 'dataset'")["title"].tolist() == ["ratings", "ratings"]
    at = discover(run=store["pop-ml"])
    assert at.text_area(key="description").value == text and text in [t.value for t in at.text]


def test_tags_set_and_deleted_on_the_page(store: dict[str, Any]) -> None:
    at = discover(model="syn-recs")
    at.text_input(key="tag_key").set_value("owner")
    at.text_input(key="tag_value").set_value("bob")
    at.button(key="set_tag").click().run()
    assert MlflowClient().get_registered_model("syn-recs").tags == {"owner": "bob"}
    assert build(store["uri"]).model("syn-recs")["owner"] == "bob"  # an owner tag names the owner
    at = discover(run=store["lgbm-ranker"])
    assert table(at, "tags_table").set_index("tag")["value"].to_dict() == {"team": "ads-ranking"}
    at.selectbox(key="delete_tag_key").set_value("team")
    at.button(key="delete_tag").click().run()
    assert "team" not in MlflowClient().get_run(store["lgbm-ranker"]).data.tags


def test_writes_are_refused_on_a_read_only_store(tmp_path: Path) -> None:
    uri = (tmp_path / "mlruns").as_uri()
    for target in (annotations.Target("run", "abc"), annotations.Target("dataset", "x", ("1",))):
        with pytest.raises(annotations.AnnotationError, match="migrate-filestore"):
            annotations.set_description(uri, target, "text")
    assert not (tmp_path / "mlruns").exists()


def test_dataset_tag_keys_are_valid_mlflow_keys(store: dict[str, Any]) -> None:
    key = annotations.dataset_key("my data: v2 (final).csv", "description")
    assert key.startswith("recdash.dataset/my data_ v2 _final_.csv-") and key.endswith("/description")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("csv").experiment_id
    target = annotations.Target("dataset", "my data: v2 (final).csv", (experiment,))
    annotations.set_description(store["uri"], target, "ok")  # MLflow accepts the key
    tags = client.get_experiment(experiment).tags
    assert annotations.dataset_annotations([tags], "my data: v2 (final).csv") == ("ok", {})
    mlflow.set_tracking_uri(store["uri"])


# ---- a real browser ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_discover_in_a_real_browser(store: dict[str, Any], tmp_path: Path) -> None:
    """Search (with a typo typed into the box), the dataset view's charts and leaderboard, the model card's badges
    and drawn lineage graph, the older-data badge and a person, in headless Chromium. Screenshots go to
    docs/screenshots/discover-*.png when RECDASH_SCREENSHOTS=1, else to the test's temp dir."""
    import os

    from browser import ROOT, browser_page, check_page, chromium_path, fill, grid_text, screenshot, streamlit_server

    chromium = chromium_path()
    cat = build(store["uri"])
    digest = cat.run(store["pop-ml"])["ds_digest"]
    env = {"MLFLOW_TRACKING_URI": store["uri"], "RECDASH_JOBS_DIR": str(tmp_path / "jobs")}
    shots = ROOT / "docs" / "screenshots" if os.environ.get("RECDASH_SCREENSHOTS") == "1" else tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    with streamlit_server(tmp_path, env) as server, browser_page(chromium, tmp_path) as page:
        page.goto(f"{server}/discover?q=movielens")
        check_page(page, "Discover")
        page.get_by_role("heading", name="Datasets (1)").wait_for()
        grids = page.locator("[data-testid='stDataFrame']")
        assert grid_text(grids.nth(0))[0][0] == "movielens-100k"
        fill(page, "q", "movielen")
        page.wait_for_url("**/discover?q=movielen")
        check_page(page, "Discover")
        titles = [row[0] for i in range(grids.count()) for row in grid_text(grids.nth(i))]
        assert {"movielens-100k", "pop-ml", "ml-recs"} <= set(titles), titles
        screenshot(page, shots, "discover-search.png")

        page.goto(f"{server}/discover?dataset={digest}")
        check_page(page, "Discover")
        page.get_by_role("heading", name="Leaderboard").wait_for()
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3")
        profile = {row[0]: row[1] for row in grid_text(grids.nth(1))}  # after the digest history
        assert profile["interactions"] == "100,000" and profile["items"] == "1,682", profile
        screenshot(page, shots, "discover-dataset.png")

        page.goto(f"{server}/discover?model=ml-recs")
        check_page(page, "Discover")
        page.get_by_text(re.compile("beats its baseline|does not beat its baseline")).first.wait_for()
        card_top = page.locator("[data-testid='stMain']").inner_text().split("Versions")[0]
        assert "champion" in card_top and "its baseline" in card_top, card_top  # the badges, above the versions
        graph = page.locator("[data-testid='stGraphVizChart'] svg")
        graph.wait_for()
        drawn = graph.text_content() or ""
        assert "ml-recs v2" in drawn and "@champion" in drawn and "run knn-ml" in drawn, drawn
        screenshot(page, shots, "discover-model.png")

        page.goto(f"{server}/discover?model=csv-recs")
        check_page(page, "Discover")
        page.get_by_text("trained on an older version of its dataset").first.wait_for()

        page.goto(f"{server}/discover?user=alice")
        check_page(page, "Discover")
        page.get_by_role("heading", name="Person: alice").wait_for()
        owner = MlflowClient(store["uri"]).get_run(store["pop-ml"]).info.user_id
        page.goto(f"{server}/discover?user={owner}")
        check_page(page, "Discover")
        page.get_by_role("heading", name="Registered models").wait_for()
        screenshot(page, shots, "discover-person.png")


def test_other_pages_link_runs_and_models_to_discover(store: dict[str, Any]) -> None:
    st.cache_data.clear()
    home = AppTest.from_file(APP, default_timeout=60).run()
    latest = next(df.value for df in home.dataframe if "discover" in df.value.columns)
    assert f"discover?run={store['knn-ml']}" in latest["discover"].tolist()
    runs = AppTest.from_file(APP, default_timeout=60)
    runs.switch_page("pages/runs.py")
    runs.run()
    table_ = next(df.value for df in runs.dataframe if "discover" in df.value.columns)
    assert f"discover?run={store['lgbm-ranker']}" in table_["discover"].tolist()
    models = AppTest.from_file(APP, default_timeout=60)
    models.query_params["name"] = "ml-recs"
    models.switch_page("pages/models.py")
    models.run()
    versions = next(df.value for df in models.dataframe if "discover" in df.value.columns)
    assert versions["discover"].tolist() == [f"discover?run={store['knn-ml']}", f"discover?run={store['pop-ml']}"]
    assert not home.exception and not runs.exception and not models.exception


def test_compare_links_its_runs_and_their_data_to_discover(store: dict[str, Any]) -> None:
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["runs"] = f"{store['pop-ml']},{store['lgbm-ranker']}"
    at.switch_page("pages/compare.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    runs = next(df.value for df in at.dataframe if "run_page" in df.value.columns).set_index("run_id")
    digest = build(store["uri"]).run(store["pop-ml"])["ds_digest"]
    assert runs.loc[store["pop-ml"], "data_page"] == f"discover?dataset={digest}"
    assert pd.isna(runs.loc[store["lgbm-ranker"], "data_page"])  # another tool's run: no dataset input
    assert runs.loc[store["lgbm-ranker"], "run_page"] == f"discover?run={store['lgbm-ranker']}"


def test_search_box_and_url_follow_each_other(store: dict[str, Any]) -> None:
    at = discover(q="movielens")
    assert at.text_input(key="q").value == "movielens"
    at.text_input(key="q").set_value("syn-recs").run()
    assert at.query_params["q"] == ["syn-recs"] or at.query_params["q"] == "syn-recs"
    assert table(at, "results_model")["title"].tolist() == ["syn-recs"]
    at.query_params["q"] = "ratings"  # a link to another search in the same session: the URL wins
    at.run()
    assert at.text_input(key="q").value == "ratings"
    assert table(at, "results_dataset")["title"].tolist() == ["ratings", "ratings"]


def test_profiling_asks_before_downloading_and_lineage_labels_are_escaped(
    store: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECDASH_CACHE_DIR", str(tmp_path / "empty-cache"))
    assert cards.needs_download("movielens-100k", {}) and not cards.needs_download("synthetic", {})
    cat = build(store["uri"])
    digest = cat.run(store["pop-ml"])["ds_digest"]
    at = discover(dataset=digest)  # the runs logged the data's profile: nothing to download to show it
    assert table(at, "profile_summary").set_index("what")["value"]["users"] == "943"
    assert not any("not on this machine yet" in plain(i.value) for i in at.info)
    for run_id in cards.runs_on(cat, digest)["run_id"]:  # runs from before the logged profile
        (artifact_dir(run_id) / contract.PROFILE_ARTIFACT).unlink()
    at = discover(dataset=digest)
    assert any("not on this machine yet" in plain(i.value) for i in at.info)
    assert at.button(key="download_data") and not [df for df in at.dataframe if "what" in df.value.columns]
    assert not (tmp_path / "empty-cache").exists()  # nothing was downloaded without asking
    assert cards._dot_text('run "x" \\ y') == 'run \\"x\\" \\\\ y'
