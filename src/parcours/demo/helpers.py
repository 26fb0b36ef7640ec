"""What the demo generator's modules share: its error, and small helpers for text, phones, money, time and
looking up who holds an identifier."""

from __future__ import annotations

import random
import unicodedata
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import phonenumbers
from sqlalchemy import select

from parcours.db.engine import Database
from parcours.models import Identifier


class DemoError(RuntimeError):
    """The generator produced something the pipeline refused: a bug in the generator."""


def to_ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def national_format(e164: str) -> str:
    """+33612345678 -> 06 12 34 56 78."""
    digits = "0" + e164[3:]
    return " ".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def money(amount: Decimal) -> str:
    return str(amount.quantize(Decimal("0.01")))


def weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([name for name, _ in choices], weights=[weight for _, weight in choices])[0]


def ean13(first_twelve: str) -> str:
    total = sum(int(digit) * (3 if position % 2 else 1) for position, digit in enumerate(first_twelve))
    return first_twelve + str((10 - total % 10) % 10)


def is_valid_phone(e164: str) -> bool:
    return bool(phonenumbers.is_valid_number(phonenumbers.parse(e164, "FR")))


def rng_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def profiles_holding(database: Database, kind: str, values: list[str]) -> dict[str, str]:
    """Identifier value (as stored) -> the profile holding it now; values nobody holds are absent."""
    found: dict[str, str] = {}
    with database.read() as session:
        for start in range(0, len(values), 500):
            part = values[start : start + 500]
            query = select(Identifier.value, Identifier.profile_id).where(
                Identifier.kind == kind, Identifier.value.in_(part)
            )
            found.update((value, profile_id) for value, profile_id in session.execute(query))
    return found
