"""Words shared by every domain."""

from __future__ import annotations

# The channels a touchpoint can happen on. A source has one as its default; an event may name another.
CHANNELS: tuple[str, ...] = (
    "web",
    "app",
    "store",
    "phone",
    "email",
    "sms",
    "chat",
    "whatsapp",
    "messenger",
    "instagram",
    "social",
    "kiosk",
    "marketplace",
    "mail",  # postal mail: paper catalogues, coupons, letters
    "other",
)

# The Segment spec's event types: what a touchpoint is (the timeline filters on them).
EVENT_TYPES: tuple[str, ...] = ("identify", "track", "page", "screen", "alias", "group")


def check_channel(value: str) -> str:
    """The channel name in canonical form, or ValueError naming the accepted ones."""
    channel = value.strip().lower()
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {value!r}; expected one of {', '.join(CHANNELS)}")
    return channel
