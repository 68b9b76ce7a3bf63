"""GET /api/v1/prospects/{id_or_email}: what we store about one prospect of the key's account."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router

from crmsync.api.errors import ApiError
from crmsync.api.schemas import ErrorOut, ProspectOut
from crmsync.models import Prospect, normalise_email

router = Router(tags=["prospects"])


def find_prospect(account_id: int, id_or_email: str) -> Prospect | None:
    """A prospect of the account by id or e-mail address; erased prospects are not found."""
    prospects = Prospect.objects.filter(account_id=account_id, erased=False)
    if id_or_email.isascii() and id_or_email.isdigit():
        return prospects.filter(pk=int(id_or_email)).first()
    return prospects.filter(email=normalise_email(id_or_email)).first()


def prospect_out(prospect: Prospect) -> dict[str, Any]:
    return {
        "id": prospect.pk,
        "email": prospect.email,
        "first_name": prospect.first_name,
        "last_name": prospect.last_name,
        "full_name": prospect.full_name,
        "phone": prospect.phone,
        "company": prospect.company,
        "job_title": prospect.job_title,
        "attributes": prospect.attributes,
        "utm": prospect.utm,
        "consent": {"granted": prospect.consent_granted, "source": prospect.consent_source, "at": prospect.consent_at},
        "created_at": prospect.created_at,
        "updated_at": prospect.updated_at,
        "last_event_at": prospect.last_event_at,
    }


@router.get(
    "/prospects/{id_or_email}",
    response={200: ProspectOut, 401: ErrorOut, 404: ErrorOut, 429: ErrorOut},
    summary="Read one prospect by id or e-mail address",
)
def get_prospect(request: HttpRequest, id_or_email: str) -> dict[str, Any]:
    prospect = find_prospect(request.auth.account_id, id_or_email)
    if prospect is None:
        raise ApiError.not_found("id_or_email", "no prospect with this id or e-mail address in this account")
    return prospect_out(prospect)
