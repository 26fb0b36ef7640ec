"""The agent's actions on a conversation: reply on a chosen channel (delivered once stored), private
note, macro, retry a failed reply, resolve, reopen, mark pending or snooze, assign, priority and tags."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.console.inbox.common import (
    CHANNEL_LABELS,
    IDENTIFIER_LABELS,
    acting_agent,
    agent_names,
    choice,
    outbox_of,
    reach_of,
    visible_conversation,
)
from parcours.console.web import Page, form_for
from parcours.db.types import utcnow
from parcours.errors import Forbidden, InvalidInput, NotFound
from parcours.inbox import identify, service
from parcours.inbox.csat import ask as ask_csat
from parcours.inbox.outbound import deliver, write_reply
from parcours.models import Conversation, Macro, Message, Team

router = APIRouter(include_in_schema=False)


def _back(conversation_id: str, anchor: str = "") -> str:
    return f"/console/conversations/{conversation_id}" + (f"#{anchor}" if anchor else "")


def _delivered_flash(page: Page, message: Message) -> str:
    label = page.t.gettext(CHANNEL_LABELS.get(message.channel, message.channel))
    if message.delivery == "note":
        return page.t.gettext("Private note added.")
    if message.delivery == "sent":
        return page.t.gettext("Reply sent by {channel}.", channel=label)
    if message.delivery == "logged":
        return page.t.gettext("Reply logged on {channel}.", channel=label)
    if message.delivery == "failed":
        return page.t.gettext("The reply by {channel} could not be sent: {error}", channel=label,
                              error=message.error or "")  # fmt: skip
    return page.t.gettext("Reply queued on {channel}.", channel=label)


def _apply_macro_actions(
    page: Page, session: Session, conversation: Conversation, actions: dict[str, Any], now: datetime
) -> str | None:
    """A macro's actions after its (possibly edited) reply, as ``automation.apply_macro`` applies them;
    returns the satisfaction survey's message to deliver if the macro resolved the conversation."""
    if "add_tags" in actions or "set_priority" in actions:
        tags = sorted(set(conversation.tags) | {str(t) for t in actions.get("add_tags", [])})
        service.update_conversation(
            session, conversation.id, priority=actions.get("set_priority"),
            tags=tags if "add_tags" in actions else None,
        )  # fmt: skip
    if "set_status" in actions:
        was_resolved = conversation.status == "resolved"
        service.set_status(session, conversation.id, actions["set_status"], snoozed_until=None, now=now)
        if conversation.status == "resolved" and not was_resolved:
            return ask_csat(
                session, page.settings, conversation, now, cache=page.request.app.state.graph_cache
            )
    return None


@router.post("/console/conversations/{conversation_id}/reply")
def reply(conversation_id: str, page: Page = Depends(form_for("inbox"))) -> Response:
    """A reply on the chosen channel (delivered once stored), or a private note; with a macro's id, the
    macro's actions too."""
    body = page.field("body", max_chars=service.MAX_BODY)
    kind = choice(page, "kind", page.field("kind", "reply", max_chars=10), ("reply", "note"))
    channel = page.field("channel", "", max_chars=40)
    macro_id = page.field("macro_id", "", max_chars=40)
    agent = acting_agent(page)
    outbox = outbox_of(page)
    now = utcnow()
    survey = None
    with page.db.write() as session:
        conversation = visible_conversation(session, page, conversation_id)
        if kind == "reply" and not channel:
            raise InvalidInput(page.t.gettext("Channel: choose the channel to reply on."))
        if channel:
            choice(page, "channel", channel, CHANNEL_LABELS)
        macro = session.get(Macro, macro_id) if macro_id else None
        if macro_id and macro is None:
            raise NotFound(page.t.gettext("This macro does not exist."))
        message = write_reply(
            session, page.settings, outbox, conversation.id, agent, body,
            channel=channel or None, private=kind == "note", now=now,
            cache=page.request.app.state.graph_cache,
        )  # fmt: skip
        if macro is not None:
            survey = _apply_macro_actions(page, session, conversation, macro.actions, now)
        reply_channel = conversation.last_inbound_channel
    if message.delivery == "queued":
        message = deliver(page.db, outbox, message.id)
    if survey is not None and outbox.sender(reply_channel) is not None:
        deliver(page.db, outbox, survey)
    return page.redirect(_back(conversation_id, f"m-{message.id}"), flash=_delivered_flash(page, message))


@router.post("/console/messages/{message_id}/retry")
def retry(message_id: str, page: Page = Depends(form_for("inbox"))) -> Response:
    """Send a failed reply again."""
    with page.db.read() as session:
        message = session.scalar(select(Message).where(Message.id == message_id))
        if message is None:
            raise NotFound(page.t.gettext("This message does not exist."))
        visible_conversation(session, page, message.conversation_id)
    if message.delivery != "failed":
        return page.redirect(_back(message.conversation_id, f"m-{message.id}"))
    sent = deliver(page.db, outbox_of(page), message_id)
    return page.redirect(_back(sent.conversation_id, f"m-{sent.id}"), flash=_delivered_flash(page, sent))


@router.post("/console/conversations/{conversation_id}/status")
def change_status(conversation_id: str, page: Page = Depends(form_for("inbox"))) -> Response:
    """Resolve, reopen, mark pending or snooze until a time (in the console's time zone)."""
    status = choice(page, "status", page.field("status", max_chars=20), service.STATUSES)
    until = None
    now = utcnow()
    if status == "snoozed":
        until = _local_moment(page, page.field("snoozed_until", max_chars=40))
        if until <= now:
            raise InvalidInput(page.t.gettext("Snooze until: choose a time in the future."))
    outbox = outbox_of(page)
    with page.db.write() as session:
        conversation = visible_conversation(session, page, conversation_id)
        was_resolved = conversation.status == "resolved"
        service.set_status(session, conversation.id, status, snoozed_until=until, now=now)
        survey = (
            ask_csat(session, page.settings, conversation, now, cache=page.request.app.state.graph_cache)
            if status == "resolved" and not was_resolved
            else None
        )
        reply_channel = conversation.last_inbound_channel
    if survey is not None and outbox.sender(reply_channel) is not None:
        deliver(page.db, outbox, survey)
    flash = {
        "open": page.t.gettext("Conversation reopened."),
        "pending": page.t.gettext("Conversation marked pending."),
        "resolved": page.t.gettext("Conversation resolved."),
        "snoozed": page.t.gettext("Conversation snoozed until {when}.", when=page.t.datetime(until, "short")),
    }[status]
    return page.redirect(_back(conversation_id), flash=flash)


def _local_moment(page: Page, text: str) -> datetime:
    """A datetime-local value (console time zone) as an aware UTC moment."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(page.t.gettext("Snooze until: enter a date and a time.")) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(page.settings.console_timezone))
    return moment.astimezone(ZoneInfo("UTC"))


@router.post("/console/conversations/{conversation_id}/assign")
def assign(conversation_id: str, page: Page = Depends(form_for("inbox"))) -> Response:
    """Assign to me, to another agent or to a team (supervisors and admins), or unassign."""
    assignee = page.field("assignee", "", max_chars=40)
    team = page.field("team", "", max_chars=40)
    agent = acting_agent(page)
    now = utcnow()
    with page.db.write() as session:
        conversation = visible_conversation(session, page, conversation_id)
        everything = reach_of(session, page.user).everything
        target = agent.id if assignee == "me" else assignee
        if not everything:
            if team or target not in ("", agent.id, "none"):
                raise Forbidden(page.t.gettext("Only supervisors and admins assign to others or to teams."))
            if target == "none" and conversation.assignee_id not in (None, agent.id):
                raise Forbidden(page.t.gettext("Only supervisors and admins unassign a colleague."))
        service.update_conversation(
            session, conversation.id, assignee_id=target if target not in ("", "none") else None,
            team_id=team or None, unassign=target == "none", by=agent.id, now=now,
        )  # fmt: skip
        names = agent_names(session, [conversation.assignee_id])
        team_name = session.scalar(select(Team.name).where(Team.id == conversation.team_id)) if team else None
    if conversation.assignee_id is None:
        flash = page.t.gettext("Conversation unassigned.")
    else:
        flash = page.t.gettext("Assigned to {name}.", name=names.get(conversation.assignee_id, ""))
    if team_name:
        flash += " " + page.t.gettext("Team: {team}.", team=team_name)
    return page.redirect(_back(conversation_id), flash=flash)


@router.post("/console/conversations/{conversation_id}/details")
def details(conversation_id: str, page: Page = Depends(form_for("inbox"))) -> Response:
    """Priority and tags."""
    priority = choice(page, "priority", page.field("priority", max_chars=20), service.PRIORITIES)
    tags = [t for t in page.field("tags", "", required=False, max_chars=1000).split(",") if t.strip()]
    if len(tags) > 20:
        raise InvalidInput(page.t.gettext("Tags: at most 20."))
    with page.db.write() as session:
        conversation = visible_conversation(session, page, conversation_id)
        service.update_conversation(session, conversation.id, priority=priority, tags=tags)
    return page.redirect(_back(conversation_id), flash=page.t.gettext("Priority and tags saved."))


@router.post("/console/conversations/{conversation_id}/identify")
def identify_customer(conversation_id: str, page: Page = Depends(form_for("inbox"))) -> Response:
    """The customer gave another identifier: it joins them, or merges them with its holder (by the
    merge rules); the flash says which."""
    kind = page.field("kind", max_chars=40)
    value = page.field("value", max_chars=320)
    agent = acting_agent(page)
    with page.db.write() as session:
        conversation = visible_conversation(session, page, conversation_id)
        done = identify.add_identifier(
            session,
            page.settings,
            conversation.id,
            kind,
            value,
            agent,
            cache=page.request.app.state.graph_cache,
        )
    what = f"{page.t.gettext(IDENTIFIER_LABELS.get(done['kind'], done['kind']))} {done['value']}"
    if done["outcome"] == "added":
        flash = page.t.gettext("{identifier} added to this customer.", identifier=what)
    elif done["outcome"] == "merged":
        flash = page.t.gettext(
            "{identifier} was another customer's: they are now one customer, with both histories.",
            identifier=what,
        )
    elif done["outcome"] == "kept apart":
        flash = page.t.gettext(
            "{identifier} is another customer's, and a merge rule keeps them apart: a supervisor can review it.",
            identifier=what,
        )
    else:
        flash = page.t.gettext(
            "{identifier} was not added: this customer holds as many of this kind as the merge rules allow.",
            identifier=what,
        )
    return page.redirect(_back(conversation_id), flash=flash)
