from integrations.models.connection import (
    AuthKind,
    BatchSchedule,
    Connection,
    ConnectionStatus,
    Direction,
    LeadCreation,
    RecordType,
    SyncMode,
)
from integrations.models.sync import (
    CLAIMABLE_STATES,
    OPEN_STATES,
    LinkState,
    OutboxItem,
    OutboxKind,
    OutboxState,
    RecordLink,
    RunMode,
    RunState,
    SyncRun,
)

__all__ = [
    "CLAIMABLE_STATES",
    "OPEN_STATES",
    "AuthKind",
    "BatchSchedule",
    "Connection",
    "ConnectionStatus",
    "Direction",
    "LeadCreation",
    "LinkState",
    "OutboxItem",
    "OutboxKind",
    "OutboxState",
    "RecordLink",
    "RecordType",
    "RunMode",
    "RunState",
    "SyncMode",
    "SyncRun",
]

from integrations.models.webhooks_out import (
    DUE_STATES,
    DeliveryState,
    WebhookDelivery,
    WebhookSource,
    WebhookSubscription,
)

__all__ += ["DUE_STATES", "DeliveryState", "WebhookDelivery", "WebhookSource", "WebhookSubscription"]

from integrations.models.inbound import (  # noqa: E402
    ConflictWinner,
    DealLink,
    InboundEvent,
    InboundState,
    InboundVia,
    PollCursor,
    PollSchedule,
    ProspectCrmData,
    SyncConflict,
    WebhookRegistration,
)

__all__ += [
    "ConflictWinner",
    "DealLink",
    "InboundEvent",
    "InboundState",
    "InboundVia",
    "PollCursor",
    "PollSchedule",
    "ProspectCrmData",
    "SyncConflict",
    "WebhookRegistration",
]
