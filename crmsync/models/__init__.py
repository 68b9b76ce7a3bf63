from crmsync.models.audit import AuditEntry
from crmsync.models.capsules import Capsule, Event, EventType, Prospect, Visitor
from crmsync.models.privacy import Suppression
from crmsync.models.tenancy import Account, ApiKey, Membership, Role

__all__ = [
    "Account",
    "ApiKey",
    "AuditEntry",
    "Capsule",
    "Event",
    "EventType",
    "Membership",
    "Prospect",
    "Role",
    "Suppression",
    "Visitor",
]
