"""Driving the dashboard's pages in-process with Streamlit's AppTest: open a page (with its query params), run it,
and read back what it shows. Shared by the page tests."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).parents[1] / "app.py")


def run_ok(at: AppTest) -> AppTest:
    """Run the page and fail on any exception box (a user never sees a stack trace)."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def page(name: str, timeout: float = 120, **query: str) -> AppTest:
    """``pages/<name>.py`` as a browser opens it: through app.py's router, with ``query`` as the URL's params."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(f"pages/{name}.py")
    return run_ok(at)


def open_tab(at: AppTest, view: str) -> AppTest:
    """Switch Compare's tab as a click does: the tab's key holds the open tab's label."""
    at.session_state["view"] = view
    return run_ok(at)


def figures(at: AppTest) -> dict[str, dict]:
    """The page's plotly figures by element key (their JSON spec, as the browser gets it)."""
    out = {}
    for element in at.get("plotly_chart"):
        spec = json.loads(element.proto.spec)
        out[element.proto.id.rsplit("-", 1)[-1] if not element.key else element.key] = spec
    return out


def decoded(values: object) -> list[float]:
    """A figure's numbers as the browser gets them: plotly sends numpy arrays as base64 ("bdata")."""
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])).tolist()
    return list(values)  # type: ignore[call-overload]


def table(at: AppTest, *columns: str) -> pd.DataFrame:
    """The first dataframe on the page that has all of ``columns``."""
    return next(f.value for f in at.dataframe if set(columns) <= {*f.value.columns, f.value.index.name})


def texts(at: AppTest, kind: str = "info") -> str:
    """Everything the page shows in elements of ``kind`` (info, caption, error, markdown...), joined."""
    return " ".join(str(e.value) for e in at.get(kind))
