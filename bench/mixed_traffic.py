"""Ingestion beside the inbox: what a stream of customer messages and agent replies costs the tracking
events arriving at the same time.

    .venv/bin/python bench/mixed_traffic.py                     # SQLite and PostgreSQL, 50k events, 3 runs
    .venv/bin/python bench/mixed_traffic.py --backend sqlite --events 20000 --runs 2

In-process, through the writers of one app (``create_app``), as ``parcours serve`` stores them: the
workload of ``bench/ingest.py`` in batches of 500 events through the ingestion writer, alone (the
baseline) and with, after every batch, one SMS from a new customer through the inbox writer and an
agent's reply to it (which records a "Message Sent" event, as the reply endpoint does). Both modes run on
fresh databases, alternating, in the same run; the ratio is mixed / alone. Every writer of the identity
graph moves its version token, and a writer's in-memory graph (``GraphCache``) is trusted only while the
token is the one it left; the server keeps one cache for all its writers, so the inbox does not make
ingestion read its graph again. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BACKENDS,
    BenchError,
    bench_main,
    bench_workdir,
    exit_on_sigterm,
    fresh_database,
    log,
    make_source,
    median,
    migrated,
    print_json_line,
    print_table,
)
from ingest import Workload, build_workload
from parcours.app import create_app, tune_garbage_collector
from parcours.config import Settings
from parcours.identity import service as identity
from parcours.inbox.automation import SYSTEM
from parcours.inbox.outbound import write_reply
from parcours.inbox.service import Inbound
from parcours.ingest.service import parse_messages
from parcours.ingest.writer import IngestItem

MODES = ("alone", "mixed")


@dataclass
class Runs:
    rates: dict[str, list[float]] = field(default_factory=lambda: {mode: [] for mode in MODES})


def run_once(backend: str, workdir: Path, workload: Workload, mode: str) -> float:
    """Events per second through the ingestion writer, with the inbox's traffic beside it or not."""
    batches = [orjson.loads(body)["batch"] for body in workload.bodies]
    with fresh_database(backend, workdir) as url:
        database = migrated(url)
        try:
            settings = Settings(database_url=url)
            app = create_app(settings, database)
            source, _ = make_source(database)
            with database.read() as session:
                registry = identity.load_registry(session, settings.default_phone_region)
            ingest_writer, inbox_writer = app.state.ingest_writer, app.state.inbox_writer
            gc.collect()
            gc.freeze()
            start = time.perf_counter()
            for number, batch in enumerate(batches):
                touchpoints, result = parse_messages(registry, settings, source, batch, expected_type=None)
                if result.errors:
                    raise BenchError(f"batch {number}: {result.errors[:1]}")
                outcome = ingest_writer.submit(IngestItem(registry, touchpoints))
                if outcome.status.count("recorded") != len(batch):
                    raise BenchError(f"batch {number}: not every event was recorded")
                if mode == "alone":
                    continue
                received = inbox_writer.submit(
                    Inbound(
                        "sms", "twilio", f"SM{number}", [("phone", f"+3361{number:07d}")], "Bonjour",
                        sent_at=datetime.now(UTC),
                    )
                )  # fmt: skip
                with database.write() as session:
                    write_reply(
                        session, settings, None, received.conversation_id, SYSTEM, "Bonjour, …",
                        cache=app.state.graph_cache,
                    )  # fmt: skip
            elapsed = time.perf_counter() - start
        finally:
            database.dispose()
    return workload.count / elapsed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--people", type=int, default=0, help="default: events / 5")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.events < 500 or args.runs < 1:
        parser.error("--events must be at least 500 and --runs at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    args = parse_args(argv)
    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    workload = build_workload(args.events, args.people or args.events // 5, 500, args.seed)
    log(f"{workload.count:,} events in {len(workload.bodies)} batches; {args.runs} runs of each mode")
    tune_garbage_collector()  # as `parcours serve` does
    started = time.perf_counter()
    results: dict[str, Runs] = {}
    with bench_workdir("parcours_mixed_") as workdir:
        for backend in backends:
            runs = results[backend] = Runs()
            for run in range(args.runs):
                for mode in MODES if run % 2 == 0 else reversed(MODES):
                    rate = run_once(backend, workdir, workload, mode)
                    runs.rates[mode].append(rate)
                    log(f"{backend} {mode} run {run + 1}: {rate:,.0f} events/s")
    rows = []
    figures: dict[str, object] = {}
    for backend, runs in results.items():
        alone, mixed = median(runs.rates["alone"]), median(runs.rates["mixed"])
        for mode in MODES:
            each = " / ".join(f"{rate:,.0f}" for rate in runs.rates[mode])
            ratio = f"{mixed / alone:.2f}" if mode == "mixed" else ""
            rows.append([backend, mode, f"{median(runs.rates[mode]):,.0f}", each, ratio])
        figures[f"{backend}_alone_events_per_s"] = round(alone)
        figures[f"{backend}_mixed_events_per_s"] = round(mixed)
        figures[f"{backend}_mixed_ratio"] = round(mixed / alone, 3)
    print_table(["backend", "mode", "events/s", "each run", "mixed / alone"], rows)
    figures.update(events=workload.count, runs=args.runs, elapsed_s=round(time.perf_counter() - started, 1))
    print_json_line(figures)
    return 0


if __name__ == "__main__":
    bench_main(main, "bench/mixed_traffic.py")
