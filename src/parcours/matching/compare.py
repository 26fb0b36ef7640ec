"""Compare records pair by pair, field by field, into agreement levels (vectorised over many pairs).

Each comparison gives every pair a level: 0 when either side is unknown (no evidence either way), then
1 for the strongest agreement down to the last level, disagreement. The string similarities come from
rapidfuzz, computed element-wise over whole arrays of pairs in C.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rapidfuzz import fuzz
from rapidfuzz.distance import JaroWinkler, Levenshtein
from rapidfuzz.process import cpdist

from parcours.matching.normalize import Prepared

Levels = NDArray[np.int8]
Index = NDArray[np.int64]


@dataclass(frozen=True)
class Comparison:
    name: str
    levels: tuple[str, ...]  # labels of levels 1..n (level 0 is "unknown")
    # The field whose exact agreement (level 1) gets a term-frequency adjustment, if any.
    frequency_field: str | None = None


COMPARISONS: tuple[Comparison, ...] = (
    Comparison(
        "given_name",
        ("exact", "same name or nickname", "Jaro-Winkler >= 0.92", "Jaro-Winkler >= 0.80", "different"),
        frequency_field="given_name",
    ),
    Comparison(
        "surname",
        ("exact", "sounds alike", "Jaro-Winkler >= 0.92", "Jaro-Winkler >= 0.80", "different"),
        frequency_field="surname",
    ),
    Comparison(
        "birth_date",
        (
            "exact",
            "day and month swapped",
            "one digit off",
            "two of year, month and day",
            "two digits off",
            "different",
        ),
    ),
    Comparison("street", ("exact", "token set >= 90 %", "token set >= 70 %", "different")),
    Comparison("locality", ("exact", "Jaro-Winkler >= 0.90", "different"), frequency_field="locality"),
    Comparison("postcode", ("exact", "one character off", "different")),
    Comparison("phone", ("exact", "same last 6 digits", "different")),
    Comparison("email", ("exact", "Jaro-Winkler >= 0.90", "different")),
    Comparison("national_id", ("exact", "one character off", "different")),
)


class Columns:
    """The prepared records as columns: strings in object arrays, and integer codes for equality."""

    def __init__(self, records: Sequence[Prepared]) -> None:
        self.size = len(records)
        names = (
            "given_name",
            "given_canonical",
            "surname",
            "surname_phonetic",
            "birth_date",
            "street",
            "locality",
            "postcode",
            "phone",
            "email",
            "national_id",
        )
        self.text: dict[str, NDArray[np.object_]] = {}
        self.codes: dict[str, NDArray[np.int64]] = {}
        lookup: dict[str, int] = {"": -1}  # one numbering for every column: codes compare across columns
        for name in names:
            values = [getattr(record, name) for record in records]
            self.text[name] = np.array(values, dtype=object)
            self.codes[name] = np.fromiter(
                (lookup.setdefault(value, len(lookup)) for value in values), dtype=np.int64, count=len(values)
            )


def _similarity(scorer: Any, a: NDArray[np.object_], b: NDArray[np.object_]) -> NDArray[np.float64]:
    if len(a) == 0:
        return np.zeros(0)
    return np.asarray(cpdist(a, b, scorer=scorer, workers=1), dtype=np.float64)


def _grade(known: NDArray[np.bool_], conditions: list[NDArray[np.bool_]], disagree_level: int) -> Levels:
    """Level 0 where unknown, else the first condition that holds (1, 2, ...), else ``disagree_level``."""
    levels = np.full(known.shape, disagree_level, dtype=np.int8)
    for level in range(len(conditions), 0, -1):
        levels[conditions[level - 1]] = level
    levels[~known] = 0
    return levels


def compare(columns: Columns, left: Index, right: Index) -> Levels:
    """The level of every comparison for every pair ``(left[k], right[k])``: shape (pairs, comparisons)."""
    c, t = columns.codes, columns.text
    out = np.zeros((len(left), len(COMPARISONS)), dtype=np.int8)

    def known(name: str) -> NDArray[np.bool_]:
        return np.asarray((c[name][left] >= 0) & (c[name][right] >= 0), dtype=bool)

    def same(name: str) -> NDArray[np.bool_]:
        return np.asarray(c[name][left] == c[name][right], dtype=bool)

    def similarity(name: str, scorer: Any) -> NDArray[np.float64]:
        return _similarity(scorer, t[name][left], t[name][right])

    # Names, also read the other way round (given and surname swapped).
    swapped = (
        (c["given_name"][left] >= 0)
        & (c["surname"][left] >= 0)
        & (c["given_name"][left] == c["surname"][right])
        & (c["surname"][left] == c["given_name"][right])
    )
    given_jw = similarity("given_name", JaroWinkler.normalized_similarity)
    out[:, 0] = _grade(
        known("given_name"),
        [
            same("given_name") | swapped,
            same("given_canonical"),
            given_jw >= 0.92,
            given_jw >= 0.80,
        ],
        5,
    )
    surname_jw = similarity("surname", JaroWinkler.normalized_similarity)
    out[:, 1] = _grade(
        known("surname"),
        [same("surname") | swapped, same("surname_phonetic"), surname_jw >= 0.92, surname_jw >= 0.80],
        5,
    )
    birth_left, birth_right = t["birth_date"][left], t["birth_date"][right]
    day_month_swapped = np.fromiter(
        (
            len(a) == 8 and len(b) == 8 and a[:4] == b[:4] and a[4:6] == b[6:8] and a[6:8] == b[4:6]
            for a, b in zip(birth_left, birth_right, strict=True)
        ),
        dtype=bool,
        count=len(left),
    )
    two_parts = np.fromiter(
        (
            len(a) == 8 and len(b) == 8 and (a[:4] == b[:4]) + (a[4:6] == b[4:6]) + (a[6:8] == b[6:8]) >= 2
            for a, b in zip(birth_left, birth_right, strict=True)
        ),
        dtype=bool,
        count=len(left),
    )
    birth_distance = _similarity(Levenshtein.distance, birth_left, birth_right)
    out[:, 2] = _grade(
        known("birth_date"),
        [same("birth_date"), day_month_swapped, birth_distance <= 1, two_parts, birth_distance <= 2],
        6,
    )
    street_ratio = similarity("street", fuzz.token_set_ratio)
    out[:, 3] = _grade(known("street"), [same("street"), street_ratio >= 90, street_ratio >= 70], 4)
    out[:, 4] = _grade(
        known("locality"),
        [same("locality"), similarity("locality", JaroWinkler.normalized_similarity) >= 0.90],
        3,
    )
    out[:, 5] = _grade(
        known("postcode"), [same("postcode"), similarity("postcode", Levenshtein.distance) <= 1], 3
    )
    phone_left, phone_right = t["phone"][left], t["phone"][right]
    last_six = np.fromiter(
        (a[-6:] == b[-6:] for a, b in zip(phone_left, phone_right, strict=True)), dtype=bool, count=len(left)
    )
    out[:, 6] = _grade(known("phone"), [same("phone"), last_six], 3)
    out[:, 7] = _grade(
        known("email"), [same("email"), similarity("email", JaroWinkler.normalized_similarity) >= 0.90], 3
    )
    out[:, 8] = _grade(
        known("national_id"),
        [same("national_id"), similarity("national_id", Levenshtein.distance) <= 1],
        3,
    )
    return out
