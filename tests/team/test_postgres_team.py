"""The team setup for real: PostgreSQL on loopback, ``mlflow server`` on it, and one sweep spread over two
``recdash sweep`` processes (the one that creates it and a ``--worker`` that joins it, as a second machine would)
sharing a PostgreSQL Optuna ``--storage``. Then: every trial is exactly one child run of the one sweep parent,
none duplicated or lost, and recdash's Runs/Compare data layer reads them all through the server (REST) — and its
direct-SQL fast path reads the same thing from the server's PostgreSQL backend store.

Needs Debian's ``postgresql`` package (initdb/pg_ctl). Without it the module skips locally and fails under CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from pg_helpers import TeamStack, find_pg_bin, team_stack, terminate_group

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
N_TRIALS = 6
STUDY = "team-sweep"
EXPERIMENT = "team"
MONITOR = "val_ndcg_at_10"
SWEEP_TIMEOUT_S = 240
# tiny trials (about a second each): the point is the bookkeeping across two processes, not the models
SWEEP_FLAGS = [
    "--dataset", "synthetic", "--synthetic-users", "300", "--synthetic-items", "200",
    "--synthetic-interactions", "9000", "--epochs", "3", "--patience", "0", "--no-model",
    "--space", "factors=4:16", "--space", "learning_rate=0.05:0.2", "--sampler", "random",
]  # fmt: skip


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamStack]:
    """PostgreSQL (databases mlflow + optuna) and an mlflow server on it; all processes and data removed after."""
    if find_pg_bin() is None:
        reason = "PostgreSQL server binaries (initdb, pg_ctl) are not installed; `apt-get install postgresql`"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} — required in CI (.ci/run installs it)")
        pytest.skip(reason)
    with team_stack(tmp_path_factory.mktemp("team")) as stack:
        yield stack


@dataclass
class SweepOutcome:
    parent_run_id: str
    creator: dict
    worker: dict


def _worker_env(tracking_uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONUNBUFFERED": "1"}


def _last_json(log: Path) -> dict:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("{")]
    assert lines, f"no JSON summary in {log.name}:\n{log.read_text(errors='replace')[-3000:]}"
    return json.loads(lines[-1])


# The second worker, exactly as `python -m recdash sweep --worker ...` (same cli.main), except that it imports the
# heavy modules and waits for the creator's queue first: a worker that starts before the queue is filled finds no
# work and exits, and one that only starts after the queue is filled can find the creator done with it.
JOIN_WHEN_QUEUED = """
import sys, time
import mlflow, optuna
import recdash.training.sweep, recdash.training.run
from recdash.cli import main
storage, study, n_trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
optuna.logging.set_verbosity(optuna.logging.WARNING)
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        if len(optuna.load_study(study_name=study, storage=storage).trials) >= n_trials:
            break
    except KeyError:
        pass
    time.sleep(0.2)
sys.exit(main(["sweep", "--worker", "--storage", storage, "--study-name", study]))
"""


@pytest.fixture(scope="module")
def sweep(team: TeamStack) -> SweepOutcome:
    """Run one sweep on two workers: the creating process plus a `sweep --worker` joining the same storage."""
    import optuna

    # Optuna creates its schema on first use; two processes doing that at once on an empty PostgreSQL database
    # race on CREATE TYPE. A team creates it once at setup (docs/deploy.md); so do we.
    optuna.storages.RDBStorage(team.optuna_storage).engine.dispose()
    env = _worker_env(team.tracking_uri)
    creator_cmd = [sys.executable, "-m", "recdash", "sweep", *SWEEP_FLAGS, "--experiment", EXPERIMENT,
                   "--n-trials", str(N_TRIALS), "--storage", team.optuna_storage, "--study-name", STUDY]  # fmt: skip
    worker_cmd = [sys.executable, "-c", JOIN_WHEN_QUEUED, team.optuna_storage, STUDY, str(N_TRIALS)]
    logs = [team.work_dir / "sweep-creator.log", team.work_dir / "sweep-worker.log"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for cmd, log in zip((creator_cmd, worker_cmd), logs, strict=True):
            with log.open("wb") as out:
                procs.append(subprocess.Popen(cmd, env=env, cwd=team.work_dir, stdout=out, stderr=subprocess.STDOUT,
                                              start_new_session=True))  # fmt: skip
        deadline = time.monotonic() + SWEEP_TIMEOUT_S
        for proc, log in zip(procs, logs, strict=True):
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{log.stem} still running after {SWEEP_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")
            assert proc.returncode == 0, f"{log.stem} exited {proc.returncode}:\n{log.read_text()[-3000:]}"
    finally:
        for proc in procs:
            terminate_group(proc)
    creator, worker = _last_json(logs[0]), _last_json(logs[1])
    return SweepOutcome(parent_run_id=creator["parent_run_id"], creator=creator, worker=worker)


@pytest.fixture
def via_server(team: TeamStack, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point this test's MLflow client (and recdash) at the server instead of conftest's SQLite store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.tracking_uri)
    mlflow.set_tracking_uri(team.tracking_uri)
    return team.tracking_uri


def _experiment_id(uri: str) -> str:
    experiment = mlflow.MlflowClient(uri).get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    return experiment.experiment_id


def test_every_trial_is_one_child_run_of_the_one_sweep(team: TeamStack, sweep: SweepOutcome, via_server: str) -> None:
    import optuna
    from optuna.trial import TrialState

    from recdash import tracking

    # Optuna's side: exactly N trials, numbered 0..N-1, all finished, each pointing at its own MLflow run
    study = optuna.load_study(study_name=STUDY, storage=team.optuna_storage)
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(N_TRIALS))
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}, [t.state for t in trials]
    trial_runs = {t.number: t.user_attrs.get("mlflow_run_id") for t in trials}
    assert None not in trial_runs.values()
    assert len(set(trial_runs.values())) == N_TRIALS
    # both workers did part of the work, and together exactly all of it
    assert sweep.worker["trials_run"] >= 1, sweep.worker
    assert sweep.creator["complete"] + sweep.creator["pruned"] == N_TRIALS, sweep.creator
    assert sweep.creator["failed"] == 0, sweep.creator

    # MLflow's side, read the way the Runs page does: through the server's REST API
    tracking.check_store(via_server)
    experiments = tracking.list_experiments(via_server)
    row = experiments[experiments["name"] == EXPERIMENT].iloc[0]
    assert row["run_count"] == N_TRIALS + 1
    loader = tracking.RunsLoader(via_server)
    runs = loader.load([row["experiment_id"]])
    assert not loader.uses_sql  # an http store has no SQL engine to read behind the server's back
    assert len(runs) == N_TRIALS + 1 and runs["run_id"].is_unique

    parent = runs[runs["run_id"] == sweep.parent_run_id]
    assert len(parent) == 1
    assert parent["status"].iloc[0] == "FINISHED"
    assert parent["tags.recdash.kind"].iloc[0] == "sweep"
    assert pd.isna(parent["parent_run_id"].iloc[0])

    children = runs[runs["run_id"] != sweep.parent_run_id]
    assert (children["parent_run_id"] == sweep.parent_run_id).all()
    assert (children["tags.recdash.sweep_run_id"] == sweep.parent_run_id).all()
    assert sorted(children["tags.recdash.trial_number"].astype(int)) == list(range(N_TRIALS))
    by_number = dict(zip(children["tags.recdash.trial_number"].astype(int), children["run_id"], strict=True))
    assert by_number == trial_runs
    assert set(children["status"]) <= {"FINISHED", "KILLED"}  # KILLED = pruned
    assert children["tags.recdash.pid"].nunique() == 2  # trials really ran in two processes
    assert children[f"metrics.{MONITOR}"].notna().all()

    # the same set through mlflow's own search (the baseline the loader must agree with)
    baseline = mlflow.search_runs([row["experiment_id"]], max_results=1000)
    assert set(baseline["run_id"]) == set(runs["run_id"])

    # the Compare page's learning curves: every trial's per-epoch history, through the server
    hist = tracking.metric_histories(list(children["run_id"]), [MONITOR], uri=via_server)
    assert set(hist["run_id"]) == set(children["run_id"])
    assert (hist.groupby("run_id")["step"].nunique() >= 1).all()
    assert not hist.duplicated(["run_id", "key", "step"]).any()


def test_sql_fast_path_on_postgres_reads_what_the_server_serves(
    team: TeamStack, sweep: SweepOutcome, via_server: str
) -> None:
    """Pointed at the server's PostgreSQL backend store, RunsLoader uses bulk SQL; it must match the REST path."""
    from recdash import tracking

    exp_id = _experiment_id(via_server)
    over_http = tracking.RunsLoader(via_server).load([exp_id])
    sql_loader = tracking.RunsLoader(team.backend_store_uri)
    over_sql = sql_loader.load([exp_id])
    assert sql_loader.uses_sql  # the fast path held up on PostgreSQL (no silent fallback)

    assert set(over_sql.columns) == set(over_http.columns)
    left = over_sql.set_index("run_id").sort_index()
    right = over_http.set_index("run_id").sort_index()[left.columns]
    compared = [c for c in left.columns if c.startswith(("params.", "metrics.", "tags.recdash.")) or c in (
        "status", "parent_run_id", "run_name", "experiment_id", "start_time", "end_time")]  # fmt: skip
    pd.testing.assert_frame_equal(left[compared], right[compared], check_dtype=False)

    run_ids = list(over_http.loc[over_http["parent_run_id"].notna(), "run_id"])
    hist_sql = tracking.metric_histories(run_ids, [MONITOR], uri=team.backend_store_uri)
    hist_http = tracking.metric_histories(run_ids, [MONITOR], uri=via_server)
    key = ["run_id", "key", "step"]
    pd.testing.assert_frame_equal(
        hist_sql.sort_values(key).reset_index(drop=True),
        hist_http.sort_values(key).reset_index(drop=True),
        check_dtype=False,
    )


def test_runs_and_compare_pages_render_through_the_server(sweep: SweepOutcome, via_server: str) -> None:
    """The two pages that read many runs, in the real app against the server: no exception and no error shown."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/runs.py").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]

    at.session_state["selected_runs"] = [sweep.parent_run_id]
    at.switch_page("pages/compare.py").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def test_artifacts_are_proxied_to_the_artifacts_destination(team: TeamStack, via_server: str) -> None:
    """Workers need no access to the artifact store: uploads go through the server to --artifacts-destination."""
    mlflow.set_experiment("team-artifacts")
    with mlflow.start_run() as run:
        mlflow.log_text("hello", "notes/hello.txt")
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    stored = list(team.server.artifacts_dir.rglob("hello.txt"))
    assert len(stored) == 1 and stored[0].read_text() == "hello"
    back = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="notes/hello.txt")
    assert Path(back).read_text() == "hello"


def test_workers_creating_optunas_tables_at_once_do_not_collide(team: TeamStack) -> None:
    """Four workers open the same empty PostgreSQL database at the same moment (CREATE TYPE races without the
    retry in sweep._make_storage); three fresh databases give the race three chances."""
    for round_ in range(3):
        name = f"optuna_race_{round_}"
        team.cluster.create_database(name)
        url = team.cluster.url(name)
        code = f"from recdash.training.sweep import _make_storage; _make_storage({url!r}); print('opened')"
        procs = [
            subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        failed = [err.strip().splitlines()[-1:] for (out, err) in outs if out.strip() != "opened"]
        assert not failed, failed


def test_backend_database_url_reads_postgres_read_only_and_sees_tag_edits(
    team: TeamStack, sweep: SweepOutcome, via_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RECDASH_BACKEND_DB_URL: the Runs table straight from the server's PostgreSQL, read-only, with a tag edited
    on a finished run seen at the next refresh (the per-run tag hash, computed by PostgreSQL's hashtext)."""
    from sqlalchemy import text

    from recdash import tracking

    exp_id = _experiment_id(via_server)
    monkeypatch.setenv("RECDASH_BACKEND_DB_URL", team.backend_store_uri)
    loader = tracking.RunsLoader(via_server, snapshot=False)
    assert loader.uses_sql and not loader.notice
    before = loader.load([exp_id])
    over_http = tracking.RunsLoader(via_server, fast_path=False, snapshot=False).load([exp_id])
    assert set(before["run_id"]) == set(over_http["run_id"])
    finished = before.loc[before["status"] == "FINISHED", "run_id"].iloc[0]
    client = mlflow.MlflowClient(via_server)
    client.set_tag(finished, "team.review", "ok")
    try:
        after = loader.load([exp_id]).set_index("run_id")
        assert after.loc[finished, "tags.team.review"] == "ok"
        assert loader.uses_sql
    finally:
        client.delete_tag(finished, "team.review")
    with pytest.raises(Exception, match="read-only transaction"), loader._source.store.engine.begin() as conn:
        conn.execute(text("UPDATE runs SET name = 'written'"))
