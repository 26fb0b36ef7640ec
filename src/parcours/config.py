"""Settings, read from the environment with the prefix ``PARCOURS_``."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///parcours.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARCOURS_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: a SQLite file by default, postgresql+psycopg://… for PostgreSQL.",
    )
    default_phone_region: str = Field(
        default="FR", description="ISO 3166 region used to read phone numbers written without +country."
    )
    max_event_bytes: int = Field(
        default=32 * 1024, ge=1024, le=16 * 1024 * 1024, description="Largest accepted event, in bytes."
    )
    max_batch_bytes: int = Field(
        default=500 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest accepted request body, in bytes.",
    )
    tracking_allowed_origins: str = Field(
        default="*",
        description="Web origins whose pages may call the tracking API from the browser (analytics.js): "
        "'*' for any, or a comma-separated list such as https://shop.example.fr,https://www.example.fr. "
        "Only the tracking endpoints answer browsers (CORS); the rest of the API never does.",
    )
    max_future_skew_hours: int = Field(
        default=24,
        ge=0,
        le=24 * 366,
        description="Events stamped further than this in the future are refused.",
    )
    earliest_event_year: int = Field(
        default=1990, ge=1900, le=2100, description="Events stamped before this year are refused."
    )
    worker_threads: int = Field(
        default=2,
        ge=1,
        le=256,
        description="Threads serving blocking database work; few beat many on 2 cores (less GIL contention).",
    )
    identity_cache_size: int = Field(
        default=200_000,
        ge=0,
        le=50_000_000,
        description="Identifiers of the identity graph a server keeps in memory between ingestion "
        "batches (0: none; past the limit the cache starts over).",
    )
    match_realtime: bool = Field(
        default=True, description="Score profiles whose name, birth date or address change against the base."
    )
    match_auto_threshold: float = Field(
        default=0.99, gt=0, lt=1, description="Match probability at or above which profiles are merged."
    )
    match_review_threshold: float = Field(
        default=0.8,
        gt=0,
        lt=1,
        description="Match probability at or above which a pair is queued for review.",
    )
    inbox_continuity_hours: int = Field(
        default=72,
        ge=0,
        le=24 * 365,
        description="A resolved conversation reopens when the customer writes again within this many hours; "
        "after that a new conversation starts. Unresolved conversations always continue.",
    )
    telephony_webhook_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Shared secret of the telephony webhook (X-Parcours-Signature: sha256=HMAC of the body); "
        "empty: the webhook is refused.",
    )
    inbox_worker_seconds: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="How often the server delivers queued replies and checks SLAs.",
    )
    inbox_bot: bool = Field(
        default=False,
        description="Let the bot answer new messages from the knowledge base before a human "
        "(it hands off when unsure or when asked).",
    )
    inbox_csat: bool = Field(
        default=True,
        description="Ask customers to rate the help on the conversation's channel once resolved.",
    )
    inbox_email_domain: str = Field(
        default="parcours.localhost",
        description="The domain of the Message-IDs of e-mails the inbox sends.",
        pattern=r"^[A-Za-z0-9.-]{1,200}$",
    )
    # --- channel settings: email ---
    email_smtp_host: str = Field(
        default="127.0.0.1",
        description="Interface the inbound SMTP server of `parcours serve` listens on (put it behind the "
        "organisation's MX, which checks SPF/DKIM/DMARC).",
    )
    email_smtp_port: int = Field(
        default=2525, ge=0, le=65535, description="TCP port of the inbound SMTP server (0: no SMTP server)."
    )
    email_inbox_domains: str = Field(
        default="",
        description="Comma-separated domains whose addresses the SMTP server accepts mail for (any local "
        "part); empty: the domain of inbox_email_domain. Other recipients are refused (550).",
        pattern=r"^[A-Za-z0-9., -]{0,2000}$",
    )
    email_max_message_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        le=100 * 1024 * 1024,
        description="Largest accepted e-mail, as transmitted (bigger: refused with 552).",
    )
    email_max_attachment_bytes: int = Field(
        default=5 * 1024 * 1024, ge=0, le=100 * 1024 * 1024, description="Largest attachment kept, decoded."
    )
    email_max_attachments_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=0,
        le=100 * 1024 * 1024,
        description="Largest total of the attachments kept from one e-mail, decoded.",
    )
    email_max_attachments: int = Field(
        default=20, ge=0, le=1000, description="Most attachments kept from one e-mail."
    )
    email_allowed_attachment_types: str = Field(
        default="image/jpeg,image/png,image/gif,image/webp,application/pdf,text/plain,text/csv,"
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document,"
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet,"
        "application/vnd.oasis.opendocument.text,application/vnd.oasis.opendocument.spreadsheet,"
        "application/msword,application/vnd.ms-excel",
        description="Comma-separated content types of the attachments kept (checked against the bytes).",
    )
    email_attachments_dir: str = Field(
        default="",
        description="Directory attachments are stored in; empty: 'attachments' beside the SQLite file, or "
        "$XDG_DATA_HOME/parcours/attachments (~/.local/share/…) with PostgreSQL.",
    )
    email_relay_host: str = Field(
        default="", description="SMTP relay that e-mail replies are sent through (empty: no e-mail replies)."
    )
    email_relay_port: int = Field(default=587, ge=1, le=65535, description="Port of the SMTP relay.")
    email_relay_security: str = Field(
        default="starttls",
        pattern=r"^(starttls|tls|none)$",
        description="starttls (submission, port 587), tls (implicit TLS, port 465) or none (a relay on "
        "loopback; credentials are then never sent to another host).",
    )
    email_relay_username: str = Field(default="", description="Relay login (empty: no authentication).")
    email_relay_password: str = Field(default="", repr=False, description="Relay password.")
    email_relay_ca_file: str = Field(
        default="",
        description="CA bundle (PEM) that the relay's certificate is checked against (empty: the system's).",
    )
    email_relay_timeout_seconds: float = Field(
        default=20.0, ge=0.5, le=300, description="Timeout of each exchange with the relay, in seconds."
    )
    email_from_address: str = Field(
        default="",
        description="Address e-mail replies come from (empty: support@ the first inbox domain); customers' "
        "answers to it come back through the SMTP server.",
        pattern=r"^([^\s@<>,;\"]{1,64}@[A-Za-z0-9.-]{1,200})?$",
    )
    email_from_name: str = Field(
        default="", max_length=100, pattern=r"^[^\r\n]*$", description="Display name of the From address."
    )
    email_default_subject: str = Field(
        default="Your request",
        max_length=200,
        pattern=r"^[^\r\n]*$",
        description="Subject of an e-mail reply in a conversation that has none.",
    )
    # --- channel settings: meta ---
    meta_app_secret: str = Field(
        default="",
        description="Meta app secret: webhooks are accepted only with a valid X-Hub-Signature-256 made "
        "with it (empty: Meta webhooks are refused).",
    )
    meta_verify_token: str = Field(
        default="",
        description="The verify token typed in the Meta app's webhook settings, checked by the "
        "subscription handshake (empty: the handshake is refused).",
    )
    meta_graph_base_url: str = Field(
        default="https://graph.facebook.com",
        description="Base URL of the Graph API that replies are sent to.",
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
    )
    meta_graph_api_version: str = Field(
        default="v21.0", description="Graph API version of the send calls.", pattern=r"^v\d{1,3}\.\d{1,3}$"
    )
    meta_whatsapp_phone_number_id: str = Field(
        default="",
        description="WhatsApp Cloud API phone number id that replies are sent from (empty: none).",
        pattern=r"^\d{0,40}$",
    )
    meta_whatsapp_access_token: str = Field(
        default="", description="Access token (system user) for the WhatsApp Cloud API (empty: none)."
    )
    meta_page_access_token: str = Field(
        default="", description="Page access token that Messenger replies are sent with (empty: none)."
    )
    meta_instagram_access_token: str = Field(
        default="",
        description="Access token that Instagram replies are sent with (empty: the page access token, "
        "for an Instagram account linked to the page).",
    )
    meta_timeout_seconds: float = Field(
        default=10.0, ge=0.5, le=120, description="Timeout of each call to the Graph API, in seconds."
    )
    whatsapp_provider: str = Field(
        default="auto",
        pattern=r"^(auto|twilio|meta)$",
        description="Which adapter sends WhatsApp replies: twilio, meta, or auto (Twilio when its "
        "WhatsApp sender is configured, else Meta when its WhatsApp sender is configured).",
    )
    # --- channel settings: twilio ---
    twilio_account_sid: str = Field(
        default="", description="Twilio Account SID (AC…) that replies are sent with (empty: none)."
    )
    twilio_auth_token: str = Field(
        default="",
        description="Twilio auth token: signs webhooks (X-Twilio-Signature) and authenticates sends "
        "(empty: Twilio webhooks are refused and nothing is sent).",
    )
    twilio_sms_from: str = Field(
        default="",
        description="Number (E.164) or Messaging Service SID (MG…) that SMS replies are sent from "
        "(empty: no SMS replies).",
        pattern=r"^(\+[1-9]\d{4,14}|MG[0-9a-fA-F]{32})?$",
    )
    twilio_whatsapp_from: str = Field(
        default="",
        description="WhatsApp sender number (E.164, with or without 'whatsapp:') that WhatsApp replies are "
        "sent from (empty: no WhatsApp replies through Twilio).",
        pattern=r"^(whatsapp:)?(\+[1-9]\d{4,14})?$",
    )
    twilio_api_base_url: str = Field(
        default="https://api.twilio.com",
        description="Base URL of the Twilio REST API.",
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
    )
    twilio_webhook_base_url: str = Field(
        default="",
        description="Public base URL Twilio calls (e.g. https://parcours.example.com), used to check "
        "signatures behind a proxy; empty: the URL of the request as received.",
        pattern=r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$",
    )
    twilio_timeout_seconds: float = Field(
        default=10.0, ge=0.5, le=120, description="Timeout of each call to the Twilio API, in seconds."
    )
    # --- channel settings: widget ---
    widget_identity_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Secret of the web chat widget's identity verification: a site's back end signs each "
        "logged-in visitor's identity with HMAC-SHA256 (see docs/channels.md); empty: signed identities are "
        "refused and only anonymous chat works.",
    )
    widget_allowed_origins: str = Field(
        default="",
        max_length=4000,
        description="Comma-separated origins (https://shop.example.com) whose pages may open the web chat; "
        "'*' for any. The server's own host and localhost are always allowed.",
    )
    widget_max_frame_bytes: int = Field(
        default=16 * 1024, ge=1024, le=1024 * 1024, description="Largest web chat frame accepted, in bytes."
    )
    widget_max_body_chars: int = Field(
        default=4000,
        ge=1,
        le=100_000,
        description="Longest web chat message a visitor may send, in characters.",
    )
    widget_messages_per_minute: int = Field(
        default=30,
        ge=1,
        le=6000,
        description="Frames a web chat connection may send per minute (bursts of up to 10 beyond the pace).",
    )
    widget_history_limit: int = Field(
        default=50,
        ge=0,
        le=500,
        description="Recent chat messages sent to the widget when a visitor (re)connects.",
    )
    loyalty_expiry_months: int = Field(
        default=24,
        ge=1,
        le=600,
        description="Loyalty points expire this many months after they were earned (used first in, first out).",
    )
    # --- console (web pages) ---
    console_session_hours: int = Field(
        default=12,
        ge=1,
        le=24 * 90,
        description="A console session ends this many hours after the user's last page (sign in again).",
    )
    console_secure_cookies: str = Field(
        default="auto",
        pattern=r"^(auto|always|never)$",
        description="The Secure flag of the console's session cookie: auto (when the request came over "
        "https, or X-Forwarded-Proto says so), always, or never.",
    )
    console_public_url: str = Field(
        default="",
        description="The public base URL of this server (https://parcours.example.com), shown in the admin "
        "pages' webhook URLs; empty: the URL the admin's browser used.",
        pattern=r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$",
    )
    console_timezone: str = Field(
        default="Europe/Paris",
        description="Time zone the console shows dates and times in (an IANA name such as Europe/Paris).",
    )
    log_level: str = Field(default="INFO")
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry: a span, metrics and error logs for every request, sent "
        "to the OpenTelemetry providers configured in the process (an SDK and its exporters, set up by "
        "whoever runs Parcours). Off: no per-request telemetry checks.",
    )

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> Settings:
        if self.match_review_threshold > self.match_auto_threshold:
            raise ValueError("match_review_threshold must not exceed match_auto_threshold")
        return self

    @field_validator("console_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; give an IANA name such as Europe/Paris") from None
        return value

    @field_validator("tracking_allowed_origins")
    @classmethod
    def _web_origins(cls, value: str) -> str:
        origins = [part.strip() for part in value.split(",") if part.strip()]
        if origins == ["*"]:
            return "*"
        if not origins:
            raise ValueError("give '*' or at least one origin such as https://shop.example.fr")
        written = []
        for origin in origins:
            if origin == "*":
                raise ValueError("'*' (any origin) cannot be listed beside other origins")
            try:
                parts = urlsplit(origin.lower())  # browsers send the scheme and host in lower case
                _ = parts.port  # a port that is not a number raises ValueError
                well_formed = parts.scheme in ("http", "https")
            except ValueError:
                well_formed = False
            if (
                not well_formed
                or not parts.hostname
                or "@" in parts.netloc
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
            ):
                raise ValueError(
                    f"{origin!r} is not a web origin; write scheme://host[:port] with nothing after it, "
                    "such as https://shop.example.fr"
                )
            written.append(f"{parts.scheme}://{parts.netloc}")
        return ",".join(written)

    @property
    def tracking_origins(self) -> tuple[str, ...]:
        """The origins of ``tracking_allowed_origins``; ``("*",)`` for any."""
        return tuple(self.tracking_allowed_origins.split(","))

    @field_validator("default_phone_region")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        region = value.strip().upper()
        if len(region) != 2 or not region.isalpha():
            raise ValueError("must be a two-letter ISO 3166 region code such as FR")
        return region

    @property
    def sqlalchemy_url(self) -> str:
        """The URL with a driver SQLAlchemy can use (``postgresql://`` means psycopg 3 here)."""
        url = self.database_url
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
