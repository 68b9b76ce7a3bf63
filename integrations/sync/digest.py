"""Telling owners about records that failed: one e-mail digest per account, not one per record.

The scheduler runs ``send_failure_digests`` hourly. For each connection, failures since the last
digest are counted (the outbox keeps every failed row with the CRM's message); an account with
any gets one e-mail listing each connection's count and the most common reasons, with a link to
the failed-records page where each can be retried or skipped. The settings pages show a banner
while failed rows exist (integrations.context_processors).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from integrations.models import Connection, OutboxItem, OutboxState
from integrations.notify import owner_addresses

REASONS_SHOWN = 3


def send_failure_digests() -> int:
    """Send the digests that are due; returns how many e-mails went out."""
    now = timezone.now()
    by_account: dict[int, list[tuple[Connection, int, list[tuple[str, int]]]]] = defaultdict(list)
    for connection in Connection.objects.live().select_related("account"):
        failed = OutboxItem.objects.filter(connection=connection, state=OutboxState.FAILED, updated_at__lte=now)
        if connection.failure_digest_at is not None:
            failed = failed.filter(updated_at__gt=connection.failure_digest_at)
        reasons = Counter(error[:200] for error in failed.values_list("last_error", flat=True)[:1000])
        count = failed.count()
        if count:
            by_account[connection.account_id].append((connection, count, reasons.most_common(REASONS_SHOWN)))
    sent = 0
    for entries in by_account.values():
        account = entries[0][0].account
        recipients = owner_addresses(entries[0][0])
        url = settings.PUBLIC_BASE_URL + reverse("integrations:sync_failed", kwargs={"account_slug": account.slug})
        lines = [f"Some records could not be synced for {account.name}.", ""]
        for connection, count, reasons in entries:
            lines.append(f"{connection.spec.label}: {count} record{'s' if count != 1 else ''} failed")
            lines += [f"  - {reason} ({n}×)" for reason, n in reasons]
        lines += ["", f"Each one, with the CRM's own message, can be retried or skipped here: {url}"]
        with transaction.atomic():
            Connection.objects.filter(pk__in=[c.pk for c, _n, _r in entries]).filter(
                Q(failure_digest_at__isnull=True) | Q(failure_digest_at__lt=now)
            ).update(failure_digest_at=now)
            if recipients:
                transaction.on_commit(
                    lambda lines=lines, recipients=recipients, account=account: send_mail(
                        subject=f"CRM sync: records need attention ({account.name})",
                        message="\n".join(lines),
                        from_email=None,
                        recipient_list=recipients,
                    )
                )
                sent += 1
    return sent
