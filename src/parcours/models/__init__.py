"""All ORM models, one module per aggregate; importing this package registers every table."""

from parcours.models.events import Event
from parcours.models.identity import (
    Consent,
    Identifier,
    IdentifierKind,
    IdentityConflict,
    IdentityGraphVersion,
    Merge,
    MergeBlock,
    Profile,
    Tombstone,
)
from parcours.models.instance import InstanceSetting
from parcours.models.matching import MatchKey, MatchReview
from parcours.models.sources import ApiToken, Source

__all__ = [
    "ApiToken",
    "Consent",
    "Event",
    "Identifier",
    "IdentifierKind",
    "IdentityConflict",
    "IdentityGraphVersion",
    "InstanceSetting",
    "MatchKey",
    "MatchReview",
    "Merge",
    "MergeBlock",
    "Profile",
    "Source",
    "Tombstone",
]
