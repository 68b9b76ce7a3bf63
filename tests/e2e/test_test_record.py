""" "Send test record" writes one tagged record through the real sync path; delete removes it."""

from __future__ import annotations

import pytest

from crmsync.models import AuditEntry, Prospect, Role
from integrations.models import RecordLink
from mapping.test_record import tagged_email

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_admin_sends_a_test_record_and_deletes_it(crm, account, make_member, client):
    connection = crm.connect(account)
    client.force_login(make_member(account, Role.ADMIN))
    base = f"/a/{account.slug}/mapping/{connection.pk}/test/"

    page = client.post(base + "send/", follow=True).content.decode()

    email = tagged_email(connection)
    assert [address for _id, address in crm.people()] == [email]
    crm_id = RecordLink.objects.get(connection=connection).crm_id
    assert f"id {crm_id}" in page
    assert "Delete the test record" in page

    client.post(base + "send/")  # a second send updates the same record
    assert [address for _id, address in crm.people()] == [email]

    page = client.post(base + "delete/", follow=True).content.decode()
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert "mapping.test_record_sent" in actions
    if "Test record deleted" in page:
        assert crm.people() == []
        assert not Prospect.objects.filter(email=email).exists()
        assert "mapping.test_record_deleted" in actions
    else:  # a CRM whose API cannot delete people: the page says which record to delete by hand
        assert crm_id in page and "by hand" in page
        assert Prospect.objects.filter(email=email).exists()


def test_a_viewer_cannot_send_a_test_record(crm, account, make_member, client):
    connection = crm.connect(account)
    client.force_login(make_member(account, Role.VIEWER))
    assert client.post(f"/a/{account.slug}/mapping/{connection.pk}/test/send/").status_code == 403
    assert crm.people() == []
