"""The demo's customers: who they are and how each system knows them (e-mail, phones, cards, ids)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from parcours.demo.catalogue import (
    APP_MEMBER,
    AREAS,
    EMAIL_DOMAINS,
    FEMALE_FIRST_NAMES,
    LANGUAGES,
    LAST_NAMES,
    MALE_FIRST_NAMES,
    MESSAGING,
    OMNICHANNEL,
    PERSONAS,
    ROPO,
    STORE_ONLY,
    STORES_BY_ID,
    STREETS,
    Store,
)
from parcours.demo.helpers import DemoError, ean13, is_valid_phone, national_format, to_ascii, weighted


@dataclass
class DemoCustomer:
    index: int
    persona: str
    first_name: str
    last_name: str
    gender: str
    email: str
    mobile: str  # E.164
    landline: str | None  # E.164, in an ARCEP fiction block
    loyalty_card: str | None  # EAN-13
    pos_customer_id: str | None
    user_id: str | None
    instagram: str | None
    birthday: date
    street: str
    postal_code: str
    city: str
    language: str
    locale: str
    store: Store
    marketing: bool
    favourite: str  # a product category

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def mobile_national(self) -> str:
        return national_format(self.mobile)


class Registry:
    """Values that must be unique across the population (emails, numbers, cards, ids)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def claim(self, make: Callable[[], str]) -> str:
        for _ in range(1000):
            value = make()
            if value not in self.used:
                self.used.add(value)
                return value
        raise DemoError("could not draw a unique value; too many customers for this generator")


def make_customer(index: int, rng: random.Random, unique: Registry, year: int) -> DemoCustomer:
    persona = weighted(rng, PERSONAS)
    gender = rng.choice(("female", "male"))
    first = rng.choice(FEMALE_FIRST_NAMES if gender == "female" else MALE_FIRST_NAMES)
    last = rng.choice(LAST_NAMES)
    if last == first:  # "Olivier Olivier": a neighbour in the list instead, with no extra draw
        last = LAST_NAMES[(LAST_NAMES.index(last) + 1) % len(LAST_NAMES)]
    age = int(rng.triangular(18, 84, 41))
    birthday = date(year - age, rng.randint(1, 12), rng.randint(1, 28))
    area = rng.choices(AREAS, weights=[a.weight for a in AREAS])[0]
    town, postal_codes = rng.choice(area.towns)
    store = STORES_BY_ID[rng.choice(area.store_ids)]
    language, locale = "fr", "fr-FR"
    roll = rng.randrange(100)
    for code, code_locale, weight in LANGUAGES:
        if roll < weight:
            language, locale = code, code_locale
            break
        roll -= weight

    first_ascii = to_ascii(first).lower().replace(" ", "").replace("'", "")
    last_ascii = to_ascii(last).lower().replace(" ", "").replace("'", "")

    def email() -> str:
        pattern = rng.randrange(6)
        locals_ = (
            f"{first_ascii}.{last_ascii}",
            f"{first_ascii[0]}{last_ascii}",
            f"{first_ascii}.{last_ascii}{rng.randint(1, 99)}",
            f"{last_ascii}.{first_ascii}",
            f"{first_ascii}{last_ascii}{birthday.year % 100:02d}",
            f"{first_ascii}_{last_ascii[:4]}{rng.randint(10, 999)}",
        )
        return f"{locals_[pattern]}@{weighted(rng, EMAIL_DOMAINS)}"

    def mobile() -> str:
        while True:
            number = "+33" + rng.choice("667") + "".join(rng.choice("0123456789") for _ in range(8))
            if is_valid_phone(number):
                return number

    landline = None
    if age > 50 or rng.random() < 0.15:
        candidate = area.landline_block + f"{rng.randint(100, 9999):04d}"
        if candidate not in unique.used:
            unique.used.add(candidate)
            landline = candidate

    has_card = persona in (STORE_ONLY, ROPO, APP_MEMBER, OMNICHANNEL) or rng.random() < 0.3
    has_account = persona != STORE_ONLY or rng.random() < 0.1
    instagram = None
    if age < 45 and (persona == MESSAGING or rng.random() < 0.2):
        instagram = unique.claim(lambda: f"@{first_ascii}.{last_ascii[:3]}{rng.randint(1, 999)}")
    return DemoCustomer(
        index=index,
        persona=persona,
        first_name=first,
        last_name=last,
        gender=gender,
        email=unique.claim(email),
        mobile=unique.claim(mobile),
        landline=landline,
        loyalty_card=unique.claim(lambda: ean13("290" + f"{rng.randrange(10**9):09d}")) if has_card else None,
        pos_customer_id=unique.claim(lambda: f"C{rng.randrange(10**8):08d}") if has_card else None,
        user_id=unique.claim(lambda: f"MA{rng.randrange(10**7):07d}") if has_account else None,
        instagram=instagram,
        birthday=birthday,
        street=f"{rng.randint(1, 140)} {rng.choice(STREETS)}",
        postal_code=rng.choice(postal_codes),
        city=town,
        language=language,
        locale=locale,
        store=store,
        marketing=rng.random() < 0.62,
        favourite=rng.choice(("machines", "capsules", "capsules", "cafes", "cafes", "thes", "accessoires")),
    )
