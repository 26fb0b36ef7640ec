"""Channel adapters: each turns what a provider sends into an ``Inbound`` for the inbox and registers
the sender that delivers agents' replies on its channels.

``install(app, settings)`` is called once by ``create_app``: each adapter adds its routes and senders.
"""

from __future__ import annotations

from fastapi import FastAPI

from parcours.config import Settings


def install(app: FastAPI, settings: Settings) -> None:
    # Each adapter's install line (one per adapter module, in alphabetical order of modules):
    from parcours.channels import email

    email.install(app, settings)
    from parcours.channels import meta

    meta.install(app, settings)
    from parcours.channels import twilio

    twilio.install(app, settings)
    from parcours.channels import widget

    widget.install(app, settings)
    return None
