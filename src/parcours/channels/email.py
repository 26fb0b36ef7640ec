"""The e-mail channel: an SMTP server that puts customers' e-mails in the inbox, and a sender that
delivers agents' replies through an SMTP relay, threaded (Message-ID, In-Reply-To, References).

The SMTP server (aiosmtpd) is started by ``parcours serve`` beside the HTTP server
(``start_smtp_server``); it accepts mail for any address of the inbox domains and refuses the rest. It is
meant to sit behind the organisation's MX, which checks SPF, DKIM and DMARC: the From address is taken as
the customer's.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import mimetypes
import os
import re
import secrets
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from parcours.channels.email_parse import (
    AttachmentPart,
    AttachmentRefused,
    MailRefused,
    ParsedEmail,
    check_attachment,
    parse_email,
)
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.types import utcnow
from parcours.errors import Conflict, InvalidInput
from parcours.identity.kinds import ascii_address
from parcours.identity.resolution import GraphCache
from parcours.inbox.outbound import DeliveryFailed, Outgoing
from parcours.inbox.service import Inbound, receive
from parcours.inbox.writer import InboxWriter

log = logging.getLogger("parcours.channels.email")

PROVIDER = "smtp"
MAX_RECIPIENTS = 50


# --------------------------------------------------------------------------------------------- settings
def inbox_domains(settings: Settings) -> list[str]:
    """The domains the SMTP server accepts mail for, lower case."""
    domains = [d.strip().lower().rstrip(".") for d in settings.email_inbox_domains.split(",")]
    return [d for d in domains if d] or [settings.inbox_email_domain.lower()]


def allowed_types(settings: Settings) -> frozenset[str]:
    return frozenset(
        t.strip().lower() for t in settings.email_allowed_attachment_types.split(",") if t.strip()
    )


def attachments_dir(settings: Settings) -> Path:
    """Where attachments are stored: the setting, else beside the SQLite file, else the user's data dir."""
    if settings.email_attachments_dir:
        return Path(settings.email_attachments_dir).expanduser()
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(str(url.database)).expanduser().resolve().parent / "attachments"
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "parcours" / "attachments"


def from_address(settings: Settings) -> str:
    return settings.email_from_address or f"support@{inbox_domains(settings)[0]}"


# ---------------------------------------------------------------------------------------- attachments
class AttachmentStore:
    """Attachments on disk, each under a random name (the customer's file name is only metadata), in
    files only the server's user can read. Paths recorded on messages are relative to ``root``."""

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.max_file = settings.email_max_attachment_bytes
        self.max_total = settings.email_max_attachments_bytes
        self.max_count = settings.email_max_attachments
        self.allowed = allowed_types(settings)

    def keep(
        self, parts: list[AttachmentPart], now: datetime
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Check and store each attachment; returns those kept ({name, content_type, size, path,
        sha256}) and those refused ({name, content_type, size, reason})."""
        kept: list[dict[str, Any]] = []
        refused: list[dict[str, Any]] = []
        total = 0
        try:
            for part in parts:
                size = len(part.data)
                try:
                    if len(kept) >= self.max_count:
                        raise AttachmentRefused(f"more than {self.max_count} attachments")
                    if size > self.max_file:
                        raise AttachmentRefused(f"larger than {self.max_file} bytes")
                    if total + size > self.max_total:
                        raise AttachmentRefused(f"attachments larger than {self.max_total} bytes in all")
                    content_type = check_attachment(part, self.allowed)
                except AttachmentRefused as refusal:
                    refused.append(
                        {"name": part.name, "content_type": part.content_type, "size": size,
                         "reason": refusal.message}
                    )  # fmt: skip
                    continue
                path = self._write(part.data, content_type, now)
                total += size
                kept.append(
                    {"name": part.name, "content_type": content_type, "size": size, "path": path,
                     "sha256": hashlib.sha256(part.data).hexdigest()}
                )  # fmt: skip
        except BaseException:
            self.remove(kept)
            raise
        return kept, refused

    def _write(self, data: bytes, content_type: str, now: datetime) -> str:
        folder = Path(f"{now:%Y}") / f"{now:%m}"
        (self.root / folder).mkdir(parents=True, exist_ok=True, mode=0o700)
        extension = mimetypes.guess_extension(content_type, strict=False) or ".bin"
        relative = folder / f"{secrets.token_hex(16)}{extension}"
        target = self.root / relative
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return relative.as_posix()

    def path(self, relative: str) -> Path:
        """The file of a stored attachment (for downloads); refuses paths leaving the store."""
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise InvalidInput("attachment path: outside the attachment store")
        return target

    def remove(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            try:
                self.path(str(record["path"])).unlink(missing_ok=True)
            except (OSError, InvalidInput):
                log.warning("attachment not removed", extra={"path": record.get("path")})


# -------------------------------------------------------------------------------------------- inbound
@dataclass
class Accepted:
    reply: str  # the SMTP answer
    message_id: str | None = None  # the inbox message, when stored
    conversation_id: str | None = None
    duplicate: bool = False


class InboundMail:
    """aiosmtpd handler: recipients checked at RCPT, each e-mail read and stored in one write
    transaction at DATA (through the app's ``InboxWriter`` when given: one commit shared with the other
    channels' messages). Every outcome is an SMTP answer: 250 stored (or already stored), 550/554 for a
    permanent problem (do not send it again), 451 for a temporary one (the sender's server retries)."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        cache: GraphCache | None = None,
        store: AttachmentStore | None = None,
        writer: InboxWriter | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.cache = cache
        self.writer = writer
        self.domains = frozenset(inbox_domains(settings))
        self.store = store or AttachmentStore(attachments_dir(settings), settings)

    async def handle_RCPT(
        self, server: SMTP, session: SmtpSession, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        _local, at, domain = address.rpartition("@")
        if not at or domain.lower().rstrip(".") not in self.domains:
            return "550 5.1.1 Recipient not accepted here"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        loop = asyncio.get_running_loop()
        accepted = await loop.run_in_executor(
            None, self.accept, bytes(raw), envelope.mail_from, list(envelope.rcpt_tos)
        )
        return accepted.reply

    def accept(self, raw: bytes, mail_from: str | None, recipients: list[str]) -> Accepted:
        """Read one e-mail and put it in the inbox (blocking: run it off the event loop)."""
        now = utcnow()
        try:
            parsed = parse_email(
                raw, now=now, envelope_sender=mail_from, earliest_year=self.settings.earliest_event_year
            )
        except MailRefused as refusal:
            log.info("e-mail refused", extra={"reason": refusal.message, "bytes": len(raw)})
            return Accepted(refusal.reply)
        except Exception as error:  # a message the email package cannot read must not kill the session
            log.warning("e-mail unreadable", extra={"error": type(error).__name__, "bytes": len(raw)})
            return Accepted("554 5.6.0 The message could not be read")
        kept: list[dict[str, Any]] = []
        try:
            kept, refused = self.store.keep(parsed.attachments, now)
            inbound = _inbound(parsed, kept, refused, recipients)
            if self.writer is not None:
                received = self.writer.submit(inbound)
            else:
                with self.database.write() as session:
                    received = receive(session, self.settings, inbound, cache=self.cache, now=now)
        except InvalidInput as error:
            self.store.remove(kept)
            log.info("e-mail refused", extra={"reason": error.message[:200]})
            return Accepted(f"550 5.6.0 {_reply_text(error.message)}")
        except Conflict:
            self.store.remove(kept)
            return Accepted("550 5.7.1 The message cannot be accepted")
        except (SQLAlchemyError, OSError) as error:
            self.store.remove(kept)
            log.warning("e-mail not stored", extra={"error": type(error).__name__})
            return Accepted("451 4.3.0 Temporary failure, try again later")
        except Exception as error:
            self.store.remove(kept)
            log.exception("e-mail not stored", extra={"error": type(error).__name__})
            return Accepted("451 4.3.0 Temporary failure, try again later")
        if received.duplicate:
            self.store.remove(kept)
            return Accepted(
                "250 2.0.0 OK: already received", received.message_id, received.conversation_id, True
            )
        log.info(
            "e-mail received",
            extra={"message_id": received.message_id, "conversation_id": received.conversation_id,
                   "attachments": len(kept), "refused_attachments": len(refused)},
        )  # fmt: skip
        return Accepted(f"250 2.0.0 OK: queued as {received.message_id}", received.message_id,
                        received.conversation_id)  # fmt: skip


def _inbound(
    parsed: ParsedEmail, kept: list[dict[str, Any]], refused: list[dict[str, Any]], recipients: list[str]
) -> Inbound:
    details: dict[str, Any] = {"recipients": recipients[:MAX_RECIPIENTS], "format": parsed.body_format}
    if refused:
        details["refused_attachments"] = refused
    if parsed.auto_submitted:
        details["auto_submitted"] = True
    if parsed.synthesised_id:
        details["synthesised_message_id"] = True
    return Inbound(
        channel="email",
        provider=PROVIDER,
        provider_message_id=parsed.message_id,
        identifiers=[("email", parsed.sender)],
        body=parsed.body,
        sent_at=parsed.sent_at,
        customer_address=parsed.sender,
        subject=parsed.subject,
        email_message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to,
        attachments=kept,
        details=details,
        traits={"name": parsed.sender_name} if parsed.sender_name else {},
    )


def _reply_text(message: str) -> str:
    """Text safe in an SMTP reply line: printable ASCII, one line, short."""
    return re.sub(r"[^\x20-\x7e]", "?", message)[:200] or "The message cannot be accepted"


class SmtpServer:
    """The inbound SMTP server in its own thread (aiosmtpd's controller)."""

    def __init__(self, handler: InboundMail, settings: Settings, *, host: str, port: int) -> None:
        self.handler = handler
        self.host, self.port = host, port
        self.controller = Controller(
            handler,
            hostname=host,
            port=port,
            server_hostname=inbox_domains(settings)[0],  # not socket.getfqdn(): no DNS lookup at start
            data_size_limit=settings.email_max_message_bytes,
            enable_SMTPUTF8=True,
            timeout=120,
            ready_timeout=10,
        )

    def start(self) -> None:
        # aiosmtpd logs senders and recipients at INFO and message lines at DEBUG: never into our logs.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def start_smtp_server(
    settings: Settings, database: Database, *, writer: InboxWriter | None = None
) -> SmtpServer | None:
    """Start the inbound SMTP server of the settings (None when its port is 0), storing through
    ``writer`` (the app's) when given. Raises ``OSError`` when it cannot listen."""
    if settings.email_smtp_port == 0:
        return None
    handler = InboundMail(database, settings, writer=writer)
    server = SmtpServer(handler, settings, host=settings.email_smtp_host, port=settings.email_smtp_port)
    try:
        server.start()
    except Exception as error:  # aiosmtpd re-raises the bind error or a timeout as various types
        raise OSError(
            f"cannot listen on {settings.email_smtp_host}:{settings.email_smtp_port}: {error}"
        ) from None
    return server


# ------------------------------------------------------------------------------------------- outbound
_REPLY_PREFIX = re.compile(r"^\s*(re|ré|aw|sv|antw)\s*:", re.IGNORECASE)


def compose_reply(
    outgoing: Outgoing, *, sender: str, sender_name: str, default_subject: str, now: datetime
) -> EmailMessage:
    """The e-mail of an agent's reply: From, To, Subject ("Re: …" when answering), Message-ID (the one
    the inbox stored), In-Reply-To and References (threading), Date, and the text."""
    # An internationalised domain travels in its ASCII form, so that any relay takes it. A local part
    # with non-ASCII characters has no such form (it needs SMTPUTF8, which replies do not use).
    recipient = ascii_address(outgoing.to.strip()) or outgoing.to.strip()
    if not recipient.isascii():
        raise DeliveryFailed("recipient address has non-ASCII characters before the @, not supported")
    try:
        to = Address(addr_spec=recipient)
    except Exception:
        raise DeliveryFailed("invalid recipient address") from None
    if not to.domain or not to.username:
        raise DeliveryFailed("invalid recipient address")
    subject = re.sub(r"[\r\n\t]+", " ", outgoing.subject or "").strip() or default_subject
    if outgoing.in_reply_to and not _REPLY_PREFIX.match(subject):
        subject = f"Re: {subject}"
    message = EmailMessage()
    message["From"] = formataddr((sender_name, sender)) if sender_name else sender
    message["To"] = to
    message["Subject"] = subject[:300]
    message["Date"] = format_datetime(now)
    message["Message-ID"] = outgoing.email_message_id or make_msgid(domain=sender.rpartition("@")[2])
    threading = [i for i in outgoing.in_reply_to if re.fullmatch(r"<[^<>\s]{1,250}>", i)]
    if threading:
        message["In-Reply-To"] = threading[0]
        message["References"] = " ".join(reversed(threading))
    message.set_content(outgoing.body)
    return message


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _server_text(error: smtplib.SMTPResponseException) -> str:
    text = (
        error.smtp_error.decode("utf-8", "replace")
        if isinstance(error.smtp_error, bytes)
        else str(error.smtp_error)
    )
    return re.sub(r"\s+", " ", re.sub(r"[^\x20-\x7e\s]", "?", text)).strip()[:120]


class SmtpRelaySender:
    """Sends e-mail replies through the configured SMTP relay (STARTTLS, implicit TLS or, for a relay on
    loopback, plain). Failures become ``DeliveryFailed`` with a short reason (never the password)."""

    def __init__(self, settings: Settings) -> None:
        self.host = settings.email_relay_host
        self.port = settings.email_relay_port
        self.security = settings.email_relay_security
        self.username = settings.email_relay_username
        self._password = settings.email_relay_password
        self.ca_file = settings.email_relay_ca_file or None
        self.timeout = settings.email_relay_timeout_seconds
        self.sender = from_address(settings)
        self.sender_name = settings.email_from_name
        self.default_subject = settings.email_default_subject

    def __repr__(self) -> str:
        return f"SmtpRelaySender({self.host}:{self.port}, {self.security})"

    def send(self, outgoing: Outgoing) -> str:
        message = compose_reply(
            outgoing,
            sender=self.sender,
            sender_name=self.sender_name,
            default_subject=self.default_subject,
            now=utcnow(),
        )
        try:
            self._transmit(message, str(message["To"].addresses[0].addr_spec))
        except DeliveryFailed:
            raise
        except smtplib.SMTPAuthenticationError as error:
            raise DeliveryFailed(f"relay refused the login ({error.smtp_code})") from None
        except smtplib.SMTPRecipientsRefused as error:
            codes = [f"{code} {_server_text(smtplib.SMTPResponseException(code, text))}"
                     for code, text in error.recipients.values()]  # fmt: skip
            raise DeliveryFailed(f"relay refused the recipient: {'; '.join(codes)[:160]}") from None
        except smtplib.SMTPSenderRefused as error:
            raise DeliveryFailed(f"relay refused the sender address ({error.smtp_code})") from None
        except smtplib.SMTPNotSupportedError:
            raise DeliveryFailed("relay does not offer what is needed (STARTTLS or AUTH)") from None
        except smtplib.SMTPServerDisconnected:
            raise DeliveryFailed("relay closed the connection") from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryFailed(f"relay answered {error.smtp_code} {_server_text(error)}".strip()) from None
        except smtplib.SMTPException as error:
            raise DeliveryFailed(f"SMTP error ({type(error).__name__})") from None
        except ssl.SSLCertVerificationError:
            raise DeliveryFailed("relay's TLS certificate is not trusted") from None
        except ssl.SSLError:
            raise DeliveryFailed("TLS with the relay failed") from None
        except TimeoutError:
            raise DeliveryFailed("relay did not answer in time") from None
        except ConnectionRefusedError:
            raise DeliveryFailed("relay unreachable (connection refused)") from None
        except OSError as error:
            raise DeliveryFailed(f"relay unreachable ({type(error).__name__})") from None
        return str(message["Message-ID"])

    def _transmit(self, message: EmailMessage, recipient: str) -> None:
        context = ssl.create_default_context(cafile=self.ca_file)
        local_name = self.sender.rpartition("@")[2] or "localhost"
        client: smtplib.SMTP
        if self.security == "tls":
            client = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=context, local_hostname=local_name
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout, local_hostname=local_name)
        with client:
            client.ehlo()
            if self.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if self.username:
                if self.security == "none" and not _is_loopback(self.host):
                    raise DeliveryFailed("refusing to send the relay password without TLS")
                client.login(self.username, self._password)
            refused = client.send_message(message, from_addr=self.sender, to_addrs=[recipient])
            if refused:
                raise DeliveryFailed("relay refused the recipient")


def install(app: FastAPI, settings: Settings) -> None:
    """Register the e-mail sender when a relay is configured. The SMTP server is started by
    ``parcours serve`` (``start_smtp_server``), so an app made in tests opens no port."""
    if settings.email_relay_host:
        app.state.outbox.register("email", SmtpRelaySender(settings))
