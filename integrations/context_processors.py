from django.http import HttpRequest

from integrations.models import Connection, ConnectionStatus, OutboxItem, OutboxState


def connection_banners(request: HttpRequest) -> dict:
    """What the shown account's owner must know on every page: connections that need a person
    (re-authentication, errors) and whether records failed to sync (two indexed queries)."""
    account = getattr(request, "account", None)
    if account is None:
        return {"connection_alerts": [], "has_failed_records": False}
    alerts = Connection.objects.filter(
        account=account, status__in=[ConnectionStatus.NEEDS_REAUTH, ConnectionStatus.ERROR]
    )
    failed = OutboxItem.objects.filter(connection__account=account, state=OutboxState.FAILED).exists()
    return {"connection_alerts": list(alerts), "has_failed_records": failed}
