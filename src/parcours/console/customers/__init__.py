"""Console pages: the customers area — find a customer by any identifier or by name (``search``), the
customer's unified view (``customer``: profile, identifiers, channels, consent, the timeline on every
channel, orders, reservations, loyalty, satisfaction, conversations), the identity graph with unmerge
(``graph``), the matching review queue (``review``) and the identity conflicts queue (``conflicts``).

Everything here reads through the domains' services, plus a few read-only queries of its own (written to
use the tables' indexes and to load a page's rows in a handful of statements, never one per row)."""

from __future__ import annotations

from fastapi import APIRouter

from parcours.console.customers import conflicts, customer, graph, review, search
from parcours.routing import add_routes

router = APIRouter(include_in_schema=False)
for module in (search, customer, graph, review, conflicts):
    add_routes(router, module.router)
