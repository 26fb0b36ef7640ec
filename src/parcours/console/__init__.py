"""The console: server-rendered pages for agents, store associates, marketers and admins, under
``/console``. Each area has its own module (its router) and templates folder."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from parcours.routing import add_routes

STATIC_DIR = Path(__file__).resolve().parent / "static"


def install(app: FastAPI) -> None:
    from parcours.console import admin, customers, home, inbox, store
    from parcours.console.web import SignInThrottle

    app.state.sign_in_throttle = SignInThrottle()

    for module in (home, inbox, customers, store, admin):
        add_routes(app, module.router)
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
