from django.http import HttpRequest

from integrations.models import Connection, ConnectionStatus


def connection_banners(request: HttpRequest) -> dict:
    """Connections of the shown account that need a person (re-authentication, errors)."""
    account = getattr(request, "account", None)
    if account is None:
        return {"connection_alerts": []}
    alerts = Connection.objects.filter(
        account=account, status__in=[ConnectionStatus.NEEDS_REAUTH, ConnectionStatus.ERROR]
    )
    return {"connection_alerts": list(alerts)}
