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
from parcours.models.inbox import (
    Agent,
    AutomationRule,
    Conversation,
    CsatSurvey,
    InboxEvent,
    KnowledgeArticle,
    Macro,
    Message,
    SlaClock,
    SlaPolicy,
    Team,
    TeamMember,
)
from parcours.models.instance import InstanceSetting
from parcours.models.matching import MatchKey, MatchReview
from parcours.models.sources import ApiToken, Source

__all__ = [
    "Agent",
    "ApiToken",
    "AutomationRule",
    "Consent",
    "Conversation",
    "CsatSurvey",
    "Event",
    "Identifier",
    "IdentifierKind",
    "IdentityConflict",
    "IdentityGraphVersion",
    "InboxEvent",
    "InstanceSetting",
    "KnowledgeArticle",
    "Macro",
    "MatchKey",
    "MatchReview",
    "Merge",
    "MergeBlock",
    "Message",
    "Profile",
    "SlaClock",
    "SlaPolicy",
    "Source",
    "Team",
    "TeamMember",
    "Tombstone",
]
