"""What every request body shares: text that a database cannot store (the NUL character, which
PostgreSQL refuses in text and JSON) is refused naming the field that holds it, and a validation error
names its field the same way wherever it is reported."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

NUL_MESSAGE = "contains a NUL character (\\u0000), which cannot be stored"


def iso_z(moment: datetime | None) -> str | None:
    """A stored UTC moment as the API writes it: ISO-8601 with ``Z``; None stays None."""
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def utc_moment(text: str) -> datetime:
    """An ISO-8601 date-time as an aware UTC datetime (UTC when it names no offset); ValueError saying
    what is wrong with it otherwise."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text[:60]!r} is not an ISO-8601 date-time") from None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # "9999-12-31T23:59:59-05:00" is past the last representable UTC instant
        raise ValueError(f"{text[:60]!r} is out of range") from None


def child_path(where: str, key: str, root: str) -> str:
    """The path of ``key`` inside ``where`` (``properties.total``); ``root`` names the document itself,
    for a key that is empty (``event[""]``)."""
    if not key:
        return f'{where or root}[""]'
    return f"{where}.{key}" if where else key


def nul_path(value: Any, root: str, where: str = "") -> str | None:
    """The path of the first string (or object key) holding a NUL character, or None. ``root`` names the
    document itself (``event``, ``body``). Iterative: a hostile document may nest a thousand levels."""
    pending: list[tuple[Any, str]] = [(value, where)]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                if isinstance(key, str) and "\x00" in key:
                    return f"{path or root}: key {key!r}"
                children.append((child, child_path(path, str(key), root)))
            pending.extend(reversed(children))
        elif isinstance(item, list | tuple):
            pending.extend(reversed([(child, f"{path}[{i}]") for i, child in enumerate(item)]))
    return None


def find_nul(value: Any, root: str) -> str | None:
    """``nul_path``, after one C-speed look at the whole document (about 1 µs for a message, where the
    walk in Python costs ten times that): most documents hold no NUL and are never walked."""
    try:
        encoded = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # too deep or too large a number for the encoder: walk it
        return nul_path(value, root)
    return nul_path(value, root) if b"\\u0000" in encoded else None


def without_nul(value: Any) -> Any:
    """``value`` with every NUL character removed from its strings and object keys: for what a provider
    passes on, which must be kept rather than refused."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(without_nul(item) for item in value)
    return value


class InputModel(BaseModel):
    """The base of request body models: a NUL character anywhere in the body is refused before the
    fields are validated, naming where it is (``lines[0].sku``)."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        where = find_nul(data, "body")
        if where is not None:
            raise PydanticCustomError("nul_character", NUL_MESSAGE, {"where": where})
        return data


def field_problems(errors: Sequence[ErrorDetails], root: str = "") -> list[dict[str, str]]:
    """Pydantic's errors as ``{"field": "lines.0.sku", "error": "…"}``; a leading ``body`` is dropped,
    and ``root`` names the document itself."""
    problems = []
    for item in errors:
        location = [str(part) for part in item.get("loc", ())]
        if location[:1] == ["body"]:
            location = location[1:]
        field = ".".join(location)
        if item["type"] == "json_invalid":  # FastAPI puts the character position in the location
            context = item.get("ctx") or {}
            problems.append({"field": "body", "error": f"malformed JSON ({context.get('error', 'invalid')})"})
            continue
        if item["type"] == "nul_character":
            where = str((item.get("ctx") or {}).get("where", ""))
            field = f"{field}.{where}" if field and where else field or where
        problems.append({"field": field or root, "error": item["msg"]})
    return problems


def problems_message(problems: list[dict[str, str]]) -> str:
    return "; ".join(f"{p['field']}: {p['error']}" if p["field"] else p["error"] for p in problems)
