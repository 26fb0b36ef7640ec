"""Channel adapters: each turns what a provider sends into an ``Inbound`` for the inbox and registers
the sender that delivers agents' replies on its channels.

``install(app, settings)`` is called once by ``create_app``: each adapter adds its routes and senders.
"""

from __future__ import annotations

from fastapi import FastAPI

from parcours.config import Settings


def install(app: FastAPI, settings: Settings) -> None:
    # Imported here: the adapters import the inbox, which the app factory imports first.
    from parcours.channels import email, meta, telephony, twilio, widget

    for adapter in (email, meta, telephony, twilio, widget):
        adapter.install(app, settings)
