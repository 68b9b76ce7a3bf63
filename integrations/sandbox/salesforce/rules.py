"""Per-object behaviour the platform adds on save: computed fields and cross-field requirements.

Kept apart from the generic validation in ``store`` so each object's quirks read in one place
(crm-reference §1.4: Event needs a start and a duration or end; ContentNote carries base64 content).
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

from integrations.sandbox.salesforce.schema import OPPORTUNITY_STAGES

PERSON_OBJECTS = frozenset({"Contact", "Lead", "User"})


def derive(sobject: str, record: dict[str, Any], given: set[str], creating: bool) -> None:
    """Fill the fields Salesforce computes from others. ``given`` holds the field names the caller set."""
    if sobject in PERSON_OBJECTS:
        record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p) or None
    elif sobject == "Task":
        record["IsClosed"] = record.get("Status") == "Completed"
    elif sobject == "Opportunity":
        stage = record.get("StageName")
        record["IsClosed"] = stage in ("Closed Won", "Closed Lost")
        record["IsWon"] = stage == "Closed Won"
        if "StageName" in given and "Probability" not in given and stage in OPPORTUNITY_STAGES:
            record["Probability"] = OPPORTUNITY_STAGES[stage]
    elif sobject == "Event":
        _derive_event(record, given)
    elif sobject == "ContentNote":
        content: bytes = record.get("Content") or b""
        plain = html.unescape(re.sub(r"<[^>]+>", " ", content.decode("utf-8", "replace")))
        record["TextPreview"] = " ".join(plain.split())[:255] or None
        record["FileType"], record["FileExtension"], record["ContentSize"] = "SNOTE", "snote", len(content)


def _derive_event(record: dict[str, Any], given: set[str]) -> None:
    # StartDateTime and ActivityDateTime are two names for the same instant.
    if "ActivityDateTime" in given and "StartDateTime" not in given:
        record["StartDateTime"] = record.get("ActivityDateTime")
    record["ActivityDateTime"] = record.get("StartDateTime")
    start = record.get("StartDateTime")
    if start is None:
        return
    record["ActivityDate"] = start.date()
    if "EndDateTime" in given and record.get("EndDateTime") is not None:
        record["DurationInMinutes"] = int((record["EndDateTime"] - start).total_seconds() // 60)
    elif record.get("DurationInMinutes") is not None:
        record["EndDateTime"] = start + timedelta(minutes=record["DurationInMinutes"])


def missing_for(sobject: str, record: dict[str, Any]) -> list[str]:
    """Required fields beyond the non-nillable ones: an Event needs a start and a duration or an end."""
    if sobject != "Event":
        return []
    missing = []
    if record.get("StartDateTime") is None:
        missing.append("ActivityDateTime")
    if record.get("DurationInMinutes") is None and record.get("EndDateTime") is None:
        missing.append("DurationInMinutes")
    return missing


def end_before_start(sobject: str, record: dict[str, Any]) -> bool:
    return (
        sobject == "Event"
        and record.get("StartDateTime") is not None
        and record.get("EndDateTime") is not None
        and record["EndDateTime"] < record["StartDateTime"]
    )
