"""Omnichannel commerce: offers, locations and stock, reservations, orders, payments, returns, loyalty.

``install(app)`` adds each part's routes (called once by ``create_app``)."""

from __future__ import annotations

from fastapi import FastAPI

from parcours.routing import add_routes


def install(app: FastAPI) -> None:
    # One line per part (its module's router); stock and reservations first, the busiest (FastAPI tries
    # routes in the order they were added):
    from parcours.commerce import loyalty_api, offers_api, stock_api, store_api

    add_routes(app, stock_api.router)
    add_routes(app, loyalty_api.router)
    add_routes(app, offers_api.router)
    add_routes(app, store_api.router)
    return None
