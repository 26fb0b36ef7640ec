"""Console pages: the inbox. The conversation list with its filters (``listing``), one conversation's
thread across channels with the customer 360 panel beside it (``conversation``), the agent's actions on
it (``actions``: reply on a chosen channel, private note, macro, assign, priority and tags, snooze,
resolve, reopen, retry a failed reply), and the live feed (``live``: Server-Sent Events) that brings new
messages into open pages without a reload.

Who sees what (``common.Reach``): supervisors and admins ("inbox.all") every conversation; an agent the
conversations assigned to them, those of their teams, and the unassigned ones that belong to no team.
"""

from __future__ import annotations

from fastapi import APIRouter

from parcours.console.inbox import actions, conversation, listing, live
from parcours.routing import add_routes

router = APIRouter(include_in_schema=False)
for module in (listing, conversation, actions, live):
    add_routes(router, module.router)
