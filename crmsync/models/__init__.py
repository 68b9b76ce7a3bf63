from crmsync.models.audit import AuditEntry
from crmsync.models.capsules import Capsule, Event, EventType, Prospect, Visitor, normalise_email
from crmsync.models.privacy import Suppression, suppression_hash
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
    "normalise_email",
    "suppression_hash",
]
