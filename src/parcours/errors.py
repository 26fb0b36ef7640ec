"""Typed domain errors. They carry no HTTP knowledge: ``app.py`` maps each class to a status once."""

from __future__ import annotations

from typing import Any


class ParcoursError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(ParcoursError):
    """Input from outside is malformed or breaks a rule; nothing was written."""

    code = "invalid_input"


class PayloadTooLarge(ParcoursError):
    code = "payload_too_large"


class NotAuthenticated(ParcoursError):
    """No credentials, or credentials that match nothing."""

    code = "not_authenticated"


class Forbidden(ParcoursError):
    """Valid credentials that may not do this (a write key trying to read)."""

    code = "forbidden"


class TooManyRequests(ParcoursError):
    """Too many attempts in a short time (sign-in); try again later."""

    code = "too_many_requests"


class NotFound(ParcoursError):
    code = "not_found"


class MethodNotAllowed(ParcoursError):
    """The address exists, but not for this HTTP method."""

    code = "method_not_allowed"


class Conflict(ParcoursError):
    """The request is valid but the current state does not allow it."""

    code = "conflict"


class InsufficientStock(Conflict):
    """Not enough available units where they were asked for; nothing was reserved or sold."""

    code = "insufficient_stock"
