"""What the real-browser tests share: Debian's Chromium, a `streamlit run app.py` server on a free port, and the
checks every page must pass (its title, the router's sidebar, the wide layout, no exception box)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright

ROOT = Path(__file__).parents[1]
VIEWPORT = {"width": 1400, "height": 900}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # without these Chromium's own background connections get refused in sandboxed CI and stall the launch
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_TITLES = ["Home", "Runs", "Compare", "Train", "Recommend", "Models", "Discover"]


def chromium_path() -> str:
    """Debian's Chromium; a missing browser skips locally with the reason, and fails in CI."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    reason = "no Chromium installed (apt-get install chromium); the end-to-end browser test needs it"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI is set: .ci/run must install it")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(command: list[str], workdir: Path, log_path: Path, health: str, what: str,
           env: dict[str, str] | None = None) -> Iterator[None]:  # fmt: skip
    """Run ``command`` (a server) from ``workdir`` with its output in ``log_path``; return once ``health`` (a URL)
    answers 200, fail with the log's end if it exits or stays silent for 60 s; stop its process group after."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=workdir, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{what} exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(health, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{what} did not answer within 60 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def streamlit_server(workdir: Path, env: dict[str, str], script: Path = ROOT / "app.py") -> Iterator[str]:
    """`streamlit run app.py` (or ``script``) on a free port, run from ``workdir`` (so nothing lands in the repo)
    with the app's own .streamlit settings and ``env``; yields its URL once /_stcore/health answers, stops it
    afterwards. Its output goes to ``workdir/streamlit.log`` (the app's) or ``<script stem>.log``."""
    (workdir / ".streamlit").mkdir(exist_ok=True)
    shutil.copy(ROOT / ".streamlit" / "config.toml", workdir / ".streamlit" / "config.toml")
    port = free_port()
    log_path = workdir / ("streamlit.log" if script == ROOT / "app.py" else f"{script.stem}.log")
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port)]
    command += ["--server.headless", "true", "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"]
    url = f"http://127.0.0.1:{port}"
    with served(command, workdir, log_path, f"{url}/_stcore/health", "streamlit", env):
        yield url


@contextmanager
def browser_page(chromium: str, workdir: Path | None = None) -> Iterator[Page]:
    """A page of headless Chromium (Debian's, at ``chromium``) at the tests' viewport; the browser closes after.

    If the block fails and ``workdir`` is the app server's folder, what the browser showed is saved there as
    failure.png and the end of the server's log is printed: the app redacts exception details in the browser,
    the log has the traceback."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(30_000)
        try:
            yield page
        except Exception:
            if workdir is not None:
                page.screenshot(path=str(workdir / "failure.png"))
                print(f"failure screenshot: {workdir / 'failure.png'}")
                print("streamlit log (end):\n" + (workdir / "streamlit.log").read_text(errors="replace")[-4000:])
            raise
        finally:
            browser.close()


def wait_idle(page: Page, settle_ms: int = 400, timeout_s: float = 60) -> None:
    """Until no script run is in progress (Streamlit shows its status widget while one is)."""
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif (time.monotonic() - quiet_since) * 1000 >= settle_ms:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"the app kept running for more than {timeout_s} s")


def check_page(page: Page, title: str, *, errors_allowed: bool = False) -> None:
    """What every page must look like: its title, the router's sidebar, the wide layout, no exception box."""
    page.get_by_role("heading", name=title, level=1).wait_for()
    wait_idle(page)
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{title}: Streamlit exception shown: {exceptions.first.inner_text()}"
    if not errors_allowed:
        error = page.locator('[data-testid="stAlertContentError"]')
        assert error.count() == 0, f"{title}: error shown: {error.first.inner_text()}"
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text().split("\n")
    assert [t for t in nav if t in PAGE_TITLES] == PAGE_TITLES, nav  # titles from app.py, not file names
    width = page.locator('[data-testid="stMainBlockContainer"]').evaluate("e => e.clientWidth")
    assert width > 800, f"{title}: main column is {width}px wide; layout='wide' did not apply"


def grid_text(grid: Locator) -> list[list[str]]:
    """The rows of an st.dataframe, read from the accessible table the canvas grid keeps for screen readers."""
    grid.scroll_into_view_if_needed()  # a grid below the fold is not painted, and fills its table only once it is
    rows = grid.locator("table tbody tr")
    rows.first.wait_for(state="attached")  # the grid fills its table after the first paint
    return [[c.strip() for c in rows.nth(i).locator("td").all_text_contents()] for i in range(rows.count())]


def screenshot(page: Page, folder: Path, name: str) -> None:
    """Full page: Streamlit scrolls inside its main element, so grow the viewport to the content first."""
    height = page.locator('[data-testid="stMain"]').evaluate("e => e.scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], min(int(height), 6000))})
    page.wait_for_timeout(700)  # charts and grids re-measure after the resize
    page.screenshot(path=str(folder / name), full_page=True)
    page.set_viewport_size(VIEWPORT)


def choose(page: Page, key: str, option: str) -> None:
    """Pick an option of an st.selectbox by its key, and wait for the run it starts to end (until then the page
    holds the old run's elements beside the new ones)."""
    page.locator(f".st-key-{key} [role='combobox']").click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def type_into(page: Page, key: str, value: str) -> None:
    """Type into an st.text_input / st.number_input by its key, once the page shows exactly one such box."""
    box = page.locator(f".st-key-{key} input")
    expect(box).to_have_count(1)
    box.fill(value)


def fill(page: Page, key: str, value: str) -> None:
    """Type into an st.text_input / st.number_input by its key and commit with Enter."""
    type_into(page, key, value)
    page.locator(f".st-key-{key} input").press("Enter")
