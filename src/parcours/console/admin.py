"""Console pages: the admin area (sources and write keys, channels, teams, users, merge rules, knowledge
base). Every page needs the "admin" permission; every action is a CSRF-checked POST that validates the
whole form before writing, writes in one transaction and redirects with a message. A form the domain
refuses is shown again with the domain's message beside it and the values typed kept."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from parcours.auth import service as auth
from parcours.auth import users
from parcours.channels import email as email_channel
from parcours.channels import twilio as twilio_channel
from parcours.config import Settings
from parcours.console.i18n import N_
from parcours.console.web import ROLE_LABELS, SESSION_COOKIE, Page, form_for, page_for
from parcours.db.types import utcnow
from parcours.errors import Conflict, InvalidInput, NotFound, ParcoursError
from parcours.identity import service as identity
from parcours.identity.kinds import NORMALIZERS
from parcours.identity.schemas import KindIn, KindUpdate
from parcours.inbox import agents as inbox_agents
from parcours.inbox import bot, routing
from parcours.matching.realtime import MODEL_SETTING
from parcours.models import (
    Agent,
    ApiToken,
    Identifier,
    IdentifierKind,
    InstanceSetting,
    KnowledgeArticle,
    Location,
    Source,
    Team,
    TeamMember,
    User,
)
from parcours.vocabulary import CHANNELS

router = APIRouter(include_in_schema=False)
ADMIN = "admin"
PAGE_SIZE = 50
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Section:
    key: str
    title: str  # English source strings, translated where shown
    description: str


SECTIONS = (
    Section(
        "sources", N_("Sources and API tokens"), N_("Who may send events (write keys) and read the API.")
    ),
    Section("channels", N_("Channels"), N_("E-mail, SMS, WhatsApp, Messenger, Instagram, web chat, phone.")),
    Section(
        "teams", N_("Teams and agents"), N_("Who answers: teams, assignment, languages, skills, capacity.")
    ),
    Section("users", N_("Users"), N_("Who signs in to the console, with which role.")),
    Section("identity", N_("Merge rules"), N_("How identifiers join profiles, and the matching thresholds.")),
    Section("knowledge", N_("Knowledge base"), N_("The answers the bot gives on every channel.")),
)

CHANNEL_LABELS = {
    "web": N_("Web"), "app": N_("App"), "store": N_("Store"), "phone": N_("Phone"), "email": N_("E-mail"),
    "sms": N_("SMS"), "chat": N_("Web chat"), "whatsapp": N_("WhatsApp"), "messenger": N_("Messenger"),
    "instagram": N_("Instagram"), "social": N_("Social networks"), "kiosk": N_("Kiosk"),
    "marketplace": N_("Marketplace"), "mail": N_("Postal mail"), "other": N_("Other"),
}  # fmt: skip
ASSIGNMENT_LABELS = {"round_robin": N_("Round robin"), "least_busy": N_("Least busy")}
NORMALIZER_LABELS = {
    "email": N_("E-mail address (lower case)"),
    "phone": N_("Phone number (E.164)"),
    "text": N_("Text as given (trimmed)"),
    "lower": N_("Lower case"),
    "compact": N_("Compact (no spaces, dashes or dots; upper case)"),
    "handle": N_("Handle (no @, lower case)"),
}
LANGUAGE_LABELS = {"en": "English", "fr": "Français"}
# The channels the inbox answers on: an agent's capacity can be set for each.
CAPACITY_CHANNELS = ("email", "sms", "whatsapp", "messenger", "instagram", "chat", "phone", "store")
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")

# Fixed messages of the domains this area calls, so that the error shown beside a form is translated.
DOMAIN_MESSAGES = (
    N_("this is the last admin: make another admin first"),
    N_("name: a source name must be 1 to 120 characters"),
    N_("name: a token name must be 1 to 120 characters"),
    N_("name: a team name must be 1 to 120 characters"),
    N_("slug: lower-case letters, digits and dashes, at most 80"),
    N_("title and body: required (title at most 200, body at most 20,000 characters)"),
    N_("questions: at least one, each at most 300 characters"),
)


# ------------------------------------------------------------------------------------------- helpers
@dataclass
class Paged:
    """One page of a list: its rows and the links to the pages around it."""

    rows: list[Any]
    number: int
    previous_url: str | None = None
    next_url: str | None = None


def _page_number(page: Page, name: str = "page") -> int:
    raw = page.request.query_params.get(name, "1")
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise InvalidInput(f"{name}: a page number from 1")
    return int(raw)


def _paged(
    session: Session,
    query: Select[*tuple[Any, ...]],
    page: Page,
    path: str,
    *,
    name: str = "page",
    keep: dict[str, str] | None = None,
) -> Paged:
    """The ``name`` page (from the query) of ``query``'s rows, with links to the pages around it on the
    list at ``path`` (the page may be shown again by a form posted elsewhere)."""
    number = _page_number(page, name)
    rows = list(session.execute(query.limit(PAGE_SIZE + 1).offset((number - 1) * PAGE_SIZE)).all())

    def url(n: int) -> str:
        params = {**(keep or {}), **({name: str(n)} if n > 1 else {})}
        return path + ("?" + urlencode(params) if params else "")

    return Paged(
        rows[:PAGE_SIZE],
        number,
        url(number - 1) if number > 1 else None,
        url(number + 1) if len(rows) > PAGE_SIZE else None,
    )


def _render(page: Page, template: str, *, status: int = 200, **values: Any) -> Response:
    values.setdefault("errors", {})
    values.setdefault("form", {})
    return page.render(template, status=status, sections=SECTIONS, **values)


def _status(error: ParcoursError) -> int:
    return 409 if isinstance(error, Conflict) else 404 if isinstance(error, NotFound) else 400


def _typed(page: Page) -> dict[str, str]:
    """What the user typed in the form (never passwords nor the CSRF token), to fill it in again."""
    if page.form is None:
        return {}
    return {
        key: value
        for key, value in page.form.items()
        if isinstance(value, str) and "password" not in key and key != "csrf_token"
    }


def _refused(
    page: Page, error: ParcoursError, show: Callable[..., Response], form_id: str, **values: Any
) -> Response:
    """The page again, with the domain's message beside the form that was refused."""
    return show(
        page,
        errors={form_id: page.t.gettext(error.message)},
        form=_typed(page),
        status=_status(error),
        **values,
    )


def _attempt(
    page: Page, action: Callable[[Session], T], show: Callable[..., Response], form_id: str, **values: Any
) -> T | Response:
    """Run ``action`` in one write transaction; a refusal (bad input, conflict) shows the form again."""
    try:
        with page.db.write() as session:
            return action(session)
    except (InvalidInput, Conflict) as error:
        return _refused(page, error, show, form_id, **values)


def _integer(page: Page, name: str, low: int, high: int) -> int:
    text = page.field(name, max_chars=12)
    if not re.fullmatch(r"-?\d+", text) or not low <= int(text) <= high:
        raise InvalidInput(page.t.gettext("{field}: a whole number from {low} to {high}", field=name,
                                          low=page.t.number(low), high=page.t.number(high)))  # fmt: skip
    return int(text)


def _lines(page: Page, name: str, *, max_chars: int = 100_000) -> list[str]:
    """A textarea of one value per line, blanks dropped."""
    text = page.field(name, required=False, max_chars=max_chars)
    return [line.strip() for line in text.splitlines() if line.strip()]


def _words(page: Page, name: str) -> list[str]:
    """Comma- or space-separated words."""
    text = page.field(name, required=False, max_chars=2000)
    return [word for word in re.split(r"[\s,;]+", text) if word]


def _choice(page: Page, name: str, choices: Iterable[str]) -> str:
    value = page.field(name, max_chars=40)
    allowed = list(choices)
    if value not in allowed:
        raise InvalidInput(f"{name}: must be one of {', '.join(allowed)}")
    return value


def _validated(model: type[M], data: dict[str, Any]) -> M:
    """A domain request model built from a form; its first error as InvalidInput naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem.get("loc", ())) or "form"
        raise InvalidInput(f"{where}: {problem.get('msg')}") from None


def _count(session: Session, query: Select[*tuple[Any, ...]]) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


# ------------------------------------------------------------------- new secrets, shown once only
class OneTimeSecrets:
    """A write key or API token just created, kept until the next page shows it once: in this process's
    memory only (never in the database, a cookie or a log), for a few minutes, and only for the session
    that created it."""

    def __init__(self, ttl: float = 300.0, limit: int = 1000) -> None:
        self.ttl = ttl
        self.limit = limit
        self._items: dict[str, tuple[float, str, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def put(self, owner: str, value: dict[str, str]) -> str:
        ticket = secrets.token_urlsafe(18)
        now = time.monotonic()
        with self._lock:
            for key in [k for k, (at, _o, _v) in self._items.items() if at < now - self.ttl]:
                del self._items[key]
            while len(self._items) >= self.limit:
                del self._items[next(iter(self._items))]
            self._items[ticket] = (now, owner, value)
        return ticket

    def take(self, owner: str, ticket: str) -> dict[str, str] | None:
        with self._lock:
            item = self._items.get(ticket)
            if item is None or item[1] != owner:
                return None
            del self._items[ticket]
        at, _owner, value = item
        return value if at >= time.monotonic() - self.ttl else None


NEW_SECRETS = OneTimeSecrets()


def _owner(page: Page) -> str:
    return auth.digest("reveal:" + page.request.cookies.get(SESSION_COOKIE, ""))


def _public_base(page: Page) -> str:
    """The base URL providers call: the configured public URL, else the one this browser used."""
    return (page.settings.console_public_url or str(page.request.base_url)).rstrip("/")


# ---------------------------------------------------------------------------------------- the index
@router.get("/console/admin")
def admin_home(page: Page = Depends(page_for(ADMIN))) -> Response:
    t = page.t
    with page.db.read() as session:
        sources = _count(session, select(Source.id).where(Source.disabled_at.is_(None)))
        tokens = _count(session, select(ApiToken.id).where(ApiToken.revoked_at.is_(None)))
        teams = _count(session, select(Team.id))
        agents = _count(session, select(Agent.id).where(Agent.disabled_at.is_(None)))
        online = _count(
            session, select(Agent.id).where(Agent.disabled_at.is_(None), Agent.available.is_(True))
        )
        active_users = _count(session, select(User.id).where(User.disabled_at.is_(None)))
        admins = _count(session, select(User.id).where(User.disabled_at.is_(None), User.role == "admin"))
        kinds = _count(session, select(IdentifierKind.name))
        per_language = dict(
            session.execute(
                select(KnowledgeArticle.language, func.count()).group_by(KnowledgeArticle.language)
            ).all()
        )
    adapters = channel_adapters(page)
    ready = [t.gettext(a.title) for a in adapters if a.state == "ok"]
    partly = [t.gettext(a.title) for a in adapters if a.state == "partial"]
    off = [t.gettext(a.title) for a in adapters if a.state == "off"]
    channel_parts = []
    if ready:
        channel_parts.append(t.gettext("Configured: {names}", names=", ".join(ready)))
    if partly:
        channel_parts.append(t.gettext("Partly configured: {names}", names=", ".join(partly)))
    if off:
        channel_parts.append(t.gettext("Not configured: {names}", names=", ".join(off)))
    articles = sum(int(n) for n in per_language.values())
    states = {
        "sources": ", ".join([t.ngettext("{count} source", "{count} sources", sources),
                              t.ngettext("{count} API token", "{count} API tokens", tokens)]),
        "channels": "; ".join(channel_parts),
        "teams": ", ".join([t.ngettext("{count} team", "{count} teams", teams),
                            t.ngettext("{count} agent", "{count} agents", agents),
                            t.ngettext("{count} available now", "{count} available now", online)]),
        "users": ", ".join([t.ngettext("{count} active user", "{count} active users", active_users),
                            t.ngettext("{count} administrator", "{count} administrators", admins)]),
        "identity": "; ".join([t.ngettext("{count} identifier kind", "{count} identifier kinds", kinds),
                               t.gettext("merge at {auto}, review from {review}",
                                         auto=t.number(page.settings.match_auto_threshold),
                                         review=t.number(page.settings.match_review_threshold))]),
        "knowledge": t.ngettext("{count} article", "{count} articles", articles)
        + (" (" + ", ".join(f"{lang} {t.number(int(n))}" for lang, n in sorted(per_language.items())) + ")"
           if per_language else ""),
    }  # fmt: skip
    return _render(page, "admin/index.html", states=states)


# ------------------------------------------------------------------------------ sources and tokens
def _sources_page(page: Page, *, status: int = 200, **values: Any) -> Response:
    with page.db.read() as session:
        sources = _paged(
            session,
            select(Source.id, Source.name, Source.channel, Source.created_at, Source.disabled_at).order_by(
                Source.disabled_at.is_not(None), Source.name
            ),
            page,
            "/console/admin/sources",
        )
        tokens = _paged(
            session,
            select(ApiToken.name, ApiToken.created_at, ApiToken.revoked_at).order_by(
                ApiToken.revoked_at.is_not(None), ApiToken.name
            ),
            page,
            "/console/admin/sources",
            name="tokens_page",
        )
    ticket = page.request.query_params.get("shown")
    new_secret = (NEW_SECRETS.take(_owner(page), ticket[:100]) or {"kind": "gone"}) if ticket else None
    return _render(
        page,
        "admin/sources.html",
        status=status,
        sources=sources,
        tokens=tokens,
        channels=CHANNELS,
        channel_labels=CHANNEL_LABELS,
        new_secret=new_secret,
        base_url=_public_base(page),
        **values,
    )


@router.get("/console/admin/sources")
def sources_page(page: Page = Depends(page_for(ADMIN))) -> Response:
    return _sources_page(page)


@router.post("/console/admin/sources")
def create_source(page: Page = Depends(form_for(ADMIN))) -> Response:
    def create(session: Session) -> tuple[auth.SourceInfo, str]:
        name = page.field("name", max_chars=120)
        channel = _choice(page, "channel", CHANNELS)
        return auth.create_source(session, name, channel)

    made = _attempt(page, create, _sources_page, "source")
    if isinstance(made, Response):
        return made
    source, write_key = made
    ticket = NEW_SECRETS.put(_owner(page), {"kind": "write_key", "name": source.name, "secret": write_key})
    return page.redirect(
        f"/console/admin/sources?shown={ticket}",
        flash=page.t.gettext("Source {name} created.", name=source.name),
    )


@router.post("/console/admin/sources/disable")
def disable_source(page: Page = Depends(form_for(ADMIN))) -> Response:
    name = page.field("name", max_chars=120)
    with page.db.write() as session:
        auth.disable_source(session, name)
    return page.redirect(
        "/console/admin/sources",
        flash=page.t.gettext("Source {name} disabled: its write key is refused from now on.", name=name),
    )


@router.post("/console/admin/tokens")
def create_token(page: Page = Depends(form_for(ADMIN))) -> Response:
    def create(session: Session) -> tuple[str, str]:
        name = page.field("token_name", max_chars=120)
        return name, auth.create_token(session, name)

    made = _attempt(page, create, _sources_page, "token")
    if isinstance(made, Response):
        return made
    name, token = made
    ticket = NEW_SECRETS.put(_owner(page), {"kind": "token", "name": name, "secret": token})
    return page.redirect(
        f"/console/admin/sources?shown={ticket}", flash=page.t.gettext("API token {name} created.", name=name)
    )


@router.post("/console/admin/tokens/revoke")
def revoke_token(page: Page = Depends(form_for(ADMIN))) -> Response:
    name = page.field("token_name", max_chars=120)
    with page.db.write() as session:
        auth.revoke_token(session, name)
    return page.redirect(
        "/console/admin/sources", flash=page.t.gettext("API token {name} revoked.", name=name)
    )


# ------------------------------------------------------------------------------------------ channels

# Per adapter, the settings it reads: (Settings attribute, what it sets, secret). The environment
# variable is PARCOURS_ + the attribute in upper case.
ADAPTER_SETTINGS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "email": (
        ("email_smtp_host", N_("Interface the SMTP server listens on"), False),
        ("email_smtp_port", N_("Its port (0: no SMTP server)"), False),
        ("email_inbox_domains", N_("Domains whose mail it accepts"), False),
        ("email_relay_host", N_("SMTP relay replies are sent through"), False),
        ("email_relay_port", N_("Relay port"), False),
        ("email_relay_security", N_("starttls, tls or none"), False),
        ("email_relay_username", N_("Relay login"), False),
        ("email_relay_password", N_("Relay password"), True),
        ("email_from_address", N_("Address replies come from"), False),
        ("email_from_name", N_("Display name of that address"), False),
    ),
    "twilio": (
        ("twilio_account_sid", N_("Account SID (AC…)"), False),
        ("twilio_auth_token", N_("Auth token: checks webhooks, authenticates sends"), True),
        ("twilio_sms_from", N_("Number or Messaging Service SID SMS replies come from"), False),
        ("twilio_whatsapp_from", N_("WhatsApp sender number"), False),
        ("twilio_webhook_base_url", N_("Public base URL Twilio calls (behind a proxy)"), False),
    ),
    "meta": (
        ("meta_verify_token", N_("Verify token, typed in the app's webhook settings"), True),
        ("meta_app_secret", N_("App secret: checks X-Hub-Signature-256"), True),
        ("meta_whatsapp_phone_number_id", N_("WhatsApp phone number id"), False),
        ("meta_whatsapp_access_token", N_("WhatsApp Cloud API token"), True),
        ("meta_page_access_token", N_("Page access token (Messenger)"), True),
        ("meta_instagram_access_token", N_("Instagram token (empty: the page token)"), True),
        ("whatsapp_provider", N_("Which adapter sends WhatsApp replies: auto, twilio or meta"), False),
    ),
    "widget": (
        ("widget_identity_secret", N_("Secret your site signs visitors' identities with"), True),
        ("widget_allowed_origins", N_("Sites whose pages may open the chat (or *)"), False),
    ),
    "telephony": (("telephony_webhook_secret", N_("Shared secret of the call webhook"), True),),
}
ADAPTER_TEXTS = {
    "email": (
        N_("E-mail"),
        N_(
            "Customers' e-mails arrive through the SMTP server that `parcours serve` starts, behind your MX "
            "(which checks SPF, DKIM and DMARC); replies leave through your SMTP relay."
        ),
    ),
    "twilio": (
        N_("Twilio: SMS and WhatsApp"),
        N_(
            'In the Twilio console, set the "A message comes in" webhook of the phone number and of the '
            "WhatsApp sender to this URL (HTTP POST). Requests are checked with the auth token."
        ),
    ),
    "meta": (
        N_("Meta: WhatsApp Cloud, Messenger, Instagram"),
        N_(
            "In the Meta app (Webhooks product), set the callback URL and the verify token below, then "
            'subscribe to "messages" for the WhatsApp Business Account, the page and the Instagram '
            "account. Deliveries are checked with the app secret."
        ),
    ),
    "widget": (
        N_("Web chat widget"),
        N_(
            "Paste this tag into the pages of your site: it adds the chat button. Logged-in visitors are "
            "recognised when your site signs their identity with the identity secret."
        ),
    ),
    "telephony": (
        N_("Telephony"),
        N_(
            "Your telephony system posts each ended call to this URL, signed with X-Parcours-Signature: "
            "sha256= and the hex HMAC-SHA256 of the body with the secret."
        ),
    ),
}


@dataclass
class SettingRow:
    variable: str
    meaning: str  # English source string
    value: str
    secret: bool

    @property
    def masked(self) -> str:
        return "•" * 8 + (self.value[-4:] if len(self.value) >= 16 else "")


@dataclass
class Adapter:
    key: str
    state: str  # ok, partial, off
    lines: list[tuple[str, bool]]  # (what works, or does not: English, {domains} {sender} filled when shown)
    urls: list[tuple[str, str]]  # (label, copy-ready text)
    settings: list[SettingRow]
    snippet: str | None = None

    @property
    def title(self) -> str:
        return ADAPTER_TEXTS[self.key][0]

    @property
    def about(self) -> str:
        return ADAPTER_TEXTS[self.key][1]


def _setting_rows(settings: Settings, key: str) -> list[SettingRow]:
    rows = []
    for attribute, meaning, secret in ADAPTER_SETTINGS[key]:
        value = getattr(settings, attribute)
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        rows.append(SettingRow("PARCOURS_" + attribute.upper(), meaning, text, secret))
    return rows


def _state(*parts: bool) -> str:
    return "ok" if all(parts) else "partial" if any(parts) else "off"


def channel_adapters(page: Page) -> list[Adapter]:
    """Each channel adapter as this server's settings configure it, with what to paste into providers
    (the URLs of the adapters' own routes on this app)."""
    s = page.settings
    base = _public_base(page)

    def url(route: str, root: str = base) -> str:
        return root + str(page.request.app.url_path_for(route))

    smtp, relay = s.email_smtp_port != 0, bool(s.email_relay_host)
    twilio_in, sms = bool(s.twilio_auth_token), twilio_channel.sms_ready(s)
    twilio_whatsapp = twilio_channel.twilio_whatsapp_ready(s)
    meta_in, meta_whatsapp = (
        bool(s.meta_app_secret and s.meta_verify_token),
        twilio_channel.meta_whatsapp_ready(s),
    )
    messenger, instagram = (
        bool(s.meta_page_access_token),
        bool(s.meta_instagram_access_token or s.meta_page_access_token),
    )
    signed = bool(s.widget_identity_secret.get_secret_value())
    calls = bool(s.telephony_webhook_secret.get_secret_value())
    widget = url("serve_widget")
    return [
        Adapter("email", _state(smtp, relay), [
            (N_("Inbound SMTP server for {domains}") if smtp else N_("Inbound SMTP server: off"), smtp),
            (N_("Replies through the relay, from {sender}") if relay else N_("Replies: no relay configured"), relay),
        ], [(N_("Forward the support addresses' mail (from your MX) to"), f"{s.email_smtp_host}:{s.email_smtp_port}")]
            if smtp else [], _setting_rows(s, "email")),
        Adapter("twilio", _state(twilio_in, sms or twilio_whatsapp), [
            (N_("Incoming messages accepted (signed with the auth token)") if twilio_in
             else N_("Incoming messages refused: no auth token"), twilio_in),
            (N_("SMS replies"), sms),
            (N_("WhatsApp replies through Twilio"), twilio_whatsapp),
        ], [(N_("Webhook URL (HTTP POST)"), url("twilio_message", s.twilio_webhook_base_url.rstrip("/") or base))],
            _setting_rows(s, "twilio")),
        Adapter("meta", _state(meta_in, meta_whatsapp or messenger or instagram), [
            (N_("Incoming messages accepted (app secret and verify token set)") if meta_in
             else N_("Incoming messages refused: app secret or verify token missing"), meta_in),
            (N_("WhatsApp replies through the Cloud API"), meta_whatsapp),
            (N_("Messenger replies"), messenger),
            (N_("Instagram replies"), instagram),
        ], [(N_("Callback URL"), url("meta_event"))], _setting_rows(s, "meta")),
        Adapter("widget", "ok" if signed else "partial", [
            (N_("Anonymous chat"), True),
            (N_("Signed identities of logged-in visitors"), signed),
        ], [(N_("Script URL"), widget)], _setting_rows(s, "widget"),
            snippet=f'<script src="{widget}" data-parcours-site="shop" async></script>'),
        Adapter("telephony", "ok" if calls else "off", [
            (N_("Call webhook accepted") if calls else N_("Call webhook refused: no secret"), calls),
        ], [(N_("Webhook URL (HTTP POST)"), url("telephony_call"))], _setting_rows(s, "telephony")),
    ]  # fmt: skip


@router.get("/console/admin/channels")
def channels_page(page: Page = Depends(page_for(ADMIN))) -> Response:
    s = page.settings
    return _render(
        page,
        "admin/channels.html",
        adapters=channel_adapters(page),
        values={
            "domains": ", ".join(email_channel.inbox_domains(s)),
            "sender": email_channel.from_address(s),
        },
        whatsapp_sender=twilio_channel.whatsapp_provider(s),
        public_url_set=bool(s.console_public_url),
    )


# ------------------------------------------------------------------------------------- teams, agents
# The inbox has no service yet to change a team's assignment, remove a member or change an agent's
# languages, skills and capacity: these helpers do it here with the inbox's own checks (to move into
# parcours.inbox.agents as set_assignment, remove_member, update_agent).
def _set_assignment(session: Session, team_id: str, assignment: str) -> Team:
    team = session.get(Team, team_id)
    if team is None:
        raise NotFound(f"team {team_id} not found")
    if assignment not in inbox_agents.ASSIGNMENTS:
        raise InvalidInput(f"assignment: must be one of {', '.join(inbox_agents.ASSIGNMENTS)}")
    team.assignment = assignment
    session.flush()
    return team


def _remove_member(session: Session, team_id: str, agent_id: str) -> None:
    removed = session.execute(
        delete(TeamMember).where(TeamMember.team_id == team_id, TeamMember.agent_id == agent_id)
    )
    if not removed.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"agent {agent_id} is not a member of team {team_id}")


def _update_agent(
    session: Session, agent_id: str, *, languages: list[str], skills: list[str], capacity: dict[str, Any]
) -> Agent:
    agent = inbox_agents.get_agent(session, agent_id)
    agent.languages = inbox_agents._words(languages, "languages")
    agent.skills = inbox_agents._words(skills, "skills")
    agent.capacity = inbox_agents._capacity(capacity)
    session.flush()
    return agent


def _teams_page(page: Page, *, status: int = 200, **values: Any) -> Response:
    with page.db.read() as session:
        teams = _paged(
            session,
            select(Team.id, Team.name, Team.assignment).order_by(Team.name),
            page,
            "/console/admin/teams",
            name="teams_page",
        )
        team_ids = [row.id for row in teams.rows]
        members: dict[str, list[Any]] = {team_id: [] for team_id in team_ids}
        for row in session.execute(
            select(TeamMember.team_id, Agent.id, Agent.name, Agent.available)
            .join(Agent, Agent.id == TeamMember.agent_id)
            .where(TeamMember.team_id.in_(team_ids), Agent.disabled_at.is_(None))
            .order_by(Agent.name)
        ):
            members[row.team_id].append(row)
        agents = _paged(
            session,
            select(Agent).where(Agent.disabled_at.is_(None)).order_by(Agent.name),
            page,
            "/console/admin/teams",
        )
        agent_rows = [row[0] for row in agents.rows]
        agent_ids = [a.id for a in agent_rows]
        teams_of: dict[str, list[str]] = {agent_id: [] for agent_id in agent_ids}
        for agent_id, team_name in session.execute(
            select(TeamMember.agent_id, Team.name)
            .join(Team, Team.id == TeamMember.team_id)
            .where(TeamMember.agent_id.in_(agent_ids))
            .order_by(Team.name)
        ):
            teams_of[agent_id].append(team_name)
        loads = routing.loads(session, agent_ids) if agent_ids else {}
        choices = list(
            session.execute(
                select(Agent.id, Agent.name).where(Agent.disabled_at.is_(None)).order_by(Agent.name)
            )
        )
        all_teams = list(session.execute(select(Team.id, Team.name).order_by(Team.name)))
    return _render(
        page,
        "admin/teams.html",
        status=status,
        teams=teams,
        members=members,
        agents=agents,
        agent_rows=agent_rows,
        teams_of=teams_of,
        loads=loads,
        agent_choices=choices,
        team_choices=all_teams,
        assignment_labels=ASSIGNMENT_LABELS,
        channel_labels=CHANNEL_LABELS,
        **values,
    )


@router.get("/console/admin/teams")
def teams_page(page: Page = Depends(page_for(ADMIN))) -> Response:
    return _teams_page(page)


@router.post("/console/admin/teams")
def create_team(page: Page = Depends(form_for(ADMIN))) -> Response:
    def create(session: Session) -> str:
        name = page.field("name", max_chars=120)
        assignment = _choice(page, "assignment", inbox_agents.ASSIGNMENTS)
        return inbox_agents.create_team(session, name, assignment=assignment).name

    made = _attempt(page, create, _teams_page, "team")
    if isinstance(made, Response):
        return made
    return page.redirect("/console/admin/teams", flash=page.t.gettext("Team {name} created.", name=made))


@router.post("/console/admin/teams/{team_id}/assignment")
def set_assignment(team_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    assignment = _choice(page, "assignment", inbox_agents.ASSIGNMENTS)
    with page.db.write() as session:
        team = _set_assignment(session, team_id, assignment)
    return page.redirect(
        "/console/admin/teams",
        flash=page.t.gettext("{team} now assigns by {assignment}.", team=team.name,
                             assignment=page.t.gettext(ASSIGNMENT_LABELS[assignment]).lower()),
    )  # fmt: skip


@router.post("/console/admin/teams/members")
def add_member(page: Page = Depends(form_for(ADMIN))) -> Response:
    def add(session: Session) -> tuple[str, str]:
        team_id = page.field("team_id", max_chars=40)
        agent_id = page.field("agent_id", max_chars=40)
        team = session.get(Team, team_id)
        if team is None:
            raise InvalidInput(f"team_id: no team {team_id!r}")
        try:
            agent = inbox_agents.get_agent(session, agent_id)
        except NotFound:
            raise InvalidInput(f"agent_id: no agent {agent_id!r}") from None
        inbox_agents.add_member(session, team_id, agent_id)
        return agent.name, team.name

    made = _attempt(page, add, _teams_page, "member")
    if isinstance(made, Response):
        return made
    agent, team = made
    return page.redirect(
        "/console/admin/teams", flash=page.t.gettext("{agent} added to {team}.", agent=agent, team=team)
    )


@router.post("/console/admin/teams/{team_id}/members/{agent_id}/remove")
def remove_member(team_id: str, agent_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    with page.db.write() as session:
        _remove_member(session, team_id, agent_id)
        team = session.get(Team, team_id)
        agent = session.get(Agent, agent_id)
        names = (agent.name if agent else agent_id, team.name if team else team_id)
    return page.redirect(
        "/console/admin/teams",
        flash=page.t.gettext("{agent} removed from {team}.", agent=names[0], team=names[1]),
    )


@router.post("/console/admin/agents/{agent_id}/availability")
def set_availability(agent_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    available = _choice(page, "available", ("yes", "no")) == "yes"
    with page.db.write() as session:
        agent = inbox_agents.get_agent(session, agent_id)
        moved = routing.set_availability(session, agent_id, available, utcnow())
        name = agent.name
    t = page.t
    message = (t.gettext("{name} is available.", name=name) if available
               else t.gettext("{name} is away.", name=name))  # fmt: skip
    if moved:
        message += " " + t.ngettext(
            "{count} conversation reassigned.", "{count} conversations reassigned.", len(moved)
        )
    return page.redirect("/console/admin/teams", flash=message)


def _agent_page(page: Page, agent_id: str, *, status: int = 200, **values: Any) -> Response:
    with page.db.read() as session:
        agent = inbox_agents.get_agent(session, agent_id)
        load = routing.load(session, agent_id)
    return _render(
        page,
        "admin/agent.html",
        status=status,
        agent=agent,
        load=load,
        capacity_channels=CAPACITY_CHANNELS,
        channel_labels=CHANNEL_LABELS,
        **values,
    )


@router.get("/console/admin/agents/{agent_id}")
def agent_page(agent_id: str, page: Page = Depends(page_for(ADMIN))) -> Response:
    return _agent_page(page, agent_id)


@router.post("/console/admin/agents/{agent_id}")
def update_agent(agent_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    def save(session: Session) -> str:
        languages = [w.lower() for w in _words(page, "languages")]
        if not languages:
            raise InvalidInput(page.t.gettext("languages: at least one (fr, en…)"))
        for code in languages:
            if not LANGUAGE_CODE.match(code):
                raise InvalidInput(page.t.gettext("languages: {code} is not a language code such as fr or en",
                                                  code=repr(code)[:20]))  # fmt: skip
        skills = _words(page, "skills")
        capacity: dict[str, Any] = {"*": _integer(page, "capacity_any", 0, 1000)}
        agent = inbox_agents.get_agent(session, agent_id)
        # Channels this form does not show keep their limits.
        capacity.update({k: v for k, v in agent.capacity.items() if k != "*" and k not in CAPACITY_CHANNELS})
        for channel in CAPACITY_CHANNELS:
            if page.field(f"capacity_{channel}", required=False, max_chars=12):
                capacity[channel] = _integer(page, f"capacity_{channel}", 0, 1000)
        return _update_agent(session, agent_id, languages=languages, skills=skills, capacity=capacity).name

    made = _attempt(page, save, lambda p, **v: _agent_page(p, agent_id, **v), "agent")
    if isinstance(made, Response):
        return made
    return page.redirect("/console/admin/teams", flash=page.t.gettext("{name} saved.", name=made))


# --------------------------------------------------------------------------------------------- users
def _stores(session: Session) -> list[Any]:
    return list(
        session.execute(
            select(Location.id, Location.name, Location.city)
            .where(Location.kind == "store")
            .order_by(Location.name)
        )
    )


def _users_page(page: Page, *, status: int = 200, **values: Any) -> Response:
    with page.db.read() as session:
        listed = _paged(
            session,
            select(User, Location.name)
            .outerjoin(Location, Location.id == User.location_id)
            .order_by(User.disabled_at.is_not(None), User.name, User.email),
            page,
            "/console/admin/users",
        )
        stores = _stores(session)
    return _render(
        page,
        "admin/users.html",
        status=status,
        users=listed,
        stores=stores,
        roles=users.ROLES,
        locales=users.LOCALES,
        language_labels=LANGUAGE_LABELS,
        min_password=users.MIN_PASSWORD_CHARS,
        **values,
    )


@router.get("/console/admin/users")
def users_page(page: Page = Depends(page_for(ADMIN))) -> Response:
    return _users_page(page)


def _store_for(page: Page, role: str) -> str | None:
    location = page.field("location_id", required=False, max_chars=40) or None
    if role == "store_associate" and location is None:
        raise InvalidInput(page.t.gettext("location_id: a store associate works in a store; choose it"))
    return location if role == "store_associate" else None


@router.post("/console/admin/users")
def add_user(page: Page = Depends(form_for(ADMIN))) -> Response:
    def create(session: Session) -> users.UserInfo:
        role = _choice(page, "role", users.ROLES)
        return users.create_user(
            session,
            page.field("email", max_chars=320),
            page.field("password", max_chars=users.MAX_PASSWORD_CHARS),
            name=page.field("name", max_chars=120),
            role=role,
            locale=_choice(page, "locale", users.LOCALES),
            location_id=_store_for(page, role),
        )

    made = _attempt(page, create, _users_page, "add")
    if isinstance(made, Response):
        return made
    return page.redirect(
        "/console/admin/users",
        flash=page.t.gettext("{name} ({email}) can now sign in.", name=made.name, email=made.email),
    )


def _user_page(page: Page, user_id: str, *, status: int = 200, **values: Any) -> Response:
    with page.db.read() as session:
        user = users.get_user(session, user_id)
        store = session.get(Location, user.location_id) if user.location_id else None
        agent = session.get(Agent, user.agent_id) if user.agent_id else None
        stores = _stores(session)
    return _render(
        page,
        "admin/user.html",
        status=status,
        person=user,
        store=store,
        agent=agent,
        stores=stores,
        roles=users.ROLES,
        locales=users.LOCALES,
        language_labels=LANGUAGE_LABELS,
        min_password=users.MIN_PASSWORD_CHARS,
        myself=user.id == page.user.id,
        **values,
    )


@router.get("/console/admin/users/{user_id}")
def user_page(user_id: str, page: Page = Depends(page_for(ADMIN))) -> Response:
    return _user_page(page, user_id)


def _user_action(page: Page, user_id: str, form_id: str, action: Callable[[Session], str]) -> Response:
    with page.db.read() as session:
        users.get_user(session, user_id)  # NotFound before anything else
    made = _attempt(page, action, lambda p, **v: _user_page(p, user_id, **v), form_id)
    if isinstance(made, Response):
        return made
    return page.redirect(f"/console/admin/users/{user_id}", flash=made)


@router.post("/console/admin/users/{user_id}/role")
def change_role(user_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    def change(session: Session) -> str:
        role = _choice(page, "role", users.ROLES)
        info = users.update_user(session, user_id, role=role, location_id=_store_for(page, role))
        return page.t.gettext(
            "{name} is now: {role}.", name=info.name, role=page.t.gettext(_role_label(info.role))
        )

    response = _user_action(page, user_id, "role", change)
    if user_id == page.user.id and response.status_code == 303:
        with page.db.read() as session:
            still_admin = users.get_user(session, user_id).role == "admin"
        if not still_admin:  # the admin pages are closed to them now
            return page.redirect("/console/", flash=page.t.gettext("Your role changed."))
    return response


def _role_label(role: str) -> str:
    return ROLE_LABELS.get(role, role)


@router.post("/console/admin/users/{user_id}/locale")
def change_locale(user_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    def change(session: Session) -> str:
        info = users.update_user(session, user_id, locale=_choice(page, "locale", users.LOCALES))
        return page.t.gettext("{name}'s console is now in {language}.", name=info.name,
                              language=LANGUAGE_LABELS[info.locale])  # fmt: skip

    return _user_action(page, user_id, "locale", change)


@router.post("/console/admin/users/{user_id}/disable")
def disable_user(user_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    def disable(session: Session) -> str:
        if user_id == page.user.id:
            raise Conflict(page.t.gettext("You cannot disable your own account; ask another administrator."))
        info = users.update_user(session, user_id, disabled=True)
        return page.t.gettext("{name} can no longer sign in; their sessions have ended.", name=info.name)

    return _user_action(page, user_id, "state", disable)


@router.post("/console/admin/users/{user_id}/enable")
def enable_user(user_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    def enable(session: Session) -> str:
        info = users.update_user(session, user_id, disabled=False)
        return page.t.gettext("{name} can sign in again.", name=info.name)

    return _user_action(page, user_id, "state", enable)


@router.post("/console/admin/users/{user_id}/password")
def reset_password(user_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    def reset(session: Session) -> str:
        if user_id == page.user.id:
            raise Conflict(page.t.gettext("Change your own password in Preferences."))
        new = page.field("new_password", max_chars=users.MAX_PASSWORD_CHARS)
        if new != page.field("confirm_password", max_chars=users.MAX_PASSWORD_CHARS):
            raise InvalidInput(page.t.gettext("confirm_password: the two passwords differ"))
        users.set_password(session, user_id, new)
        name = users.get_user(session, user_id).name
        return page.t.gettext("New password set for {name}; their sessions have ended.", name=name)

    return _user_action(page, user_id, "password", reset)


# -------------------------------------------------------------------------------------- merge rules
def _identity_page(page: Page, *, status: int = 200, **values: Any) -> Response:
    with page.db.read() as session:
        kinds = identity.list_kinds(session)
        trained = session.get(InstanceSetting, MODEL_SETTING) is not None
    s = page.settings
    return _render(
        page,
        "admin/identity.html",
        status=status,
        kinds=kinds,
        normalizers=NORMALIZERS,
        normalizer_labels=NORMALIZER_LABELS,
        matching={
            "realtime": s.match_realtime,
            "auto": s.match_auto_threshold,
            "review": s.match_review_threshold,
            "trained": trained,
        },
        **values,
    )


@router.get("/console/admin/identity")
def identity_page(page: Page = Depends(page_for(ADMIN))) -> Response:
    return _identity_page(page)


@router.post("/console/admin/identity/kinds")
def add_kind(page: Page = Depends(form_for(ADMIN))) -> Response:
    def add(session: Session) -> str:
        kind = _validated(
            KindIn,
            {
                "name": page.field("name", max_chars=40),
                "description": page.field("description", required=False, max_chars=500),
                "normalizer": _choice(page, "normalizer", NORMALIZERS),
                "priority": _integer(page, "priority", 0, 10_000),
                "max_per_profile": _integer(page, "max_per_profile", 1, 10_000),
                "blocked_values": _lines(page, "blocked_values"),
                "blocked_patterns": _lines(page, "blocked_patterns"),
            },
        )
        return str(identity.add_kind(session, **kind.model_dump())["name"])

    made = _attempt(page, add, _identity_page, "add")
    if isinstance(made, Response):
        return made
    return page.redirect(
        "/console/admin/identity", flash=page.t.gettext("Identifier kind {name} added.", name=made)
    )


def _kind_page(page: Page, name: str, *, status: int = 200, **values: Any) -> Response:
    with page.db.read() as session:
        kind = session.get(IdentifierKind, name)
        if kind is None:
            raise NotFound(f"identifier kind {name!r} not found")
        view = identity.kind_view(kind)
        holders = _count(session, select(Identifier.id).where(Identifier.kind == name))
    return _render(
        page,
        "admin/kind.html",
        status=status,
        kind=view,
        holders=holders,
        normalizer_labels=NORMALIZER_LABELS,
        **values,
    )


@router.get("/console/admin/identity/kinds/{name}")
def kind_page(name: str, page: Page = Depends(page_for(ADMIN))) -> Response:
    return _kind_page(page, name)


@router.post("/console/admin/identity/kinds/{name}")
def update_kind(name: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    def update(session: Session) -> str:
        changes = _validated(
            KindUpdate,
            {
                "priority": _integer(page, "priority", 0, 10_000),
                "max_per_profile": _integer(page, "max_per_profile", 1, 10_000),
                "blocked_values": _lines(page, "blocked_values"),
                "blocked_patterns": _lines(page, "blocked_patterns"),
            },
        )
        return str(identity.update_kind(session, name, **changes.model_dump(exclude_none=True))["name"])

    with page.db.read() as session:
        if session.get(IdentifierKind, name) is None:
            raise NotFound(f"identifier kind {name!r} not found")
    made = _attempt(page, update, lambda p, **v: _kind_page(p, name, **v), "kind")
    if isinstance(made, Response):
        return made
    return page.redirect(
        "/console/admin/identity", flash=page.t.gettext("Merge rules of {name} saved.", name=made)
    )


# ----------------------------------------------------------------------------------- knowledge base
def _language_filter(page: Page) -> str | None:
    language = page.request.query_params.get("language") or None
    if language is not None and language not in users.LOCALES:
        raise InvalidInput("language: fr or en")
    return language


def _knowledge_page(page: Page, *, status: int = 200, **values: Any) -> Response:
    language = _language_filter(page)
    query = select(
        KnowledgeArticle.slug,
        KnowledgeArticle.language,
        KnowledgeArticle.title,
        KnowledgeArticle.questions,
        KnowledgeArticle.updated_at,
    ).order_by(KnowledgeArticle.slug, KnowledgeArticle.language)
    if language:
        query = query.where(KnowledgeArticle.language == language)
    with page.db.read() as session:
        articles = _paged(
            session,
            query,
            page,
            "/console/admin/knowledge",
            keep={"language": language} if language else None,
        )
    return _render(
        page,
        "admin/knowledge.html",
        status=status,
        articles=articles,
        language=language,
        locales=users.LOCALES,
        language_labels=LANGUAGE_LABELS,
        **values,
    )


@router.get("/console/admin/knowledge")
def knowledge_page(page: Page = Depends(page_for(ADMIN))) -> Response:
    return _knowledge_page(page)


def _article_fields(page: Page) -> dict[str, Any]:
    return {
        "title": page.field("title", max_chars=200),
        "body": page.field("body", max_chars=20_000),
        "questions": _lines(page, "questions", max_chars=50_000),
    }


def _article_page(
    page: Page, language: str | None = None, slug: str | None = None, *, status: int = 200, **values: Any
) -> Response:
    article = None
    if language is not None and slug is not None:
        with page.db.read() as session:
            article = _article(session, language, slug)
    return _render(
        page,
        "admin/article.html",
        status=status,
        article=article,
        locales=users.LOCALES,
        language_labels=LANGUAGE_LABELS,
        **values,
    )


def _article(session: Session, language: str, slug: str) -> KnowledgeArticle:
    article = session.scalar(
        select(KnowledgeArticle).where(KnowledgeArticle.slug == slug, KnowledgeArticle.language == language)
    )
    if article is None:
        raise NotFound(f"no article {slug!r} in {language!r}")
    return article


@router.get("/console/admin/knowledge/new")
def new_article_page(page: Page = Depends(page_for(ADMIN))) -> Response:
    return _article_page(page)


@router.post("/console/admin/knowledge")
def create_article(page: Page = Depends(form_for(ADMIN))) -> Response:
    def create(session: Session) -> tuple[str, str, str]:
        slug = page.field("slug", max_chars=80)
        language = _choice(page, "language", users.LOCALES)
        fields = _article_fields(page)
        exists = session.scalar(
            select(KnowledgeArticle.id).where(
                KnowledgeArticle.slug == slug, KnowledgeArticle.language == language
            )
        )
        if exists is not None:
            raise Conflict(page.t.gettext("slug: an article {slug} in this language already exists; edit it",
                                          slug=slug))  # fmt: skip
        article = bot.save_article(session, slug, language, **fields)
        return article.slug, article.language, article.title

    made = _attempt(page, create, _article_page, "article")
    if isinstance(made, Response):
        return made
    slug, language, title = made
    return page.redirect(
        f"/console/admin/knowledge/{language}/{slug}",
        flash=page.t.gettext("Article {title} created.", title=title),
    )


@router.get("/console/admin/knowledge/{language}/{slug}")
def article_page(language: str, slug: str, page: Page = Depends(page_for(ADMIN))) -> Response:
    return _article_page(page, language, slug)


@router.post("/console/admin/knowledge/{language}/{slug}")
def save_article(language: str, slug: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    with page.db.read() as session:
        _article(session, language, slug)  # NotFound: editing never creates

    def save(session: Session) -> str:
        return bot.save_article(session, slug, language, **_article_fields(page)).title

    made = _attempt(page, save, lambda p, **v: _article_page(p, language, slug, **v), "article")
    if isinstance(made, Response):
        return made
    return page.redirect(
        f"/console/admin/knowledge/{language}/{slug}",
        flash=page.t.gettext("Article {title} saved.", title=made),
    )


@router.post("/console/admin/knowledge/{language}/{slug}/delete")
def delete_article(language: str, slug: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    # The inbox has no delete yet (to move into parcours.inbox.bot as delete_article).
    with page.db.write() as session:
        article = _article(session, language, slug)
        title = article.title
        session.delete(article)
    return page.redirect(
        "/console/admin/knowledge", flash=page.t.gettext("Article {title} deleted.", title=title)
    )
