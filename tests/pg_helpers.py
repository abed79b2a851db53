"""Throwaway PostgreSQL cluster + ``mlflow server`` on loopback, for the team-setup test and ``bench/team_scale.py``.

One implementation for both: the test imports it as ``pg_helpers`` (pytest puts tests/ on sys.path)
and the benchmark loads it by file path. PostgreSQL refuses to run as root, so under root (CI) every server binary
runs as the ``postgres`` system user via ``runuser``; otherwise it runs as the current user. The cluster trusts
loopback connections without a password — acceptable only because it lives in a private temp dir for one test run.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PG_SUPERUSER = "recdash"


class PgUnavailable(RuntimeError):
    """PostgreSQL server binaries are not installed (the caller decides whether that skips or fails)."""


def find_pg_bin() -> Path | None:
    """Directory holding ``initdb``/``pg_ctl``: $RECDASH_PG_BIN, then PATH, then Debian's versioned directories."""
    candidates: list[Path] = []
    if os.environ.get("RECDASH_PG_BIN"):  # an explicit choice: no silent fallback to another installation
        candidates = [Path(os.environ["RECDASH_PG_BIN"])]
        return candidates[0] if all((candidates[0] / b).is_file() for b in ("initdb", "pg_ctl")) else None
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    # Debian/Ubuntu keep the server binaries off PATH, one directory per major version; prefer the newest
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    versioned.sort(key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0, reverse=True)
    candidates += [Path(p) for p in versioned]
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def free_port() -> int:
    """A currently free TCP port on loopback (tiny race with other processes is acceptable for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_as_db_owner(cmd: Sequence[str], cwd: Path, owner: str | None) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL binary, as ``owner`` when we are root (PostgreSQL will not start as root)."""
    full = ["runuser", "-u", owner, "--", *cmd] if owner else list(cmd)
    result = subprocess.run(full, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(full)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class PgCluster:
    """A running throwaway cluster: ``url(db)`` gives the SQLAlchemy URL for a database in it."""

    bin_dir: Path
    base_dir: Path
    port: int
    owner: str | None
    databases: tuple[str, ...] = ()

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    def url(self, database: str) -> str:
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; we ship psycopg2, so name the driver
        return f"postgresql+psycopg2://{PG_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        """CREATE DATABASE through psycopg2 (the same driver MLflow and Optuna use)."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=PG_SUPERUSER, dbname="postgres")
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        self.databases = (*self.databases, name)

    def stop(self) -> None:
        """Fast shutdown, then remove the data directory (safe to call twice).

        If pg_ctl fails, the postmaster is signalled directly: removing the data dir of a running server would
        leave an orphan listening on the port.
        """
        pid_file = self.data_dir / "postmaster.pid"
        pid = None
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pid_file.read_text().splitlines()[0])
        if pid is not None:
            with contextlib.suppress(Exception):
                _run_as_db_owner(
                    [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
                    self.base_dir,
                    self.owner,
                )
            for sig, grace in ((signal.SIGQUIT, 10.0), (signal.SIGKILL, 5.0)):
                if not _alive(pid):
                    break
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                deadline = time.monotonic() + grace
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
        shutil.rmtree(self.base_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def start_postgres(databases: Iterable[str] = ("mlflow",), bin_dir: Path | None = None) -> PgCluster:
    """initdb + start a cluster listening only on 127.0.0.1:<free port>, with its socket inside its own temp dir.

    The temp dir is made directly under the system temp dir (not pytest's 0700 tmp_path) so that the
    ``postgres`` user can reach it when we run as root. fsync is off: the data is thrown away anyway.
    """
    bin_dir = bin_dir or find_pg_bin()
    if bin_dir is None:
        raise PgUnavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's `postgresql` package "
            "or set RECDASH_PG_BIN to the directory holding them"
        )
    owner: str | None = None
    if os.geteuid() == 0:
        owner = "postgres"
        try:
            pw = pwd.getpwnam(owner)
        except KeyError as exc:
            raise PgUnavailable("running as root but there is no `postgres` system user to run PostgreSQL") from exc
    base_dir = Path(tempfile.mkdtemp(prefix="recdash-pg-"))
    cluster = PgCluster(bin_dir=bin_dir, base_dir=base_dir, port=free_port(), owner=owner)
    try:
        if owner:
            os.chown(base_dir, pw.pw_uid, pw.pw_gid)
        _run_as_db_owner(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(cluster.data_dir),
                "-U",
                PG_SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            base_dir,
            owner,
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {cluster.port} -k {base_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        _run_as_db_owner(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(cluster.data_dir),
                "-o",
                options,
                "-l",
                str(base_dir / "postgres.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            base_dir,
            owner,
        )
        for name in databases:
            cluster.create_database(name)
    except BaseException:
        log = base_dir / "postgres.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        cluster.stop()
        if detail:
            print(f"postgres.log:\n{detail}", file=sys.stderr)
        raise
    return cluster


@dataclass
class MlflowServer:
    """A running ``mlflow server``; ``url`` is what MLFLOW_TRACKING_URI should be set to."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    artifacts_dir: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        terminate_group(self.proc)


def terminate_group(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM the process group a ``start_new_session`` child leads, then SIGKILL whatever is left."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    # uvicorn/gunicorn workers share the group; make sure none outlives its parent
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def start_mlflow_server(
    backend_store_uri: str,
    work_dir: Path,
    *,
    workers: int = 1,
    startup_timeout: float = 120,
    extra_args: Sequence[str] = (),
) -> MlflowServer:
    """``mlflow server`` on 127.0.0.1:<free port> with proxied artifacts under ``work_dir/artifacts``.

    Waits for /health; the first start on an empty database also runs MLflow's schema migrations.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    artifacts_dir = work_dir / "artifacts"
    log_path = work_dir / "mlflow-server.log"
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        str(artifacts_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        *extra_args,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # the GenAI job runner (huey consumers) is not used by recdash; it only adds processes and startup time
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=work_dir, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = MlflowServer(proc=proc, url=f"http://127.0.0.1:{port}", log_path=log_path, artifacts_dir=artifacts_dir)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"mlflow server not healthy after {startup_timeout:.0f}s:\n{server.log_tail()}")


@dataclass
class TeamStack:
    """PostgreSQL with an ``mlflow`` and an ``optuna`` database, and an MLflow server on the former."""

    cluster: PgCluster
    server: MlflowServer
    work_dir: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def tracking_uri(self) -> str:
        return self.server.url

    @property
    def backend_store_uri(self) -> str:
        return self.cluster.url("mlflow")

    @property
    def optuna_storage(self) -> str:
        return self.cluster.url("optuna")

    def stop(self) -> None:
        self.server.stop()
        self.cluster.stop()


@contextlib.contextmanager
def team_stack(work_dir: Path, *, server_workers: int = 1, server_args: Sequence[str] = ()) -> Iterator[TeamStack]:
    """The whole team setup on loopback, torn down (processes and data dir) however the block exits."""
    cluster = start_postgres(databases=("mlflow", "optuna"))
    try:
        server = start_mlflow_server(cluster.url("mlflow"), work_dir, workers=server_workers, extra_args=server_args)
    except BaseException:
        cluster.stop()
        raise
    stack = TeamStack(cluster=cluster, server=server, work_dir=work_dir)
    try:
        yield stack
    finally:
        stack.stop()
