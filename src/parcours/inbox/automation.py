"""Macros (canned responses with customer and order variables) and automation rules (event ->
conditions -> actions: tag, assign, set priority, reply with a macro)."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.config import Settings
from parcours.db.engine import forget_memo
from parcours.db.reference import reference
from parcours.db.types import utcnow
from parcours.errors import Conflict, InvalidInput, NotFound
from parcours.identity.resolution import GraphCache
from parcours.identity.service import resolve_profile_id
from parcours.ids import new_id
from parcours.inbox import feed
from parcours.inbox.agents import AgentInfo
from parcours.models import Agent, AutomationRule, Conversation, Event, Macro, Message, Profile, Team

EVENTS = ("conversation_created", "message_received")
CONDITIONS = ("channel", "body_contains", "priority", "language", "tags_any")
ACTIONS = ("add_tags", "set_priority", "assign_team", "assign_agent", "reply_macro")
MACRO_ACTIONS = ("add_tags", "set_priority", "set_status")
VARIABLES = (
    "customer.first_name",
    "customer.last_name",
    "customer.name",
    "customer.email",
    "agent.name",
    "conversation.id",
    "last_order.order_id",
    "last_order.total",
    "last_order.currency",
)
_VARIABLE = re.compile(r"\{\{\s*([a-z_]+\.[a-z_]+)\s*\}\}")
SYSTEM = AgentInfo("system", "Automation", "admin")


# ------------------------------------------------------------------------------------------ macros
def _check_template(body: str) -> str:
    body = body.strip()
    if not body or len(body) > 20_000:
        raise InvalidInput("body: must be 1 to 20,000 characters")
    unknown = sorted({name for name in _VARIABLE.findall(body) if name not in VARIABLES})
    if unknown:
        raise InvalidInput(f"body: unknown variable(s) {', '.join(unknown)}; known: {', '.join(VARIABLES)}")
    return body


def _check_macro_actions(actions: dict[str, Any]) -> dict[str, Any]:
    from parcours.inbox.service import PRIORITIES, STATUSES

    for name, value in actions.items():
        if name not in MACRO_ACTIONS:
            raise InvalidInput(f"actions: unknown action {name!r}; known: {', '.join(MACRO_ACTIONS)}")
        if name == "add_tags" and not (isinstance(value, list) and all(isinstance(t, str) for t in value)):
            raise InvalidInput("actions.add_tags: must be a list of strings")
        if name == "set_priority" and value not in PRIORITIES:
            raise InvalidInput(f"actions.set_priority: must be one of {', '.join(PRIORITIES)}")
        if name == "set_status" and (value not in STATUSES or value == "snoozed"):
            raise InvalidInput("actions.set_status: must be open, pending or resolved")
    return actions


def create_macro(session: Session, name: str, body: str, actions: dict[str, Any] | None = None) -> Macro:
    name = name.strip()
    if not name or len(name) > 120:
        raise InvalidInput("name: must be 1 to 120 characters")
    if session.scalar(select(Macro.id).where(Macro.name == name)) is not None:
        raise Conflict(f"a macro named {name!r} already exists")
    macro = Macro(
        id=new_id("mac"),
        name=name,
        body=_check_template(body),
        actions=_check_macro_actions(actions or {}),
        created_at=utcnow(),
    )
    session.add(macro)
    session.flush()
    return macro


def variables(session: Session, conversation: Conversation, agent: AgentInfo) -> dict[str, str]:
    """The values macros can use: the customer's traits and e-mail, the agent, the latest order on the
    customer's timeline (a Segment "Order Completed" event). The customer is the conversation's profile
    as it is now (its survivor, after a merge)."""
    profile_id = resolve_profile_id(session, conversation.profile_id)
    traits = session.scalar(select(Profile.traits).where(Profile.id == profile_id)) or {}
    first, last = (
        str(traits.get("firstName") or traits.get("first_name") or ""),
        str(traits.get("lastName") or traits.get("last_name") or ""),
    )
    order = (
        session.scalar(
            select(Event.properties)
            .where(Event.profile_id == profile_id, Event.name == "Order Completed")
            .order_by(Event.timestamp.desc())
            .limit(1)
        )
        or {}
    )
    total = order.get("total", order.get("revenue"))
    return {
        "customer.first_name": first,
        "customer.last_name": last,
        "customer.name": " ".join(part for part in (first, last) if part),
        "customer.email": str(traits.get("email") or ""),
        "agent.name": agent.name,
        "conversation.id": conversation.id,
        "last_order.order_id": str(order.get("order_id") or ""),
        "last_order.total": f"{total}" if total is not None else "",
        "last_order.currency": str(order.get("currency") or ""),
    }


def render(template: str, values: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda match: values.get(match.group(1), ""), template)


def apply_macro(
    session: Session,
    settings: Settings,
    outbox: Any,
    conversation_id: str,
    macro_id: str,
    agent: AgentInfo,
    *,
    channel: str | None = None,
    now: datetime | None = None,
) -> Message:
    """Reply with the macro's text (variables filled in) and apply its actions."""
    from parcours.inbox.outbound import write_reply
    from parcours.inbox.service import get_conversation, set_status

    now = now or utcnow()
    macro = session.get(Macro, macro_id)
    if macro is None:
        raise NotFound(f"macro {macro_id} not found")
    conversation = get_conversation(session, conversation_id)
    body = render(macro.body, variables(session, conversation, agent))
    message = write_reply(session, settings, outbox, conversation_id, agent, body, channel=channel, now=now)
    _apply(session, conversation, {k: v for k, v in macro.actions.items() if k != "set_status"}, now)
    if "set_status" in macro.actions:
        set_status(session, conversation_id, macro.actions["set_status"], snoozed_until=None, now=now)
    return message


# --------------------------------------------------------------------------------------- automation
def _check_rule(event: str, conditions: dict[str, Any], actions: dict[str, Any], session: Session) -> None:
    if event not in EVENTS:
        raise InvalidInput(f"event: must be one of {', '.join(EVENTS)}")
    for name, value in conditions.items():
        if name not in CONDITIONS:
            raise InvalidInput(f"conditions: unknown condition {name!r}; known: {', '.join(CONDITIONS)}")
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            raise InvalidInput(f"conditions.{name}: must be a non-empty list of strings")
    if not actions:
        raise InvalidInput("actions: at least one action")
    for name in actions:
        if name not in ACTIONS:
            raise InvalidInput(f"actions: unknown action {name!r}; known: {', '.join(ACTIONS)}")
    if "add_tags" in actions:
        _check_macro_actions({"add_tags": actions["add_tags"]})
    if "set_priority" in actions:
        _check_macro_actions({"set_priority": actions["set_priority"]})
    if "assign_team" in actions and session.get(Team, actions["assign_team"]) is None:
        raise InvalidInput(f"actions.assign_team: no team {actions['assign_team']!r}")
    if "assign_agent" in actions and session.get(Agent, actions["assign_agent"]) is None:
        raise InvalidInput(f"actions.assign_agent: no agent {actions['assign_agent']!r}")
    if "reply_macro" in actions and session.get(Macro, actions["reply_macro"]) is None:
        raise InvalidInput(f"actions.reply_macro: no macro {actions['reply_macro']!r}")


def create_rule(
    session: Session, name: str, event: str, conditions: dict[str, Any], actions: dict[str, Any]
) -> AutomationRule:
    name = name.strip()
    if not name or len(name) > 120:
        raise InvalidInput("name: must be 1 to 120 characters")
    if session.scalar(select(AutomationRule.id).where(AutomationRule.name == name)) is not None:
        raise Conflict(f"a rule named {name!r} already exists")
    _check_rule(event, conditions, actions, session)
    forget_memo(session, "automation_rules")
    position = len(list(session.scalars(select(AutomationRule.id))))
    rule = AutomationRule(
        id=new_id("rule"),
        name=name,
        event=event,
        conditions=conditions,
        actions=actions,
        position=position,
        enabled=True,
        created_at=utcnow(),
    )
    session.add(rule)
    session.flush()
    return rule


@dataclass(frozen=True)
class RuleData:
    id: str
    name: str
    conditions: dict[str, Any]
    actions: dict[str, Any]


def _matches(session: Session, rule: RuleData, conversation: Conversation, body: str) -> bool:
    c = rule.conditions
    if "channel" in c and conversation.last_inbound_channel not in c["channel"]:
        return False
    if "priority" in c and conversation.priority not in c["priority"]:
        return False
    if "tags_any" in c and not set(c["tags_any"]) & set(conversation.tags):
        return False
    if "body_contains" in c and not any(word.lower() in body.lower() for word in c["body_contains"]):
        return False
    if "language" in c:
        profile_id = resolve_profile_id(session, conversation.profile_id)
        traits = session.scalar(select(Profile.traits).where(Profile.id == profile_id)) or {}
        if str(traits.get("language") or "")[:2].lower() not in c["language"]:
            return False
    return True


def _apply(session: Session, conversation: Conversation, actions: dict[str, Any], now: datetime) -> None:
    if "add_tags" in actions:
        conversation.tags = sorted(set(conversation.tags) | {t.strip().lower() for t in actions["add_tags"]})
    if "set_priority" in actions:
        conversation.priority = actions["set_priority"]
    if "assign_team" in actions:
        conversation.team_id = actions["assign_team"]
    if "assign_agent" in actions:
        conversation.assignee_id = actions["assign_agent"]
        feed.record(session, conversation.id, "assigned", now, agent_id=actions["assign_agent"],
                    data={"by": "automation"})  # fmt: skip


def _rules(session: Session) -> dict[str, list[RuleData]]:
    """The enabled rules of every event, in order (one query), kept across transactions until a rule
    changes."""

    def load() -> dict[str, list[RuleData]]:
        by_event: dict[str, list[RuleData]] = {}
        for rule in session.scalars(
            select(AutomationRule).where(AutomationRule.enabled.is_(True)).order_by(AutomationRule.position)
        ):
            by_event.setdefault(rule.event, []).append(
                RuleData(rule.id, rule.name, rule.conditions, rule.actions)
            )
        return by_event

    return reference(session, "automation_rules", load)


def run(
    session: Session,
    event: str,
    conversation: Conversation,
    now: datetime,
    *,
    body: str,
    settings: Settings,
    cache: GraphCache | None = None,
) -> list[str]:
    """Apply every enabled rule of ``event`` whose conditions hold, in order; returns the rules applied."""
    from parcours.inbox.outbound import write_reply

    rules = _rules(session).get(event, [])
    if not rules:
        return []
    applied = []
    for rule in rules:
        if not _matches(session, rule, conversation, body):
            continue
        _apply(session, conversation, rule.actions, now)
        if "reply_macro" in rule.actions:
            macro = session.get(Macro, rule.actions["reply_macro"])
            if macro is not None:
                text = render(macro.body, variables(session, conversation, SYSTEM))
                # Delivered by the outbox worker after the commit; with no address on the channel, the
                # rule's other actions still apply.
                with contextlib.suppress(Conflict):
                    write_reply(session, settings, None, conversation.id, SYSTEM, text, now=now, cache=cache)
        feed.record(session, conversation.id, "automation", now, data={"rule": rule.name})
        applied.append(rule.id)
    return applied  # written with the caller's next flush (receive_batch flushes once per batch)
