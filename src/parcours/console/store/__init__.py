"""Console pages: the store area, for store associates on a tablet.

The associate's store is ``page.user.location_id`` (an admin picks one, remembered in the query string as
``store``). Pages: the store's home (``home``: customer look-up, product search, the pickups to hand over
today), a customer as the store sees them (``customer``), a SKU's stock in every store nearest first
(``stock``), an order's return (``returns``). Actions (``actions``; POST, CSRF, permission "store"):
reserve, order for the customer (endless aisle), hand over a reservation, cancel one; and take a return.
Each form carries a request id (a uuid) so that a double tap acts once.

Everything is done through the commerce and identity services; the few read-only queries the pages need
(names, pickups, recent orders with their lines) are here, each one statement."""

from __future__ import annotations

from fastapi import APIRouter

from parcours.console.store import actions, customer, home, returns, stock
from parcours.routing import add_routes

router = APIRouter(include_in_schema=False)
for module in (home, customer, stock, returns, actions):
    add_routes(router, module.router)
