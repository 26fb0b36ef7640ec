"""The console in French and English: Babel message catalogues (the ``.po`` files under ``locales/``, one
per area of the console, read once and merged) and dates, numbers and money formatted per locale.

Source strings are English; ``locales/fr/LC_MESSAGES/*.po`` translate them. ``tests/test_console_i18n.py``
checks that every string the templates and pages mark has its French translation."""

from __future__ import annotations

import datetime as dt
import functools
import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_timedelta
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, format_percent
from babel.support import NullTranslations, Translations

from parcours.db.types import utcnow

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DEFAULT_LOCALE = "en"


def N_(message: str) -> str:
    """Marks a string for translation where it is defined; it is translated where it is shown."""
    return message


@functools.cache
def translations(locale: str) -> NullTranslations:
    """Every catalogue of ``locale`` merged (English, the source language, has none)."""
    folder = LOCALES_DIR / locale / "LC_MESSAGES"
    files = sorted(folder.glob("*.po")) if folder.is_dir() else []
    if not files:
        return NullTranslations()
    merged = Catalog(locale=locale)
    # console.po first: a string shared by several areas keeps its translation from there
    # (``messages check`` reports a string two catalogues translate differently).
    files.sort(key=lambda path: path.name != "console.po")
    for path in files:
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=locale)
        for message in catalog:
            if message.id and message.string and not message.fuzzy and message.id not in merged:
                merged[message.id] = message
    buffer = io.BytesIO()
    write_mo(buffer, merged)
    buffer.seek(0)
    return Translations(fp=buffer)


@dataclass(frozen=True)
class Translator:
    """What a page needs to speak the user's language: gettext and the locale's formats."""

    locale: str
    timezone: str

    @property
    def _translations(self) -> NullTranslations:
        return translations(self.locale)

    def gettext(self, message: str, **values: object) -> str:
        text = self._translations.gettext(message)
        return text.format(**values) if values else text

    def ngettext(self, singular: str, plural: str, count: int, **values: object) -> str:
        """The form the user's language uses for ``count`` (French: 0 and 1 are singular), translated.
        The catalogues hold each English form as a message of its own."""
        form = singular if Locale.parse(self.locale).plural_form(count) == "one" else plural
        return self.gettext(form, count=self.number(count), **values)

    def datetime(self, moment: dt.datetime | None, style: str = "medium") -> str:
        if moment is None:
            return ""
        return format_datetime(moment, style, tzinfo=ZoneInfo(self.timezone), locale=self.locale)

    def date(self, day: dt.date | dt.datetime | None, style: str = "medium") -> str:
        if day is None:
            return ""
        if isinstance(day, dt.datetime):
            day = day.astimezone(ZoneInfo(self.timezone)).date()
        return format_date(day, style, locale=self.locale)

    def ago(self, moment: dt.datetime | None) -> str:
        """How long ago (or in how long), e.g. "3 minutes ago" / "il y a 3 minutes"."""
        if moment is None:
            return ""
        return format_timedelta(moment - utcnow(), add_direction=True, threshold=1.1, locale=self.locale)

    def number(self, value: int | float | Decimal) -> str:
        return format_decimal(value, locale=self.locale)

    def percent(self, value: float, pattern: str | None = None) -> str:
        """A share as a percentage in the locale's way ("98.7%", "98,7 %"); ``pattern`` as Babel's."""
        return format_percent(value, pattern, locale=self.locale)

    def money(self, amount: Decimal | str | None, currency: str = "EUR") -> str:
        if amount is None:
            return ""
        return format_currency(Decimal(str(amount)), currency, locale=self.locale)


def translator(locale: str | None, timezone: str) -> Translator:
    return Translator(locale if locale in ("en", "fr") else DEFAULT_LOCALE, timezone)


def best_locale(accept_language: str | None) -> str:
    """The first of our locales the browser asks for (for pages before sign-in)."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in ("en", "fr"):
            return tag
    return DEFAULT_LOCALE
