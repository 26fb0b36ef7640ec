"""``parcours demo``: a French coffee retailer, its stores, products and customers, fed through the pipeline.

Everything here is generated from a seed (same seed, same population) and sent as Segment-spec messages
to :func:`parcours.ingest.service.ingest_messages`, so identity resolution links the people exactly as it
would in production: an anonymous browser becomes a customer when she signs in, a loyalty card swiped at
a till meets the e-mail typed on the web shop, a caller is recognised by the number the web shop knows.

The pieces, one job each:

- :mod:`parcours.demo.catalogue` — the retailer's reference data: stores, products, sources, name lists;
- :mod:`parcours.demo.people` — drawing customers: names, e-mails, phones, loyalty cards, ids;
- :mod:`parcours.demo.journey` — a journey's clock and messages, baskets and orders; the channels add to it
  in :mod:`~parcours.demo.web`, :mod:`~parcours.demo.app`, :mod:`~parcours.demo.stores` and
  :mod:`~parcours.demo.conversations`;
- :mod:`parcours.demo.personas` — each persona's journey through those channels;
- :mod:`parcours.demo.households` — partners sharing a till: the identity conflicts to review;
- :mod:`parcours.demo.service_desk` — the inbox: agents, teams, rules and conversations on every channel;
- :mod:`parcours.demo.shop` — catalogue, stock, loyalty, recent orders, reservations, pickups, returns;
- :mod:`parcours.demo.console_users` — a console sign-in for every role;
- this module — :func:`populate`, which runs it all through the pipeline, and its result, :class:`DemoInfo`.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from parcours.auth.service import SourceInfo, create_source, create_token
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.types import utcnow
from parcours.demo.catalogue import (
    HISTORY_DAYS,
    OMNICHANNEL,
    PRODUCTS,
    RETAILER_NAME,
    SERVICE,
    SOURCES,
    STORES,
)
from parcours.demo.console_users import DEMO_LOGINS, DemoLogin, create_console_users
from parcours.demo.helpers import DemoError
from parcours.demo.households import shared_receipts
from parcours.demo.journey import Pending, World
from parcours.demo.people import DemoCustomer, Registry, make_customer
from parcours.demo.personas import live
from parcours.demo.service_desk import seed_service_desk
from parcours.demo.shop import seed_shop
from parcours.errors import ParcoursError
from parcours.identity import service as identity
from parcours.ingest.activity import RequestActivity, record_activity
from parcours.ingest.service import ingest_messages
from parcours.models import Consent, Event, Identifier, IdentityConflict, MatchReview, Merge, Profile

# The catalogue's data stays importable from here, where earlier code found it.
__all__ = [
    "DEMO_LOGINS",
    "HISTORY_DAYS",
    "PRODUCTS",
    "STORES",
    "DemoError",
    "DemoInfo",
    "DemoLogin",
    "ExampleCustomer",
    "populate",
]


# --------------------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class ExampleCustomer:
    name: str
    gender: str
    email: str
    phone: str  # national format, as an agent would type it
    profile_id: str
    channels: list[str]


@dataclass(frozen=True)
class DemoInfo:
    retailer: str
    customers: int
    stores: int
    products: int
    events: int
    events_by_channel: dict[str, int]
    profiles: int  # active (not merged into another)
    profiles_created: int
    merges: int
    identifiers: int
    consents: int
    conflicts: int
    locations: int  # warehouse, stores and relay points with their own stock
    points_postings: int  # loyalty points earned on past purchases
    reservations_held: int  # reserved online, waiting in stores
    conversations: int  # customer-service conversations in the inbox
    waiting: int  # of which still waiting for a first answer
    agent_token: str  # the supervisor's (Sonia Martin) token for the agent API
    match_merges: int  # merges made by probabilistic matching (no identifier shared)
    match_reviews: int  # pairs waiting in the review queue
    conversations_by_channel: dict[str, int]  # conversations by the channel they started on
    snoozed: int
    unassigned: int  # open or pending conversations nobody is assigned to
    sla_breached: int  # conversations with a missed service-level target
    sla_running: int  # conversations with a target still running
    rated: int  # satisfaction answers
    orders: int  # recent orders in the orders table
    orders_by_channel: dict[str, int]
    returns: int
    logins: list[DemoLogin]  # console sign-ins, one or more per role
    seconds: float
    write_keys: dict[str, str]  # source name -> write key
    web_write_key: str
    api_token: str
    example: ExampleCustomer | None

    def counts(self) -> dict[str, Any]:
        """Everything the seed decides (no secrets, ids or timings): equal for equal seeds."""
        return {
            "customers": self.customers,
            "events": self.events,
            "events_by_channel": dict(self.events_by_channel),
            "profiles": self.profiles,
            "profiles_created": self.profiles_created,
            "merges": self.merges,
            "identifiers": self.identifiers,
            "consents": self.consents,
            "conflicts": self.conflicts,
            "locations": self.locations,
            "points_postings": self.points_postings,
            "reservations_held": self.reservations_held,
            "conversations": self.conversations,
            "waiting": self.waiting,
            "match_merges": self.match_merges,
            "match_reviews": self.match_reviews,
            "conversations_by_channel": dict(self.conversations_by_channel),
            "snoozed": self.snoozed,
            "unassigned": self.unassigned,
            "sla_breached": self.sla_breached,
            "sla_running": self.sla_running,
            "rated": self.rated,
            "orders": self.orders,
            "orders_by_channel": dict(self.orders_by_channel),
            "returns": self.returns,
            "logins": [(login.role, login.email) for login in self.logins],
        }

    def console_lines(self, base_url: str) -> list[str]:
        """The console's address and a sign-in for every role."""
        lines = [f"  Console             {base_url.rstrip('/')}/console/   (every login's password: "
                 f"{self.logins[0].password})" if self.logins else "  Console             no logins"]  # fmt: skip
        email_width = max((len(login.email) for login in self.logins), default=0)
        name_width = max((len(login.name) for login in self.logins), default=0)
        for login in self.logins:
            lines.append(f"    {login.role:<16} {login.email:<{email_width}}  {login.name:<{name_width}}  "
                         f"{login.locale}  {login.what}")  # fmt: skip
        return lines

    def summary(self, base_url: str) -> str:
        base = base_url.rstrip("/")
        channels = "  ".join(f"{name} {number:,}" for name, number in self.events_by_channel.items())
        lines = [
            "",
            f"{self.retailer} is open: {self.customers:,} customers, {self.stores} stores, "
            f"{self.products} products, {self.events:,} events in {self.seconds:.1f} s.",
            "",
            f"  Events per channel  {channels}",
            f"  Profiles            {self.profiles:,} unified customers ({self.profiles_created:,} profiles "
            f"started, {self.merges:,} merged when a later event showed two were one person)",
            f"  Identifiers         {self.identifiers:,} (e-mails, phones, loyalty cards, till and web ids, …)",
            f"  Consent records     {self.consents:,}",
        ]
        lines.append(
            f"  Shop                {self.products} products in every channel's offer, {self.locations} "
            f"locations with stock, {self.points_postings:,} loyalty postings, {self.reservations_held} "
            "reservations waiting in stores (GET /v1/availability/MA-CAP-002?near=48.86,2.35)"
        )
        lines.append(
            f"  Orders              {self.orders:,} in the last four weeks ("
            + ", ".join(f"{channel} {number}" for channel, number in self.orders_by_channel.items())
            + f"), {self.returns} returned"
        )
        lines.append(
            f"  Service client      {self.conversations:,} conversations in the inbox, {self.waiting:,} waiting "
            f"for an answer, {self.unassigned} unassigned, {self.snoozed} snoozed, {self.sla_breached} past an "
            f"SLA target, {self.rated} satisfaction answers (GET /v1/inbox/conversations)"
        )
        lines.append(
            "  Channels            "
            + "  ".join(f"{channel} {number}" for channel, number in self.conversations_by_channel.items())
        )
        if self.match_merges:
            lines.append(f"  Matched by name     {self.match_merges:,} profiles merged by probabilistic matching "
                         "(paper coupons: no identifier shared)")  # fmt: skip
        if self.match_reviews:
            lines.append(f"  Likely matches      {self.match_reviews:,} to review (GET /v1/identity/matches)")
        if self.conflicts:
            lines.append(f"  Identity conflicts  {self.conflicts:,} to review (GET /v1/identity/conflicts)")
        lines += ["", *self.console_lines(base)]
        lines += [
            "",
            f"  API                 {base}",
            f"  API docs            {base}/docs",
            f"  API token           {self.api_token}   (read profiles: Authorization: Bearer …)",
            f"  Agent token         {self.agent_token}   (Sonia Martin, supervisor: the inbox API)",
            f"  Web shop write key  {self.web_write_key}   (send events: HTTP Basic, the key as user name)",
            "  Other write keys",
        ]
        width = max(len(name) for name in self.write_keys)
        lines += [
            f"    {name:<{width}}  {key}"
            for name, key in self.write_keys.items()
            if key != self.web_write_key
        ]
        lines += ["", "Try it:", ""]
        example = self.example
        email = example.email if example else "camille.martin@gmail.com"
        who = f"it joins {example.name}'s profile" if example else "a profile is created or found"
        lines += [
            f"  # a new browser signs in on the web shop: {who}",
            f"  curl -u {self.web_write_key}: -H 'Content-Type: application/json' \\",
            f'       -d \'{{"anonymousId": "my-new-laptop", "traits": {{"email": "{email}"}}}}\' \\',
            f"       {base}/v1/identify",
            "",
            "  # from a web page: Segment's analytics.js, unchanged, pointed at Parcours",
            f"  AnalyticsBrowser.load({{ writeKey: '{self.web_write_key}', cdnURL: '{base}' }})",
        ]
        if example:
            digits = example.phone.replace(" ", "")
            lines += [
                "",
                f"  # {example.name}, found by the phone number the service client sees "
                f"({', '.join(example.channels)})",
                f"  curl -H 'Authorization: Bearer {self.api_token}' \\",
                f"       '{base}/v1/profiles?identifier=phone:{digits}'",
                "",
                f"  # {'her' if example.gender == 'female' else 'his'} history on every channel, oldest first",
                f"  curl -H 'Authorization: Bearer {self.api_token}' \\",
                f"       '{base}/v1/profiles/{example.profile_id}/timeline?limit=20'",
            ]
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- populate
def _ingest(
    database: Database,
    settings: Settings,
    sources: dict[str, SourceInfo],
    pending: list[Pending],
    batch_size: int,
) -> None:
    """Feed the messages in time order, a transaction per batch; within a batch, one call per source."""
    pending.sort(key=lambda item: (item.timestamp, item.seq))
    for start in range(0, len(pending), batch_size):
        groups: dict[str, list[dict[str, Any]]] = {}
        for item in pending[start : start + batch_size]:
            groups.setdefault(item.source, []).append(item.message)
        with database.write() as session:
            for key, messages in groups.items():
                result = ingest_messages(session, settings, sources[key], messages, expected_type=None)
                counted = RequestActivity(
                    sources[key].id, "batch", utcnow(), len(messages), recorded=result.recorded
                )
                record_activity(session, [counted])  # as the tracking API counts what a source sends
                if result.errors or result.recorded != len(messages):
                    first = result.errors[0] if result.errors else {}
                    bad = messages[first["index"]] if first else None
                    raise DemoError(
                        f"the pipeline refused generated events from {sources[key].name!r}: "
                        f"{result.as_response()}; first refused message: {bad}"
                    )


def _pick_example(
    database: Database, settings: Settings, population: list[DemoCustomer]
) -> ExampleCustomer | None:
    """The most omnichannel customer among the first candidates, found the way an agent would: by phone."""
    candidates = [c for c in population if c.persona == OMNICHANNEL][:40]
    candidates += [c for c in population if c.persona == SERVICE][:10]
    best: tuple[int, int, ExampleCustomer] | None = None
    with database.read() as session:
        registry = identity.load_registry(session, settings.default_phone_region)
        for customer in candidates:
            try:
                profile_id = identity.find_profile_id(session, registry, "phone", customer.mobile_national)
            except ParcoursError:  # no phone event reached this customer: not a good example
                continue
            view = identity.profile_view(session, profile_id)
            channels = [entry["channel"] for entry in view["channels"]]
            events = sum(int(entry["events"]) for entry in view["channels"])
            example = ExampleCustomer(
                customer.name, customer.gender, customer.email, customer.mobile_national, view["id"], channels
            )
            if best is None or (len(channels), events) > best[:2]:
                best = (len(channels), events, example)
    return best[2] if best else None


def populate(
    database: Database,
    settings: Settings,
    *,
    customers: int = 3000,
    seed: int = 7,
    now: datetime | None = None,
    batch_size: int = 500,
) -> DemoInfo:
    """Create the retailer's sources, a token and ``customers`` customers' histories; return what was made.

    The same seed gives the same population and the same counts. History ends at midnight UTC of the day
    of ``now`` (today by default) and starts eighteen months earlier; the inbox's newest requests, the
    reservations and the pickups to hand over are dated in the hours before ``now`` itself, so they are
    current when the server starts. Console users of every role are created (:data:`DEMO_LOGINS`).
    """
    if customers < 1:
        raise ValueError("customers: must be at least 1")
    started = time.perf_counter()
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    end = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    world = World(start=end - timedelta(days=HISTORY_DAYS), end=end)

    with database.write() as session:
        sources: dict[str, SourceInfo] = {}
        write_keys: dict[str, str] = {}
        for key, name, channel in SOURCES:
            sources[key], write_keys[name] = create_source(session, name, channel)
        token = create_token(session, "demo")

    unique = Registry()
    population: list[DemoCustomer] = []
    for index in range(customers):
        rng = random.Random(f"parcours-demo:{seed}:{index}")
        customer = make_customer(index, rng, unique, end.year)
        population.append(customer)
        live(world, customer, rng)

    _ingest(database, settings, sources, world.pending, batch_size)
    _ingest(database, settings, sources, shared_receipts(database, population, end, seed), batch_size)
    desk = seed_service_desk(database, settings, population, end, seed, now=moment)
    shop = seed_shop(database, population, end, seed, now=moment)
    with database.write() as session:
        logins = create_console_users(session)

    with database.read() as session:
        by_channel = Counter(
            {
                channel: int(number)
                for channel, number in session.execute(
                    select(Event.channel, func.count()).group_by(Event.channel)
                )
            }
        )
        active = session.scalar(
            select(func.count()).select_from(Profile).where(Profile.merged_into_id.is_(None))
        )
        created = session.scalar(select(func.count()).select_from(Profile))
        merges = session.scalar(select(func.count()).select_from(Merge).where(Merge.undone_at.is_(None)))
        identifiers = session.scalar(select(func.count()).select_from(Identifier))
        consents = session.scalar(select(func.count()).select_from(Consent))
        conflicts = session.scalar(select(func.count()).select_from(IdentityConflict))
        match_merges = session.scalar(
            select(func.count()).select_from(Merge).where(Merge.rule.like("probabilistic match%"))
        )
        match_reviews = session.scalar(
            select(func.count()).select_from(MatchReview).where(MatchReview.status == "pending")
        )
    example = _pick_example(database, settings, population)
    return DemoInfo(
        retailer=RETAILER_NAME,
        customers=customers,
        stores=len(STORES),
        products=len(PRODUCTS),
        events=sum(by_channel.values()),
        events_by_channel=dict(sorted(by_channel.items(), key=lambda item: (-item[1], item[0]))),
        profiles=active or 0,
        profiles_created=created or 0,
        merges=merges or 0,
        identifiers=identifiers or 0,
        consents=consents or 0,
        conflicts=conflicts or 0,
        locations=shop.locations,
        points_postings=shop.points_posted,
        reservations_held=shop.reservations_held,
        conversations=desk.conversations,
        waiting=desk.waiting,
        agent_token=desk.agent_token,
        match_merges=match_merges or 0,
        match_reviews=match_reviews or 0,
        conversations_by_channel=desk.by_channel,
        snoozed=desk.snoozed,
        unassigned=desk.unassigned,
        sla_breached=desk.sla_breached,
        sla_running=desk.sla_running,
        rated=desk.rated,
        orders=shop.orders,
        orders_by_channel=shop.orders_by_channel,
        returns=shop.returns,
        logins=logins,
        seconds=time.perf_counter() - started,
        write_keys=write_keys,
        web_write_key=write_keys[SOURCES[0][1]],
        api_token=token,
        example=example,
    )
