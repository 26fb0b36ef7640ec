"""Households: two people who share a till. One partner's loyalty card is scanned and the receipt is
e-mailed to the other, who has a web account of their own. The event names two profiles that each hold a
different web account id (allowed once per profile), so identity resolution refuses to merge them: the
purchase lands on the card holder's profile and an identity conflict waits for someone to look at it."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count

from parcours.db.engine import Database
from parcours.demo.helpers import profiles_holding
from parcours.demo.journey import Pending, World
from parcours.demo.people import DemoCustomer
from parcours.demo.stores import StoreTills

SHARED_RECEIPTS = 8  # at most; fewer when the population is small


def shared_receipts(
    database: Database, population: list[DemoCustomer], end: datetime, seed: int
) -> list[Pending]:
    """Store purchases of the last days scanned with one partner's card, the receipt sent to the other's
    e-mail: messages for the store source, to ingest like the rest of the history."""
    rng = random.Random(f"parcours-demo-households:{seed}")
    cards = profiles_holding(database, "loyalty_card", [c.loyalty_card for c in population if c.loyalty_card])
    emails = profiles_holding(database, "email", [c.email for c in population])
    with_account = set(
        profiles_holding(database, "user_id", [c.user_id for c in population if c.user_id]).values()
    )
    card_holders = [c for c in population if cards.get(c.loyalty_card or "") in with_account]
    account_holders = [c for c in population if emails.get(c.email) in with_account]
    # receipts numbered apart from the history's (which count from 100001)
    world = World(start=end - timedelta(days=10), end=end, order_numbers=count(900_001))
    used: set[str] = set()
    for holder in rng.sample(card_holders, len(card_holders)):
        if len(used) >= 2 * SHARED_RECEIPTS:
            break
        partners = [
            c
            for c in account_holders
            if c.store.id == holder.store.id
            and c.index != holder.index
            and emails[c.email] != cards[holder.loyalty_card or ""]
            and c.email not in used
        ]
        if holder.email in used or not partners:
            continue
        partner = rng.choice(partners)
        used.update((holder.email, partner.email))
        till = StoreTills(world, holder, rng, end - timedelta(days=rng.uniform(0.5, 9)))
        items = till.basket()
        properties = till.order_properties(till.order_id(holder.store.id), items, shipping=Decimal("0.00"),
                                           affiliation=holder.store.name)  # fmt: skip
        properties.update(store_id=holder.store.id, store_name=holder.store.name, receipt="email",
                          payment_method="carte_bancaire")  # fmt: skip
        context = till.store_context(holder.store, rng.randint(1, 3), ("loyalty_card", holder.loyalty_card),
                                     ("email", partner.email))  # fmt: skip
        till.track("store", "Order Completed", properties, context)
    return world.pending
