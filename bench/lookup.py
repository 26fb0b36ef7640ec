"""Unified profile view latency: ``GET /v1/profiles/{id}`` (and ``GET /v1/profiles?identifier=email:…``)
under concurrent HTTP load on a database of 50,000 profiles.

    .venv/bin/python bench/lookup.py                      # SQLite, 50k profiles, 20k requests, 8 clients
    .venv/bin/python bench/lookup.py --quick              # 50k profiles of 3 events; 4k requests (~40 s)
    .venv/bin/python bench/lookup.py --backend postgresql
    .venv/bin/python bench/lookup.py --quick --profile gil   # + py-spy on the server: where the CPU goes
    .venv/bin/python bench/lookup.py --quick --heavy 20000   # + a 20,000-event profile asked for beside the load

The database is fresh and migrated, and filled in this process through the real pipeline
(``parcours.ingest.service.ingest_messages``, about 5,000 messages a transaction). Each customer signs
in on the web shop (identify: user id, device id, e-mail, French mobile, sometimes a loyalty card) and
then has a handful of events on two or three channels (web, app, store, email, phone): a profile with
four or five identifiers and a per-channel summary to compute. Then ``uvicorn`` (one worker) serves it
on a loopback port; after a warm-up, N client threads, each on its own keep-alive connection, send a
fixed number of requests: random profile ids, and one request in ten a lookup by e-mail. Every response
must be 200 and name the profile asked for. Latency is measured by the client around each request, so
with N clients in a closed loop it includes queueing in the server (mean latency ≈ N / throughput); a
last pass from a single client shows the service time without queueing. The table, then one JSON line,
go to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BACKENDS,
    BenchError,
    CpuMeter,
    HttpClient,
    bench_main,
    bench_workdir,
    checkpoint,
    exit_on_sigterm,
    fresh_database,
    json_body,
    log,
    make_source,
    make_token,
    migrated,
    percentile,
    print_json_line,
    print_table,
    py_spy_attached,
    run_clients,
    run_server,
    summarise_py_spy,
)
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.ingest.service import ingest_messages
from parcours.models import Event, Identifier, Profile

TARGET_P99_MS = 20.0
HISTORY_START = datetime(2025, 1, 6, tzinfo=UTC)
HISTORY_DAYS = 120
MOBILE_SECOND_DIGITS = "01245678"
DOMAINS = ("gmail.com", "orange.fr", "free.fr", "laposte.net", "hotmail.fr", "yahoo.fr", "sfr.fr")
PRODUCTS = (("ARA-001", 8.9), ("ARA-002", 29.5), ("ARA-014", 4.2), ("ARA-031", 54.0), ("ARA-077", 34.0))
PAGES = ("/", "/cafes", "/capsules", "/accessoires", "/magasins", "/compte")
EMAIL_SHARE = 0.1


# ------------------------------------------------------------------------------------------ population
def customer_messages(rng: random.Random, index: int, events: int) -> list[dict[str, Any]]:
    """One customer: sign-in first (all identifiers), then ``events - 1`` events on 2-3 channels."""
    at = HISTORY_START + timedelta(seconds=rng.uniform(0, HISTORY_DAYS * 86400 * 0.5))
    device = f"anon-{rng.getrandbits(64):016x}"
    app_device = f"anon-{rng.getrandbits(64):016x}"
    user_id = f"cust-{index:07d}"
    email = f"client.{index}@{rng.choice(DOMAINS)}"
    phone = f"+336{rng.choice(MOBILE_SECOND_DIGITS)}{index:07d}"
    card = f"MA{index:08d}" if rng.random() < 0.4 else None
    traits: dict[str, Any] = {"email": email, "phone": phone, "firstName": "Client", "lastName": str(index)}
    if card:
        traits["loyaltyCard"] = card
    library = {"name": "analytics.js", "version": "4.1.0"}
    messages: list[dict[str, Any]] = [
        {
            "type": "identify",
            "userId": user_id,
            "anonymousId": device,
            "traits": traits,
            "context": {"channel": "web", "library": library},
        }
    ]
    channels = rng.sample(("app", "store", "email", "phone"), rng.choice((1, 2)))
    for number in range(events - 1):
        channel = "web" if number % 2 == 0 else rng.choice(channels)
        sku, price = rng.choice(PRODUCTS)
        if channel == "web":
            path = rng.choice(PAGES)
            message: dict[str, Any] = {
                "type": "page",
                "userId": user_id,
                "anonymousId": device,
                "name": path,
                "properties": {"path": path},
                "context": {"channel": "web", "library": library},
            }
        elif channel == "app":
            message = {
                "type": "track",
                "event": "Product Viewed",
                "userId": user_id,
                "anonymousId": app_device,
                "properties": {"sku": sku, "price": price},
                "context": {"channel": "app"},
            }
        elif channel == "store":
            message = {
                "type": "track",
                "event": "Order Completed",
                "properties": {"sku": sku, "total": price, "currency": "EUR"},
                "context": {
                    "channel": "store",
                    "traits": {"loyaltyCard": card} if card else {"phone": phone},
                },
            }
        elif channel == "email":
            message = {
                "type": "track",
                "event": "Email Opened",
                "properties": {"campaign": "printemps"},
                "context": {"channel": "email", "traits": {"email": email}},
            }
        else:
            message = {
                "type": "track",
                "event": "Call Completed",
                "properties": {"duration_s": rng.randint(30, 600)},
                "context": {"channel": "phone", "traits": {"phone": phone}},
            }
        messages.append(message)
    for number, message in enumerate(messages):
        at += timedelta(seconds=rng.uniform(60, 86400 * 3))
        message["timestamp"] = at.isoformat().replace("+00:00", "Z")
        message["messageId"] = f"pop-{index}-{number}"
    return messages


@dataclass
class Population:
    profile_ids: list[str]
    emails: list[tuple[str, str]]  # (email, profile id)
    events: int
    seconds: float


def populate(
    database: Database, url: str, profiles: int, events_per_profile: tuple[int, int], seed: int, chunk: int
) -> Population:
    rng = random.Random(seed)
    settings = Settings(database_url=url)
    source, _ = make_source(database, "bench population", "web")
    began = time.perf_counter()
    sent = 0
    group = max(1, chunk // max(1, sum(events_per_profile) // 2))  # customers per transaction
    for first in range(0, profiles, group):
        messages: list[dict[str, Any]] = []
        for index in range(first, min(first + group, profiles)):
            messages += customer_messages(rng, index, rng.randint(*events_per_profile))
        with database.write() as session:
            result = ingest_messages(session, settings, source, messages, expected_type=None)
        if result.errors or result.recorded != len(messages):
            raise BenchError(f"population refused: {result.errors[:3]}")
        sent += len(messages)
        done = min(first + group, profiles)
        if done // 10_000 != first // 10_000 and done < profiles:
            log(f"  populated {done:,} profiles, {sent:,} events ({time.perf_counter() - began:.0f} s)")
    seconds = time.perf_counter() - began
    with database.read() as session:
        profile_ids = list(session.scalars(select(Profile.id).where(Profile.merged_into_id.is_(None))))
        emails = [
            (value, profile_id)
            for value, profile_id in session.execute(
                select(Identifier.value, Identifier.profile_id).where(Identifier.kind == "email")
            )
        ]
        stored = session.scalar(select(func.count()).select_from(Event))
    if len(profile_ids) != profiles or stored != sent:
        raise BenchError(
            f"expected {profiles} profiles and {sent} events, found {len(profile_ids)} and {stored}"
        )
    return Population(profile_ids, emails, sent, seconds)


def population_url(url: str) -> str:
    """The URL this process fills the database through. On PostgreSQL, custom plans for every query:
    with psycopg's automatic prepared statements PostgreSQL may switch the duplicate check
    (``message_id IN (…500 values…)``) to a generic plan that compares every event of the source with
    every value, slowing filling quadratically (see the report of bench/profile_ingest.py). Only the
    population uses this; the measured server uses the plain URL."""
    if not url.startswith("postgresql"):
        return url
    return (
        make_url(url)
        .update_query_dict({"options": "-c plan_cache_mode=force_custom_plan"})
        .render_as_string(hide_password=False)
    )


def add_heavy_profile(database: Database, url: str, events: int, chunk: int) -> str:
    """One more profile, with ``events`` events from one browser (a bot, a device everyone shares), sent
    through the same pipeline; its id."""
    settings = Settings(database_url=url)
    source, _ = make_source(database, "bench heavy profile", "web")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for first in range(0, events, chunk):
        messages = [
            {
                "type": "page",
                "name": "Accueil",
                "messageId": f"heavy-{number}",
                "anonymousId": "bench-heavy-browser",
                "timestamp": (start + timedelta(seconds=number)).isoformat(),
            }
            for number in range(first, min(first + chunk, events))
        ]
        with database.write() as session:
            result = ingest_messages(session, settings, source, messages, expected_type=None)
        if result.errors or result.recorded != len(messages):
            raise BenchError(f"heavy profile refused: {result.errors[:3]}")
    with database.read() as session:
        profile_id = session.scalar(select(Event.profile_id).where(Event.message_id == "heavy-0"))
    if profile_id is None:
        raise BenchError("the heavy profile's events were not stored")
    return str(profile_id)


class HeavyClient:
    """One more client asking for the heavy profile in a loop while the load runs."""

    def __init__(self, port: int, token: str, profile_id: str) -> None:
        self.port, self.profile_id = port, profile_id
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.latencies: list[float] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heavy-client", daemon=True)

    def __enter__(self) -> HeavyClient:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.error is not None:
            raise BenchError(f"heavy profile client: {self.error}")

    def _run(self) -> None:
        client = HttpClient(self.port, timeout=60)
        try:
            while not self._stop.is_set():
                started = time.perf_counter()
                status, raw = client.request("GET", f"/v1/profiles/{self.profile_id}", None, self.headers)
                if status != 200:
                    raise BenchError(f"HTTP {status} {raw[:300]!r}")
                self.latencies.append((time.perf_counter() - started) * 1000)
        except BaseException as error:  # reported by __exit__, in the main thread
            self.error = error
        finally:
            client.close()


# ------------------------------------------------------------------------------------------------ load
@dataclass
class LoadResult:
    by_id: list[float]
    by_email: list[float]
    seconds: float

    @property
    def total(self) -> int:
        return len(self.by_id) + len(self.by_email)


def run_load(
    port: int,
    token: str,
    population: Population,
    requests: int,
    clients: int,
    seed: int,
    *,
    check: bool = True,
) -> LoadResult:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    # Decide every request up front (deterministic for a seed), one list per client.
    plan_rng = random.Random(seed)
    plans: list[list[tuple[str, str, str]]] = [[] for _ in range(clients)]
    for number in range(requests):
        if plan_rng.random() < EMAIL_SHARE:
            email, expected = plan_rng.choice(population.emails)
            path = f"/v1/profiles?identifier={quote('email:' + email, safe='')}"
            plans[number % clients].append(("email", path, expected))
        else:
            profile_id = plan_rng.choice(population.profile_ids)
            plans[number % clients].append(("id", f"/v1/profiles/{profile_id}", profile_id))
    by_id: list[list[float]] = [[] for _ in range(clients)]
    by_email: list[list[float]] = [[] for _ in range(clients)]

    def worker(slot: int, _failed: threading.Event) -> None:
        client = HttpClient(port, timeout=30)
        try:
            for kind, path, expected in plans[slot]:
                started = time.perf_counter()
                status, raw = client.request("GET", path, None, headers)
                elapsed = (time.perf_counter() - started) * 1000
                if status != 200:
                    raise BenchError(f"GET {path}: HTTP {status} {raw[:300]!r}")
                if check:
                    body = json_body(raw)
                    if not isinstance(body, dict) or body.get("id") != expected:
                        raise BenchError(f"GET {path}: expected profile {expected}, got {str(body)[:300]}")
                (by_email if kind == "email" else by_id)[slot].append(elapsed)
        finally:
            client.close()

    elapsed = run_clients(clients, worker, "lookups")
    return LoadResult([v for part in by_id for v in part], [v for part in by_email for v in part], elapsed)


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--profiles", type=int, default=50_000)
    parser.add_argument(
        "--requests", type=int, default=None, help="measured requests (default 20000; quick 4000)"
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent client connections")
    parser.add_argument("--seed", type=int, default=20250106)
    parser.add_argument("--chunk", type=int, default=5000, help="messages per population transaction")
    parser.add_argument("--quick", action="store_true", help="3 events a profile, fewer requests (~1 minute)")
    parser.add_argument(
        "--serial",
        type=int,
        default=None,
        help="requests from 1 client after the load (default 1000; quick 300)",
    )
    parser.add_argument(
        "--heavy",
        type=int,
        default=0,
        metavar="EVENTS",
        help="add a profile of EVENTS events (a bot, a shared device), asked for in a loop by one more "
        "client during the load: how much one heavy view slows everybody else's (default: none)",
    )
    parser.add_argument(
        "--profile",
        choices=("threads", "gil"),
        default=None,
        help="attach py-spy to the server during the load and print hot spots: samples of every busy "
        "thread, or only of the thread holding the GIL (where the CPU goes)",
    )
    args = parser.parse_args(argv)
    args.serial = args.serial if args.serial is not None else (300 if args.quick else 1000)
    args.requests = args.requests or (4_000 if args.quick else 20_000)
    args.events_per_profile = (3, 3) if args.quick else (4, 8)
    if args.profiles < 1 or args.requests < 1 or args.clients < 1:
        parser.error("--profiles, --requests and --clients must be positive")
    if args.heavy < 0:
        parser.error("--heavy must be 0 (none) or a number of events")
    return args


def summary_row(name: str, values: list[float], seconds: float | None) -> list[str]:
    rate = f"{len(values) / seconds:,.0f}" if seconds else ""
    return [
        name,
        f"{len(values):,}",
        f"{percentile(values, 0.5):.2f}",
        f"{percentile(values, 0.9):.2f}",
        f"{percentile(values, 0.99):.2f}",
        f"{max(values):.2f}" if values else "",
        rate,
    ]


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    args = parse_args(argv)
    began = time.perf_counter()
    with bench_workdir("parcours-bench-lookup-") as workdir, fresh_database(args.backend, workdir) as url:
        database = migrated(population_url(url))
        try:
            log(f"populating {args.profiles:,} profiles on {args.backend} …")
            population = populate(
                database, url, args.profiles, args.events_per_profile, args.seed, args.chunk
            )
            log(
                f"populated {len(population.profile_ids):,} profiles, {population.events:,} events in "
                f"{population.seconds:.1f} s ({population.events / population.seconds:,.0f} events/s in-process)"
            )
            heavy_id = add_heavy_profile(database, url, args.heavy, args.chunk) if args.heavy else None
            token = make_token(database)
            checkpoint(database)
        finally:
            database.dispose()
        with run_server(url, workdir) as server:
            warmup = min(2_000, max(200, args.requests // 10))
            run_load(server.port, token, population, warmup, args.clients, args.seed + 1)
            meter = CpuMeter(server.pid)
            heavy: AbstractContextManager[Any] = (
                HeavyClient(server.port, token, heavy_id) if heavy_id else nullcontext()
            )
            if args.profile:
                with py_spy_attached(server.pid, workdir / "pyspy.txt", gil=args.profile == "gil"), heavy:
                    load = run_load(server.port, token, population, args.requests, args.clients, args.seed)
            else:
                with meter.measuring(), heavy:
                    load = run_load(server.port, token, population, args.requests, args.clients, args.seed)
                log(f"CPU per request: {meter.per_operation(load.total)}")
            serial = None
            if args.serial:
                serial = run_load(server.port, token, population, args.serial, 1, args.seed + 2)
        if args.profile:
            summarise_py_spy(
                workdir / "pyspy.txt",
                25,
                title=f"server during the load ({load.total:,} requests, {args.clients} clients, "
                f"{'GIL holder only' if args.profile == 'gil' else 'every busy thread'})",
            )

    everything = load.by_id + load.by_email
    print()
    print(
        f"Profile view latency on {args.backend}: {len(population.profile_ids):,} profiles, "
        f"{population.events:,} events; {load.total:,} requests from {args.clients} keep-alive clients "
        f"(after {warmup:,} warm-up requests), one uvicorn worker; client-measured ms"
    )
    print_table(
        ["request", "count", "p50", "p90", "p99", "max", "req/s"],
        [
            summary_row("GET /v1/profiles/{id}", load.by_id, None),
            summary_row("GET /v1/profiles?identifier=email:", load.by_email, None),
            summary_row("all", everything, load.seconds),
            *(
                [summary_row(f"beside: GET heavy profile ({args.heavy:,} events)", heavy.latencies, None)]
                if isinstance(heavy, HeavyClient)
                else []
            ),
            *(
                [
                    summary_row(
                        "1 client: all (service time, no queueing)",
                        serial.by_id + serial.by_email,
                        serial.seconds,
                    )
                ]
                if serial
                else []
            ),
        ],
    )
    p99 = percentile(load.by_id, 0.99)
    print(
        f"target: p99 of GET /v1/profiles/{{id}} < {TARGET_P99_MS:.0f} ms: {'met' if p99 < TARGET_P99_MS else 'NOT met'}"
    )
    print_json_line(
        {
            "p50_ms": round(percentile(load.by_id, 0.5), 2),
            "p99_ms": round(p99, 2),
            "p90_ms": round(percentile(load.by_id, 0.9), 2),
            "max_ms": round(max(load.by_id), 2),
            "mean_ms": round(sum(load.by_id) / len(load.by_id), 2),
            "email_p50_ms": round(percentile(load.by_email, 0.5), 2),
            "email_p99_ms": round(percentile(load.by_email, 0.99), 2),
            "requests_per_s": round(load.total / load.seconds),
            "target_met": p99 < TARGET_P99_MS,
            "serial_p50_ms": round(percentile(serial.by_id, 0.5), 2) if serial else None,
            "serial_p99_ms": round(percentile(serial.by_id, 0.99), 2) if serial else None,
            "heavy_events": args.heavy,
            "heavy_p50_ms": round(percentile(heavy.latencies, 0.5), 2)
            if isinstance(heavy, HeavyClient)
            else None,
            "backend": args.backend,
            "profiles": len(population.profile_ids),
            "events": population.events,
            "clients": args.clients,
            "requests": load.total,
            "elapsed_s": round(time.perf_counter() - began, 1),
        }
    )
    return 0


if __name__ == "__main__":
    bench_main(main, "bench/lookup.py")
