"""Inbox throughput and live latency: customer messages through the Twilio webhook (signature checked,
sender resolved to the unified profile, conversation found or opened, automation, routing, SLA clocks,
stored) and the time until each message shows on the live feed of the agent it was routed to.

    .venv/bin/python bench/inbox.py                  # 5,000 messages from 1,000 customers, 8 clients
    .venv/bin/python bench/inbox.py --quick          # 1,000 messages
    .venv/bin/python bench/inbox.py --messages 20000 --clients 16

One run: a fresh, migrated SQLite database with 20 agents in a least-busy team (an automation rule sends
every new conversation to it), a ``uvicorn`` process (one worker) on a loopback port with a Twilio auth
token configured, and one live-feed WebSocket per agent (``/v1/inbox/live``) opened before the first
message. The messages (SMS from French mobiles, each customer writing several times: conversations
continue) are pre-signed, then posted over keep-alive connections; the rate is messages over the wall
time from the first post to the last answer. The latency of a message runs from the start of its post
to the arrival of its ``message_received`` event on the assigned agent's socket: every message must
arrive on exactly that agent's feed, or the benchmark fails.

The baseline, measured in the same run against the same server: ``GET /healthz`` at the same
concurrency (the HTTP stack with no work), so the ratio shows what the inbox costs on top of HTTP.
The table, then one JSON line, go to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import hashlib
import hmac
import json
import random
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BenchError,
    CpuMeter,
    HttpClient,
    bench_main,
    bench_workdir,
    exit_on_sigterm,
    fresh_database,
    log,
    migrated,
    percentile,
    print_json_line,
    print_table,
    profiled,
    run_clients,
    run_server,
)
from parcours.inbox import automation
from parcours.inbox.agents import add_member, create_agent, create_team

TARGET_MESSAGES_PER_S = 1000
TARGET_P99_MS = 100
AUTH_TOKEN = "bench-twilio-auth-token"
ACCOUNT_SID = "AC" + "b" * 32
WEBHOOK = "/v1/channels/twilio/messages"
AGENTS = 20
WORDS = ("Bonjour", "ma commande", "n'est pas arrivée", "merci", "je voudrais", "retourner", "un article",
         "la machine", "fuit", "quand", "livraison", "magasin", "horaires", "carte fidélité")  # fmt: skip


def signature(url: str, params: list[tuple[str, str]]) -> str:
    """X-Twilio-Signature, computed as Twilio does (see parcours.channels.twilio)."""
    payload = url + "".join(name + value for name, value in sorted(params))
    return base64.b64encode(hmac.new(AUTH_TOKEN.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def workload(count: int, customers: int, seed: int) -> list[tuple[str, list[tuple[str, str]]]]:
    """(MessageSid, form fields) of every message, customers interleaved."""
    rng = random.Random(seed)
    numbers = [f"+336{rng.choice('01245678')}{rng.randrange(1_000_000, 9_999_999)}" for _ in range(customers)]
    messages = []
    for n in range(count):
        sid = f"SM{n:032x}"
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        params = [("AccountSid", ACCOUNT_SID), ("MessageSid", sid), ("From", rng.choice(numbers)),
                  ("To", "+33700000000"), ("Body", body), ("NumMedia", "0")]  # fmt: skip
        messages.append((sid, params))
    return messages


class Feeds:
    """One live-feed WebSocket per agent, in a background event loop; records when each message's
    event arrives and on whose feed."""

    def __init__(self, base_url: str, tokens: dict[str, str]) -> None:
        self.url = base_url.replace("http://", "ws://") + "/v1/inbox/live"
        self.tokens = tokens
        self.arrived: dict[str, tuple[float, str, str]] = {}  # sid -> (time, feed agent, assigned agent)
        self.duplicates = 0
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks: list[concurrent.futures.Future[None]] = []

    def start(self) -> None:
        self.thread.start()
        ready = [threading.Event() for _ in self.tokens]
        for (agent_id, token), flag in zip(self.tokens.items(), ready, strict=True):
            self.tasks.append(
                asyncio.run_coroutine_threadsafe(self._listen(agent_id, token, flag), self.loop)
            )
        for flag in ready:
            if not flag.wait(30):
                raise BenchError("a live feed did not open within 30 s")

    async def _listen(self, agent_id: str, token: str, ready: threading.Event) -> None:
        import websockets

        async with websockets.connect(self.url, max_queue=None) as socket:
            await socket.send(json.dumps({"token": token}))
            hello = json.loads(await socket.recv())
            if hello.get("type") != "ready":
                raise BenchError(f"live feed refused: {hello}")
            ready.set()
            async for raw in socket:
                item = json.loads(raw)
                if item.get("type") != "message_received":
                    continue
                sid = item["data"].get("provider_message_id")
                if sid in self.arrived:
                    self.duplicates += 1
                self.arrived[sid] = (time.perf_counter(), agent_id, item.get("agent_id") or "")

    def wait_for(self, sids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(sid in self.arrived for sid in sids):
                return
            time.sleep(0.05)

    def stop(self) -> None:
        async def close() -> None:  # cancel the sockets and let them close before the loop stops
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)


def prepare(url: str) -> dict[str, str]:
    """Migrate, create the agents (a least-busy team; a rule routes new conversations to it); their tokens."""
    database = migrated(url)
    tokens: dict[str, str] = {}
    try:
        with database.write() as session:
            team = create_team(session, "Service client", assignment="least_busy")
            for n in range(AGENTS):
                agent, token = create_agent(session, f"Agent {n:02d}", languages=["fr", "en"],
                                            capacity={"*": 1000})  # fmt: skip
                add_member(session, team.id, agent.id)
                tokens[agent.id] = token
            automation.create_rule(
                session, "to the team", "conversation_created", {}, {"assign_team": team.id}
            )
    finally:
        database.dispose()
    return tokens


def run(args: argparse.Namespace) -> dict[str, Any]:
    messages = workload(args.messages, args.customers, args.seed)
    with bench_workdir("parcours-bench-inbox-") as workdir, fresh_database("sqlite", workdir) as url:
        tokens = prepare(url)
        environment = {"PARCOURS_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PARCOURS_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                       "PARCOURS_INBOX_WORKER_SECONDS": "5"}  # fmt: skip
        with run_server(url, workdir, environment=environment) as server:
            webhook_url = server.url + WEBHOOK
            bodies = [
                (sid, urlencode(params).encode(), signature(webhook_url, params)) for sid, params in messages
            ]
            feeds = Feeds(server.url, tokens)
            feeds.start()
            log(
                f"{len(tokens)} agents listening; sending {len(bodies):,} messages from {args.customers:,} customers"
            )
            started: dict[str, float] = {}

            def send(slot: int, failed: threading.Event) -> None:
                client = HttpClient(server.port)
                try:
                    for index in range(slot, len(bodies), args.clients):
                        if failed.is_set():
                            return
                        sid, body, signed = bodies[index]
                        started[sid] = time.perf_counter()
                        status, raw = client.request("POST", WEBHOOK, body, {
                            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signed})  # fmt: skip
                        if status != 200:
                            raise BenchError(f"webhook answered {status}: {raw[:200]!r}")
                finally:
                    client.close()

            meter = CpuMeter(server.pid)
            with (
                (
                    profiled(server.pid, workdir, "server during the webhook posts", gil=args.gil)
                    if args.profile
                    else nullcontext()
                ),
                meter.measuring(),
            ):
                seconds = run_clients(args.clients, send, "webhook posts")
            log(f"CPU per message: {meter.per_operation(len(bodies))}")
            feeds.wait_for([sid for sid, _, _ in bodies], timeout=30)
            feeds.stop()
            missing = [sid for sid, _, _ in bodies if sid not in feeds.arrived]
            if missing:
                raise BenchError(f"{len(missing)} messages never reached an agent's live feed")
            wrong = [sid for sid, (_, seen_by, assigned) in feeds.arrived.items() if seen_by != assigned]
            if wrong:
                raise BenchError(f"{len(wrong)} messages reached a feed other than the assigned agent's")
            latencies = [1000 * (feeds.arrived[sid][0] - started[sid]) for sid, _, _ in bodies]

            def ping(slot: int, failed: threading.Event) -> None:
                client = HttpClient(server.port)
                try:
                    for _ in range(slot, len(bodies), args.clients):
                        status, _ = client.request("GET", "/healthz")
                        if status != 200:
                            raise BenchError(f"/healthz answered {status}")
                finally:
                    client.close()

            baseline_seconds = run_clients(args.clients, ping, "baseline")
    rate = len(bodies) / seconds
    baseline = len(bodies) / baseline_seconds
    return {
        "rate": rate,
        "baseline": baseline,
        "p50": percentile(latencies, 0.5),
        "p90": percentile(latencies, 0.9),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
    }


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=None, help="messages (default 5000; quick 1000)")
    parser.add_argument("--customers", type=int, default=None, help="distinct senders (default messages / 5)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent webhook connections")
    parser.add_argument("--seed", type=int, default=20260301)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true", help="py-spy on the server during the posts")
    parser.add_argument("--gil", action="store_true", help="with --profile: sample the GIL holder only")
    args = parser.parse_args(argv)
    args.messages = args.messages or (1000 if args.quick else 5000)
    args.customers = args.customers or max(1, args.messages // 5)
    if args.messages < 1 or args.clients < 1 or args.customers < 1:
        parser.error("--messages, --customers and --clients must be positive")
    began = time.perf_counter()
    result = run(args)
    print()
    print(f"Inbox: {args.messages:,} Twilio webhooks from {args.customers:,} customers, {args.clients} clients, "
          f"{AGENTS} agents' live feeds, SQLite, one uvicorn worker")  # fmt: skip
    print_table(
        ["messages/s", "baseline GET /healthz/s", "ratio", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        [[f"{result['rate']:,.0f}", f"{result['baseline']:,.0f}", f"{result['rate'] / result['baseline']:.2f}",
          f"{result['p50']:.1f}", f"{result['p90']:.1f}", f"{result['p99']:.1f}", f"{result['max']:.1f}"]],
    )  # fmt: skip
    rate_met, p99_met = result["rate"] >= TARGET_MESSAGES_PER_S, result["p99"] < TARGET_P99_MS
    print(f"targets: >= {TARGET_MESSAGES_PER_S:,} messages/s: {'met' if rate_met else 'NOT met'}; "
          f"p99 < {TARGET_P99_MS} ms: {'met' if p99_met else 'NOT met'}")  # fmt: skip
    print_json_line({
        "messages_per_s": round(result["rate"]),
        "p99_ms": round(result["p99"], 1),
        "p50_ms": round(result["p50"], 1),
        "p90_ms": round(result["p90"], 1),
        "baseline_requests_per_s": round(result["baseline"]),
        "ratio_vs_baseline": round(result["rate"] / result["baseline"], 3),
        "messages": args.messages,
        "customers": args.customers,
        "clients": args.clients,
        "targets_met": rate_met and p99_met,
        "elapsed_s": round(time.perf_counter() - began, 1),
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    bench_main(main, "bench/inbox.py")
