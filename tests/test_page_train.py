"""Train page: start a training from the form, watch its progress, see it finish; bad input is refused."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
import pytest
from streamlit.testing.v1 import AppTest

from recdash import jobs

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def jobs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECDASH_JOBS_DIR", str(tmp_path / "jobs"))
    return tmp_path / "jobs"


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/train.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at: AppTest) -> str:
    return "\n".join(t.value for t in at.text)


def test_start_training_see_progress_and_finished_run() -> None:
    at = _page()
    at.selectbox(key="t_dataset").set_value("synthetic").run()
    at.number_input(key="t_synthetic_n_users").set_value(120)
    at.number_input(key="t_synthetic_n_items").set_value(80)
    at.number_input(key="t_synthetic_n_interactions").set_value(3000)
    at.number_input(key="t_epochs").set_value(40)
    at.number_input(key="t_patience").set_value(0)
    at.number_input(key="t_factors").set_value(8)
    at.text_input(key="t_run_name").set_value("page-run")
    at.button(key="FormSubmitter:t_form-Start training").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("queued as run" in s.value for s in at.success)

    seen_progress, deadline = set(), time.monotonic() + 120
    state = ""
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        text = _texts(at)
        seen_progress |= {line for line in text.splitlines() if line.startswith("Epoch ")}
        state = text.split("state: ")[1].split()[0] if "state: " in text else ""
        if state in ("finished", "failed", "killed"):
            break
        time.sleep(0.5)
    assert state == "finished", _texts(at)
    assert len(seen_progress) >= 2, seen_progress  # the epoch count moved while we watched
    assert any(line.startswith("Epoch 40 of 40") for line in _texts(at).splitlines())
    links = at.get("page_link")
    assert len(links) == 2
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FINISHED" and run.info.run_name == "page-run"
    assert run.data.params["epochs"] == "40" and run.data.params["factors"] == "8"
    assert run.data.tags[jobs.TAG_JOB_STATE]


def test_invalid_values_are_refused_before_anything_starts() -> None:
    at = _page()
    at.text_input(key="t_split_fractions").set_value("0.5,0.1,0.1")
    at.button(key="FormSubmitter:t_form-Start training").click().run()
    assert not at.exception
    assert any("split-fractions" in e.value for e in at.error)
    at.text_area(key="s_space").set_value("factors=200:10")
    at.button(key="FormSubmitter:s_form-Start sweep").click().run()
    assert any("LOW must be below HIGH" in e.value for e in at.error)
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_start_from_run_prefills_the_form() -> None:
    with mlflow.start_run(run_name="old"):
        mlflow.log_params({"factors": 24, "loss": "bpr", "learning_rate": 0.05, "epochs": 7, "dataset": "synthetic"})
    at = _page()
    at.selectbox(key="t_from_run").select_index(0).run()
    at.button(key="t_load").click().run()
    assert not at.exception, at.exception
    assert at.number_input(key="t_factors").value == 24
    assert at.selectbox(key="t_loss").value == "bpr"
    assert at.number_input(key="t_epochs").value == 7
    assert at.selectbox(key="t_dataset").value == "synthetic"
