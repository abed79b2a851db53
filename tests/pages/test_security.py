"""Security (issue 7): store data is shown as text, models load only from the configured store and hold no pickle,
uploads are data in the cache folder with a size limit, and the app listens on localhost by default."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from stores import sqlite_store
from streamlit.testing.v1 import AppTest

from recdash import recommend as rx
from recdash import registry
from recdash.config import TrainConfig
from recdash.data import DatasetError, load_dataset
from recdash.data.files import table_header
from recdash.models import IDS_FILE, WEIGHTS_FILE
from recdash.models.rankfm import Hyperparams
from recdash.training import jobs
from recdash.training.run import train

ROOT = Path(__file__).parents[2]
APP = str(ROOT / "app.py")
SMALL = {"n_users": 120, "n_items": 80, "n_interactions": 3000}
pytestmark = pytest.mark.timeout(180)

EVIL_NAME = "<img src=x onerror=alert(1)>"
EVIL_LINK = "[click](javascript:alert(1))"
EVIL_TEXT = f"**bold** {EVIL_LINK} <script>alert(1)</script>"
EVIL_EXPERIMENT = "**exp** <b>x</b>"
# Raw (unescaped) markup that must never reach a markdown-rendered element: the escaped forms (\<img, \[click\]\(,
# \*\*bold) show the characters as typed.
UNSAFE = [re.compile(p) for p in (r"(?<!\\)<img", r"(?<!\\)<script", r"(?<!\\)<b>", r"(?<!\\)\[click(?<!\\)\]\(")]
UNSAFE.append(re.compile(r"(?<!\\)\*\*(bold|exp)"))
MARKDOWN_ELEMENTS = ("title", "header", "subheader", "markdown", "caption", "error", "warning", "info", "success")


def _tiny(**kw: Any) -> Any:
    return train(
        TrainConfig(
            dataset="synthetic", dataset_options=SMALL, epochs=2, patience=0, hparams=Hyperparams(factors=4), **kw
        )
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run, experiment, params, tags and a registered model whose texts are HTML and Markdown."""
    root = tmp_path_factory.mktemp("security_store")
    with sqlite_store(root) as uri:
        evil = _tiny(experiment=EVIL_EXPERIMENT, run_name=EVIL_NAME, tags={"note": EVIL_LINK, EVIL_LINK: "x"})
        client = MlflowClient(uri)
        client.log_param(evil.run_id, "comment", EVIL_TEXT)
        client.set_tag(evil.run_id, "mlflow.note.content", EVIL_TEXT)
        registry.register_run_model(evil.run_id, "recs", client=client)
        client.set_registered_model_tag("recs", "owner", EVIL_TEXT)
        client.update_registered_model("recs", description=EVIL_TEXT)
        client.set_registered_model_alias("recs", "champion", "1")
    return {"uri": uri, "root": root, "evil": evil}


@pytest.fixture
def use_store(store: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    mlflow.set_tracking_uri(store["uri"])
    return store


def page(name: str, query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(f"pages/{name}.py")
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def markdown_bodies(at: AppTest) -> list[str]:
    """Text of every element Streamlit renders as Markdown, plus widget labels (also Markdown)."""
    bodies = [str(el.value) for kind in MARKDOWN_ELEMENTS for el in getattr(at, kind)]
    for kind in ("selectbox", "multiselect", "text_input", "number_input", "button", "radio", "checkbox"):
        bodies += [str(w.label) for w in getattr(at, kind)]
    return bodies


def assert_no_live_markup(at: AppTest) -> None:
    for body in markdown_bodies(at):
        body = re.sub(r"(?<![\\`])(`+)(?!`).*?(?<!`)\1(?!`)", "", body)  # code spans are inert: shown as typed
        for pattern in UNSAFE:
            assert not pattern.search(body), f"unescaped {pattern.pattern!r} in {body[:300]!r}"


def table_text(at: AppTest) -> str:
    """Everything shown in dataframes and plain text/code elements (where markup is inert)."""
    parts = [d.value.astype(str).to_csv() for d in at.dataframe]
    parts += [str(t.value) for t in at.text] + [str(c.value) for c in at.code]
    return "\n".join(parts)


# ---- run names, params, tags, experiment names ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("home", {}),
        ("runs", {}),
        ("compare", {"runs": "EVIL"}),
        ("compare", {}),
        ("recommend", {"run": "EVIL"}),
        ("models", {"run": "EVIL"}),
        ("train", {}),
    ],
)
def test_store_text_is_shown_as_text(use_store: dict[str, Any], name: str, query: dict[str, str]) -> None:
    query = {k: v.replace("EVIL", use_store["evil"].run_id) for k, v in query.items()}
    at = page(name, query)
    assert_no_live_markup(at)
    if name in ("home", "runs", "compare"):
        assert EVIL_NAME in table_text(at)  # the name is shown, as typed, in a table


def test_runs_page_shows_params_and_tags_as_text(use_store: dict[str, Any]) -> None:
    at = page("runs")
    at.multiselect(key="columns").set_value(["params.comment", "tags.note"])
    at.run()
    assert not at.exception
    table = at.dataframe(key="runs_table").value
    assert table["params.comment"].tolist() == [EVIL_TEXT] and table["tags.note"].tolist() == [EVIL_LINK]
    assert_no_live_markup(at)


def test_recommend_page_run_and_compare_labels(use_store: dict[str, Any]) -> None:
    at = page("recommend", {"run": use_store["evil"].run_id})
    at.text_input(key="user_id").set_value(EVIL_NAME)  # a user ID with markup: unknown, echoed in a warning
    at.session_state["compare"] = True
    at.run()
    assert not at.exception
    assert any(EVIL_NAME in re.sub(r"\\(.)", r"\1", w.value) for w in at.warning)
    assert_no_live_markup(at)
    assert any(EVIL_NAME in opt for opt in at.selectbox(key="a_run").options)  # options are plain text


def test_discover_shows_store_text_as_text(use_store: dict[str, Any]) -> None:
    run_id = use_store["evil"].run_id
    for query in ({"q": "img onerror"}, {"q": "click"}, {"run": run_id}, {"model": "recs"}, {"user": EVIL_NAME}):
        at = page("discover", query)
        assert not at.exception, (query, [e.value for e in at.exception])
        assert_no_live_markup(at)
    at = page("discover", {"run": run_id})
    assert at.text_area(key="description").value == EVIL_TEXT and EVIL_TEXT in table_text(at)
    found = page("discover", {"q": "onerror"})
    assert EVIL_NAME in table_text(found)  # the run, found by its name, shown in a table as typed


def test_models_page_registry_text(use_store: dict[str, Any]) -> None:
    at = page("models", {"name": "recs"})
    assert at.text_area(key="description").value == EVIL_TEXT  # edited as text
    assert EVIL_TEXT in table_text(at)
    assert_no_live_markup(at)


# ---- item titles ---------------------------------------------------------------------------------------------


@pytest.fixture
def evil_titles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A MovieLens-100K cache whose item titles are Markdown links and HTML (the cache checks ratings, not titles)."""
    try:
        real = load_dataset("movielens-100k")
    except DatasetError as exc:  # no copy and no network
        pytest.skip(f"MovieLens-100K unavailable: {exc}")
    cache = tmp_path / "cache"
    target = cache / "movielens-100k"
    target.mkdir(parents=True)
    real.interactions.to_parquet(target / "interactions.parquet", index=False)
    items = real.items.copy()
    items["title"] = [f"{EVIL_LINK} <img src=x onerror=alert({i})> **bold**" for i in range(len(items))]
    items.to_parquet(target / "items.parquet", index=False)
    meta = {"format": 1, "source": "test", "digest": real.digest, "shape": [100_000, 943, 1682]}
    from recdash.data.movielens import _CACHE_FORMAT

    meta["format"] = _CACHE_FORMAT
    (target / "meta.json").write_text(json.dumps(meta))
    monkeypatch.setenv("RECDASH_CACHE_DIR", str(cache))
    assert load_dataset("movielens-100k").items["title"].iloc[0].startswith(EVIL_LINK)
    return cache


def test_item_titles_with_markdown_and_html_are_text_on_recommend(evil_titles: Path) -> None:
    result = train(
        TrainConfig(dataset="movielens-100k", epochs=1, patience=0, hparams=Hyperparams(factors=4, max_samples=3))
    )
    at = page("recommend", {"run": result.run_id})
    at.text_input(key="user_id").set_value("1")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = table_text(at)
    assert EVIL_LINK in shown and "onerror" in shown  # titles are there, in tables
    assert any(EVIL_LINK in label for label in at.selectbox(key="similar_item").options)
    assert_no_live_markup(at)


# ---- no unsafe HTML anywhere in the app -----------------------------------------------------------------------------


def test_no_raw_html_rendering_in_the_app() -> None:
    sources = [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "recdash").glob("*.py")]
    for path in sources:
        text = path.read_text()
        for needle in ("unsafe_allow_html", "st.html(", "components.html", "components.v1"):
            assert needle not in text, f"{needle} in {path.name}"
    for path in (ROOT / "recdash").glob("*.py"):
        assert "import streamlit" not in path.read_text(), path.name


# ---- models only from the configured store, no pickle ------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "http://evil.example/model",
        "https://evil.example/model.tar.gz",
        "s3://bucket/model",
        "/etc",
        "../../somewhere/model",
        "mlflow-artifacts:/0/abc/artifacts/model",
    ],
)
def test_models_load_only_from_the_tracking_store(uri: str) -> None:
    with pytest.raises(rx.ModelLoadError, match="not a model of this tracking store"):
        rx.load(uri)
    at = page("recommend", {"model": uri})
    assert any("not a model of this tracking store" in e.value for e in at.error)


def test_a_shared_link_with_markup_in_the_model_uri_is_shown_as_text() -> None:
    for uri in (EVIL_LINK, EVIL_NAME, f"runs:/{EVIL_LINK}/model"):
        at = page("recommend", {"model": uri})
        assert at.error
        assert_no_live_markup(at)


def test_model_artifacts_hold_no_pickle(use_store: dict[str, Any], tmp_path: Path) -> None:
    local = Path(mlflow.artifacts.download_artifacts(use_store["evil"].model_uri, dst_path=str(tmp_path / "m")))
    files = [p for p in local.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert "MLmodel" in names and WEIGHTS_FILE in names and IDS_FILE in names
    assert not [p for p in files if p.suffix in (".pkl", ".pickle", ".joblib", ".cloudpickle")]
    assert "python_model.pkl" not in names
    flavor = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"  # models-from-code: the model is a .py file
    assert "python_model" not in flavor  # the key MLflow uses for a pickled PythonModel
    (weights,) = [p for p in files if p.name == WEIGHTS_FILE]
    with np.load(weights, allow_pickle=False) as z:  # raises on any object (pickled) array
        assert {z[name].dtype.kind for name in z.files} <= {"f", "i", "u"}
    (ids,) = [p for p in files if p.name == IDS_FILE]
    meta = json.loads(ids.read_text())
    assert set(meta) - {"user_encoding", "item_encoding"} == {
        "format_version",
        "recdash_version",
        "model",
        "params",
        "user_ids",
        "item_ids",
        "cold_start",
    }
    assert meta["cold_start"] == {"strategy": "popular"}
    assert meta["model"] == "rankfm" and all(isinstance(v, (int, float, str)) for v in meta["params"].values())


# ---- uploads: data only, size-limited, inside the cache folder ----------------------------------------------------


@pytest.mark.parametrize(
    "filename", ["../../../../tmp/evil.csv", "/etc/cron.d/evil.csv", "a.c$v", "..", "x.csv;rm -rf ~", "ok.tsv"]
)
def test_uploads_stay_in_the_jobs_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filename: str) -> None:
    monkeypatch.setenv("RECDASH_JOBS_DIR", str(tmp_path / "jobs"))
    data = b"user_id,item_id\n=cmd|' /C calc'!A0,2\n"
    path = jobs.save_upload(filename, data)
    assert path.resolve().parent == (tmp_path / "jobs" / "uploads").resolve()
    assert path.read_bytes() == data and path.suffix in (".csv", ".tsv")
    assert table_header(path) == ["user_id", "item_id"]  # read as data: the formula stays a string
    frame = pd.read_csv(path, dtype=str)
    assert frame["user_id"].iloc[0].startswith("=cmd")


def test_upload_size_limit_and_page_upload_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECDASH_JOBS_DIR", str(tmp_path / "jobs"))
    with pytest.raises(jobs.JobError, match="over the"):
        jobs.save_upload("big.csv", b"0" * (jobs.MAX_UPLOAD_BYTES + 1))
    at = page("train")
    at.selectbox(key="t_dataset").set_value("csv upload").run()
    at.file_uploader(key="t_upload").set_value(("../../escape.csv", b"user_id,item_id\n1,2\n1,3\n", "text/csv"))
    at.run()
    assert not at.exception and not at.error
    written = [p for p in tmp_path.rglob("*.csv")]
    assert written and all(p.parent == tmp_path / "jobs" / "uploads" for p in written)
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 >= jobs.MAX_UPLOAD_BYTES  # Streamlit's own cap is not lower


# ---- listening address -------------------------------------------------------------------------------------------


def test_app_listens_on_localhost_by_default() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"
    assert config["client"]["showErrorDetails"] == "none"  # no stack traces in the browser
    assert config["browser"]["gatherUsageStats"] is False
