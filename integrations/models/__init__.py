from integrations.models.connection import AuthKind, Connection, ConnectionStatus, Direction, RecordType, SyncMode

__all__ = ["AuthKind", "Connection", "ConnectionStatus", "Direction", "RecordType", "SyncMode"]
