"""Forms of the owner settings pages."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from crmsync.models import Account, Membership, Role


class AccountSettingsForm(forms.ModelForm):
    class Meta:
        model = Account
        fields = ["require_consent", "notification_email"]
        labels = {
            "require_consent": "Require consent before syncing",
            "notification_email": "Notification e-mail",
        }
        help_texts = {
            "require_consent": "Prospects are only sent to your CRM once they have said yes.",
            "notification_email": "Where we report sync problems, such as a CRM that needs signing in again.",
        }


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        label="Key name",
        max_length=100,
        help_text="Something that says where the key is used, such as “Production capsules”.",
    )


class InviteMemberForm(forms.Form):
    email = forms.EmailField(label="E-mail address", help_text="The person must already have a sign-in.")
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.VIEWER)

    def __init__(self, *args, account: Account, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.account = account
        self.user = None

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        users = get_user_model().objects.filter(email__iexact=email, is_active=True)
        user = users.order_by("pk").first()
        if user is None:
            raise forms.ValidationError("There is no user with this e-mail address. Ask support to create one.")
        if Membership.objects.filter(account=self.account, user=user).exists():
            raise forms.ValidationError("This person is already a member of the account.")
        self.user = user
        return email


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)
