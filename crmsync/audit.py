"""Writing audit entries: one call from every settings change, ops action and command."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest

from crmsync.models import Account, AuditEntry


def client_ip(request: HttpRequest) -> str | None:
    # Behind a proxy, configure it to set REMOTE_ADDR (gunicorn --forwarded-allow-ips); we do not
    # trust X-Forwarded-For ourselves, so a client cannot forge where it came from.
    return request.META.get("REMOTE_ADDR") or None


def record(
    action: str,
    *,
    request: HttpRequest | None = None,
    actor_label: str | None = None,
    account: Account | None = None,
    obj: models.Model | None = None,
    changes: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one audit entry. ``request`` supplies the user, address and agent when there is one."""
    user = getattr(request, "user", None) if request is not None else None
    if user is not None and not user.is_authenticated:
        user = None
    label = actor_label or (user.get_username() if user else "system")
    if obj is not None and account is None:
        account = obj if isinstance(obj, Account) else getattr(obj, "account", None)
    return AuditEntry.objects.create(
        account=account,
        actor=user,
        actor_label=label[:200],
        action=action,
        object_type=obj._meta.label if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:300] if obj is not None else "",
        changes=changes or {},
        ip_address=client_ip(request) if request is not None else None,
        user_agent=(request.META.get("HTTP_USER_AGENT", "")[:300] if request is not None else ""),
    )
