"""``GET /api/v1/prospects/{id_or_email}/personalization``: what the CRMs say about one prospect.

For the capsule platform, with the account's API key: CRM-sourced fields (by capsule source key),
deal stage, owner, lead score and grade, and the contact preferences. Tenant-scoped (another
account's prospect is a 404, as a missing one is). Answers are cached for a short time and the
entry is dropped whenever an inbound change touches the prospect (integrations.inbound.cache).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Router
from pydantic import BaseModel, Field

from crmsync.api.errors import ApiError
from crmsync.api.prospects import find_prospect
from crmsync.api.schemas import ErrorOut
from crmsync.models import Prospect
from integrations.inbound import cache
from integrations.models import ProspectCrmData

router = Router(tags=["personalization"])


class OwnerOut(BaseModel):
    id: str = Field(description="The CRM's id of the record owner")
    name: str = Field("", description="The owner's name where the CRM gives it")


class DealOut(BaseModel):
    crm_id: str = Field(description="The CRM's id of the deal whose stage changed last")
    stage: str
    changed_at: dt.datetime | None = None


class PersonalizationOut(BaseModel):
    prospect_id: int
    email: str | None
    crm_fields: dict[str, Any] = Field(description="Values from the CRM, by capsule source field key")
    deal: DealOut | None
    owner: OwnerOut | None
    score: int | None = Field(description="The lead score, or null before the first scored event")
    grade: str | None
    unsubscribed: bool
    do_not_contact: bool
    crm_updated_at: dt.datetime | None = Field(description="When CRM data of this prospect last changed")


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def personalization(prospect: Prospect) -> dict[str, Any]:
    """The answer for one prospect, JSON-ready (it is cached as JSON). Two queries."""
    from scoring.models import ProspectScore

    data = ProspectCrmData.objects.filter(prospect=prospect).first()
    score = ProspectScore.objects.filter(prospect=prospect).values("score", "grade").first()
    return {
        "prospect_id": prospect.pk,
        "email": prospect.email,
        "crm_fields": dict(data.fields) if data else {},
        "deal": (
            {"crm_id": data.deal_crm_id, "stage": data.deal_stage, "changed_at": _iso(data.deal_stage_changed_at)}
            if data and data.deal_stage
            else None
        ),
        "owner": {"id": data.owner_id, "name": data.owner_name} if data and data.owner_id else None,
        "score": score["score"] if score else None,
        "grade": (score["grade"] or None) if score else None,
        "unsubscribed": bool(data and data.unsubscribed),
        "do_not_contact": bool(data and data.do_not_contact),
        "crm_updated_at": _iso(data.updated_at) if data else None,
    }


@router.get(
    "/prospects/{id_or_email}/personalization",
    response={200: PersonalizationOut, 401: ErrorOut, 404: ErrorOut, 429: ErrorOut},
    summary="Read a prospect's CRM-sourced personalisation data by id or e-mail address",
)
def get_personalization(request: HttpRequest, id_or_email: str) -> dict[str, Any]:
    prospect = find_prospect(request.auth.account_id, id_or_email)
    if prospect is None:
        raise ApiError.not_found("id_or_email", "no prospect with this id or e-mail address in this account")
    answer = cache.get(prospect.pk)
    if answer is None:
        answer = personalization(prospect)
        cache.put(prospect.pk, answer)
    return answer
