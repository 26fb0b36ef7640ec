"""Settings are validated: a bad value fails at start with the variable named, not at the first request."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from parcours.config import Settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PARCOURS_EARLIEST_EVENT_YEAR", "0"),
        ("PARCOURS_MAX_FUTURE_SKEW_HOURS", "99999999"),
        ("PARCOURS_MAX_EVENT_BYTES", "10"),
        ("PARCOURS_DEFAULT_PHONE_REGION", "France"),
    ],
)
def test_out_of_range_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as error:
        Settings()
    assert variable.removeprefix("PARCOURS_").lower() in str(error.value)


def test_postgres_urls_use_psycopg() -> None:
    assert Settings(database_url="postgres://u@h/db").sqlalchemy_url == "postgresql+psycopg://u@h/db"
    assert Settings(database_url="postgresql://u@h/db").sqlalchemy_url == "postgresql+psycopg://u@h/db"
    assert Settings(default_phone_region="be").default_phone_region == "BE"
