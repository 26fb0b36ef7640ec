"""Group commit for reservations: the API hands its requests to one writer thread
(``parcours.db.group_commit``), which reserves whatever is waiting in one transaction — the request ids
claimed in one statement, the stock decided under the levels' locks in arrival order — and commits once.
A request refused (insufficient stock, a bad line) gets its error; the others in its batch go on."""

from __future__ import annotations

from sqlalchemy.orm import Session

from parcours.commerce.reservations import Outcome, ReservationRequest, reserve_batch
from parcours.config import Settings
from parcours.db.group_commit import GroupCommit
from parcours.db.types import utcnow


class ReservationWriter(GroupCommit[ReservationRequest, Outcome]):
    thread_name = "parcours-reservation-writer"

    def store_batch(
        self, session: Session, settings: Settings, items: list[ReservationRequest]
    ) -> list[Outcome]:
        return reserve_batch(session, items, now=utcnow(), phone_region=settings.default_phone_region)
