"""What the matcher compares: one person as a record of optional fields, from any source."""

from __future__ import annotations

from dataclasses import dataclass

# The fields a record may carry, in the order the model lists them.
FIELDS = (
    "given_name",
    "surname",
    "birth_date",
    "street",
    "locality",
    "postcode",
    "phone",
    "email",
    "national_id",
)


@dataclass(frozen=True)
class PersonRecord:
    """A person as one source knows them. Every field is free text as given (``None``: unknown);
    the matcher normalises (case, accents, punctuation, date formats) itself.

    ``birth_date``: ``1984-03-07``, ``19840307`` or ``07/03/1984`` (day first).
    ``national_id``: any other person-level number a source shares (a social security id, a tax id).
    """

    id: str
    given_name: str | None = None
    surname: str | None = None
    birth_date: str | None = None
    street: str | None = None  # number and street
    locality: str | None = None  # city, town or suburb
    postcode: str | None = None
    phone: str | None = None
    email: str | None = None
    national_id: str | None = None
