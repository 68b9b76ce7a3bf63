"""Sample capsule activity, so a new owner sees data flow within a minute (button and command).

The events are ordinary API events (validated by the same schemas) from a handful of invented
prospects at example.com addresses, so they are easy to tell apart and to erase.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from crmsync.api.schemas import validate_event
from crmsync.ingest import IngestResult, ingest_events
from crmsync.models import Account

PEOPLE = [
    ("Ada", "Lovelace", "Analytical Engines Ltd", "CTO"),
    ("Grace", "Hopper", "Compiler Works", "VP Engineering"),
    ("Alan", "Turing", "Bletchley Analytics", "Head of Research"),
    ("Katherine", "Johnson", "Orbital Paths", "Lead Analyst"),
    ("Edsger", "Dijkstra", "Shortest Path BV", "Architect"),
    ("Barbara", "Liskov", "Substitution Systems", "Director of Platform"),
    ("Donald", "Knuth", "Literate Press", "Founder"),
    ("Margaret", "Hamilton", "Apollo Guidance Co", "Software Lead"),
]
CAPSULES = [
    ("cap_pricing", "Pricing tour", "https://capsules.example.com/c/pricing"),
    ("cap_security", "Security overview", "https://capsules.example.com/c/security"),
    ("cap_onboarding", "Onboarding in 10 minutes", "https://capsules.example.com/c/onboarding"),
]
QUESTIONS = [
    "Do you offer SSO?",
    "How does pricing work for 50 seats?",
    "Can we host the data in the EU?",
    "Is there an API for our data warehouse?",
    "How long does onboarding take?",
]
# Weighted so that most activity is views and time, with the occasional conversion.
KINDS = [
    ("capsule_viewed", 30),
    ("time_spent", 20),
    ("question_asked", 15),
    ("content_accessed", 10),
    ("content_downloaded", 8),
    ("cta_clicked", 8),
    ("sentiment", 4),
    ("capsule_completed", 4),
    ("conversion", 1),
]


def _data(kind: str, rng: random.Random) -> dict[str, Any]:
    if kind == "question_asked":
        return {"text": rng.choice(QUESTIONS), "answer_summary": "Answered by the capsule assistant."}
    if kind == "time_spent":
        return {"seconds": rng.randint(20, 420)}
    if kind in ("content_accessed", "content_downloaded"):
        return {
            "content_id": f"doc_{rng.randint(1, 5)}",
            "content_title": rng.choice(["Pricing sheet", "Security whitepaper", "Case study", "Integration guide"]),
        }
    if kind == "cta_clicked":
        return {"cta_id": "book_demo", "label": "Book a demo"}
    if kind == "conversion":
        return {"value": rng.choice([1200, 4800, 9600]), "currency": "USD", "name": "Annual plan"}
    if kind == "sentiment":
        score = round(rng.uniform(-1, 1), 2)
        label = "negative" if score < -0.3 else "positive" if score > 0.3 else "neutral"
        return {"score": score, "label": label}
    return {}


def sample_event_payloads(count: int, *, seed: int | None = None, now: datetime | None = None) -> list[dict]:
    """``count`` API event bodies spread over the last hour, for the sample prospects."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    kinds, weights = zip(*KINDS, strict=True)
    events = []
    for _ in range(count):
        first, last, company, title = rng.choice(PEOPLE)
        capsule_id, capsule_title, url = rng.choice(CAPSULES)
        kind = rng.choices(kinds, weights)[0]
        events.append(
            {
                "event_id": f"sample-{uuid.uuid4().hex}",
                "type": kind,
                "occurred_at": (now - timedelta(seconds=rng.randint(0, 3600))).isoformat(),
                "capsule": {"id": capsule_id, "title": capsule_title, "url": url},
                "prospect": {
                    "email": f"{first.lower()}.{last.lower()}@example.com",
                    "first_name": first,
                    "last_name": last,
                    "company": company,
                    "job_title": title,
                    "consent": {"granted": True, "source": "sample events"},
                },
                "data": _data(kind, rng),
            }
        )
    return events


def send_sample_events(account: Account, count: int, *, actor_label: str, seed: int | None = None) -> IngestResult:
    """Validate and ingest sample events through the same path as the API."""
    events = [validate_event(payload) for payload in sample_event_payloads(count, seed=seed)]
    return ingest_events(account, events, actor_label=actor_label)
