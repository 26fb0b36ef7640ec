"""Omnichannel commerce: offers, locations and stock, reservations, orders, payments, returns, loyalty.

``install(app)`` adds each part's routes (called once by ``create_app``)."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    # One line per part (its module's router); stock and reservations first, the busiest (FastAPI tries
    # routes in the order they were added):
    from parcours.commerce import loyalty_api, offers_api, stock_api, store_api

    app.include_router(stock_api.router)
    app.include_router(loyalty_api.router)
    app.include_router(offers_api.router)
    app.include_router(store_api.router)
    return None
