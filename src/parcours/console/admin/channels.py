"""The channel adapters as this server's settings configure them (e-mail, Twilio, Meta, the web chat
widget, telephony): what works, the settings each reads (secrets masked), and what to paste into the
providers (the URLs of the adapters' own routes on this app)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Response
from pydantic import SecretStr

from parcours.channels import email as email_channel
from parcours.channels import twilio as twilio_channel
from parcours.config import Settings
from parcours.console.admin.common import ADMIN, public_base, render
from parcours.console.i18n import N_
from parcours.console.web import Page, page_for

router = APIRouter(include_in_schema=False)

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
    base = public_base(page)

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
    return render(
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
