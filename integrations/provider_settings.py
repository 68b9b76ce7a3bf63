"""Validating a connection's provider-specific settings (``Connection.provider_settings``).

Each provider declares the settings it reads in ``ProviderSpec.connection_settings``; anything
else is refused by name, and values must be whole numbers within the declared range, so a typo
in the admin cannot silently change how a connection writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError

from integrations.registry import ProviderSpec


def clean_provider_settings(spec: ProviderSpec, raw: Mapping[str, Any] | None) -> dict[str, int]:
    """The settings as stored: declared names only, whole numbers in range; unset values dropped."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValidationError("provider_settings must be an object of setting names and numbers")
    declared = {setting.name: setting for setting in spec.connection_settings}
    cleaned: dict[str, int] = {}
    for name, value in raw.items():
        setting = declared.get(name)
        if setting is None:
            known = ", ".join(sorted(declared)) or "none"
            raise ValidationError(f"provider_settings.{name}: {spec.label} has no such setting (known: {known})")
        if value is None or value == "":
            continue
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValidationError(f"provider_settings.{name}: must be a whole number")
        try:
            number = int(value)
        except ValueError:
            raise ValidationError(f"provider_settings.{name}: must be a whole number, not {value!r}") from None
        if not setting.minimum <= number <= setting.maximum:
            raise ValidationError(
                f"provider_settings.{name}: must be between {setting.minimum:,} and {setting.maximum:,}"
            )
        cleaned[name] = number
    return cleaned
