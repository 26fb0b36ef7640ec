"""Shared helpers for the Parcours benchmarks: fresh databases, a uvicorn server process, an HTTP
client on one keep-alive connection, statistics and the closing JSON line.

Everything talks to 127.0.0.1 only. Every resource made here (temp directories, PostgreSQL databases,
server processes) is released by a context manager, so a failure or Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import base64
import http.client
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import orjson
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from parcours.auth.service import SourceInfo, create_source, create_token
from parcours.db.engine import Database
from parcours.db.migrate import upgrade

LOOPBACK = "127.0.0.1"
POSTGRES_ADMIN_URL = os.environ.get(
    "PARCOURS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")


class BenchError(RuntimeError):
    """The benchmark cannot give a valid figure (a refused request, a server that did not start…)."""


def bench_main(main: Callable[[], int], script: str) -> NoReturn:
    """Run a benchmark's ``main``; a BenchError ends it with a one-line failure and exit code 1."""
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"{script}: FAILED: {error}", file=sys.stderr)
        sys.exit(1)


def run_clients(count: int, work: Callable[[int, threading.Event], None], what: str) -> float:
    """Run ``work(slot, failed)`` on ``count`` threads released together; the seconds from the release
    to the last finish. Any exception in a client fails the benchmark (and sets ``failed`` so the others
    can stop early): a benchmark with a failed request has no figure."""
    release = threading.Barrier(count + 1)
    failed = threading.Event()
    problems: list[str] = []
    finished = [0.0] * count

    def client(slot: int) -> None:
        release.wait()
        try:
            work(slot, failed)
        except Exception as error:
            problems.append(
                f"client {slot}: {error}"
                if isinstance(error, BenchError)
                else f"client {slot}: {type(error).__name__}: {error}"
            )
            failed.set()
        finished[slot] = time.perf_counter()

    threads = [threading.Thread(target=client, args=(slot,), daemon=True) for slot in range(count)]
    for thread in threads:
        thread.start()
    release.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    if problems:
        raise BenchError(f"{what} failed:\n  " + "\n  ".join(problems[:5]))
    return max(finished) - began


class CpuMeter:
    """CPU seconds spent during a phase by the server process, this benchmark process (its clients),
    the database server's processes (PostgreSQL) and the whole machine, read from /proc: on 2 shared
    cores, where the time goes tells what bounds a throughput figure."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.spent: dict[str, float] = {}

    @staticmethod
    def _ticks() -> dict[int, tuple[str, int]]:
        found: dict[int, tuple[str, int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                raw = Path(f"/proc/{entry}/stat").read_bytes().decode(errors="replace")
            except OSError:
                continue
            name = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2 :].split()
            found[int(entry)] = (name, int(fields[11]) + int(fields[12]))  # utime + stime
        return found

    @staticmethod
    def _busy() -> float:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return float(sum(values) - values[3] - values[4])  # all but idle and iowait

    def _category(self, pid: int, name: str) -> str:
        if pid == self.server_pid:
            return "server"
        if pid == os.getpid():
            return "clients"
        if name.startswith("postgres"):
            return "database"
        return "other"

    @contextmanager
    def measuring(self) -> Iterator[CpuMeter]:
        hz = os.sysconf("SC_CLK_TCK")
        before, busy_before = self._ticks(), self._busy()
        try:
            yield self
        finally:
            after, busy_after = self._ticks(), self._busy()
            spent = dict.fromkeys(("server", "clients", "database", "other"), 0.0)
            for pid, (name, ticks) in after.items():
                spent[self._category(pid, name)] += (ticks - before.get(pid, (name, 0))[1]) / hz
            # A process that ended during the phase is missing from ``after``; the machine total counts it.
            spent["machine"] = (busy_after - busy_before) / hz
            self.spent = spent

    def per_operation(self, operations: int) -> str:
        """``server 812 µs · clients 240 µs · database 310 µs · machine 1,500 µs``, per operation."""
        return " · ".join(
            f"{key} {self.spent.get(key, 0.0) / max(operations, 1) * 1e6:,.0f} µs"
            for key in ("server", "clients", "database", "machine")
        )


def fail(message: str) -> NoReturn:
    raise BenchError(message)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so every ``finally`` (drop databases, stop servers) still runs."""

    def _handler(_signum: int, _frame: Any) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, _handler)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def log(message: str) -> None:
    """Progress goes to stderr; stdout keeps the table and the final JSON line."""
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- databases
def _postgres_admin_url() -> str:
    url = make_url(POSTGRES_ADMIN_URL)
    if url.host not in (LOOPBACK, "localhost"):
        fail(f"PostgreSQL must be on {LOOPBACK}, not {url.host!r}")
    return url.set(host=LOOPBACK).render_as_string(hide_password=False)


@contextmanager
def bench_workdir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def fresh_database(backend: str, workdir: Path) -> Iterator[str]:
    """The URL of a new, empty database (not migrated); removed on exit whatever happens."""
    if backend == "sqlite":
        path = workdir / f"parcours_bench_{uuid.uuid4().hex[:10]}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    if backend != "postgresql":
        fail(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    admin_url = _postgres_admin_url()
    name = f"parcours_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def migrated(url: str, *, pool_size: int = 10) -> Database:
    database = Database(url, pool_size=pool_size)
    upgrade(database.engine)
    return database


def make_source(
    database: Database, name: str = "bench web shop", channel: str = "web"
) -> tuple[SourceInfo, str]:
    with database.write() as session:
        return create_source(session, name, channel)


def make_token(database: Database, name: str = "bench") -> str:
    with database.write() as session:
        return create_token(session, name)


def checkpoint(database: Database) -> None:
    """Fold the SQLite WAL back into the file so the next measurement starts from the same state."""
    if database.dialect == "sqlite":
        with database.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        with database.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("CHECKPOINT")


# ---------------------------------------------------------------------------------------------- server
@dataclass
class ServerProcess:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextmanager
def run_server(
    database_url: str,
    workdir: Path,
    *,
    startup_timeout: float = 60.0,
    environment: dict[str, str] | None = None,
) -> Iterator[ServerProcess]:
    """``python -m uvicorn --factory parcours.app:create_app`` with the options ``parcours serve`` gives
    uvicorn: one worker, a free loopback port;
    ``environment`` adds settings (``PARCOURS_…``)."""
    port = free_port()
    log_path = workdir / f"uvicorn-{port}.log"
    env = {**os.environ, **(environment or {}), "PARCOURS_DATABASE_URL": database_url}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "parcours.app:create_app",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
        "--ws-per-message-deflate",  # off, as ``parcours serve`` runs it
        "false",
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    server = ServerProcess(f"http://{LOOPBACK}:{port}", port, process, log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                fail(f"uvicorn exited with code {process.returncode}:\n{server.log_tail()}")
            try:
                conn = http.client.HTTPConnection(LOOPBACK, port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
                conn.close()
            except OSError:
                pass
            if time.monotonic() > deadline:
                fail(f"uvicorn did not answer /healthz within {startup_timeout:.0f} s:\n{server.log_tail()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


# ---------------------------------------------------------------------------------------------- client
def basic_auth(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


class HttpClient:
    """One keep-alive HTTP/1.1 connection (``http.client``: cheap per request, no hidden pool)."""

    def __init__(self, port: int, *, timeout: float = 120.0) -> None:
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection the server closed between requests: reconnect once.
                self.conn.close()
                self.conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=self.timeout)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def json_body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"unparsed": raw[:300].decode(errors="replace")}


# ------------------------------------------------------------------------------------------ statistics
def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of unsorted values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def rounded(value: float, digits: int = 1) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print(
            "  ".join(
                cell.rjust(width) if i else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            print("  ".join("-" * width for width in widths))


def print_json_line(figures: dict[str, Any]) -> None:
    """The last line of a benchmark's output: one JSON object."""
    sys.stdout.flush()
    print(orjson.dumps(figures).decode(), flush=True)


# ---------------------------------------------------------------------------------------------- py-spy
# Leaf frames that are a call into the database driver's C code (py-spy shows Python frames only).
DRIVER_LEAVES = frozenset(
    {
        "do_executemany",
        "do_execute",
        "do_execute_no_params",
        "do_commit",
        "do_rollback",
        "fetchall",
        "fetchone",
        "fetchmany",
        "_sqlite_begin",
        "execute",  # psycopg's Cursor.execute / sqlite3 behind pool pre-ping
    }
)
DRIVER_LABEL = "database driver C code (execute, executemany, fetch, commit, lock wait)"
# (label, substrings of a frame): the first frame from the leaf upwards that matches one wins.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("JSON/timestamp bind + result processing (column types)", ("sqltypes.py", "db/types.py", "_json_dumps")),
    ("SQLAlchemy Core/ORM (compile, parameters, rows)", ("sqlalchemy/",)),
    ("psycopg Python layer", ("psycopg/",)),
    ("identity resolution in memory (resolution.py)", ("resolution.py", "ids.py")),
    ("profile view / lookup (identity/service.py)", ("identity/service.py",)),
    (
        "parse + validate (parse.py, kinds.py, phonenumbers)",
        ("parse.py", "kinds.py", "phonenumbers", "email_validator"),
    ),
    ("ingest endpoint (read body, orjson.loads)", ("ingest/endpoints.py",)),
    ("auth (write key / API token check)", ("auth/",)),
    ("FastAPI dependencies, validation, routing", ("fastapi/",)),
    (
        "HTTP stack (uvicorn, starlette, anyio, asyncio)",
        ("uvicorn", "starlette", "anyio", "asyncio", "httptools", "uvloop"),
    ),
)


def py_spy_path() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        fail("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


@contextmanager
def py_spy_attached(pid: int, output: Path, *, rate: int = 200, gil: bool = False) -> Iterator[None]:
    """``py-spy record`` on a running process for the duration of the block (raw collapsed stacks)."""
    command = [py_spy_path(), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
    command += ["--output", str(output), "--nonblocking"]
    if gil:
        command.append("--gil")
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # let py-spy attach
        if spy.poll() is not None:
            fail(f"py-spy failed: {spy.stderr.read().decode(errors='replace') if spy.stderr else ''}")
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


@contextmanager
def profiled(pid: int, workdir: Path, title: str, *, gil: bool = False) -> Iterator[None]:
    """py-spy on the server for the duration of the block, then its summary on stdout."""
    raw = workdir / "pyspy.txt"
    with py_spy_attached(pid, raw, gil=gil):
        yield
    summarise_py_spy(raw, 25, title=f"{title} ({'GIL holder only' if gil else 'every busy thread'})")


def _frame_name(frame: str) -> str:
    return re.sub(r":\d+\)$", ")", frame)


def categorise(frames: Sequence[str]) -> str:
    leaf = frames[-1].split(" (")[0].rsplit(".", 1)[-1]
    if leaf in DRIVER_LEAVES and ("sqlalchemy" in frames[-1] or "psycopg" in frames[-1]):
        return DRIVER_LABEL
    for frame in reversed(frames):
        for label, keys in CATEGORIES:
            if any(key in frame for key in keys):
                return label
    return "other (threads, logging, …)"


def summarise_py_spy(raw: Path, top: int, *, title: str) -> None:
    """Print where the samples went: by category, by function (self), by parcours function (inclusive)."""
    stacks: list[tuple[list[str], int]] = []
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, samples = line.rpartition(" ")
        if stack and samples.isdigit():
            stacks.append((stack.split(";"), int(samples)))
    total = sum(count for _, count in stacks)
    if not total:
        fail("py-spy collected no samples")
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    category: Counter[str] = Counter()
    for frames, count in stacks:
        own[_frame_name(frames[-1])] += count
        for name in {_frame_name(frame) for frame in frames}:
            inclusive[name] += count
        category[categorise(frames)] += count
    print()
    print(f"{title}: {total:,} py-spy samples of the server's busy threads")
    print_table(
        ["category (leaf-most match)", "samples", "share"],
        [[label, n, f"{100 * n / total:.1f}%"] for label, n in category.most_common()],
    )
    print()
    print(f"top {top} functions by own samples:")
    print_table(
        ["function", "samples", "share"],
        [[f[:110], n, f"{100 * n / total:.1f}%"] for f, n in own.most_common(top)],
    )
    print()
    print(f"top {top} parcours functions by inclusive samples:")
    mine = [(f, n) for f, n in inclusive.most_common() if "(parcours/" in f or "/parcours/" in f]
    print_table(
        ["function", "samples", "share"], [[f[:110], n, f"{100 * n / total:.1f}%"] for f, n in mine[:top]]
    )
