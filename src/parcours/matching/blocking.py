"""Blocking: only records sharing at least one blocking key are compared, so matching scales with the
number of plausible pairs instead of all pairs. Several independent keys keep recall high when one
field is mistyped (a pair with a mangled surname still shares its birth date and first name)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from parcours.matching.normalize import Prepared

# A key shared by more records than this is too common to tell anyone apart: it is not used.
MAX_BLOCK = 400


def _initial(value: str) -> str:
    return value[:1]


def _street_key(record: Prepared) -> str:
    """The street number and the first word after it (``95 leahy place`` -> ``95|leahy``)."""
    words = record.street.split()
    if record.street_number and record.street_number in words:
        position = words.index(record.street_number)
        if position + 1 < len(words):
            return f"{record.street_number}|{words[position + 1]}"
    return ""


BLOCKING_RULES: tuple[tuple[str, Callable[[Prepared], str]], ...] = (
    ("surname sound + birth year", lambda r: f"{r.surname_phonetic}|{r.birth_date[:4]}"
     if r.surname_phonetic and r.birth_date else ""),
    ("given name sound + birth date", lambda r: f"{r.given_phonetic}|{r.birth_date}"
     if r.given_phonetic and r.birth_date else ""),
    ("given name + surname", lambda r: f"{r.given_canonical}|{r.surname}"
     if r.given_canonical and r.surname else ""),
    ("both names, either order", lambda r: "|".join(sorted((r.given_name, r.surname)))
     if r.given_name and r.surname else ""),
    ("street number + street name", _street_key),
    ("surname + postcode", lambda r: f"{r.surname}|{r.postcode}" if r.surname and r.postcode else ""),
    ("given name + postcode", lambda r: f"{r.given_canonical}|{r.postcode}"
     if r.given_canonical and r.postcode else ""),
    ("birth date + postcode", lambda r: f"{r.birth_date}|{r.postcode}" if r.birth_date and r.postcode else ""),
    ("birth date + initials", lambda r: f"{r.birth_date}|{_initial(r.given_name)}{_initial(r.surname)}"
     if r.birth_date and r.given_name and r.surname else ""),
    ("street number + locality", lambda r: f"{r.street_number}|{r.locality}|{_initial(r.surname)}"
     if r.street_number and r.locality else ""),
    ("national id", lambda r: r.national_id),
    ("phone", lambda r: r.phone),
    ("email", lambda r: r.email),
)  # fmt: skip


def blocking_keys(record: Prepared) -> list[str]:
    """Every blocking key of a record, each prefixed by its rule's number (keys of different rules
    never collide)."""
    keys = []
    for number, (_, rule) in enumerate(BLOCKING_RULES):
        key = rule(record)
        if key:
            keys.append(f"{number}:{key}")
    return keys


# Training: EM runs once per rule on the pairs it finds, without the comparisons the rule forces to
# agree (they carry no evidence there); each comparison is learned from at least one rule. Each rule
# leaves several comparisons free: with one alone, EM cannot tell matches from look-alikes.
TRAINING_RULES: tuple[tuple[str, Callable[[Prepared], str], tuple[str, ...]], ...] = (
    ("birth date", lambda r: r.birth_date if len(r.birth_date) == 8 else "", ("birth_date",)),
    ("surname", lambda r: r.surname, ("surname",)),
    ("given name", lambda r: r.given_canonical, ("given_name",)),
    ("postcode + street number", lambda r: f"{r.postcode}|{r.street_number}" if r.postcode and r.street_number
     else "", ("postcode", "street")),
)  # fmt: skip


def candidate_pairs(
    records: Sequence[Prepared], rule: Callable[[Prepared], str] | None = None
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Distinct pairs ``(i, j)``, ``i < j``, of records sharing at least one blocking key (or, given
    ``rule``, that rule's key)."""
    blocks: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        keys = blocking_keys(record) if rule is None else [rule(record)]
        for key in keys:
            if key:
                blocks.setdefault(key, []).append(index)
    encoded: list[NDArray[np.int64]] = []
    n = len(records)
    for members in _usable(blocks.values()):
        ids = np.asarray(members, dtype=np.int64)
        left, right = np.triu_indices(len(ids), k=1)
        encoded.append(ids[left] * n + ids[right])
    if not encoded:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    pairs = np.unique(np.concatenate(encoded))
    return pairs // n, pairs % n


def _usable(blocks: Iterable[list[int]]) -> Iterable[list[int]]:
    for members in blocks:
        if 1 < len(members) <= MAX_BLOCK:
            yield members
