"""Audit entries for the owner pages' changes, in the same shape as the admin's."""

from __future__ import annotations

from typing import Any

from django import forms

from crmsync.admin_support import jsonable


def form_changes(form: forms.Form, *, created: bool) -> dict[str, Any]:
    """``{field: value}`` of every filled-in field for a new object, ``{field: {"before": …, "after": …}}``
    of the changed fields for a changed one."""
    if created:
        return {name: jsonable(value) for name, value in form.cleaned_data.items() if value not in (None, "")}
    return {
        name: {"before": jsonable(form.initial.get(name)), "after": jsonable(form.cleaned_data.get(name))}
        for name in form.changed_data
    }
