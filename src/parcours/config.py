"""Settings, read from the environment with the prefix ``PARCOURS_``."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///parcours.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARCOURS_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: a SQLite file by default, postgresql+psycopg://… for PostgreSQL.",
    )
    default_phone_region: str = Field(
        default="FR", description="ISO 3166 region used to read phone numbers written without +country."
    )
    max_event_bytes: int = Field(
        default=32 * 1024, ge=1024, le=16 * 1024 * 1024, description="Largest accepted event, in bytes."
    )
    max_batch_bytes: int = Field(
        default=500 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest accepted request body, in bytes.",
    )
    max_future_skew_hours: int = Field(
        default=24,
        ge=0,
        le=24 * 366,
        description="Events stamped further than this in the future are refused.",
    )
    earliest_event_year: int = Field(
        default=1990, ge=1900, le=2100, description="Events stamped before this year are refused."
    )
    worker_threads: int = Field(
        default=2,
        ge=1,
        le=256,
        description="Threads serving blocking database work; few beat many on 2 cores (less GIL contention).",
    )
    identity_cache_size: int = Field(
        default=200_000,
        ge=0,
        le=50_000_000,
        description="Identifiers of the identity graph a server keeps in memory between ingestion "
        "batches (0: none; past the limit the cache starts over).",
    )
    match_realtime: bool = Field(
        default=True, description="Score profiles whose name, birth date or address change against the base."
    )
    match_auto_threshold: float = Field(
        default=0.99, gt=0, lt=1, description="Match probability at or above which profiles are merged."
    )
    match_review_threshold: float = Field(
        default=0.8,
        gt=0,
        lt=1,
        description="Match probability at or above which a pair is queued for review.",
    )
    inbox_continuity_hours: int = Field(
        default=72,
        ge=0,
        le=24 * 365,
        description="A resolved conversation reopens when the customer writes again within this many hours; "
        "after that a new conversation starts. Unresolved conversations always continue.",
    )
    inbox_email_domain: str = Field(
        default="parcours.localhost",
        description="The domain of the Message-IDs of e-mails the inbox sends.",
        pattern=r"^[A-Za-z0-9.-]{1,200}$",
    )
    # --- channel settings: email ---
    # --- channel settings: meta ---
    # --- channel settings: twilio ---
    # --- channel settings: widget ---
    log_level: str = Field(default="INFO")

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> Settings:
        if self.match_review_threshold > self.match_auto_threshold:
            raise ValueError("match_review_threshold must not exceed match_auto_threshold")
        return self

    @field_validator("default_phone_region")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        region = value.strip().upper()
        if len(region) != 2 or not region.isalpha():
            raise ValueError("must be a two-letter ISO 3166 region code such as FR")
        return region

    @property
    def sqlalchemy_url(self) -> str:
        """The URL with a driver SQLAlchemy can use (``postgresql://`` means psycopg 3 here)."""
        url = self.database_url
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
