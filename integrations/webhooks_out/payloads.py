"""The ``data`` objects of webhook events built from our own rows (prospects, capsule events).

A prospect's personal data (e-mail, names, company) go into a message only when they may go to
a CRM (DESIGN.md invariant 5): an automation behind Zapier or Make is as much a CRM as any. For a
prospect without the required consent, or who refused it, the message carries the id and
``"personal_data_withheld": true`` instead, and a ``lead.captured`` message leaves out the form's
answers too (they are the person's own words about themselves).
"""

from __future__ import annotations

from typing import Any

from crmsync.models import Account, Capsule, Event, Prospect


def may_share(account: Account, prospect: Prospect) -> bool:
    """``Prospect.may_sync`` without loading the account again."""
    if prospect.erased or not prospect.email:
        return False
    if account.require_consent:
        return prospect.consent_granted is True
    return prospect.consent_granted is not False


def prospect_data(account: Account, prospect: Prospect | None) -> dict[str, Any] | None:
    if prospect is None:
        return None
    if not may_share(account, prospect):
        return {"id": prospect.pk, "personal_data_withheld": True}
    return {
        "id": prospect.pk,
        "email": prospect.email,
        "first_name": prospect.first_name,
        "last_name": prospect.last_name,
        "full_name": prospect.full_name,
        "company": prospect.company,
        "job_title": prospect.job_title,
    }


def capsule_data(capsule: Capsule | None) -> dict[str, Any] | None:
    if capsule is None:
        return None
    return {"id": capsule.external_id, "title": capsule.title, "url": capsule.url}


def capsule_event_data(
    account: Account, event: Event, capsule: Capsule | None, prospect: Prospect | None
) -> dict[str, Any]:
    """The ``data`` of the capsule engagement events (``capsule.viewed`` …): see the catalogue's samples."""
    person = prospect_data(account, prospect)
    withheld = person is not None and person.get("personal_data_withheld", False)
    return {
        "event_id": event.external_id,
        "event_type": event.type,
        "occurred_at": event.occurred_at,
        "capsule": capsule_data(capsule),
        "prospect": person,
        "visitor_id": event.visitor_id or None,
        "data": {} if withheld and event.type == "lead_captured" else event.data,
    }
