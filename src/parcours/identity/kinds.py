"""The identifier kind registry: how each kind's values are normalised, blocked and ranked."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.errors import InvalidInput
from parcours.models import IdentifierKind

NORMALIZERS = ("email", "phone", "text", "lower", "compact", "handle")
KIND_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
MAX_VALUE_LENGTH = 320

# Values no kind ever accepts as an identifier: placeholders that would glue strangers together.
GLOBAL_BLOCKED_VALUES = frozenset({"", "null", "undefined", "none", "nil", "nan", "0"})
ALL_ZERO_NUMBER = re.compile(r"^[+\s\-.()/]*0[0\s\-.()/]*$")


class InvalidIdentifier(ValueError):
    """A value that cannot be an identifier of its kind (not a blocked value: a malformed one)."""


@dataclass(frozen=True)
class KindRule:
    name: str
    priority: int
    max_per_profile: int
    normalizer: str
    blocked_values: frozenset[str]
    blocked_patterns: tuple[re.Pattern[str], ...]


class KindRegistry:
    """The kinds known to this installation, loaded from ``identifier_kinds``."""

    def __init__(self, rules: list[KindRule], phone_region: str) -> None:
        self.rules = {rule.name: rule for rule in rules}
        self.phone_region = phone_region
        # Kinds a profile may hold only one of (``user_id``...): two profiles holding different ones are
        # two people.
        self.once_only_kinds = frozenset(rule.name for rule in rules if rule.max_per_profile == 1)

    @classmethod
    def load(cls, session: Session, phone_region: str) -> KindRegistry:
        """The registry as stored now; built once per distinct content (ingestion asks every request)."""
        rows = session.execute(
            select(
                IdentifierKind.name,
                IdentifierKind.priority,
                IdentifierKind.max_per_profile,
                IdentifierKind.normalizer,
                IdentifierKind.blocked_values,
                IdentifierKind.blocked_patterns,
            ).order_by(IdentifierKind.name)
        ).all()
        frozen = tuple(
            (name, priority, limit, normalizer, tuple(values), tuple(patterns))
            for name, priority, limit, normalizer, values, patterns in rows
        )
        return _build_registry(frozen, phone_region)

    def __contains__(self, kind: str) -> bool:
        return kind in self.rules

    def rule(self, kind: str) -> KindRule:
        try:
            return self.rules[kind]
        except KeyError:
            raise InvalidIdentifier(
                f"unknown identifier kind {kind!r}; known kinds: {', '.join(sorted(self.rules))}"
            ) from None

    def priority(self, kind: str) -> int:
        return self.rules[kind].priority

    def normalize(self, kind: str, raw: object) -> str:
        """The canonical value, or InvalidIdentifier saying what is wrong with it."""
        rule = self.rule(kind)
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise InvalidIdentifier(f"must be a string, not {type(raw).__name__}")
        text = str(raw).strip()
        if len(text) > MAX_VALUE_LENGTH:
            raise InvalidIdentifier(f"is longer than {MAX_VALUE_LENGTH} characters")
        value = self._canonical(rule, kind, text)
        # Case mapping can lengthen text ("ß" -> "SS", "İ" -> "i̇"): the stored value must fit as well.
        if len(value) > MAX_VALUE_LENGTH:
            raise InvalidIdentifier(f"is longer than {MAX_VALUE_LENGTH} characters once normalised")
        return value

    def _canonical(self, rule: KindRule, kind: str, text: str) -> str:
        if rule.normalizer == "email":
            return _normalize_email(text)
        if rule.normalizer == "phone":
            if text.lower().startswith(f"{kind}:"):  # Twilio writes "whatsapp:+33…"
                text = text[len(kind) + 1 :]
            return _normalize_phone(text, self.phone_region)
        if rule.normalizer == "lower":
            return text.lower()
        if rule.normalizer == "compact":
            return re.sub(r"[\s\-.]", "", text).upper()
        if rule.normalizer == "handle":
            return text.lstrip("@").lower()
        return text

    def spellings(self, kind: str, value: str) -> tuple[str, ...]:
        """Every form a normalised value may have been stored under, by this release or an earlier one."""
        return spellings(self.rules[kind].normalizer, value)

    def blocked_reason(self, kind: str, value: str) -> str | None:
        """Why this normalised value must not be used to link profiles, or None if usable."""
        rule = self.rules[kind]
        lowered = value.lower()
        if lowered in GLOBAL_BLOCKED_VALUES or ALL_ZERO_NUMBER.match(value):
            return f"{value!r} is a placeholder value"
        if lowered in rule.blocked_values:
            return f"{value!r} is a blocked {kind} value"
        for pattern in rule.blocked_patterns:
            if pattern.search(value):
                return f"{value!r} matches the blocked {kind} pattern {pattern.pattern!r}"
        return None


@lru_cache(maxsize=32)
def _build_registry(
    rows: tuple[tuple[str, int, int, str, tuple[str, ...], tuple[str, ...]], ...], phone_region: str
) -> KindRegistry:
    return KindRegistry(
        [
            KindRule(
                name=name,
                priority=priority,
                max_per_profile=limit,
                normalizer=normalizer,
                blocked_values=frozenset(v.lower() for v in values),
                blocked_patterns=tuple(re.compile(p) for p in patterns),
            )
            for name, priority, limit, normalizer, values, patterns in rows
        ],
        phone_region,
    )


# Plain ASCII addresses (the vast majority) that email-validator would accept unchanged but for case;
# anything else (quoted, internationalised, odd) goes through email-validator itself. A domain label in
# its ASCII form ("xn--caf-dma.fr") is internationalised too: email-validator gives it back in Unicode
# ("café.fr"), so that the two spellings of one address are one identifier.
_SIMPLE_EMAIL = re.compile(
    r"^(?=.{6,254}$)(?=[^@]{1,64}@)[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)


@lru_cache(maxsize=65536)
def _normalize_email(text: str) -> str:
    lowered = text.lower()
    if _SIMPLE_EMAIL.match(lowered) and "xn--" not in lowered:
        return lowered
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidIdentifier(f"is not a valid email address ({error})") from None
    return result.normalized.lower()


def spellings(normalizer: str, value: str) -> tuple[str, ...]:
    """Every form a value normalised by ``normalizer`` may have been stored under, by this release or an
    earlier one. An e-mail address with an internationalised domain and an ASCII local part also has the
    form with its domain in ASCII ("xn--"): releases before migration 0015 stored an address written that
    way as it was written, so a tombstone may hold either."""
    if normalizer != "email" or value.isascii():
        return (value,)
    ascii_form = ascii_address(value)
    return (value,) if ascii_form is None else (value, ascii_form.lower())


def ascii_address(address: str) -> str | None:
    """The e-mail address with its domain in ASCII (IDNA, "xn--") form, as it travels to a mail server
    without SMTPUTF8; None when it has none (a non-ASCII local part) or is not an address."""
    if address.isascii():
        return address
    try:
        return validate_email(address, check_deliverability=False).ascii_email
    except EmailNotValidError:
        return None


@lru_cache(maxsize=65536)
def _normalize_phone(text: str, region: str) -> str:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as error:
        raise InvalidIdentifier(f"is not a phone number ({error})") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentifier("is not a valid phone number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def identifier_hash(secret: str, kind: str, value: str) -> str:
    """The keyed hash kept in a tombstone: it matches the same identifier, reveals nothing."""
    return hmac.new(secret.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def check_kind_definition(
    name: str, normalizer: str, max_per_profile: int, blocked_patterns: list[str]
) -> None:
    """Validate a kind before it is stored; InvalidInput names the bad field."""
    if not KIND_NAME.match(name):
        raise InvalidInput(
            f"name: {name!r} must be 2-40 lower-case letters, digits or _, starting with a letter"
        )
    if normalizer not in NORMALIZERS:
        raise InvalidInput(f"normalizer: {normalizer!r} is not one of {', '.join(NORMALIZERS)}")
    if max_per_profile < 1:
        raise InvalidInput("max_per_profile: must be at least 1")
    for pattern in blocked_patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            raise InvalidInput(
                f"blocked_patterns: {pattern!r} is not a valid regular expression ({error})"
            ) from None
