"""The identity graph's rules and reasons (merges, conflicts, refused merges) in the console's words.

The resolver records them as English text, which is also what the API answers. Each form it writes is
matched here and said again in the user's language, with identifier kinds named as the console names
them; a text of no known form (an older wording) is shown as stored."""

from __future__ import annotations

import re

from parcours.console.customers.common import KIND_LABELS
from parcours.console.i18n import N_, Translator

KIND = r"(?P<kind>[a-z][a-z0-9_]*)"
Forms = list[tuple[re.Pattern[str], str]]

# The stored English text's pattern, and the console's message with the pattern's groups as values.
RULES: Forms = [
    (re.compile(rf"limit {KIND}: (?P<limit>\d+) per profile"), N_("Limit of {kind}: {limit} per customer")),
    (re.compile(r"limit (?P<limits>[a-z0-9_]+: \d+(?:, [a-z0-9_]+: \d+)*)"), N_("Limits reached: {limits}")),
    (re.compile(r"merges disabled"), N_("Merging turned off")),
    (re.compile(r"unmerged pair"), N_("Kept apart by an unmerge")),
    (re.compile(r"shared identifier"), N_("Shared identifier")),
    (re.compile(r"merged by hand by (?P<actor>.+?): (?P<why>.+)"), N_("Merged by hand by {actor}: {why}")),
    (re.compile(r"merged by hand by (?P<actor>.+)"), N_("Merged by hand by {actor}")),
    (
        re.compile(r"match review (?P<review>\S+) \((?P<probability>[0-9.]+)\)"),
        N_("Match review {review} accepted (probability {probability})"),
    ),
]

REASONS: Forms = [
    (
        re.compile(
            rf"the profile holding this event's other identifiers already has (?P<limit>\d+) {KIND}; "
            r"a new profile was started"
        ),
        N_(
            "The customer holding this event's other identifiers already has as many identifiers of kind "
            "{kind} as a customer may hold ({limit}): the event started a new customer."
        ),
    ),
    (re.compile(r"merging is turned off"), N_("Merging is turned off.")),
    (
        re.compile(r"profiles (?P<first>\S+) and (?P<second>\S+) were unmerged and are kept apart"),
        N_("Customers {first} and {second} were unmerged and are kept apart."),
    ),
    (
        re.compile(rf"merging would give one profile (?P<count>\d+) {KIND} \(limit (?P<limit>\d+)\)"),
        N_("Merging would give one customer {count} identifiers of kind {kind} (the limit is {limit})."),
    ),
    (
        re.compile(r"identifiers not attached because the profile already holds its limit of (?P<kinds>.+)"),
        N_("Identifiers not attached: the customer already holds its limit of {kinds}."),
    ),
]
# What the resolver adds to a reason when it left identifiers out.
NOT_ATTACHED = re.compile(r"; not attached: (?P<keys>.+)$")

# Why the merge rules refuse a merge (``resolution.merge_refusals``, also the API's 409 messages).
REFUSALS: Forms = [
    (re.compile(r"the two profiles are already one"), N_("they are already one customer")),
    (
        re.compile(rf"the profiles hold different {KIND} identifiers, and a profile holds at most one .*"),
        N_(
            "they hold different identifiers of kind {kind}, and a customer holds at most one: they are "
            "two different people"
        ),
    ),
    (
        re.compile(
            rf"merging would give one profile (?P<count>\d+) {KIND} identifiers, over the limit of "
            r"(?P<limit>\d+)( .*)?"
        ),
        N_(
            "merging would give one customer {count} identifiers of kind {kind}, over the limit of {limit} "
            "(an admin can raise it on the identifier kinds page)"
        ),
    ),
    (re.compile(r"the profiles were kept apart by an unmerge"), N_("they were kept apart by an unmerge")),
]


def kind_name(t: Translator, kind: str) -> str:
    """An identifier kind as the console names it (a business's own kind: its name)."""
    label = KIND_LABELS.get(kind)
    return t.gettext(label) if label else kind


def rule_text(t: Translator, rule: str) -> str:
    """A merge's or a conflict's rule, in the user's language."""
    return _said(t, RULES, rule) or rule


def reason_text(t: Translator, reason: str) -> str:
    """A conflict's reason, in the user's language, with the identifiers left out if any."""
    left_out = NOT_ATTACHED.search(reason)
    head = reason[: left_out.start()] if left_out else reason
    said = _said(t, REASONS, head) or head
    if left_out:
        said += " " + t.gettext("Not attached: {keys}.", keys=left_out.group("keys"))
    return said


def refusal_text(t: Translator, refusal: str) -> str:
    """Why the merge rules refuse a merge, in the user's language."""
    return _said(t, REFUSALS, refusal) or refusal


def _said(t: Translator, forms: Forms, text: str) -> str | None:
    for pattern, message in forms:
        found = pattern.fullmatch(text)
        if found:
            values = {name: _value(t, name, value or "") for name, value in found.groupdict().items()}
            return t.gettext(message, **values)
    return None


def _value(t: Translator, name: str, value: str) -> str:
    if name == "kind":
        return kind_name(t, value)
    if name == "kinds":
        return ", ".join(kind_name(t, kind.strip()) for kind in value.split(","))
    if name == "limits":
        parts = (part.partition(": ") for part in value.split(", "))
        return ", ".join(
            t.gettext("{kind}: {limit}", kind=kind_name(t, kind), limit=limit) for kind, _, limit in parts
        )
    return value
