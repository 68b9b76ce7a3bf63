from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings


class AccountAdapter(DefaultAccountAdapter):
    """Sign-up is off unless ACCOUNT_SIGNUP_ENABLED: accounts are made by ops (create_account)."""

    def is_open_for_signup(self, request) -> bool:
        return settings.ACCOUNT_SIGNUP_ENABLED
