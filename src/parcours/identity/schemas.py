"""Request bodies of the identity API."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from parcours.inputs import InputModel


class ConsentIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(description="A channel name, or '*' for every channel.", max_length=40)
    purpose: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,59}$", description="e.g. marketing, analytics")
    granted: bool
    source: str = Field(default="api", min_length=1, max_length=160, description="Who recorded it.")


class UnmergeIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    merge_id: str | None = Field(default=None, max_length=40)


class MergeIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    profile_id: str | None = Field(default=None, max_length=60, description="The other profile's id.")
    identifier: str | None = Field(
        default=None, max_length=400, description="Or an identifier of the other profile: KIND:VALUE."
    )
    reason: str | None = Field(default=None, max_length=120, description="Why: kept in the merge record.")


class KindIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=40)
    priority: int = Field(ge=0, le=10_000)
    max_per_profile: int = Field(ge=1, le=10_000)
    normalizer: str = "text"
    blocked_values: list[str] = Field(default_factory=list, max_length=1000)
    blocked_patterns: list[str] = Field(default_factory=list, max_length=100)
    description: str = Field(default="", max_length=500)


class KindUpdate(InputModel):
    model_config = ConfigDict(extra="forbid")

    priority: int | None = Field(default=None, ge=0, le=10_000)
    max_per_profile: int | None = Field(default=None, ge=1, le=10_000)
    blocked_values: list[str] | None = Field(default=None, max_length=1000)
    blocked_patterns: list[str] | None = Field(default=None, max_length=100)


class ConflictReview(InputModel):
    model_config = ConfigDict(extra="forbid")

    status: str = Field(description="'dismissed' once reviewed (the rule was right), or 'open' again.")


class ConflictMerge(InputModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=120, description="Why: kept in the merge record.")
