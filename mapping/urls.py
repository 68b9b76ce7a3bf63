"""The owner pages of field mapping, under /a/<account_slug>/mapping/."""

from django.urls import path

from mapping.views import activation, connections, fields, rows, testing

app_name = "mapping"

base = "a/<slug:account_slug>/mapping/"
one = base + "<int:connection_id>/"

urlpatterns = [
    path(base, connections.home, name="home"),
    path(one + "fields/", fields.fields, name="fields"),
    path(one + "fields/refresh/", fields.refresh_fields, name="refresh_fields"),
    path(one + "fields/create/", fields.provision, name="provision"),
    path(one + "map/", rows.map_rows, name="map"),
    path(one + "templates/", rows.templates, name="templates"),
    path(one + "history/", rows.history, name="history"),
    path(one + "test/", testing.test_payload, name="test"),
    path(one + "test/send/", testing.send_test, name="send_test"),
    path(one + "test/delete/", testing.delete_test, name="delete_test"),
    path(one + "activate/", activation.activation, name="activate"),
]
