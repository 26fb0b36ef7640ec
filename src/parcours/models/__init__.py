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
from parcours.models.inbox import Agent, Conversation, Message, Team, TeamMember
from parcours.models.instance import InstanceSetting
from parcours.models.matching import MatchKey, MatchReview
from parcours.models.sources import ApiToken, Source

__all__ = [
    "Agent",
    "ApiToken",
    "Consent",
    "Conversation",
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
    "Message",
    "Profile",
    "Source",
    "Team",
    "TeamMember",
    "Tombstone",
]
