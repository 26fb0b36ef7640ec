"""Sources: Parcours's own (the inbox's channels, commerce) are marked internal, keep their name apart
from the business's sources, and cannot be disabled."""

from __future__ import annotations

import pytest

from parcours.auth import service as auth
from parcours.db.engine import Database
from parcours.errors import Conflict


def test_internal_sources_stay_apart_and_cannot_be_disabled(db: Database) -> None:
    with db.write() as session:
        business, _key = auth.create_source(session, "Commerce", "web")  # the business chose this name first
        own = auth.internal_source(session, "Commerce", "other")
        assert own.name == "Commerce (Parcours)" and own.internal and own.id != business.id
        assert auth.internal_source(session, "Commerce", "other") == own  # found again, not made twice
        inbox = auth.internal_source(session, "Inbox · email", "email")
        assert inbox.name == "Inbox · email" and inbox.internal
        with pytest.raises(Conflict, match="Parcours's own source"):
            auth.disable_source(session, "Inbox · email")
        auth.disable_source(session, "Commerce")  # the business's own may be
        listed = {s.name: s.internal for s in auth.list_sources(session, include_disabled=True)}
    assert listed == {"Commerce": False, "Commerce (Parcours)": True, "Inbox · email": True}
