"""Where ingestion time goes: the same workload as ``bench/ingest.py``, profiled two ways.

    .venv/bin/python bench/profile_ingest.py                      # in-process phases + SQL, SQLite
    .venv/bin/python bench/profile_ingest.py --cprofile           # ... and cProfile's top functions
    .venv/bin/python bench/profile_ingest.py --mode http          # py-spy on the uvicorn server
    .venv/bin/python bench/profile_ingest.py --backend postgresql --events 20000

``inprocess``: each batch goes through ``parcours.ingest.service.ingest_messages`` in its own write
transaction, as the HTTP endpoint stores a lone request (under load its writer stores several
together). The phases of ``IdentityBatch`` are timed by wrapping its methods in this process (exclusive
times: a phase's time excludes the phases it calls), and every SQL
statement's driver time is summed by statement shape through SQLAlchemy's cursor events; what remains of
``_flush`` is SQLAlchemy's Python work (compiling, binding parameters: JSON and timestamp conversion).

``http``: the server of ``bench/ingest.py`` (one uvicorn worker, fresh SQLite or PostgreSQL database),
with ``py-spy record`` attached for the whole send; prints the functions with the most samples, self and
inclusive, and the share of a few categories (HTTP stack, parsing, resolution, SQL, commit).
Nothing here changes the code under src/.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import pstats
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Table, event

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BACKENDS,
    BenchError,
    bench_main,
    bench_workdir,
    checkpoint,
    exit_on_sigterm,
    fresh_database,
    log,
    make_source,
    migrated,
    print_table,
    py_spy_attached,
    py_spy_path,
    run_server,
    summarise_py_spy,
)
from ingest import Workload, build_workload, send_all
from parcours.app import tune_garbage_collector
from parcours.config import Settings
from parcours.db import bulk
from parcours.identity import resolution
from parcours.identity import service as identity_service
from parcours.ingest import service as ingest_service
from parcours.matching import realtime


# ----------------------------------------------------------------------------------- in-process phases
class PhaseTimer:
    """Exclusive wall time per phase: a phase's own time, minus the time of phases nested in it."""

    def __init__(self) -> None:
        self.own: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.stack: list[list[float]] = []  # [started, time spent in children]

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        frame = [time.perf_counter(), 0.0]
        self.stack.append(frame)
        try:
            yield
        finally:
            self.stack.pop()
            elapsed = time.perf_counter() - frame[0]
            self.own[name] += elapsed - frame[1]
            self.calls[name] += 1
            if self.stack:
                self.stack[-1][1] += elapsed

    def wrap(self, owner: Any, attribute: str, name: str) -> Callable[[], None]:
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)
        return lambda: setattr(owner, attribute, original)


_SHAPE = re.compile(
    r"^\s*(SELECT\b.*?\bFROM\s+\w+|INSERT INTO \w+|UPDATE \w+|DELETE FROM \w+|\w+)", re.I | re.S
)


def statement_shape(statement: str) -> str:
    match = _SHAPE.match(statement)
    text = match.group(1) if match else statement[:40]
    if text.upper().startswith("SELECT"):
        table = text.split()[-1]
        return f"SELECT … FROM {table}"
    return " ".join(text.split())


def profile_inprocess(args: argparse.Namespace, workload: Workload, workdir: Path) -> None:
    batches = [orjson.loads(body)["batch"] for body in workload.bodies]
    with fresh_database(args.backend, workdir) as url:
        database = migrated(url)
        try:
            source, _ = make_source(database)
            settings = Settings(database_url=url)
            checkpoint(database)
            timer = PhaseTimer()
            sql_time: dict[str, float] = defaultdict(float)
            sql_calls: Counter[str] = Counter()
            sql_rows: Counter[str] = Counter()

            @event.listens_for(database.engine, "before_cursor_execute")
            def _before(conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
                conn.info.setdefault("bench_started", []).append(time.perf_counter())

            def count(shape: str, elapsed: float, rows: int) -> None:
                sql_time[shape] += elapsed
                sql_calls[shape] += 1
                sql_rows[shape] += rows
                # Driver time is also counted as its own phase, out of the enclosing phase's time.
                if timer.stack:
                    timer.stack[-1][1] += elapsed
                timer.own["  SQL driver (all statements)"] += elapsed

            @event.listens_for(database.engine, "after_cursor_execute")
            def _after(conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
                elapsed = time.perf_counter() - conn.info["bench_started"].pop()
                count(statement_shape(statement) + (" (executemany)" if many else ""), elapsed,
                      len(params) if many else 1)  # fmt: skip

            copy_rows = bulk.BulkWriter._copy  # COPY (PostgreSQL) fires no cursor events: timed here

            def timed_copy(
                self: bulk.BulkWriter, table: Table, columns: tuple[str, ...], rows: Sequence[bulk.Row]
            ) -> None:
                began = time.perf_counter()
                copy_rows(self, table, columns, rows)
                count(f"COPY {table.name}", time.perf_counter() - began, len(rows))

            bulk.BulkWriter._copy = timed_copy  # type: ignore[method-assign]
            run_rows = bulk.BulkWriter._run  # nor does the driver-level executemany (SQLite): timed here

            def timed_run(
                self: bulk.BulkWriter,
                verb: str,
                table: Table,
                columns: tuple[str, ...],
                where: tuple[str, ...],
                rows: Sequence[bulk.Row],
            ) -> None:
                began = time.perf_counter()
                run_rows(self, verb, table, columns, where, rows)
                count(f"{verb.upper()} {table.name} (bulk)", time.perf_counter() - began, len(rows))

            bulk.BulkWriter._run = timed_run  # type: ignore[method-assign]

            batch_t = resolution.IdentityBatch
            undo = [
                timer.wrap(ingest_service, "parse_messages", "parse + validate (parse_messages)"),
                timer.wrap(identity_service, "load_registry", "load kind registry"),
                timer.wrap(resolution, "lock_identity_graph", "lock identity graph"),
                timer.wrap(batch_t, "_mark_duplicates", "_mark_duplicates (Python + SQLAlchemy)"),
                timer.wrap(batch_t, "_mark_erased", "_mark_erased (Python + SQLAlchemy)"),
                timer.wrap(batch_t, "_load", "_load identifiers (Python + SQLAlchemy)"),
                timer.wrap(batch_t, "_load_profiles", "_load_profiles (Python + SQLAlchemy)"),
                timer.wrap(batch_t, "_preload_profiles", "_preload_profiles (own)"),
                timer.wrap(batch_t, "_merge", "_merge (in memory)"),
                timer.wrap(batch_t, "_resolve", "_resolve (in memory)"),
                timer.wrap(batch_t, "_flush", "_flush (Python + SQLAlchemy)"),
                timer.wrap(batch_t, "_match_changed_profiles", "real-time matching (own)"),
                timer.wrap(resolution, "find_candidates", "  matching: find_candidates"),
                timer.wrap(realtime.PairScores, "__init__", "  matching: score pairs"),
                timer.wrap(resolution, "store_keys", "  matching: store blocking keys"),
                timer.wrap(batch_t, "_decided_pairs", "  matching: reviewed pairs"),
            ]
            graph_cache = resolution.GraphCache()  # as the server keeps one
            tune_garbage_collector()  # as the server does
            profiler = cProfile.Profile() if args.cprofile else None
            try:
                began = time.perf_counter()
                if profiler:
                    profiler.enable()
                for batch in batches:
                    with timer.phase("session begin/commit + rest"), database.write() as session:
                        with timer.phase("ingest_messages (own)"):
                            result = ingest_service.ingest_messages(
                                session,
                                settings,
                                source,
                                batch,
                                expected_type=None,
                                sent_at=workload.sent_at,
                                cache=graph_cache,
                            )
                        if result.errors or result.recorded != len(batch):
                            raise BenchError(f"batch refused: {result.errors[:3]}")
                if profiler:
                    profiler.disable()
                seconds = time.perf_counter() - began
            finally:
                bulk.BulkWriter._copy = copy_rows  # type: ignore[method-assign]
                bulk.BulkWriter._run = run_rows  # type: ignore[method-assign]
                for restore in undo:
                    restore()
        finally:
            database.dispose()

    event_count = workload.count
    print()
    print(
        f"In-process ingestion on {args.backend}: {event_count:,} events in {len(batches)} batches: {seconds:.2f} s, "
        f"{event_count / seconds:,.0f} events/s{' (slowed by cProfile)' if profiler else ''}"
    )
    rows = [
        [
            name,
            timer.calls[name] or "",
            f"{own:.3f}",
            f"{100 * own / seconds:.1f}%",
            f"{1e6 * own / event_count:.1f}",
        ]
        for name, own in sorted(timer.own.items(), key=lambda item: -item[1])
    ]
    print_table(["phase (exclusive time)", "calls", "seconds", "share", "µs/event"], rows)
    print()
    print("SQL driver time by statement shape:")
    print_table(
        ["statement", "calls", "rows", "seconds", "µs/row"],
        [
            [
                shape,
                sql_calls[shape],
                sql_rows[shape],
                f"{spent:.3f}",
                f"{1e6 * spent / max(sql_rows[shape], 1):.1f}",
            ]
            for shape, spent in sorted(sql_time.items(), key=lambda item: -item[1])[:20]
        ],
    )
    if profiler:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats(order).print_stats(args.top)
            print()
            print(f"cProfile, top {args.top} by {order}:")
            print("\n".join(line[:180] for line in out.getvalue().splitlines() if line.strip()))


# ----------------------------------------------------------------------------------------- HTTP py-spy
def profile_http(args: argparse.Namespace, workload: Workload, workdir: Path) -> None:
    py_spy_path()
    raw = workdir / "pyspy.txt"
    with fresh_database(args.backend, workdir) as url:
        database = migrated(url)
        try:
            _, write_key = make_source(database)
            checkpoint(database)
        finally:
            database.dispose()
        with (
            run_server(url, workdir) as server,
            py_spy_attached(server.pid, raw, rate=args.rate, gil=args.gil),
        ):
            seconds = send_all(server.port, write_key, workload, args.concurrency)
    gil = ", GIL holder only" if args.gil else ""
    summarise_py_spy(
        raw,
        args.top,
        title=f"HTTP ingestion on {args.backend} ({args.rate} Hz{gil}): {workload.count:,} events in "
        f"{seconds:.2f} s = {workload.count / seconds:,.0f} events/s",
    )


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("inprocess", "http"), default="inprocess")
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--people", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=20250301)
    parser.add_argument(
        "--cprofile", action="store_true", help="inprocess: also print cProfile's top functions"
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--rate", type=int, default=200, help="http: py-spy samples per second")
    parser.add_argument("--gil", action="store_true", help="http: only samples of the thread holding the GIL")
    args = parser.parse_args(argv)
    workload = build_workload(
        args.events, args.people or max(1, args.events // 5), args.batch_size, args.seed
    )
    log(f"workload: {workload.count} events, {workload.people} people, {len(workload.bodies)} batches")
    with bench_workdir("parcours-bench-profile-") as workdir:
        if args.mode == "inprocess":
            profile_inprocess(args, workload, workdir)
        else:
            profile_http(args, workload, workdir)
    return 0


if __name__ == "__main__":
    bench_main(main, "bench/profile_ingest.py")
