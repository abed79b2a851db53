"""A do-nothing MLflow pyfunc for the serving benchmarks: one fixed row per input user, no model behind it.

Why: it measures MLflow's own per-call cost (input conversion, schema and params enforcement, output handling) for
recdash's predict contract, so a benchmark can say how much recdash's work adds on top of it. It is logged with the
same signature as a recdash model (same input, params and output schema), and as models-from-code, as recdash's is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NOOP_CODE = """
import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class Noop(PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        users = model_input["user_id"].astype(str).tolist()
        n = len(users)
        return pd.DataFrame(
            {"user_id": users, "rank": [1] * n, "item_id": ["1"] * n, "score": [0.0] * n, "source": ["noop"] * n}
        )


mlflow.models.set_model(Noop())
"""


def log_noop(folder: Path, signature: Any) -> str:
    """Log the do-nothing pyfunc to the active MLflow run; returns its model URI."""
    import mlflow
    import pandas as pd

    code = folder / "noop_model.py"
    code.write_text(NOOP_CODE)
    info = mlflow.pyfunc.log_model(
        name="noop", python_model=str(code), signature=signature, input_example=pd.DataFrame({"user_id": ["1"]})
    )
    return info.model_uri
