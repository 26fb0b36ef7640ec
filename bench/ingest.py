"""Ingestion throughput: events/s through ``POST /v1/batch`` with identity resolution, beside the raw
insert rate of the same rows into the same kind of database, measured in the same run.

    .venv/bin/python bench/ingest.py                 # SQLite and PostgreSQL, 100k events, up to 3 runs each
    .venv/bin/python bench/ingest.py --quick         # 20k events, up to 2 runs each (under a minute)
    .venv/bin/python bench/ingest.py --backend sqlite --events 50000

A time budget (``--budget``, 280 s by default, 55 s with ``--quick``) keeps the run bounded: a repeat
that would not fit in a backend's share of what is left is skipped, and the table says how many runs
each median is of.

For each run: a fresh, migrated database and a fresh ``uvicorn`` process (one worker) on a loopback port;
the pre-serialised batches are sent over a few keep-alive connections and the wall time runs from the
first send to the last response. Every response must be 200 with every event recorded, and the database
must then hold exactly the events sent, or the benchmark fails.

The raw baseline inserts the same number of ``events`` rows (the columns and values identity resolution
writes: see ``IdentityBatch._resolve``) into another fresh, migrated database of the same kind, in
batches of the same size, one transaction per batch, in this process, the way ingestion writes them
(``parcours.db.bulk.BulkWriter``: driver-level executemany of tuples). Its rows are built and converted
to the driver's form before the clock starts (the source and profiles they point at are inserted first);
the ratio is against this rate. The same rows through SQLAlchemy Core executemany (the baseline of
earlier runs) are measured too and shown beside it.

The workload (deterministic for a seed): people with one to three devices, and for most of them an
account, an e-mail, a French mobile number, a loyalty card. They browse anonymously, buy in store with
their card, sign in (identify with userId, anonymousId and traits: the card links the store profile to
the browsing one, a merge), open e-mails, call the shop. Events of all people are interleaved in time.
The table, then one JSON line, go to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import queue
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Table, func, select

from parcours.app import tune_garbage_collector

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BACKENDS,
    BenchError,
    CpuMeter,
    HttpClient,
    basic_auth,
    bench_main,
    bench_workdir,
    checkpoint,
    exit_on_sigterm,
    fresh_database,
    json_body,
    log,
    make_source,
    median,
    migrated,
    print_json_line,
    print_table,
    run_clients,
    run_server,
)
from parcours.db.bulk import BulkWriter
from parcours.db.types import utcnow
from parcours.identity.resolution import EVENT_COLUMNS
from parcours.ids import new_id
from parcours.models import Event, IdentityConflict, Merge, Profile

TARGET_SQLITE_EVENTS_PER_S = 20_000
TARGET_RATIO = 0.4
MAX_BODY_BYTES = 500 * 1024
HISTORY_START = datetime(2025, 3, 1, tzinfo=UTC)
HISTORY_DAYS = 60
# Kind priorities of the built-in identifier kinds (migration 0001): identifiers are listed in this order.
PRIORITY = {"user_id": 10, "loyalty_card": 30, "email": 40, "phone": 50, "anonymous_id": 90}

FIRST_NAMES = (
    "Camille", "Léa", "Manon", "Chloé", "Inès", "Jade", "Louise", "Emma", "Lucas", "Hugo", "Louis",
    "Gabriel", "Arthur", "Jules", "Nathan", "Paul", "Zoé", "Alice", "Anaïs", "Thomas",
)  # fmt: skip
LAST_NAMES = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
    "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier",
)  # fmt: skip
DOMAINS = (
    "gmail.com",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "hotmail.fr",
    "yahoo.fr",
    "sfr.fr",
    "outlook.fr",
)
PRODUCTS = (
    ("ARA-001", "Moka d'Éthiopie 250 g", "café", 8.9),
    ("ARA-002", "Colombie Huila 1 kg", "café", 29.5),
    ("ARA-014", "Espresso Maison capsules x10", "capsules", 4.2),
    ("ARA-031", "Moulin manuel céramique", "accessoires", 54.0),
    ("ARA-045", "Cafetière italienne 6 tasses", "accessoires", 39.9),
    ("ARA-052", "Thé vert Sencha 100 g", "thé", 7.5),
    ("ARA-077", "Coffret découverte", "cadeaux", 34.0),
)
PAGES = ("/", "/cafes", "/capsules", "/accessoires", "/the", "/magasins", "/compte", "/panier")
STORES = ("PAR-RIV", "PAR-MAR", "LYS-REP", "BDX-STC", "LIL-GPL", "NTE-COM")
USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36",
)
MOBILE_SECOND_DIGITS = "01245678"  # +33 6x: valid French mobile prefixes (63x, 69x are partly unassigned)


# -------------------------------------------------------------------------------------------- workload
@dataclass
class Person:
    index: int
    devices: list[str]
    user_id: str | None
    email: str | None
    phone_e164: str | None
    phone_written: str | None
    card: str | None
    card_written: str | None
    first_name: str
    last_name: str


@dataclass
class GeneratedEvent:
    at: datetime
    person: int
    message: dict[str, Any]
    # The normalised identifiers ("kind:value", priority order) the server will derive from the message.
    identifiers: list[str]


@dataclass
class Workload:
    people: int
    events: list[GeneratedEvent]
    bodies: list[bytes]
    batch_sizes: list[int]
    sent_at: str

    @property
    def count(self) -> int:
        return len(self.events)


def _person(rng: random.Random, index: int) -> Person:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    devices = [f"anon-{rng.getrandbits(64):016x}" for _ in range(rng.choice((1, 1, 1, 2, 2, 3)))]
    user_id = f"cust-{index:07d}" if rng.random() < 0.65 else None
    email = None
    if rng.random() < 0.8:
        local = f"{first}.{last}".lower().encode("ascii", "ignore").decode()
        email = f"{local}.{index}@{rng.choice(DOMAINS)}"
    phone_e164 = phone_written = None
    if rng.random() < 0.6:
        national = f"6{rng.choice(MOBILE_SECOND_DIGITS)}{index:07d}"
        phone_e164 = f"+33{national}"
        if rng.random() < 0.7:
            phone_written = phone_e164
        else:  # as a store associate types it: 06 12 34 56 78
            digits = f"0{national}"
            phone_written = " ".join(digits[i : i + 2] for i in range(0, 10, 2))
    card = card_written = None
    if rng.random() < 0.4:
        card = f"MA{index:08d}"
        # Tills print it grouped and lower-case sometimes; the "compact" normaliser folds it back.
        card_written = card if rng.random() < 0.5 else f"ma {index // 10000:04d}-{index % 10000:04d}"
    return Person(index, devices, user_id, email, phone_e164, phone_written, card, card_written, first, last)


def _context(rng: random.Random, person: Person, channel: str, device: str | None) -> dict[str, Any]:
    context: dict[str, Any] = {"channel": channel, "locale": "fr-FR"}
    if channel in ("web", "app"):
        context["ip"] = f"90.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        context["userAgent"] = rng.choice(USER_AGENTS)
        if channel == "web":
            context["library"] = {"name": "analytics.js", "version": "4.1.0"}
        else:
            context["library"] = {"name": "analytics-ios", "version": "4.3.2"}
            context["device"] = {"id": device, "manufacturer": "Apple", "model": "iPhone15,2"}
    elif channel == "store":
        context["library"] = {"name": "pos-bridge", "version": "2.0.1"}
    else:
        context["library"] = {"name": "crm-connector", "version": "1.2.0"}
    return context


def _person_events(rng: random.Random, person: Person, count: int) -> list[tuple[datetime, dict[str, Any]]]:
    """One person's events in time order: browse, buy in store, sign in, then a mix of everything."""
    at = HISTORY_START + timedelta(seconds=rng.uniform(0, HISTORY_DAYS * 86400 * 0.6))
    out: list[tuple[datetime, dict[str, Any]]] = []

    def tick() -> datetime:
        nonlocal at
        at += timedelta(seconds=rng.expovariate(1 / (HISTORY_DAYS * 86400 * 0.4 / max(count, 1))))
        return at

    def page(device: str) -> dict[str, Any]:
        path = rng.choice(PAGES)
        context = _context(rng, person, "web", device)
        context["page"] = {"path": path, "url": f"https://www.maison-arabica.fr{path}", "referrer": ""}
        message: dict[str, Any] = {"type": "page", "anonymousId": device, "name": path.strip("/") or "home"}
        message["properties"] = {"path": path, "title": f"Maison Arabica {path}"}
        message["context"] = context
        if person.user_id is not None and signed_in:
            message["userId"] = person.user_id
        return message

    def web_track() -> dict[str, Any]:
        sku, name, category, price = rng.choice(PRODUCTS)
        device = rng.choice(person.devices)
        channel = "app" if device == person.devices[-1] and len(person.devices) > 1 else "web"
        message: dict[str, Any] = {
            "type": "track",
            "event": rng.choice(("Product Viewed", "Product Added", "Checkout Started")),
            "anonymousId": device,
            "properties": {"sku": sku, "name": name, "category": category, "price": price, "currency": "EUR"},
            "context": _context(rng, person, channel, device),
        }
        if person.user_id is not None and signed_in:
            message["userId"] = person.user_id
        return message

    def store_purchase() -> dict[str, Any]:
        sku, name, _category, price = rng.choice(PRODUCTS)
        quantity = rng.randint(1, 3)
        context = _context(rng, person, "store", None)
        traits: dict[str, Any] = {}
        if person.card_written is not None:
            traits["loyaltyCard"] = person.card_written
        elif person.phone_written is not None:
            traits["phone"] = person.phone_written
        context["traits"] = traits
        return {
            "type": "track",
            "event": "Order Completed",
            "properties": {
                "order_id": f"POS-{rng.getrandbits(40):010x}",
                "store_id": rng.choice(STORES),
                "total": round(price * quantity, 2),
                "currency": "EUR",
                "products": [{"sku": sku, "name": name, "quantity": quantity, "price": price}],
            },
            "context": context,
        }

    def identify() -> dict[str, Any]:
        device = rng.choice(person.devices)
        traits: dict[str, Any] = {"firstName": person.first_name, "lastName": person.last_name}
        if person.email is not None:
            traits["email"] = person.email
        if person.phone_written is not None and rng.random() < 0.8:
            traits["phone"] = person.phone_written
        if person.card_written is not None:
            traits["loyaltyCard"] = person.card_written
        traits["newsletter"] = rng.random() < 0.5
        message: dict[str, Any] = {
            "type": "identify",
            "anonymousId": device,
            "traits": traits,
            "context": _context(rng, person, "web", device),
        }
        if person.user_id is not None:
            message["userId"] = person.user_id
        return message

    def email_open() -> dict[str, Any]:
        context = _context(rng, person, "email", None)
        context["traits"] = {"email": person.email}
        campaign = rng.choice(("printemps", "nouveautes", "fidelite", "relance-panier"))
        return {
            "type": "track",
            "event": "Email Opened",
            "properties": {"campaign": campaign, "subject": f"Maison Arabica : {campaign}"},
            "context": context,
        }

    def phone_call() -> dict[str, Any]:
        context = _context(rng, person, "phone", None)
        context["traits"] = {"phone": person.phone_written}
        return {
            "type": "track",
            "event": "Call Completed",
            "properties": {
                "duration_s": rng.randint(30, 900),
                "reason": rng.choice(("commande", "sav", "info")),
            },
            "context": context,
        }

    signed_in = False
    plan: list[str] = ["page"]
    if person.card is not None and rng.random() < 0.7:
        plan.append("store")  # a store profile of its own until the sign-in links the card: a merge
    if person.user_id is not None or person.email is not None:
        plan.append("identify")
    extra = ["page", "track", "track"]
    if person.email is not None:
        extra.append("email")
    if person.phone_written is not None:
        extra.append("phone")
    if person.card_written is not None or person.phone_written is not None:
        extra.append("store")
    while len(plan) < count:
        plan.append(rng.choice(extra))
    for step in plan[:count]:
        if step == "page":
            message = page(rng.choice(person.devices))
        elif step == "track":
            message = web_track()
        elif step == "store":
            message = store_purchase()
        elif step == "identify":
            message = identify()
            signed_in = True
        elif step == "email":
            message = email_open()
        else:
            message = phone_call()
        out.append((tick(), message))
    return out


def _identifiers_of(message: dict[str, Any], person: Person) -> list[str]:
    """The identifiers the server derives from a message, normalised, in kind-priority order."""
    found: dict[str, str] = {}
    if "userId" in message:
        found["user_id"] = message["userId"]
    if "anonymousId" in message:
        found["anonymous_id"] = message["anonymousId"]
    traits = dict(message.get("context", {}).get("traits") or {})
    if message["type"] == "identify":
        traits.update(message.get("traits") or {})
    if "email" in traits:
        found["email"] = traits["email"].lower()
    if "phone" in traits and person.phone_e164 is not None:
        found["phone"] = person.phone_e164
    if "loyaltyCard" in traits and person.card is not None:
        found["loyalty_card"] = person.card
    return [f"{kind}:{found[kind]}" for kind in sorted(found, key=PRIORITY.__getitem__)]


def build_workload(events: int, people: int, batch_size: int, seed: int) -> Workload:
    rng = random.Random(seed)
    per_person = [1] * people
    # The rest spread unevenly (Pareto weights, capped): most people have a few events, some dozens.
    weights = [min(rng.paretovariate(1.5), 20.0) for _ in range(people)]
    for index in rng.choices(range(people), weights=weights, k=max(0, events - people)):
        per_person[index] += 1
    generated: list[GeneratedEvent] = []
    for index in range(people):
        person = _person(rng, index)
        for at, message in _person_events(rng, person, per_person[index]):
            generated.append(GeneratedEvent(at, index, message, _identifiers_of(message, person)))
    generated.sort(key=lambda event: event.at)
    for number, event in enumerate(generated):
        event.message["messageId"] = f"bench-{seed}-{number:08d}"
        event.message["timestamp"] = event.at.isoformat().replace("+00:00", "Z")
    sent_at = (HISTORY_START + timedelta(days=HISTORY_DAYS + 1)).isoformat().replace("+00:00", "Z")
    bodies: list[bytes] = []
    sizes: list[int] = []
    for start in range(0, len(generated), batch_size):
        chunk = [event.message for event in generated[start : start + batch_size]]
        body = orjson.dumps({"batch": chunk, "sentAt": sent_at})
        if len(body) > MAX_BODY_BYTES:
            raise BenchError(
                f"a batch of {len(chunk)} events is {len(body)} bytes; use a smaller --batch-size"
            )
        bodies.append(body)
        sizes.append(len(chunk))
    return Workload(people, generated, bodies, sizes, sent_at)


# ------------------------------------------------------------------------------------------ HTTP ingest
@dataclass
class IngestRun:
    seconds: float
    events: int
    profiles: int = 0
    merges: int = 0
    conflicts: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def send_all(port: int, write_key: str, workload: Workload, concurrency: int) -> float:
    """Send every batch in order over ``concurrency`` connections; the wall time first send -> last reply."""
    jobs: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    for index in range(len(workload.bodies)):
        jobs.put(index)
    for _ in range(concurrency):
        jobs.put(None)
    headers = {"Authorization": basic_auth(write_key), "Content-Type": "application/json"}

    def worker(_slot: int, failed: threading.Event) -> None:
        client = HttpClient(port)
        try:
            while (index := jobs.get()) is not None and not failed.is_set():
                status, raw = client.request("POST", "/v1/batch", workload.bodies[index], headers)
                body = json_body(raw)
                expected = workload.batch_sizes[index]
                if (
                    status != 200
                    or not isinstance(body, dict)
                    or body.get("success") is not True
                    or body.get("recorded") != expected
                    or body.get("errors")
                ):
                    raise BenchError(f"batch {index}: HTTP {status}, {str(body)[:400]}")
        finally:
            client.close()

    return run_clients(concurrency, worker, "ingestion")


def measure_ingest(backend: str, workdir: Path, workload: Workload, concurrency: int) -> IngestRun:
    with fresh_database(backend, workdir) as url:
        database = migrated(url)
        try:
            _, write_key = make_source(database)
            checkpoint(database)
            with run_server(url, workdir) as server:
                meter = CpuMeter(server.pid)
                with meter.measuring():
                    seconds = send_all(server.port, write_key, workload, concurrency)
            log(f"{backend}: CPU per event: {meter.per_operation(workload.count)}")
            with database.read() as session:
                stored = session.scalar(select(func.count()).select_from(Event)) or 0
                profiles = session.scalar(
                    select(func.count()).select_from(Profile).where(Profile.merged_into_id.is_(None))
                )
                merges = session.scalar(select(func.count()).select_from(Merge))
                conflicts = session.scalar(select(func.count()).select_from(IdentityConflict))
            if stored != workload.count:
                raise BenchError(f"{backend}: {workload.count} events sent, {stored} stored")
            return IngestRun(
                seconds, workload.count, profiles or 0, merges or 0, conflicts or 0, len(workload.bodies)
            )
        finally:
            database.dispose()


# ------------------------------------------------------------------------------------------ raw insert
def raw_rows(workload: Workload, source_id: str, profile_ids: list[str]) -> list[dict[str, Any]]:
    """``events`` rows with the columns and values ``IdentityBatch._resolve`` writes for these messages."""
    received_at = utcnow()
    rows: list[dict[str, Any]] = []
    for event in workload.events:
        message = event.message
        kind = message["type"]
        context = message.get("context")
        profile_id = profile_ids[event.person]
        rows.append(
            {
                "id": new_id("evt"),
                "source_id": source_id,
                "message_id": message["messageId"],
                "type": kind,
                "name": message.get("event") if kind == "track" else message.get("name"),
                "channel": (context or {}).get("channel", "web"),
                "profile_id": profile_id,
                "origin_profile_id": profile_id,
                "timestamp": event.at,
                "received_at": received_at,
                "user_id": message.get("userId"),
                "anonymous_id": message.get("anonymousId"),
                "identifiers": event.identifiers,
                "traits": message.get("traits")
                if kind == "identify"
                else (context or {}).get("traits") or None,
                "properties": message.get("properties"),
                "context": context,
            }
        )
    return rows


def measure_raw(backend: str, workdir: Path, workload: Workload, batch_size: int, method: str) -> float:
    """Rows/s into ``events``, one transaction per batch, on a fresh database. ``driver``: the way
    ingestion writes them (``BulkWriter``: one driver-level executemany of tuples, values converted to
    the driver's form before the clock starts); ``core``: SQLAlchemy Core executemany of dicts."""
    with fresh_database(backend, workdir) as url:
        database = migrated(url)
        try:
            source, _ = make_source(database)
            now = utcnow()
            profile_ids = [new_id("prf") for _ in range(workload.people)]
            profiles_t: Table = Profile.__table__  # type: ignore[assignment]
            events_t: Table = Event.__table__  # type: ignore[assignment]
            with database.engine.begin() as conn:
                conn.execute(
                    profiles_t.insert(),
                    [
                        {"id": pid, "created_at": now, "updated_at": now, "merged_into_id": None,
                         "traits": {}, "trait_times": {}}
                        for pid in profile_ids
                    ],
                )  # fmt: skip
            rows = raw_rows(workload, source.id, profile_ids)
            checkpoint(database)
            writer = database.engine.execution_options(parcours_writer=True)
            if method == "driver":
                with writer.connect() as conn:
                    bulk = BulkWriter(conn)
                    tuples = [
                        tuple(
                            bulk.moment(row[name])
                            if name in ("timestamp", "received_at")
                            else bulk.document(row[name])
                            if name in ("identifiers", "traits", "properties", "context")
                            else row[name]
                            for name in EVENT_COLUMNS
                        )
                        for row in rows
                    ]
            began = time.perf_counter()
            for start in range(0, len(rows), batch_size):
                with writer.begin() as conn:
                    if method == "driver":
                        BulkWriter(conn).insert(events_t, EVENT_COLUMNS, tuples[start : start + batch_size])
                    else:
                        conn.execute(events_t.insert(), rows[start : start + batch_size])
            seconds = time.perf_counter() - began
            with database.read() as session:
                stored = session.scalar(select(func.count()).select_from(Event))
            if stored != len(rows):
                raise BenchError(f"raw insert: {len(rows)} rows inserted, {stored} stored")
            return len(rows) / seconds
        finally:
            database.dispose()


# ------------------------------------------------------------------------------------------------ main
@dataclass
class BackendResult:
    backend: str
    ingest: list[IngestRun]
    raw: list[float]  # driver-level executemany, as ingestion writes
    core: list[float]  # SQLAlchemy Core executemany

    @property
    def rate(self) -> float:
        return median([run.rate for run in self.ingest])

    @property
    def raw_rate(self) -> float:
        return median(self.raw)

    @property
    def ratio(self) -> float:
        return self.rate / self.raw_rate

    @property
    def core_rate(self) -> float:
        return median(self.core)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    parser.add_argument(
        "--events", type=int, default=None, help="events per run (default 100000; quick 20000)"
    )
    parser.add_argument("--people", type=int, default=None, help="distinct people (default events / 5)")
    parser.add_argument("--batch-size", type=int, default=500, help="events per POST /v1/batch")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent client connections")
    parser.add_argument("--repeats", type=int, default=None, help="runs per measurement (default 3; quick 2)")
    parser.add_argument("--seed", type=int, default=20250301)
    parser.add_argument("--quick", action="store_true", help="a small run, about a minute")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds for the whole run (default 280; quick 55): a repeat that would not fit is skipped "
        "and the table says so; every backend gets at least one run",
    )
    args = parser.parse_args(argv)
    args.budget = args.budget or (55.0 if args.quick else 280.0)
    args.events = args.events or (20_000 if args.quick else 100_000)
    args.people = args.people or max(1, args.events // 5)
    args.repeats = args.repeats or (2 if args.quick else 3)
    if args.events < 1 or args.batch_size < 1 or args.concurrency < 1 or args.repeats < 1:
        parser.error("--events, --batch-size, --concurrency and --repeats must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    args = parse_args(argv)
    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    began = time.perf_counter()
    workload = build_workload(args.events, args.people, args.batch_size, args.seed)
    # The raw baseline runs in this process: give it the collector settings the server uses.
    tune_garbage_collector()
    sizes = [len(body) for body in workload.bodies]
    log(
        f"workload: {workload.count} events, {workload.people} people, {len(workload.bodies)} batches "
        f"of {args.batch_size} (body {min(sizes) // 1024}-{max(sizes) // 1024} KB), "
        f"built in {time.perf_counter() - began:.1f} s"
    )
    results: list[BackendResult] = []
    with bench_workdir("parcours-bench-ingest-") as workdir:
        for position, backend in enumerate(backends):
            result = BackendResult(backend, [], [], [])
            # This backend's share of what is left of the time budget.
            started = time.perf_counter()
            share = (args.budget - (started - began)) / (len(backends) - position)
            longest = 0.0
            for attempt in range(1, args.repeats + 1):
                if attempt > 1 and time.perf_counter() + longest > started + share:
                    log(
                        f"{backend}: stopping after {attempt - 1} run(s): another would exceed the time budget"
                    )
                    break
                pair_began = time.perf_counter()
                raw = measure_raw(backend, workdir, workload, args.batch_size, "driver")
                result.raw.append(raw)
                result.core.append(measure_raw(backend, workdir, workload, args.batch_size, "core"))
                run = measure_ingest(backend, workdir, workload, args.concurrency)
                result.ingest.append(run)
                log(
                    f"{backend} run {attempt}/{args.repeats}: ingest {run.rate:,.0f} events/s "
                    f"({run.seconds:.2f} s), raw insert {raw:,.0f} rows/s (Core {result.core[-1]:,.0f}); "
                    f"{run.profiles} profiles, "
                    f"{run.merges} merges, {run.conflicts} conflicts"
                )
                longest = max(longest, time.perf_counter() - pair_began)
            results.append(result)

    print()
    print(
        f"Ingestion: {workload.count} events ({workload.people} people) in batches of {args.batch_size}, "
        f"{args.concurrency} connections, one uvicorn worker; medians of up to {args.repeats} runs"
    )
    rows = []
    for result in results:
        last = result.ingest[-1]
        rows.append(
            [
                result.backend,
                f"{len(result.ingest)}/{args.repeats}",
                f"{result.rate:,.0f}",
                " / ".join(f"{run.rate:,.0f}" for run in result.ingest),
                f"{result.raw_rate:,.0f}",
                " / ".join(f"{raw:,.0f}" for raw in result.raw),
                f"{result.ratio:.2f}",
                f"{result.core_rate:,.0f}",
                f"{result.rate / result.core_rate:.2f}",
                f"{last.profiles} / {last.merges} / {last.conflicts}",
            ]
        )
    print_table(
        [
            "backend",
            "runs",
            "ingest ev/s",
            "each run",
            "raw rows/s",
            "each run",
            "ratio",
            "Core rows/s",
            "vs Core",
            "profiles/merges/conflicts",
        ],
        rows,
    )
    if any(len(result.ingest) < args.repeats for result in results):
        print(f"(fewer runs than asked where a repeat would not fit in the {args.budget:.0f} s budget)")
    # The headline names the issue asks for: sqlite_* and postgres_*.
    short = {"sqlite": "sqlite", "postgresql": "postgres"}
    figures: dict[str, Any] = {}
    for result in results:
        figures[f"{short[result.backend]}_events_per_s"] = round(result.rate)
        figures[f"{short[result.backend]}_ratio_vs_raw"] = round(result.ratio, 3)
    for result in results:
        figures[f"{short[result.backend]}_raw_rows_per_s"] = round(result.raw_rate)
        figures[f"{short[result.backend]}_core_rows_per_s"] = round(result.core_rate)
        figures[f"{short[result.backend]}_ratio_vs_core"] = round(result.rate / result.core_rate, 3)
    if any(r.backend == "sqlite" for r in results):
        sqlite = next(r for r in results if r.backend == "sqlite")
        ok_rate = sqlite.rate >= TARGET_SQLITE_EVENTS_PER_S
        ok_ratio = sqlite.ratio >= TARGET_RATIO
        print(
            f"targets (SQLite): >= {TARGET_SQLITE_EVENTS_PER_S:,} events/s: "
            f"{'met' if ok_rate else 'NOT met'} ({sqlite.rate:,.0f}); ratio >= {TARGET_RATIO}: "
            f"{'met' if ok_ratio else 'NOT met'} ({sqlite.ratio:.2f})"
        )
        figures["sqlite_targets_met"] = ok_rate and ok_ratio
    figures["events"] = workload.count
    figures["people"] = workload.people
    figures["batch_size"] = args.batch_size
    figures["concurrency"] = args.concurrency
    figures["runs"] = {r.backend: len(r.ingest) for r in results}
    figures["merges_per_run"] = {r.backend: r.ingest[-1].merges for r in results}
    figures["elapsed_s"] = round(time.perf_counter() - began, 1)
    print_json_line(figures)
    return 0


if __name__ == "__main__":
    bench_main(main, "bench/ingest.py")
