"""The scoring rules and grade bands every account starts with (the product brief's lead scoring).

Plain data, so the data migration can use it with historical models as well.
"""

from __future__ import annotations

from typing import Any

DEFAULT_RULES: list[dict[str, Any]] = [
    {"name": "Capsule view", "event_type": "capsule_viewed", "points": 5, "conditions": {}},
    {"name": "Question asked", "event_type": "question_asked", "points": 10, "conditions": {}},
    {"name": "Time spent over 5 minutes", "event_type": "time_spent", "points": 15, "conditions": {"min_seconds": 300}},
    {"name": "Content downloaded", "event_type": "content_downloaded", "points": 20, "conditions": {}},
    {"name": "CTA clicked", "event_type": "cta_clicked", "points": 30, "conditions": {}},
]

DEFAULT_BANDS: list[dict[str, Any]] = [
    {"name": "cold", "min_score": 0},
    {"name": "warm", "min_score": 40},
    {"name": "hot", "min_score": 80},
]


def create_defaults(account_id: int, rule_model: Any, band_model: Any) -> None:
    """Give the account the default rules and bands, each only if it has none of that kind yet.

    Takes the model classes so the data migration can pass its historical ones.
    """
    if not rule_model.objects.filter(account_id=account_id).exists():
        rule_model.objects.bulk_create(
            rule_model(account_id=account_id, order=position, **rule) for position, rule in enumerate(DEFAULT_RULES)
        )
    if not band_model.objects.filter(account_id=account_id).exists():
        band_model.objects.bulk_create(band_model(account_id=account_id, **band) for band in DEFAULT_BANDS)
