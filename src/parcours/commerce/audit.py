"""The consistency audit: read a channel's product feed (a marketplace, a social shop, a printed catalogue;
CSV with a header or a JSON list of objects) and list every divergence from the source of truth — what
``offers`` says that channel should show, channel rules included.

Columns are found by name (case-insensitive; ``DEFAULT_COLUMNS`` lists the names understood), or by a
mapping ``{field: column}`` for other names (e.g. ``{"price": "prix", "sku": "ref"}``). Only ``sku`` is
required; each other field is compared when the feed has it:

- ``price``: the price before promotion; ``currency``: the row's currency (else the audit's);
- ``sale_price``: the price of one unit after the best promotion (empty, or equal to ``price``: no
  promotion shown); ``promotion``: names or ids of the promotions shown (``;``-separated, or a JSON list);
- ``delivery_cost`` and ``delivery_days``: of the audited delivery method (home by default) for the
  audited postcode (zone "*" without one), free_from applied to the unit's price; empty: not stated;
- ``return_days``: the return period; empty: not stated.

Divergence kinds: ``unknown_sku``, ``inactive_sku``, ``missing_sku`` (on sale here, absent from the feed),
``duplicate_sku``, ``currency`` (no price in that currency), ``price``, ``sale_price``, ``promotion``,
``delivery_cost``, ``delivery_days``, ``return_days``; each with ``expected`` and ``found``. A malformed
feed is refused whole (InvalidInput naming the lines), and its size is bounded."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from parcours.commerce.catalogue import (
    BASE_CURRENCY,
    DELIVERY_METHODS,
    check_channel_field,
    check_currency,
    normalize_postcode,
)
from parcours.commerce.offers import OfferBook
from parcours.errors import InvalidInput, NotFound, PayloadTooLarge

MAX_FEED_BYTES = 8 * 1024 * 1024
MAX_FEED_ROWS = 50_000
MAX_REPORTED_ERRORS = 50
MAX_CELL = 10_000

FIELDS = (
    "sku",
    "price",
    "currency",
    "sale_price",
    "promotion",
    "delivery_cost",
    "delivery_days",
    "return_days",
)
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "sku": ("sku",),
    "price": ("price",),
    "currency": ("currency",),
    "sale_price": ("sale_price", "promotion_price", "promo_price"),
    "promotion": ("promotion", "promotions"),
    "delivery_cost": ("delivery_cost", "shipping_cost"),
    "delivery_days": ("delivery_days", "shipping_days", "lead_days"),
    "return_days": ("return_days",),
}
_AMOUNT = re.compile(r"(?:([A-Za-z]{3})\s*)?(\d+(?:[.,]\d+)?)(?:\s*([A-Za-z]{3}))?")


@dataclass
class FeedRow:
    """One product of a feed: where it is (``line`` of the CSV, or 1-based ``item`` of the JSON list),
    its SKU as written, and the fields the feed gave (parsed: Decimal amounts, int days)."""

    where: str
    number: int
    sku: str
    currency: str | None
    values: dict[str, Any] = field(default_factory=dict)


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.count = 0

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.items) < MAX_REPORTED_ERRORS:
            self.items.append(text)

    def raise_if_any(self) -> None:
        if self.count:
            more = f" (and {self.count - len(self.items)} more)" if self.count > len(self.items) else ""
            raise InvalidInput(
                f"feed: {self.count} problem{'s' if self.count > 1 else ''}{more}; first: {self.items[0]}",
                details=self.items,
            )


# ------------------------------------------------------------------------------------------ parsing
def _columns(names: list[str], mapping: Mapping[str, str] | None, *, strict: bool) -> dict[str, str]:
    """field -> column name as it appears in the feed."""
    lowered: dict[str, str] = {}
    for name in names:
        lowered.setdefault(name.strip().lower(), name)
    found: dict[str, str] = {}
    for name, column in (mapping or {}).items():
        if name not in FIELDS:
            raise InvalidInput(f"map: {name!r} is not a feed field; fields: {', '.join(FIELDS)}")
        if not isinstance(column, str) or not column.strip():
            raise InvalidInput(f"map: the column for {name} is empty")
        key = column.strip().lower()
        if key in lowered:
            found[name] = lowered[key]
        elif strict:
            raise InvalidInput(f"map: column {column!r} (for {name}) is not in the feed's header")
    for name, aliases in DEFAULT_COLUMNS.items():
        if name in found or (mapping and name in mapping):
            continue
        for alias in aliases:
            if alias in lowered and lowered[alias] not in found.values():
                found[name] = lowered[alias]
                break
    return found


def _amount(value: Any, name: str) -> tuple[Decimal | None, str | None]:
    """An amount (and the currency code written beside it, if any); None for an empty cell."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected an amount, got {value!r}")
    if isinstance(value, Decimal | int):
        amount = Decimal(value)
        code = None
    elif isinstance(value, str):
        text = value.strip().replace("\u00a0", " ")
        if not text:
            return None, None
        match = _AMOUNT.fullmatch(text)
        if not match or (match.group(1) and match.group(3)):
            raise ValueError(f"{name}: {value!r} is not an amount (e.g. 19.90 or 19,90 EUR)")
        try:
            amount = Decimal(match.group(2).replace(",", "."))
        except InvalidOperation:  # pragma: no cover - the pattern admits only digits
            raise ValueError(f"{name}: {value!r} is not an amount") from None
        code = (match.group(1) or match.group(3) or "").upper() or None
    elif isinstance(value, Mapping) and ("value" in value or "amount" in value):
        amount_value, _ = _amount(value.get("value", value.get("amount")), name)
        currency = value.get("currency")
        return amount_value, str(currency) if currency is not None else None
    else:
        raise ValueError(f"{name}: expected an amount, got {type(value).__name__}")
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{name}: {value!r} is not a non-negative amount")
    if amount > Decimal("1e12"):
        raise ValueError(f"{name}: {value!r} is too large")
    return amount, code


def _days(value: Any, name: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected a number of days, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        number = int(value.strip())
    else:
        raise ValueError(f"{name}: {value!r} is not a whole number of days")
    if not 0 <= number <= 36_500:
        raise ValueError(f"{name}: {number} days is out of range")
    return number


def _promotions(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        parts = re.split(r"[;|]", value)
    elif isinstance(value, list) and all(isinstance(part, str) for part in value):
        parts = list(value)
    else:
        raise ValueError(f"{name}: expected promotion names separated by ';', or a list of names")
    return [part.strip() for part in parts if part.strip()]


def _row(where: str, number: int, cells: Mapping[str, Any], columns: dict[str, str]) -> FeedRow:
    """One feed row from its cells (column name -> value); ValueError naming the field."""
    raw_sku = cells.get(columns["sku"])
    if isinstance(raw_sku, int) and not isinstance(raw_sku, bool):
        raw_sku = str(raw_sku)
    if not isinstance(raw_sku, str) or not raw_sku.strip():
        raise ValueError("sku: empty")
    row = FeedRow(where=where, number=number, sku=raw_sku.strip(), currency=None)
    currencies: list[str] = []
    for name, column in columns.items():
        if name == "sku":
            continue
        value = cells.get(column)
        if isinstance(value, str) and len(value) > MAX_CELL:
            raise ValueError(f"{name}: longer than {MAX_CELL} characters")
        if name in ("price", "sale_price", "delivery_cost"):
            amount, code = _amount(value, name)
            if amount is None and name == "price":
                if column in cells:
                    raise ValueError("price: empty")
                continue
            if code:
                currencies.append(code)
            if amount is None and name == "delivery_cost":
                continue  # not stated
            row.values[name] = amount
        elif name in ("delivery_days", "return_days"):
            days = _days(value, name)
            if days is not None:
                row.values[name] = days
        elif name == "promotion":
            row.values[name] = _promotions(value, name)
        elif name == "currency" and value is not None and str(value).strip():
            if not isinstance(value, str):
                raise ValueError(f"currency: expected a code, got {value!r}")
            currencies.append(value)
    codes = set()
    for code in currencies:
        try:
            codes.add(check_currency(code))
        except InvalidInput as error:
            raise ValueError(error.message) from None
    if len(codes) > 1:
        raise ValueError(f"currency: the row mixes {', '.join(sorted(codes))}")
    row.currency = codes.pop() if codes else None
    return row


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        if len(data) > MAX_FEED_BYTES:
            raise PayloadTooLarge(f"feed: over the {MAX_FEED_BYTES // 1024 // 1024} MB limit")
        return data.removeprefix("\ufeff")
    if len(data) > MAX_FEED_BYTES:
        raise PayloadTooLarge(f"feed: over the {MAX_FEED_BYTES // 1024 // 1024} MB limit")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InvalidInput(f"feed: line {line}: not UTF-8 text (byte {error.start})") from None


def parse_csv(data: bytes | str, mapping: Mapping[str, str] | None = None) -> list[FeedRow]:
    """Rows of a CSV feed with a header (delimiter ``,``, ``;``, tab or ``|``, the one the header uses)."""
    text = _decode(data)
    if "\x00" in text:
        raise InvalidInput("feed: contains NUL bytes; expected CSV text")
    first = text.split("\n", 1)[0]
    if not first.strip():
        raise InvalidInput("feed: line 1: expected a header naming the columns (sku, price, ...)")
    delimiter = max((",", ";", "\t", "|"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except csv.Error as error:
        raise InvalidInput(f"feed: line 1: malformed CSV header: {error}") from None
    names = [name.strip() for name in header]
    seen: set[str] = set()
    for name in names:
        if not name:
            raise InvalidInput("feed: line 1: a column of the header has no name")
        if name.lower() in seen:
            raise InvalidInput(f"feed: line 1: column {name!r} appears twice in the header")
        seen.add(name.lower())
    columns = _columns(names, mapping, strict=True)
    if "sku" not in columns:
        raise InvalidInput(
            f"feed: line 1: no sku column (columns: {', '.join(names)}); map one with {{'sku': 'column'}}"
        )
    problems = _Problems()
    rows: list[FeedRow] = []
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            problems.add(f"line {start}: malformed CSV: {error}")
            break
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(rows) >= MAX_FEED_ROWS:
            raise PayloadTooLarge(f"feed: more than {MAX_FEED_ROWS} rows")
        if len(record) != len(names):
            problems.add(f"line {start}: {len(record)} fields, the header has {len(names)}")
            continue
        try:
            rows.append(_row(f"line {start}", start, dict(zip(names, record, strict=True)), columns))
        except ValueError as error:
            problems.add(f"line {start}: {error}")
    problems.raise_if_any()
    return rows


def parse_json(data: bytes | str, mapping: Mapping[str, str] | None = None) -> list[FeedRow]:
    """Rows of a JSON feed: a list of objects, or an object holding it under ``items``, ``products`` or
    ``offers``. Numbers are read as Decimal (exactly as written)."""
    text = _decode(data)
    try:
        document = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"feed: line {error.lineno} column {error.colno}: invalid JSON: {error.msg}"
        ) from None
    except RecursionError:
        raise InvalidInput("feed: JSON nested too deeply") from None
    if isinstance(document, dict):
        for key in ("items", "products", "offers"):
            if isinstance(document.get(key), list):
                document = document[key]
                break
    if not isinstance(document, list):
        raise InvalidInput("feed: expected a JSON list of objects (or {'items': [...]})")
    if len(document) > MAX_FEED_ROWS:
        raise PayloadTooLarge(f"feed: more than {MAX_FEED_ROWS} items")
    problems = _Problems()
    rows: list[FeedRow] = []
    for index, item in enumerate(document, start=1):
        if not isinstance(item, dict):
            problems.add(f"item {index}: expected an object, got {type(item).__name__}")
            continue
        columns = _columns(list(item), mapping, strict=False)
        if "sku" not in columns:
            problems.add(f"item {index}: no sku")
            continue
        try:
            rows.append(_row(f"item {index}", index, item, columns))
        except ValueError as error:
            problems.add(f"item {index}: {error}")
    problems.raise_if_any()
    return rows


def parse_feed(
    data: bytes | str, *, format: str | None = None, mapping: Mapping[str, str] | None = None
) -> list[FeedRow]:
    """``format``: "csv", "json", or None to tell from the first character ('[' or '{': JSON)."""
    if format is None:
        head = (data[:64].decode("utf-8", "ignore") if isinstance(data, bytes) else data[:64]).lstrip(
            "\ufeff \t\r\n"
        )
        format = "json" if head[:1] in ("[", "{") else "csv"
    if format == "csv":
        return parse_csv(data, mapping)
    if format == "json":
        return parse_json(data, mapping)
    raise InvalidInput(f"format: expected csv or json, got {format!r}")


# ------------------------------------------------------------------------------------------ audit
def audit_feed(
    session: Session,
    data: bytes | str,
    *,
    channel: str,
    now: datetime,
    format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    currency: str = BASE_CURRENCY,
    postcode: str | None = None,
    delivery_method: str = "home",
    check_missing: bool = True,
) -> dict[str, Any]:
    """Compare a channel's feed with the source of truth for that channel; returns ``{"channel", "rows",
    "divergences": [{"kind", "sku", "where", "expected", "found", "message"}], "summary": {kind: n}}``.
    ``currency``: for rows that name none, and for the missing-SKU check."""
    where_channel = check_channel_field(channel)
    if where_channel is None:
        raise InvalidInput("channel: required (the channel whose feed this is)")
    code = check_currency(currency)
    zone_postcode = normalize_postcode(postcode)
    if delivery_method not in DELIVERY_METHODS:
        raise InvalidInput(f"delivery_method: must be one of {', '.join(DELIVERY_METHODS)}")
    rows = parse_feed(data, format=format, mapping=mapping)
    book = OfferBook(session, now=now)
    divergences: list[dict[str, Any]] = []

    def diverge(kind: str, row: FeedRow | None, sku: str, expected: Any, found: Any, message: str) -> None:
        divergences.append(
            {
                "kind": kind,
                "sku": sku,
                "where": row.where if row else None,
                "expected": expected,
                "found": found,
                "message": message,
            }
        )

    first_seen: dict[str, FeedRow] = {}
    for row in rows:
        sku = row.sku.upper()
        if sku in first_seen:
            earlier = first_seen[sku].where
            diverge("duplicate_sku", row, sku, "once", "again", f"{sku} already listed at {earlier}")
            continue
        first_seen[sku] = row
        item = book.items.get(sku)
        if item is None:
            diverge("unknown_sku", row, row.sku, None, row.sku, f"{row.sku} is not in the catalogue")
            continue
        if not item.active:
            diverge("inactive_sku", row, sku, "not on sale", "listed", f"{sku} is not on sale (inactive)")
            continue
        row_currency = row.currency or code
        try:
            offer = book.offer(
                sku, channel=where_channel, currency=row_currency, member=False, postcode=zone_postcode
            )
        except NotFound:
            known = sorted(
                {c for (s, c, ch) in book.prices if s == sku and (ch is None or ch == where_channel)}
            )
            diverge(
                "currency",
                row,
                sku,
                known,
                row_currency,
                f"{sku} has no price in {row_currency} (priced in {', '.join(known) or 'nothing'})",
            )
            continue
        _compare(offer, row, sku, row_currency, delivery_method, diverge)
    if check_missing:
        for sku in sorted(book.items):
            item = book.items[sku]
            if item.active and sku not in first_seen and book.has_price(sku, code, where_channel):
                diverge(
                    "missing_sku", None, sku, "listed", None, f"{sku} is on sale but absent from the feed"
                )
    summary: dict[str, int] = {}
    for divergence in divergences:
        summary[divergence["kind"]] = summary.get(divergence["kind"], 0) + 1
    return {
        "channel": where_channel,
        "currency": code,
        "postcode": zone_postcode,
        "delivery_method": delivery_method,
        "rows": len(rows),
        "divergences": divergences,
        "summary": summary,
    }


def _compare(
    offer: dict[str, Any], row: FeedRow, sku: str, currency: str, delivery_method: str, diverge: Any
) -> None:
    values = row.values
    price: Decimal = offer["price"]
    if "price" in values and values["price"] != price:
        diverge(
            "price", row, sku, price, values["price"], f"{sku}: price {values['price']} instead of {price}"
        )
    if "sale_price" in values:
        expected = offer["unit_price"] if offer["best_promotion"] else None
        found = values["sale_price"]
        if found is not None and found == values.get("price", price):
            found = None  # a sale price equal to the price shows no promotion
        if expected != found:
            diverge(
                "sale_price",
                row,
                sku,
                expected,
                found,
                f"{sku}: sale price {found if found is not None else 'none'} instead of "
                f"{expected if expected is not None else 'none (no promotion)'}",
            )
    if "promotion" in values:
        promotions = offer["promotions"]
        names = {p["id"].lower(): p["name"] for p in promotions} | {
            p["name"].lower(): p["name"] for p in promotions
        }
        shown = values["promotion"]
        matched = {names[token.lower()] for token in shown if token.lower() in names}
        unknown = [token for token in shown if token.lower() not in names]
        expected_names = sorted(p["name"] for p in promotions)
        if unknown or matched != set(expected_names):
            diverge(
                "promotion",
                row,
                sku,
                expected_names,
                shown,
                f"{sku}: promotions {', '.join(shown) or 'none'} instead of {', '.join(expected_names) or 'none'}",
            )
    if "delivery_cost" in values or "delivery_days" in values:
        option = next((o for o in offer["delivery"] if o["method"] == delivery_method), None)
        for name, key in (("delivery_cost", "cost"), ("delivery_days", "lead_days")):
            if name not in values:
                continue
            expected = option[key] if option else None
            if expected != values[name]:
                diverge(
                    name,
                    row,
                    sku,
                    expected,
                    values[name],
                    f"{sku}: {delivery_method} {name.replace('_', ' ')} {values[name]} instead of "
                    f"{expected if expected is not None else 'none (no such delivery option)'}",
                )
    if "return_days" in values:
        expected_days = offer["returns"]["days"] if offer["returns"] else None
        if expected_days != values["return_days"]:
            diverge(
                "return_days",
                row,
                sku,
                expected_days,
                values["return_days"],
                f"{sku}: {values['return_days']} return days instead of {expected_days}",
            )
