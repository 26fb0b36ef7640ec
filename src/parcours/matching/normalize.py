"""Turn free-text person fields into comparable values: case, accents, punctuation, nicknames, dates."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import jellyfish
from email_validator import EmailNotValidError, validate_email

from parcours.matching.records import PersonRecord

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_DIGITS = re.compile(r"\d+")

# Common given-name variants (English and French) -> one canonical form. Compared in the name's
# ASCII form, so "hélène" and "helene" are already equal before this table is used.
NICKNAMES: dict[str, str] = {
    variant: canonical
    for canonical, variants in {
        "robert": ("bob", "bobby", "rob", "robbie", "bert"),
        "william": ("bill", "billy", "will", "willy", "liam"),
        "richard": ("rick", "ricky", "dick", "rich", "richie"),
        "elizabeth": ("liz", "lizzie", "beth", "betty", "eliza", "elisabeth", "babette"),
        "katherine": ("kate", "katie", "kathy", "cathy", "catherine", "kathryn", "katrina", "cat"),
        "margaret": ("maggie", "meg", "peggy", "marguerite", "margot", "margo"),
        "james": ("jim", "jimmy", "jamie"),
        "john": ("johnny", "jack", "jon"),
        "jean": ("jeannot",),
        "michael": ("mike", "mick", "mickey", "michel"),
        "thomas": ("tom", "tommy", "thom"),
        "joseph": ("joe", "joey", "jo", "jojo"),
        "daniel": ("dan", "danny"),
        "david": ("dave", "davy"),
        "edward": ("ed", "eddie", "ted", "teddy", "ned"),
        "alexander": ("alex", "sandy", "alexandre", "alec"),
        "alexandra": ("alexandrine", "sasha", "sacha"),
        "christopher": ("chris", "kit", "christophe"),
        "christine": ("christina", "tina", "kristina"),
        "nicholas": ("nick", "nicky", "nicolas", "nico"),
        "patricia": ("pat", "patty", "trish", "patricia", "patrice"),
        "anthony": ("tony", "antoine", "anton"),
        "stephen": ("steve", "steven", "stephane", "etienne"),
        "jennifer": ("jen", "jenny"),
        "susan": ("sue", "susie", "suzanne", "suzie"),
        "deborah": ("debbie", "deb", "debra"),
        "rebecca": ("becky", "becca"),
        "samuel": ("sam", "sammy"),
        "benjamin": ("ben", "benji"),
        "matthew": ("matt", "mathieu", "matthieu"),
        "andrew": ("andy", "drew", "andre"),
        "frederick": ("fred", "freddie", "frederic"),
        "francis": ("frank", "frankie", "francois"),
        "henry": ("harry", "hank", "henri"),
        "charles": ("charlie", "chuck", "charly"),
        "isabelle": ("isabel", "isabella", "isa", "belle"),
        "helene": ("helen", "ellen", "elena", "lena"),
        "marie": ("maria", "mary", "mimi"),
        "louis": ("lou", "louie", "ludovic"),
        "guillaume": ("guigui",),
        "philippe": ("philip", "phil", "phillip"),
        "pierre": ("peter", "pete", "pierrot"),
        "emily": ("emilie", "emma", "em"),
        "jessica": ("jess", "jessie"),
        "victoria": ("vicky", "vicki", "tori"),
        "abigail": ("abby", "abbie"),
        "olivia": ("liv", "livvy"),
        "zachary": ("zach", "zack"),
        "jacqueline": ("jackie", "jacky"),
        "timothy": ("tim", "timmy"),
        "gregory": ("greg", "gregoire"),
        "lawrence": ("larry", "laurent"),
        "dominique": ("dom", "dominic"),
    }.items()
    for variant in (canonical, *variants)
}


@lru_cache(maxsize=65536)
def ascii_text(value: str) -> str:
    """Lower case, accents removed, anything but letters and digits turned into single spaces."""
    decomposed = unicodedata.normalize("NFKD", value.lower())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NOT_ALNUM.sub(" ", stripped.replace("ß", "ss").replace("œ", "oe").replace("æ", "ae")).strip()


def _clean(value: str | None) -> str:
    if value is None:
        return ""
    text = ascii_text(str(value))
    return "" if text in ("nan", "none", "null", "na") else text


@lru_cache(maxsize=65536)
def canonical_given_name(name: str) -> str:
    """The canonical form of a given name (first word), nicknames folded: ``bob`` -> ``robert``."""
    first = name.split(" ", 1)[0]
    return NICKNAMES.get(first, first)


@lru_cache(maxsize=65536)
def phonetic(name: str) -> str:
    """A sound-alike code for a name (NYSIIS): ``smith`` and ``smyth`` share one."""
    return jellyfish.nysiis(name.replace(" ", "")) if name else ""


def birth_date_digits(value: str | None) -> str:
    """``YYYYMMDD`` from ``1984-03-07``, ``19840307`` or ``07/03/1984`` (day first); otherwise the
    digits as given (a typo stays comparable by edit distance), or ``""``."""
    if value is None:
        return ""
    text = str(value).strip()
    parts = _DIGITS.findall(text)
    if len(parts) == 3:
        if len(parts[0]) == 4:
            year, month, day = parts
        elif len(parts[2]) == 4:
            day, month, year = parts
        else:
            return "".join(parts)
        return f"{year}{int(month):02d}{int(day):02d}" if month.isdigit() and day.isdigit() else ""
    digits = "".join(parts)
    return digits if len(digits) >= 4 else ""


@dataclass(frozen=True)
class Prepared:
    """A record's comparable values; ``""`` where the record says nothing."""

    id: str
    given_name: str
    given_canonical: str
    given_phonetic: str
    surname: str
    surname_phonetic: str
    birth_date: str  # YYYYMMDD when it parsed
    street: str
    street_number: str
    locality: str
    postcode: str
    phone: str  # the last 9 digits
    email: str
    national_id: str


@lru_cache(maxsize=100_000)
def _email(text: str) -> str:
    """Lower case; an internationalised domain, in either spelling ("café.fr" or "xn--caf-dma.fr"), is
    written as identity resolution writes it (in Unicode), so that both compare equal."""
    email = text.strip().lower()
    if email.isascii() and "xn--" not in email:
        return email
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return email


def prepare(record: PersonRecord) -> Prepared:
    """A record's comparable values (cached: real-time matching prepares the same profiles often)."""
    given = _clean(record.given_name)
    surname = _clean(record.surname)
    street = _clean(record.street)
    number = _DIGITS.search(street)
    phone_digits = "".join(_DIGITS.findall(record.phone or ""))
    email = _email(record.email or "")
    return Prepared(
        id=record.id,
        given_name=given,
        given_canonical=canonical_given_name(given) if given else "",
        given_phonetic=phonetic(given.split(" ", 1)[0]) if given else "",
        surname=surname,
        surname_phonetic=phonetic(surname),
        birth_date=birth_date_digits(record.birth_date),
        street=street,
        street_number=number.group(0) if number else "",
        locality=_clean(record.locality),
        postcode=_clean(record.postcode).replace(" ", ""),
        phone=phone_digits[-9:] if len(phone_digits) >= 6 else "",
        email=email if "@" in email else "",
        national_id="".join(_DIGITS.findall(record.national_id or "")) or _clean(record.national_id),
    )
