from django.http import HttpRequest


def current_account(request: HttpRequest) -> dict:
    """The account and membership the settings pages are showing, set by crmsync.tenancy."""
    return {
        "current_account": getattr(request, "account", None),
        "current_membership": getattr(request, "membership", None),
    }
