"""Opaque positions in the API's time-ordered lists (a timeline, the merges feed, identity conflicts): a
row's time and id, and a tag (which order a page runs in, which change of a merge), as a URL-safe string
that only these functions read."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from parcours.errors import InvalidInput


def encode_cursor(moment: datetime, key: str, tag: str | None = None) -> str:
    """A position in a time-ordered list (a row's time and id, and a tag: which order a timeline page
    runs in, which change of a merge) as an opaque URL-safe string."""
    raw = f"{moment.isoformat()}|{key}" + (f"|{tag}" if tag else "")
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def read_cursor(
    cursor: str, field: str = "cursor", tags: tuple[str, ...] = ("desc",)
) -> tuple[datetime, str, str | None]:
    """(time, id, tag or None) of a position ``encode_cursor`` wrote with one of ``tags``; InvalidInput
    naming ``field`` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, key, *rest = raw.split("|")
        parsed = datetime.fromisoformat(moment)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(f"{field}: not a position this API gave") from None
    if parsed.tzinfo is None or not key or (rest and (len(rest) > 1 or rest[0] not in tags)):
        raise InvalidInput(f"{field}: not a position this API gave")
    return parsed, key, rest[0] if rest else None


def decode_cursor(cursor: str, field: str = "cursor") -> tuple[datetime, str]:
    """The position (time, event id) ``encode_cursor`` wrote; InvalidInput naming ``field`` otherwise."""
    moment, event_id, _ = read_cursor(cursor, field)
    return moment, event_id
