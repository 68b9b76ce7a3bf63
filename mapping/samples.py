"""A generated sample prospect for "test with sample data": realistic values for every catalogue
field, so an owner can see a payload before any real prospect exists."""

from __future__ import annotations

import datetime as dt
from typing import Any

from crmsync.models import Account
from mapping import sources

# Values by source type, for fields (custom attributes, other apps' groups) without a fixed sample.
BY_TYPE: dict[str, Any] = {
    "string": "Sample text",
    "text": "A longer sample text, as a prospect might type it into a capsule.",
    "email": "sample@example.com",
    "phone": "+1 415 555 0132",
    "url": "https://example.com/",
    "number": 42.5,
    "integer": 42,
    "boolean": True,
    "date": dt.date(2025, 1, 31),
    "datetime": dt.datetime(2025, 1, 31, 14, 5, tzinfo=dt.UTC),
    "list": ["Pricing guide", "Product tour"],
}

FIXED: dict[str, Any] = {
    "email": "ada.lovelace@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "full_name": "Ada Lovelace",
    "phone": "+44 20 7946 0958",
    "company": "Analytical Engines Ltd",
    "job_title": "Head of Research",
    "consent_granted": True,
    "consent_source": "capsule form",
    "capsule_prospect_id": 0,
    "utm_source": "linkedin",
    "utm_medium": "social",
    "utm_campaign": "spring-launch",
    "utm_term": "",
    "utm_content": "video",
    "views": 7,
    "questions_asked": 3,
    "last_question": "Does it integrate with our CRM?",
    "total_time_seconds": 845,
    "downloads": 1,
    "cta_clicks": 2,
    "last_capsule": "Product tour",
    "last_capsule_url": "https://capsules.example.com/c/product-tour",
    "converted": False,
    "conversion_value": None,
    "lead_score": 72,
    "lead_grade": "B",
    "score_top_contributors": "questions asked (+30), CTA clicks (+60)",
}


def sample_snapshot(account: Account | None = None) -> dict[str, Any]:
    snapshot = {}
    for source in sources.catalogue(account):
        snapshot[source.key] = FIXED[source.key] if source.key in FIXED else BY_TYPE.get(source.type)
    return snapshot
