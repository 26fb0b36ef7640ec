"""Stock under load: reservations/s through ``POST /v1/reservations`` with 16 concurrent clients, the
oversell count (must be 0), and the latency of ``GET /v1/availability/{sku}?near=…`` across 200 stores x
20,000 SKUs.

    .venv/bin/python bench/stock.py                  # SQLite and PostgreSQL
    .venv/bin/python bench/stock.py --quick          # fewer SKUs and requests
    .venv/bin/python bench/stock.py --backend sqlite
    .venv/bin/python bench/stock.py --quick --backend postgresql --profile reservations   # + py-spy

For each backend: a fresh, migrated database; 200 stores (click & collect) and 2 warehouses across France,
20,000 SKUs with a price; each SKU stocked in about 30 stores and both warehouses (about 640,000 stock
rows, written before the clock starts); a ``uvicorn`` process (one worker) on a loopback port.

Reservations: 16 keep-alive clients each send reservations of one unit of a random SKU at a random store
holding it; a tenth of the requests go to one "hot" SKU with only 200 units in one store, so it runs out
under contention. Every answer must be 201 or 409 ``insufficient_stock``. Oversold = units reserved
beyond what was on hand, counted from the database afterwards (reserved sums per row against on hand,
and the successful reservations of the hot SKU against its 200 units): it must be 0. The baseline is
``GET /healthz`` at the same concurrency in the same run.

Availability: 4,000 requests from 8 clients for random SKUs near random French cities; p50/p99 in ms.
The table, then one JSON line, go to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import func, insert, select

from _common import (
    BACKENDS,
    BenchError,
    CpuMeter,
    HttpClient,
    bench_main,
    bench_workdir,
    exit_on_sigterm,
    fresh_database,
    log,
    make_token,
    migrated,
    percentile,
    print_json_line,
    print_table,
    profiled,
    run_clients,
    run_server,
)
from parcours.models import Location, Price, Product, Reservation, StockLevel, Variant

TARGET_RESERVATIONS_PER_S = 1000
TARGET_AVAILABILITY_P99_MS = 20
HOT_SKU, HOT_STORE, HOT_UNITS = "SKU-HOT", "store-000", 100
CITIES = ((48.857, 2.352), (45.764, 4.836), (43.297, 5.370), (44.838, -0.579), (50.629, 3.057),
          (47.218, -1.554), (43.605, 1.444), (48.573, 7.752), (43.710, 7.262), (47.322, 5.041))  # fmt: skip


def seed(url: str, skus: int, stores: int, rng: random.Random) -> tuple[str, list[tuple[str, str]]]:
    """The world; returns an API token and (sku, store) pairs that hold stock."""
    database = migrated(url)
    now = datetime.now(UTC)
    try:
        token = make_token(database)
        with database.engine.begin() as conn:
            conn.execute(insert(Product), [{"id": "p", "name": "Produit", "category": "c", "description": "",
                                            "created_at": now}])  # fmt: skip
            names = [f"SKU-{n:05d}" for n in range(skus)] + [HOT_SKU]
            conn.execute(insert(Variant), [{"sku": s, "product_id": "p", "ean": None, "name": s, "attributes": {},
                                            "active": True} for s in names])  # fmt: skip
            conn.execute(insert(Price), [{"sku": s, "currency": "EUR", "amount": Decimal("9.90"), "channel": None,
                                          "reason": None} for s in names])  # fmt: skip
            locations = []
            for n in range(stores):
                lat, lon = rng.choice(CITIES)
                locations.append({"id": f"store-{n:03d}", "kind": "store", "name": f"Boutique {n}", "street": "",
                                  "postal_code": "", "city": "", "latitude": lat + rng.uniform(-0.3, 0.3),
                                  "longitude": lon + rng.uniform(-0.3, 0.3), "opening_hours": "",
                                  "services": ["click_collect"], "active": True})  # fmt: skip
            for n, (lat, lon) in enumerate(((47.90, 1.90), (45.19, 5.72))):
                locations.append({"id": f"wh-{n}", "kind": "warehouse", "name": f"Entrepôt {n}", "street": "",
                                  "postal_code": "", "city": "", "latitude": lat, "longitude": lon,
                                  "opening_hours": "", "services": [], "active": True})  # fmt: skip
            conn.execute(insert(Location), locations)
            pairs: list[tuple[str, str]] = []
            rows: list[dict[str, Any]] = []
            for sku in names[:-1]:
                for store in rng.sample(range(stores), 30):
                    pairs.append((sku, f"store-{store:03d}"))
                    rows.append({"sku": sku, "location_id": f"store-{store:03d}", "on_hand": 50, "reserved": 0,
                                 "updated_at": now})  # fmt: skip
                for n in range(2):
                    rows.append({"sku": sku, "location_id": f"wh-{n}", "on_hand": 500, "reserved": 0,
                                 "updated_at": now})  # fmt: skip
                if len(rows) >= 50_000:
                    conn.execute(insert(StockLevel), rows)
                    rows = []
            rows.append({"sku": HOT_SKU, "location_id": HOT_STORE, "on_hand": HOT_UNITS, "reserved": 0,
                         "updated_at": now})  # fmt: skip
            conn.execute(insert(StockLevel), rows)
        return token, pairs
    finally:
        database.dispose()


def oversold(url: str, hot_ok: int) -> tuple[int, int]:
    """(units oversold, reservations stored) counted from the database."""
    database = migrated(url)
    try:
        with database.read() as session:
            beyond = session.scalar(
                select(func.coalesce(func.sum(StockLevel.reserved - StockLevel.on_hand), 0)).where(
                    StockLevel.reserved > StockLevel.on_hand
                )
            )
            stored = session.scalar(select(func.count()).select_from(Reservation)) or 0
        return int(beyond or 0) + max(0, hot_ok - HOT_UNITS), int(stored)
    finally:
        database.dispose()


def profiled_if(
    args: argparse.Namespace, phase: str, pid: int, workdir: Path
) -> AbstractContextManager[None]:
    """py-spy on the server during ``phase`` when ``--profile`` names it."""
    if args.profile != phase:
        return nullcontext()
    return profiled(pid, workdir, f"server during {phase}", gil=args.gil)


def measure(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    with bench_workdir("parcours-bench-stock-") as workdir, fresh_database(backend, workdir) as url:
        began = time.perf_counter()
        token, pairs = seed(url, args.skus, args.stores, rng)
        log(f"{backend}: {args.skus:,} SKUs x {args.stores} stores seeded ({len(pairs):,} store rows) in "
            f"{time.perf_counter() - began:.0f} s")  # fmt: skip
        with run_server(url, workdir) as server:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            requests = []
            for n in range(args.reservations):
                sku, store = (HOT_SKU, HOT_STORE) if n % 10 == 0 else rng.choice(pairs)
                requests.append(json.dumps({"location_id": store, "lines": [{"sku": sku, "quantity": 1}],
                                            "channel": "app", "request_id": f"bench-{n}"}).encode())  # fmt: skip
            counts = {"ok": 0, "short": 0, "hot_ok": 0}
            lock = threading.Lock()

            def reserve(slot: int, failed: threading.Event) -> None:
                client = HttpClient(server.port)
                try:
                    for index in range(slot, len(requests), args.clients):
                        if failed.is_set():
                            return
                        status, raw = client.request("POST", "/v1/reservations", requests[index], headers)
                        if status == 201:
                            with lock:
                                counts["ok"] += 1
                                counts["hot_ok"] += index % 10 == 0
                        elif status == 409 and b"insufficient_stock" in raw:
                            with lock:
                                counts["short"] += 1
                        else:
                            raise BenchError(f"reservation answered {status}: {raw[:200]!r}")
                finally:
                    client.close()

            meter = CpuMeter(server.pid)
            with profiled_if(args, "reservations", server.pid, workdir), meter.measuring():
                seconds = run_clients(args.clients, reserve, "reservations")
            rate = len(requests) / seconds
            log(f"{backend}: CPU per reservation: {meter.per_operation(len(requests))}")

            def ping(slot: int, failed: threading.Event) -> None:
                client = HttpClient(server.port)
                try:
                    for _ in range(slot, len(requests), args.clients):
                        client.request("GET", "/healthz")
                finally:
                    client.close()

            with meter.measuring():
                baseline = len(requests) / run_clients(args.clients, ping, "baseline")
            log(f"{backend}: CPU per GET /healthz: {meter.per_operation(len(requests))}")
            latencies: list[float] = []
            queries = [
                (f"SKU-{rng.randrange(args.skus):05d}", rng.choice(CITIES)) for _ in range(args.lookups)
            ]

            def look(slot: int, failed: threading.Event) -> None:
                client = HttpClient(server.port)
                mine = []
                try:
                    for index in range(slot, len(queries), 8):
                        sku, (lat, lon) = queries[index]
                        began_at = time.perf_counter()
                        status, raw = client.request("GET", f"/v1/availability/{sku}?near={lat},{lon}",
                                                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                        mine.append(1000 * (time.perf_counter() - began_at))
                        if status != 200:
                            raise BenchError(f"availability answered {status}: {raw[:200]!r}")
                finally:
                    client.close()
                    with lock:
                        latencies.extend(mine)

            with profiled_if(args, "availability", server.pid, workdir), meter.measuring():
                run_clients(8, look, "availability")
            log(f"{backend}: CPU per availability look-up: {meter.per_operation(len(queries))}")
        sold, stored = oversold(url, counts["hot_ok"])
        if stored != counts["ok"]:
            raise BenchError(f"{counts['ok']} reservations answered 201 but {stored} are stored")
        return {"backend": backend, "rate": rate, "baseline": baseline, "ok": counts["ok"], "short": counts["short"],
                "hot_ok": counts["hot_ok"], "oversold": sold, "p50": percentile(latencies, 0.5),
                "p99": percentile(latencies, 0.99)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    parser.add_argument("--skus", type=int, default=None, help="SKUs (default 20000; quick 2000)")
    parser.add_argument("--stores", type=int, default=200)
    parser.add_argument("--reservations", type=int, default=None, help="default 6000; quick 2000")
    parser.add_argument("--lookups", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seed", type=int, default=20260301)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", choices=("reservations", "availability"),
                        help="py-spy on the server during that phase (needs py-spy in the venv)")  # fmt: skip
    parser.add_argument("--gil", action="store_true", help="with --profile: sample the GIL holder only")
    args = parser.parse_args(argv)
    args.skus = args.skus or (2000 if args.quick else 20_000)
    args.reservations = args.reservations or (2000 if args.quick else 6000)
    if args.stores < 30 or args.skus < 1 or args.reservations < 10 or args.clients < 1:
        parser.error("--stores at least 30; --skus, --reservations, --clients positive")
    began = time.perf_counter()
    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    results = [measure(backend, args) for backend in backends]
    print()
    print(f"Stock: {args.skus:,} SKUs x {args.stores} stores; {args.reservations:,} reservations from "
          f"{args.clients} clients (1 in 10 on a hot SKU with {HOT_UNITS} units); {args.lookups:,} availability "
          "look-ups from 8 clients; one uvicorn worker")  # fmt: skip
    print_table(
        ["backend", "reservations/s", "GET /healthz/s", "ratio", "reserved", "refused", "hot SKU reserved",
         "oversold", "availability p50 ms", "p99 ms"],
        [[r["backend"], f"{r['rate']:,.0f}", f"{r['baseline']:,.0f}", f"{r['rate'] / r['baseline']:.2f}",
          f"{r['ok']:,}", f"{r['short']:,}", f"{r['hot_ok']}/{HOT_UNITS}", r["oversold"], f"{r['p50']:.1f}",
          f"{r['p99']:.1f}"] for r in results],
    )  # fmt: skip
    by = {r["backend"]: r for r in results}
    figures: dict[str, Any] = {"oversold": sum(r["oversold"] for r in results)}
    if "sqlite" in by:
        figures["sqlite_reservations_per_s"] = round(by["sqlite"]["rate"])
    if "postgresql" in by:
        figures["postgres_reservations_per_s"] = round(by["postgresql"]["rate"])
    figures["availability_p99_ms"] = round(max(r["p99"] for r in results), 1)
    figures["availability_p99_ms_by_backend"] = {r["backend"]: round(r["p99"], 1) for r in results}
    pg = by.get("postgresql")
    print(
        f"targets: oversold 0: {'met' if figures['oversold'] == 0 else 'NOT met'}; >= {TARGET_RESERVATIONS_PER_S:,} "
        f"reservations/s on PostgreSQL: {'met' if pg and pg['rate'] >= TARGET_RESERVATIONS_PER_S else 'NOT met'}; "
        f"availability p99 < {TARGET_AVAILABILITY_P99_MS} ms: "
        f"{'met' if figures['availability_p99_ms'] < TARGET_AVAILABILITY_P99_MS else 'NOT met'}"
    )
    figures.update(skus=args.skus, stores=args.stores, reservations=args.reservations, clients=args.clients,
                   elapsed_s=round(time.perf_counter() - began, 1))  # fmt: skip
    print_json_line(figures)
    return 0


if __name__ == "__main__":
    bench_main(main, "bench/stock.py")
