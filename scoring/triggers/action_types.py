"""The action types a trigger rule can run, with their options.

``ACTIONS`` is the registry. Each entry says where the action goes (``crm_kind``: the outbox kind
of the row written for every syncing CRM connection, or None for e-mail and webhooks) and which
options it takes. ``scoring.triggers.actions`` performs them; docs/TRIGGERS.md describes them and
the outbox payload each one writes.

A rule stores its actions as an ordered JSON list: ``[{"type": "create_task", "subject": …}, …]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from scoring.triggers.options import OptionField, validate_options

MAX_ACTIONS = 10


class ActionType(models.TextChoices):
    CREATE_TASK = "create_task", "Create a CRM task"
    ASSIGN_OWNER = "assign_owner", "Assign an owner"
    SET_FIELD = "set_field", "Set a CRM field"
    ADD_TO_LIST = "add_to_list", "Add to a CRM list or campaign"
    ADD_NOTE = "add_note", "Add a CRM note"
    SEND_EMAIL = "send_email", "E-mail a person"
    SEND_WEBHOOK = "send_webhook", "Send an outgoing webhook"


@dataclass(frozen=True)
class ActionSpec:
    type: str
    description: str
    crm_kind: str | None  # integrations OutboxKind value, or None when the action does not go to a CRM
    options: tuple[OptionField, ...] = ()
    once_per_rule: bool = False  # a second one would only repeat the first

    @property
    def label(self) -> str:
        return ActionType(self.type).label


_BODY = OptionField("body", "template", "Text", "Placeholders such as {{ first_name }} are filled in.", max_length=5000)

ACTIONS: dict[str, ActionSpec] = {
    spec.type: spec
    for spec in (
        ActionSpec(
            ActionType.CREATE_TASK,
            "A task on the contact or lead in the CRM, for the record's owner or a fixed CRM user.",
            "task",
            (
                OptionField(
                    "subject",
                    "template",
                    "Subject",
                    "e.g. Follow up with {{ first_name }} about {{ capsule }}.",
                    required=True,
                    max_length=255,
                ),
                _BODY,
                OptionField(
                    "due_in_days",
                    "integer",
                    "Due in (days)",
                    "Days after the rule fires; 0 is the same day.",
                    default=1,
                    min_value=0,
                    max_value=365,
                ),
                OptionField(
                    "owner_id",
                    "crm_id",
                    "Task owner (CRM user id)",
                    "Empty: the owner of the contact or lead in the CRM.",
                ),
            ),
        ),
        ActionSpec(
            ActionType.ASSIGN_OWNER,
            "Makes a CRM user the owner of the contact or lead: one fixed user, or round robin over several.",
            "fields",
            (
                OptionField(
                    "owner_ids",
                    "crm_id_list",
                    "CRM user ids",
                    "One id: always that user. Several (comma-separated): each firing takes the next, in turn.",
                    required=True,
                ),
            ),
        ),
        ActionSpec(
            ActionType.SET_FIELD,
            "Writes a value into a field of the contact or lead, so a workflow in the CRM can start from it.",
            "fields",
            (
                OptionField(
                    "field",
                    "crm_id",
                    "CRM field (API name)",
                    "e.g. hs_lead_status or Capsule_Trigger__c.",
                    required=True,
                ),
                OptionField("value", "template", "Value", "Placeholders are filled in.", max_length=500),
            ),
        ),
        ActionSpec(
            ActionType.ADD_TO_LIST,
            "Adds the contact or lead to a CRM list or campaign. CRMs without lists report it as unsupported "
            "on the sync status page.",
            "fields",
            (OptionField("list_id", "crm_id", "List or campaign id", "The id in the CRM.", required=True),),
        ),
        ActionSpec(
            ActionType.ADD_NOTE,
            "A note on the contact or lead in the CRM.",
            "note",
            (OptionField("body", "template", "Note", _BODY.help_text, required=True, max_length=5000),),
        ),
        ActionSpec(
            ActionType.SEND_EMAIL,
            "An e-mail to a fixed address (a manager, a team inbox), sent once the firing is stored.",
            None,
            (
                OptionField("to", "email", "To", "One e-mail address.", required=True, max_length=254),
                OptionField(
                    "subject",
                    "template",
                    "Subject",
                    "Empty: “Capsule trigger: <rule> – <prospect>”.",
                    max_length=255,
                ),
                OptionField("body", "template", "Text", "Shown above the prospect's details.", max_length=5000),
            ),
        ),
        ActionSpec(
            ActionType.SEND_WEBHOOK,
            "A “trigger.fired” event to the account's outgoing webhook subscriptions (Zapier, Make, any URL).",
            None,
            once_per_rule=True,
        ),
    )
}

assert set(ACTIONS) == set(ActionType.values)


def validate_action(action: Any) -> dict[str, Any]:
    """One action, cleaned (``{"type": …, **options}``), or ValidationError keyed by option."""
    if not isinstance(action, Mapping):
        raise ValidationError({"type": "Each action must be an object with a type."})
    action_type = action.get("type")
    spec = ACTIONS.get(action_type) if isinstance(action_type, str) else None
    if spec is None:
        raise ValidationError({"type": f"“{action_type}” is not an action type."})
    options = {key: value for key, value in action.items() if key != "type"}
    return {"type": action_type, **validate_options(spec.options, options, what=f"“{spec.label}” actions")}


def validate_actions(actions: Any) -> list[dict[str, Any]]:
    """The ordered actions, cleaned; ValidationError messages name the action by its position."""
    if not isinstance(actions, list):
        raise ValidationError("Actions must be a list.")
    if not actions:
        raise ValidationError("Add at least one action.")
    if len(actions) > MAX_ACTIONS:
        raise ValidationError(f"A rule has at most {MAX_ACTIONS} actions.")
    cleaned: list[dict[str, Any]] = []
    errors: list[str] = []
    for position, action in enumerate(actions, start=1):
        try:
            cleaned.append(validate_action(action))
        except ValidationError as exc:
            errors.extend(f"Action {position}, {key}: {' '.join(texts)}" for key, texts in exc.message_dict.items())
    errors.extend(repeated_action_errors([action["type"] for action in cleaned]))
    if errors:
        raise ValidationError(errors)
    return cleaned


def repeated_action_errors(types: list[str]) -> list[str]:
    return [
        f"A rule can have only one “{ACTIONS[action_type].label}” action."
        for action_type in dict.fromkeys(types)
        if ACTIONS[action_type].once_per_rule and types.count(action_type) > 1
    ]


def describe_action(action: Mapping[str, Any]) -> str:
    """One action in words, for tables: "Create a CRM task: “Call {{ first_name }}”"."""
    spec = ACTIONS.get(action.get("type", ""))
    if spec is None:
        return str(action.get("type"))
    details = {
        ActionType.CREATE_TASK: lambda: f"“{action.get('subject', '')}”",
        ActionType.ASSIGN_OWNER: lambda: (
            ("round robin over " if len(action.get("owner_ids", [])) > 1 else "")
            + ", ".join(action.get("owner_ids", []))
        ),
        ActionType.SET_FIELD: lambda: f"{action.get('field', '')} = “{action.get('value', '')}”",
        ActionType.ADD_TO_LIST: lambda: str(action.get("list_id", "")),
        ActionType.ADD_NOTE: lambda: f"“{str(action.get('body', ''))[:60]}”",
        ActionType.SEND_EMAIL: lambda: str(action.get("to", "")),
    }
    detail = details.get(spec.type)
    return f"{spec.label}: {detail()}" if detail else spec.label
