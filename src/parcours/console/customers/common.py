"""What the customers area's pages share: how identifier kinds, channels, event types and statuses are
shown, and the most telling of a customer's identifiers."""

from __future__ import annotations

from collections.abc import Iterable

from parcours.console import common
from parcours.console.i18n import N_

PAGE_SIZE = 50

# How identifier kinds, channels and statuses are shown (English source strings, translated when shown).
KIND_LABELS = common.IDENTIFIER_LABELS
# The identifiers a results list shows first (device ids say nothing to a person; shown last).
MAIN_KINDS = ("email", "phone", "loyalty_card", "whatsapp", "user_id", "pos_customer_id", "instagram")
CHANNEL_LABELS = {**common.CHANNEL_LABELS, "chat": N_("Chat"), "*": N_("Every channel")}
EVENT_TYPE_LABELS = {
    "identify": N_("Identified"),
    "track": N_("Action"),
    "page": N_("Page viewed"),
    "screen": N_("Screen viewed"),
    "alias": N_("Alias"),
    "group": N_("Group"),
}
STATUS_LABELS = {
    **common.ORDER_STATUS_LABELS,
    "returned": N_("Returned"),
    **common.RESERVATION_STATUS_LABELS,
    **common.CONVERSATION_STATUS_LABELS,
    # reviews and conflicts
    "accepted": N_("Accepted (merged)"),
    "rejected": N_("Rejected"),
    "superseded": N_("Superseded"),
    "dismissed": N_("Dismissed"),
    "merged": N_("Merged"),
}


def best_identifier(keys: Iterable[str]) -> str:
    """The value of the most telling of these ``kind:value`` identifiers (an e-mail before a device id)."""
    rank = {kind: position for position, kind in enumerate(MAIN_KINDS)}
    pairs = sorted(
        (rank.get(kind, len(rank)), kind, value) for kind, _, value in (k.partition(":") for k in keys)
    )
    return pairs[0][2] if pairs else ""
