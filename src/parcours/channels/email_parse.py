"""Reading an e-mail as the inbox needs it: the sender, the subject, the threading ids, the date, the
customer's own words (the text part, or the HTML part turned into text, with quoted replies and the
signature taken off) and the attachments, each checked (size, allowed type, bytes matching the type)
before anything is stored.

Everything here is pure: bytes in, values out; ``parcours.channels.email`` does the SMTP and the storage.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from parcours.errors import InvalidInput

MAX_TEXT = 1_000_000  # characters of a text part read (the inbox keeps 100,000)
MAX_HTML = 1_000_000  # characters of an HTML part parsed
MAX_IDS = 50  # threading ids kept from In-Reply-To and References
MAX_ID_LENGTH = 250
MAX_NAME = 120  # characters of an attachment's file name
MAX_DEPTH = 20  # MIME nesting read


class MailRefused(InvalidInput):
    """The e-mail cannot be accepted; ``reply`` is the SMTP answer (a 5xx code: do not send it again)."""

    def __init__(self, message: str, *, reply: str) -> None:
        super().__init__(message)
        self.reply = reply


class AttachmentRefused(InvalidInput):
    """An attachment is not kept (too big, a type not allowed, bytes not matching the type)."""


@dataclass
class AttachmentPart:
    """An attachment as found in the e-mail, before any check."""

    name: str  # sanitised
    content_type: str  # as declared, lower case
    data: bytes


@dataclass
class ParsedEmail:
    sender: str  # the From address
    sender_name: str | None
    subject: str | None
    message_id: str  # <…>; synthesised from the bytes when the e-mail has none
    synthesised_id: bool
    in_reply_to: list[str]  # In-Reply-To first, then References from the most recent
    sent_at: datetime | None
    body: str
    body_format: str  # plain, html or none
    attachments: list[AttachmentPart] = field(default_factory=list)
    auto_submitted: bool = False


# ------------------------------------------------------------------------------------------- the e-mail
def parse_email(raw: bytes, *, now: datetime, envelope_sender: str | None = None, earliest_year: int = 1990) -> ParsedEmail:  # fmt: skip
    """Read an e-mail (RFC 5322 bytes). Raises ``MailRefused`` when it has no usable sender."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if not isinstance(message, EmailMessage):  # pragma: no cover - policy.default makes EmailMessage
        raise MailRefused("not an e-mail", reply="554 5.6.0 Message could not be read")
    sender, sender_name = _sender(message, envelope_sender)
    message_id = _first_id(_header_text(message, "Message-ID"))
    synthesised = message_id is None
    if message_id is None:
        message_id = f"<sha256-{hashlib.sha256(raw).hexdigest()[:40]}@parcours.invalid>"
    replied = _ids(_header_text(message, "In-Reply-To"))
    references = _ids(_header_text(message, "References"))
    in_reply_to = [i for i in dict.fromkeys([*replied, *reversed(references)]) if i != message_id][:MAX_IDS]
    body_part = _body_part(message)
    body, body_format = "", "none"
    if body_part is not None:
        text = _text_of(body_part)
        if body_part.get_content_subtype() == "html":
            body, body_format = strip_quoted(html_to_text(text)), "html"
        else:
            if str(body_part.get_param("format", "")).lower() == "flowed":
                text = _unflow(text, delsp=str(body_part.get_param("delsp", "")).lower() == "yes")
            body, body_format = strip_quoted(text), "plain"
    auto = (_header_text(message, "Auto-Submitted") or "no").strip().lower()
    precedence = (_header_text(message, "Precedence") or "").strip().lower()
    return ParsedEmail(
        sender=sender,
        sender_name=sender_name,
        subject=_clean_line(_header_text(message, "Subject"), 300),
        message_id=message_id,
        synthesised_id=synthesised,
        in_reply_to=in_reply_to,
        sent_at=_date(message, now, earliest_year),
        body=body,
        body_format=body_format,
        attachments=list(_attachments(message, body_part)),
        auto_submitted=auto != "no" or precedence in ("bulk", "junk", "auto_reply", "list"),
    )


def _header(message: EmailMessage, name: str) -> Any:
    """A header as the ``email`` package parsed it, or None (a header it cannot parse counts as absent)."""
    try:
        return message.get(name)
    except Exception:  # the header parser has failed on crafted input before: treat as absent
        return None


def _header_text(message: EmailMessage, name: str) -> str | None:
    value = _header(message, name)
    return None if value is None else str(value)


def _sender(message: EmailMessage, envelope_sender: str | None) -> tuple[str, str | None]:
    header = _header(message, "From")
    for address in getattr(header, "addresses", ()) or ():
        spec = str(getattr(address, "addr_spec", "") or "")
        if _plausible_address(spec):
            return spec, _clean_line(str(getattr(address, "display_name", "") or ""), 200)
    if envelope_sender and _plausible_address(envelope_sender):
        return envelope_sender, None
    raise MailRefused("no sender address", reply="550 5.1.7 The message has no valid From address")


def _plausible_address(value: str) -> bool:
    local, at, domain = value.rpartition("@")
    return bool(at and local and domain and len(value) <= 320 and not re.search(r"[\s<>,;]", value))


_ID = re.compile(rf"<([^<>\s]{{1,{MAX_ID_LENGTH}}})>")


def _ids(value: str | None) -> list[str]:
    return [f"<{match}>" for match in _ID.findall(value or "") if "@" in match]


def _first_id(value: str | None) -> str | None:
    ids = _ids(value)
    if ids:
        return ids[0]
    bare = (value or "").strip()  # some senders leave the angle brackets out
    if bare and "@" in bare and len(bare) <= MAX_ID_LENGTH and not re.search(r"[\s<>]", bare):
        return f"<{bare}>"
    return None


def _date(message: EmailMessage, now: datetime, earliest_year: int) -> datetime | None:
    """The Date header, in UTC; a date in the future is now, a date before ``earliest_year`` is unknown."""
    moment = getattr(_header(message, "Date"), "datetime", None)
    if not isinstance(moment, datetime):
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment.year < earliest_year:
        return None
    return min(moment, now)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def _clean_line(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    cleaned = re.sub(r"\s+", " ", _CONTROL.sub(" ", value)).strip()[:limit]
    return cleaned or None


# ------------------------------------------------------------------------------------------------ text
def _body_part(message: EmailMessage) -> EmailMessage | None:
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except Exception:
        return None
    return part if isinstance(part, EmailMessage) else None


def _text_of(part: EmailMessage) -> str:
    """A text part's content, decoded with its charset (an unknown charset: UTF-8 with replacements)."""
    try:
        content = part.get_content()
        if isinstance(content, str):
            return content[:MAX_TEXT]
    except Exception:
        pass
    payload = part.get_payload(decode=True)
    return payload[: MAX_TEXT * 4].decode("utf-8", "replace")[:MAX_TEXT] if isinstance(payload, bytes) else ""


def _unflow(text: str, *, delsp: bool) -> str:
    """Undo format=flowed (RFC 3676): a line ending with a space continues on the next line."""
    lines: list[str] = []
    current: str | None = None
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if line.startswith(" "):
            line = line[1:]  # space-stuffing
        if current is not None:
            line = current + line
            current = None
        if line.endswith(" ") and line != "-- " and not line.startswith(">"):
            current = line[:-1] if delsp else line
        else:
            lines.append(line)
    if current is not None:
        lines.append(current)
    return "\n".join(lines)


_ATTRIBUTION = re.compile(
    r"^\s*(on\b.{0,300}\bwrote\s*:|le\b.{0,300}\ba\s+écrit\s*:)\s*$", re.IGNORECASE | re.DOTALL
)
_ATTRIBUTION_START = re.compile(r"^\s*(on|le)\s", re.IGNORECASE)
_ORIGINAL = re.compile(
    r"^\s*-{2,}\s*(original message|message d'origine|message original)\s*-{2,}\s*$", re.IGNORECASE
)
_HEADER_FROM = re.compile(r"^\s*\**\s*(from|de)\s*:\s*\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(r"^\s*\**\s*(sent|envoyé|date|to|à)\s*:", re.IGNORECASE)


def strip_quoted(text: str) -> str:
    """The customer's own words: quoted lines ("> …"), the attribution of the quote ("On … wrote:",
    "Le … a écrit :"), the quoted original under an Outlook separator or header block, and the
    signature (after "-- ") taken off. A message that is nothing but a quote is kept whole."""
    lines = normalize_text(text).split("\n")
    kept: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if line in ("-- ", "--"):
            break  # the signature, to the end
        if _ORIGINAL.match(line):
            break
        if re.fullmatch(r"_{8,}", stripped) or _HEADER_FROM.match(line):
            following = [x for x in lines[index + 1 : index + 4] if x.strip()]
            if re.fullmatch(r"_{8,}", stripped):
                if following and _HEADER_FROM.match(following[0]):
                    break
            elif any(_HEADER_NEXT.match(x) for x in following[:2]) and any(k.strip() for k in kept):
                break
        if stripped.startswith(">"):
            index += 1
            continue
        if _ATTRIBUTION_START.match(line):
            span = next(
                (n for n in (1, 2, 3) if _ATTRIBUTION.match(" ".join(lines[index : index + n]))), None
            )
            if span is not None:
                index += span
                continue
        kept.append(line)
        index += 1
    result = normalize_text("\n".join(kept))
    return result or normalize_text(text)


def normalize_text(text: str) -> str:
    """Line ends as \\n, no control or invisible characters, no trailing spaces, at most one blank line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)  # tabs and line ends are not in _CONTROL
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n").strip()


# Elements whose content is never text for the reader: raw text (read to their end tag, never parsed) and
# containers skipped with everything inside, the quoted reply (<blockquote>) included.
_RAW_TEXT = frozenset({"script", "style", "title", "textarea", "xmp", "iframe", "noembed", "noframes"})
_SKIPPED = frozenset(
    {"template", "noscript", "svg", "math", "object", "applet", "frameset", "select", "button", "blockquote"}
)
_BLOCKS = frozenset(
    {"div", "section", "article", "header", "footer", "main", "nav", "aside", "ul", "ol", "dl", "dt", "dd",
     "table", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "hr", "address", "form", "fieldset", "figure",
     "figcaption", "center"}
)  # fmt: skip
_VOID = frozenset(
    {"br", "img", "hr", "meta", "link", "input", "area", "base", "col", "param", "source", "track", "wbr",
     "embed", "frame"}
)  # fmt: skip
_TAG = re.compile(r"(/?)([a-zA-Z][a-zA-Z0-9:-]{0,40})")
_HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE)


class _Text:
    """Text being written from HTML, stopping at ``limit`` characters."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size, self.parts, self.pre = limit, 0, list[str](), 0

    @property
    def full(self) -> bool:
        return self.size >= self.limit

    def add(self, text: str) -> None:
        if text and not self.full:
            self.parts.append(text)
            self.size += len(text)

    def data(self, raw: str) -> None:
        text = html.unescape(raw)  # decoded once, into text: never parsed as HTML again
        self.add(text if self.pre else re.sub(r"\s+", " ", text))

    def tag(self, name: str, closing: bool) -> None:
        if name == "br" and not closing:
            self.add("\n")
        elif name == "li" and not closing:
            self.add("\n- ")
        elif name in ("td", "th") and not closing:
            self.add(" ")
        elif name == "p":
            self.add("\n\n")
        elif name in _BLOCKS:
            self.add("\n")
        if name == "pre":
            self.pre = max(0, self.pre + (-1 if closing else 1))

    def text(self) -> str:
        lines = "".join(self.parts)[: self.limit].split("\n")
        return normalize_text("\n".join(line.strip(" ") for line in lines))


def html_to_text(markup: str, *, limit: int = 200_000) -> str:
    """The text of an HTML e-mail part, safely: nothing of scripts, styles, embedded objects or the quoted
    reply (<blockquote>); character references decoded once, into text; links shown as ``text <url>``
    (http and https only). At most ``MAX_HTML`` characters are read and ``limit`` written, in linear time
    whatever the input (unclosed comments or tags end the text; CPython's HTMLParser is quadratic there)."""
    markup = markup[:MAX_HTML]
    lower = markup.lower()
    out = _Text(limit)
    skipping: list[str] = []
    link: tuple[str, int] | None = None  # href, index of the link's first part
    pos, end, next_gt = 0, len(markup), -2
    while pos < end and not out.full:
        lt = markup.find("<", pos)
        if lt < 0:
            lt = end
        if lt > pos and not skipping:
            out.data(markup[pos:lt])
        if lt >= end:
            break
        if markup.startswith("<!--", lt):
            close = markup.find("-->", lt + 4)
            if close < 0:
                break  # an unclosed comment hides the rest
            pos = close + 3
            continue
        if next_gt != -1 and next_gt <= lt:
            next_gt = markup.find(">", lt + 1)  # each ">" is searched for once: linear time
        if next_gt < 0:
            break  # an unclosed tag: what follows is not text
        inner = markup[lt + 1 : next_gt]
        match = _TAG.match(inner)
        if match is None:
            if inner[:1] in ("!", "?"):  # <!doctype …>, <?xml …?>, <![CDATA[…]]>
                pos = next_gt + 1
            else:  # a "<" that starts no tag is text
                if not skipping:
                    out.data("<")
                pos = lt + 1
            continue
        closing, name = bool(match.group(1)), match.group(2).lower()
        pos = next_gt + 1
        if name in _RAW_TEXT and not closing:
            close = lower.find("</" + name, pos)
            if close < 0:
                break
            pos = close
            continue
        if skipping:
            if name in _SKIPPED and not inner.endswith("/"):
                if not closing:
                    skipping.append(name)
                elif name in skipping:
                    while skipping.pop() != name:
                        pass
            continue
        if name in _SKIPPED:
            if not closing and not inner.endswith("/"):
                skipping.append(name)
            continue
        if name == "a":
            if closing and link is not None:
                href, first = link
                if href not in "".join(out.parts[first:]):
                    out.add(f" <{href[:500]}>")
                link = None
            elif not closing:
                found = _HREF.search(inner)
                href = html.unescape(next((g for g in found.groups() if g), "")).strip() if found else ""
                link = (href, len(out.parts)) if re.match(r"https?://[^\s<>]+$", href, re.I) else None
        out.tag(name, closing)
    return out.text()


# ----------------------------------------------------------------------------------------- attachments
def _attachments(message: EmailMessage, body: EmailMessage | None) -> list[AttachmentPart]:
    found: list[AttachmentPart] = []

    def walk(part: EmailMessage, depth: int) -> None:
        if part is body or depth > MAX_DEPTH:
            return
        content_type = part.get_content_type().lower()
        if content_type == "message/rfc822":
            found.append(_attachment(part, content_type, len(found), _message_bytes(part)))
            return
        if part.is_multipart():
            for child in part.iter_parts():
                if isinstance(child, EmailMessage):
                    walk(child, depth + 1)
            return
        try:
            disposition, filename = part.get_content_disposition(), part.get_filename()
        except Exception:
            disposition, filename = "attachment", None
        if disposition == "attachment" or filename or part.get_content_maintype() != "text":
            payload = part.get_payload(decode=True)
            found.append(
                _attachment(part, content_type, len(found), payload if isinstance(payload, bytes) else b"")
            )

    walk(message, 0)
    return found


def _message_bytes(part: EmailMessage) -> bytes:
    try:
        inner = part.get_payload(0)
        return inner.as_bytes() if isinstance(inner, EmailMessage) else b""
    except Exception:
        return b""


def _attachment(part: EmailMessage, content_type: str, index: int, data: bytes) -> AttachmentPart:
    try:
        filename = part.get_filename()
    except Exception:
        filename = None
    name = sanitize_filename(filename or "")
    if name == "attachment":
        name = f"attachment-{index + 1}{mimetypes.guess_extension(content_type) or ''}"
    return AttachmentPart(name=name, content_type=content_type, data=data)


def sanitize_filename(name: str) -> str:
    """A file name safe to show and to offer for download: no directory, no control or invisible
    characters (right-to-left overrides…), only letters, digits and ``. ( ) + - _`` and spaces, no leading
    dot, at most ``MAX_NAME`` characters with its extension kept."""
    name = unicodedata.normalize("NFKC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    name = re.sub(r"[^\w.()+\- ]", "_", name)
    name = re.sub(r"\.{2,}", ".", re.sub(r"\s+", " ", name)).strip(" ._")
    if not name:
        return "attachment"
    if len(name) > MAX_NAME:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 10:
            name = f"{stem[: MAX_NAME - len(extension) - 1]}.{extension}"
        else:
            name = name[:MAX_NAME]
    return name


# What the first bytes of common files are.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "zip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"),  # Word 97, Excel 97, Outlook .msg
    (b"MZ", "executable"),
    (b"\x7fELF", "executable"),
    (b"\xca\xfe\xba\xbe", "executable"),
    (b"\xcf\xfa\xed\xfe", "executable"),
    (b"#!", "executable"),
    (b"Rar!\x1a\x07", "archive"),
    (b"7z\xbc\xaf\x27\x1c", "archive"),
    (b"\x1f\x8b", "archive"),
)
# For each type: the kinds of bytes it may hold.
_EXPECTED: dict[str, frozenset[str]] = {
    "image/jpeg": frozenset({"image/jpeg"}),
    "image/png": frozenset({"image/png"}),
    "image/gif": frozenset({"image/gif"}),
    "image/webp": frozenset({"image/webp"}),
    "application/pdf": frozenset({"application/pdf"}),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": frozenset({"zip"}),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": frozenset({"zip"}),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": frozenset({"zip"}),
    "application/vnd.oasis.opendocument.text": frozenset({"zip"}),
    "application/vnd.oasis.opendocument.spreadsheet": frozenset({"zip"}),
    "application/zip": frozenset({"zip"}),
    "application/msword": frozenset({"ole"}),
    "application/vnd.ms-excel": frozenset({"ole"}),
}
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "application/x-pdf": "application/pdf"}
_UNKNOWN_TYPES = ("application/octet-stream", "binary/octet-stream", "application/unknown", "")


def sniff(data: bytes) -> str | None:
    """What the bytes are, from their first bytes, for the kinds the checks know; None: unknown."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _MAGIC if data.startswith(magic)), None)


def check_attachment(part: AttachmentPart, allowed: frozenset[str]) -> str:
    """The attachment's content type once checked: the declared type (or, for a generic
    application/octet-stream, the type its bytes or file name show) must be allowed and the bytes must be
    what that type holds. Raises ``AttachmentRefused`` with the reason."""
    declared = _ALIASES.get(part.content_type, part.content_type)
    seen = sniff(part.data)
    if seen in ("executable", "archive") and declared not in allowed:
        raise AttachmentRefused("an executable or archive")
    if declared in _UNKNOWN_TYPES:
        guessed = seen if seen and "/" in seen else mimetypes.guess_type(part.name, strict=False)[0]
        declared = _ALIASES.get(guessed or "", guessed or "application/octet-stream")
    if declared not in allowed:
        raise AttachmentRefused(f"type {declared} not allowed")
    expected = _EXPECTED.get(declared)
    if expected is not None:
        if seen not in expected:
            raise AttachmentRefused(f"content is not {declared}")
    elif declared.startswith("text/"):
        if b"\x00" in part.data or seen is not None:
            raise AttachmentRefused(f"content is not {declared}")
    elif seen is not None and seen != declared:
        raise AttachmentRefused(f"content is not {declared}")
    return declared
