"""What every mapping page shares: the connection from the URL (inside the account) and the stepper."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest
from django.urls import reverse

from crmsync.models import Role
from crmsync.tenancy import get_for_account
from integrations.models import Connection

# The configuration steps, in order (crm-integration.md "Field Mapping Interface").
STEPS = (
    ("home", "Choose the connection"),
    ("fields", "See its fields"),
    ("map", "Map fields"),
    ("templates", "Apply a template"),
    ("test", "Test with sample data"),
    ("activate", "Activate"),
)


@dataclass(frozen=True)
class Step:
    number: int
    label: str
    url: str
    current: bool


def connection_for(request: HttpRequest, connection_id: int) -> Connection:
    """A live connection of the request's account, or 404 (another account's is 'not found')."""
    return get_for_account(Connection.objects.live(), request, pk=connection_id)


def stepper(request: HttpRequest, current: str, connection: Connection | None) -> list[Step]:
    slug = request.account.slug
    steps = []
    for number, (name, label) in enumerate(STEPS, start=1):
        if name == "home":
            url = reverse("mapping:home", kwargs={"account_slug": slug})
        elif connection is None:
            url = ""
        else:
            url = reverse(f"mapping:{name}", kwargs={"account_slug": slug, "connection_id": connection.pk})
        steps.append(Step(number, label, url, name == current))
    return steps


def page_context(request: HttpRequest, current: str, connection: Connection | None, **extra) -> dict:
    return {
        "steps": stepper(request, current, connection),
        "connection": connection,
        "can_change": request.membership.has_role(Role.ADMIN),
        **extra,
    }
