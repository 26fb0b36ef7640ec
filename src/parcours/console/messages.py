"""The console's translatable strings: extracted from its templates and modules with Babel, checked
against (and added to) the French catalogues. One catalogue per area, so that each area's owner edits
only its own file.

    .venv/bin/python -m parcours.console.messages check    # lists strings without a French translation
    .venv/bin/python -m parcours.console.messages update   # adds them, untranslated, to their catalogue
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

CONSOLE_DIR = Path(__file__).resolve().parent
AREAS = ("inbox", "customers", "store", "admin")  # any other file belongs to the "console" catalogue
METHOD_MAP = [("**.py", "python"), ("templates/**.html", "jinja2")]
OPTIONS = {"templates/**.html": {"trim_blocks": "true", "lstrip_blocks": "true"}}


def area_of(path: str) -> str:
    """The catalogue a file's strings go to: ``inbox.py``, ``inbox/*.py`` and ``templates/inbox/*`` are the
    inbox's; anything else is the shared console's."""
    parts = Path(path).parts
    if parts[0] == "templates":
        name = parts[1] if len(parts) > 2 else ""
    else:
        name = parts[0] if len(parts) > 1 else Path(path).stem
    return name if name in AREAS else "console"


def extracted() -> dict[str, dict[str, list[str]]]:
    """{area: {message: [where, ...]}} of every string marked in the console's code and templates."""
    found: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for filename, line, message, _comments, _context in extract_from_dir(
        CONSOLE_DIR,
        METHOD_MAP,
        OPTIONS,
        keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None},
    ):
        ids = message if isinstance(message, tuple) else (message,)
        for text in ids:
            if text:
                found[area_of(filename)][text].append(f"{filename}:{line}")
    return found


def catalogue_path(area: str, locale: str = "fr") -> Path:
    return CONSOLE_DIR / "locales" / locale / "LC_MESSAGES" / f"{area}.po"


def read_catalogue(path: Path, locale: str = "fr") -> Catalog:
    if not path.exists():
        return Catalog(
            locale=locale,
            project="Parcours console",
            version="",
            copyright_holder="The Parcours contributors",
            header_comment="# French translations of the Parcours console (Apache-2.0).\n#",
            fuzzy=False,
        )
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def translated_ids(locale: str = "fr") -> set[str]:
    ids: set[str] = set()
    for path in (CONSOLE_DIR / "locales" / locale / "LC_MESSAGES").glob("*.po"):
        ids.update(m.id for m in read_catalogue(path, locale) if m.id and m.string and not m.fuzzy)  # type: ignore[misc]
    return ids


def conflicts(locale: str = "fr") -> dict[str, dict[str, str]]:
    """{message: {catalogue: translation}} of strings two catalogues translate differently."""
    seen: dict[str, dict[str, str]] = defaultdict(dict)
    for path in sorted((CONSOLE_DIR / "locales" / locale / "LC_MESSAGES").glob("*.po")):
        for message in read_catalogue(path, locale):
            if message.id and message.string and not message.fuzzy:
                seen[str(message.id)][path.name] = str(message.string)
    return {text: where for text, where in seen.items() if len(set(where.values())) > 1}


def missing(locale: str = "fr") -> dict[str, dict[str, list[str]]]:
    done = translated_ids(locale)
    return {
        area: {text: where for text, where in messages.items() if text not in done}
        for area, messages in extracted().items()
        if any(text not in done for text in messages)
    }


def update(locale: str = "fr") -> int:
    added = 0
    for area, messages in missing(locale).items():
        path = catalogue_path(area, locale)
        catalog = read_catalogue(path, locale)
        for text, where in messages.items():
            if text not in catalog:
                catalog.add(
                    text, "", locations=[(w.rsplit(":", 1)[0], int(w.rsplit(":", 1)[1])) for w in where]
                )
                added += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            write_po(handle, catalog, width=110, omit_header=False, sort_output=True)
    return added


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "update":
        print(f"{update()} strings added to the French catalogues; translate their empty msgstr")
        return 0
    gaps = missing()
    for area, messages in sorted(gaps.items()):
        for text, where in messages.items():
            print(f"{area}.po: {text!r} ({where[0]})")
    clashes = conflicts()
    for text, translations in sorted(clashes.items()):
        print(
            f"translated differently: {text!r}: " + "; ".join(f"{f}: {t!r}" for f, t in translations.items())
        )
    return 1 if gaps or clashes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
