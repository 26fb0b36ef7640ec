"""The customer tells the agent another of their identifiers ("my e-mail is lea@…", a loyalty card read
out on the phone): recorded as an event of the conversation's customer carrying it, through identity
resolution. The identifier joins the customer; when another customer holds it, the two are merged by the
merge rules (recorded, reversible with unmerge), or kept apart with a conflict for review when a rule
forbids it. Nothing is merged that the rules would not merge for an event from any channel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.config import Settings
from parcours.db.types import utcnow
from parcours.errors import Conflict, InvalidInput
from parcours.identity import service as identity
from parcours.identity.kinds import InvalidIdentifier, KindRegistry
from parcours.identity.resolution import GraphCache
from parcours.inbox.agents import AgentInfo
from parcours.inbox.service import get_conversation, record_event
from parcours.models import Identifier, IdentityConflict

EVENT_NAME = "Identifier Given"
# Kinds an agent cannot be told: a device or browser id is the device's, never typed by a person.
NOT_GIVEN = frozenset({"anonymous_id"})


def kinds_an_agent_may_add(registry: KindRegistry) -> list[str]:
    """The identifier kinds a customer can give an agent, most telling first."""
    return sorted((kind for kind in registry.rules if kind not in NOT_GIVEN), key=registry.priority)


def add_identifier(
    session: Session,
    settings: Settings,
    conversation_id: str,
    kind: str,
    raw_value: str,
    agent: AgentInfo,
    *,
    cache: GraphCache | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record that the conversation's customer gave ``kind``/``raw_value``; returns the outcome and the
    customer's view. ``added``: it joined them; ``merged``: another customer held it, and the two are one
    now; ``kept apart``: another customer holds it and a rule keeps the two apart; ``not added``: the
    customer holds as many of that kind as a profile may. The last two name the rule and the reason."""
    conversation = get_conversation(session, conversation_id)
    registry = identity.load_registry(session, settings.default_phone_region)
    kind = kind.strip().lower()
    if kind not in registry or kind in NOT_GIVEN:
        allowed = ", ".join(kinds_an_agent_may_add(registry))
        raise InvalidInput(f"kind: {kind[:40]!r} is not an identifier a customer can give; one of {allowed}")
    try:
        value = registry.normalize(kind, raw_value)
    except InvalidIdentifier as error:
        raise InvalidInput(f"value: {error}") from None
    reason = registry.blocked_reason(kind, value)
    if reason is not None:
        raise InvalidInput(f"value: {reason}")
    customer = identity.resolve_profile_id(session, conversation.profile_id)
    before = identity.holder_of(session, kind, value)
    if before == customer:
        raise Conflict(f"{kind} {value} is already this customer's")
    held = session.execute(select(Identifier.kind, Identifier.value).where(Identifier.profile_id == customer))
    own: list[tuple[str, str]] = sorted(
        ((kind_held, value_held) for kind_held, value_held in held),
        key=lambda key: (registry.priority(key[0]) if key[0] in registry else 10**6, key),
    )
    if not own:
        raise Conflict("this conversation's customer holds no identifier any more (erased?)")
    now = now or utcnow()
    try:
        event_id, _ = record_event(
            session,
            settings,
            cache=cache,
            channel=conversation.last_inbound_channel,
            identifiers=[own[0], (kind, value)],
            name=EVENT_NAME,
            key=f"identify:{conversation.id}:{kind}:{value}",
            at=now,
            now=now,
            properties={
                "conversation_id": conversation.id,
                "agent_id": agent.id,
                "agent": agent.name,
                "kind": kind,
            },
        )
    except Conflict:
        raise Conflict(f"{kind} {value} was already given in this conversation") from None
    after = identity.resolve_profile_id(session, customer)
    result: dict[str, Any] = {"event_id": event_id, "kind": kind, "value": value}
    if identity.holder_of(session, kind, value) == after:
        result["outcome"] = "merged" if before is not None else "added"
    else:  # another customer holds it and a rule keeps the two apart, or this one holds its limit
        conflict = session.scalar(select(IdentityConflict).where(IdentityConflict.event_id == event_id))
        result["outcome"] = "kept apart" if before is not None else "not added"
        result["rule"] = conflict.rule if conflict is not None else None
        result["reason"] = conflict.reason if conflict is not None else None
    result["customer"] = identity.profile_view(session, after)
    return result
