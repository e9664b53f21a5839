"""Where the streams' hub LISTENs: where Django's default connection goes, whichever way
DATABASE_URL said it (alpaca_compat/streams/hub.py)."""

import psycopg
from django.db import connection

from alpaca_compat.streams.hub import APPLICATION_NAME, database_params


def test_a_host_given_as_an_option_is_where_the_hub_connects(monkeypatch, settings):
    # given: DATABASE_URL=postgresql://user@:port/name?host=<socket dir or address>, which
    # django-environ turns into OPTIONS["host"] with an empty HOST (as make bench does for the
    # embedded server's socket directory)
    settings.STREAM_DATABASE_URL = ""
    host = connection.settings_dict["HOST"] or "127.0.0.1"
    monkeypatch.setitem(connection.settings_dict, "HOST", "")
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {**connection.settings_dict["OPTIONS"], "host": host})

    # when
    params = database_params()

    # then: that host, and a session that answers there under the hub's name
    assert params["host"] == host
    with psycopg.connect(**params) as conn:
        assert conn.execute("SELECT current_setting('application_name')").fetchone() == (APPLICATION_NAME,)


def test_django_only_options_are_not_handed_to_libpq(settings):
    settings.STREAM_DATABASE_URL = ""
    assert {"cursor_factory", "context", "prepare_threshold"}.isdisjoint(database_params())
