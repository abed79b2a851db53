"""A legacy MLflow file store as someone else's 2021 scripts left it, then exported from git.

Built by a separate Python process with MLflow's own FileStore (this test process opens file stores read-only once
a page has run): 21 Optuna-style trials logged the way optuna's ``MLflowCallback`` logs them (run name = trial
number, the trial's params, one ``value`` metric, Optuna's tags), one of them with a per-step history, one unnamed
run, and two MLflow-2-style models (artifacts under ``model/`` plus the ``mlflow.log-model.history`` tag): one
whose files travelled with the store and one whose files were never committed. Then, as a move to another machine
and a git export leave it: every recorded location points at ``/workspace/...`` (where the scripts ran), the runs
are dated 2021, and every empty folder is gone.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

_SCRIPT = textwrap.dedent(
    '''
    import json, os, shutil, sys, tempfile, uuid
    import mlflow, numpy as np, pandas as pd
    from mlflow.models import infer_signature

    root = sys.argv[1]
    mlflow.set_tracking_uri("file://" + root)
    mlflow.set_experiment("optuna-lightgbm-2021")
    rng = np.random.default_rng(2021)


    class TopItems(mlflow.pyfunc.PythonModel):
        """A 2021 model that follows the predict contract: the same popular items for everyone."""

        def predict(self, context, model_input, params=None):
            k = int((params or {}).get("k", 10))
            rows = [
                (str(u), r + 1, f"item-{r}", float(k - r))
                for u in model_input["user_id"] for r in range(k)
            ]
            return pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score"])


    def log_legacy_model(run, keep_files):
        """MLflow 2's layout: files under artifacts/model and the mlflow.log-model.history tag."""
        example = pd.DataFrame({"user_id": ["u1"]})
        out = TopItems().predict(None, example, {"k": 3})
        signature = infer_signature(example, out, params={"k": 10})
        tmp = tempfile.mkdtemp()
        path = os.path.join(tmp, "model")
        mlflow.pyfunc.save_model(path, python_model=TopItems(), signature=signature)
        if keep_files:
            mlflow.log_artifacts(path, "model")
        history = [{
            "run_id": run.info.run_id, "artifact_path": "model", "utc_time_created": "2021-06-01 10:00:00.000000",
            "flavors": {"python_function": {"loader_module": "mlflow.pyfunc.model"}}, "model_uuid": uuid.uuid4().hex,
        }]
        mlflow.set_tag("mlflow.log-model.history", json.dumps(history))
        shutil.rmtree(tmp)


    for number in range(21):
        params = {
            "learning_rate": float(10 ** rng.uniform(-3, -1)),
            "num_leaves": int(rng.integers(8, 256)),
            "boosting": str(rng.choice(["gbdt", "dart"])),
        }
        with mlflow.start_run(run_name=str(number)) as run:
            mlflow.log_params(params)
            mlflow.log_metric("value", float(0.7 + 0.2 * rng.random()))
            if number == 3:
                for step in range(10):
                    mlflow.log_metric("val_auc", 0.6 + 0.03 * step, step=step)
            mlflow.set_tags({
                "number": str(number), "direction": "MAXIMIZE", "state": "COMPLETE",
                "datetime_start": "2021-06-01 10:00:00", "datetime_complete": "2021-06-01 10:01:00",
                "learning_rate_distribution": "FloatDistribution(high=0.1, log=True, low=0.001, step=None)",
            })
            if number == 20:
                log_legacy_model(run, keep_files=True)
            if number == 19:
                log_legacy_model(run, keep_files=False)
    with mlflow.start_run():  # a run nobody named: MLflow 1 left the name empty (build_legacy_store clears it)
        mlflow.log_param("note", "scratch")
    '''
)

RUN_COUNT = 22  # 21 trials + the unnamed run
MODEL_TRIAL = "20"  # its model files travelled with the store
MISSING_MODEL_TRIAL = "19"  # its model files were never committed


def _rewrite_meta(path: Path, root: Path, old_prefix: str) -> None:
    """Point recorded locations at /workspace (where the 2021 scripts ran) and date the run in June 2021."""
    text = path.read_text()
    text = text.replace(old_prefix, "file:///workspace/mlruns")
    lines = []
    for line in text.splitlines():
        key = line.split(":", 1)[0]
        if key in ("start_time", "creation_time") and line.split(":", 1)[1].strip().isdigit():
            line = f"{key}: 1622541600000"
        elif key in ("end_time", "last_update_time") and line.split(":", 1)[1].strip().isdigit():
            line = f"{key}: 1622541660000"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")


def build_legacy_store(root: Path) -> Path:
    """Write the legacy store into ``root`` (created) and return it."""
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)
    subprocess.run([sys.executable, "-c", _SCRIPT, str(root)], check=True, env=env, cwd=root.parent,
                   capture_output=True)  # fmt: skip
    old_prefix = f"file://{root}"
    for meta in root.rglob("meta.yaml"):
        if "artifacts" not in meta.relative_to(root).parts:
            _rewrite_meta(meta, root, old_prefix)
    for note in root.glob("*/*/params/note"):  # the scratch run: no name, as MLflow 1 wrote unnamed runs
        run_dir = note.parents[1]
        (run_dir / "tags" / "mlflow.runName").unlink()
        meta = run_dir / "meta.yaml"
        text = re.sub(r"(?m)^run_name: .*$", "run_name: ''", meta.read_text())
        meta.write_text(re.sub(r"(?m)^start_time: .*$", "start_time: 1622541610000", text))  # the newest run
    _remove_empty_dirs(root)
    return root


def _remove_empty_dirs(root: Path) -> None:
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a hash of its bytes (folders as "dir"): equal snapshots, untouched store."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }
