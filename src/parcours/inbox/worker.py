"""The server's background work: deliver queued replies, raise SLA warnings and breaches, wake snoozed
conversations, expire store reservations. One pass every few seconds; each pass is its own transactions."""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from parcours.commerce import reservations
from parcours.db.engine import Database
from parcours.db.types import utcnow
from parcours.inbox import sla
from parcours.inbox.outbound import Outbox, deliver_pending
from parcours.inbox.service import wake_snoozed

log = logging.getLogger("parcours.inbox")


def one_pass(db: Database, outbox: Outbox) -> None:
    deliver_pending(db, outbox)
    with db.write() as session:
        now = utcnow()
        sla.check(session, now)
        wake_snoozed(session, now)
        reservations.expire_due(session, now)  # store reservations whose hold ran out release their stock


async def run_forever(db: Database, outbox: Outbox, every_seconds: float) -> None:
    while True:
        try:
            await run_in_threadpool(one_pass, db, outbox)
        except Exception:  # a pass that fails is logged and retried next time; the server keeps going
            log.exception("inbox background pass failed")
        await asyncio.sleep(every_seconds)
