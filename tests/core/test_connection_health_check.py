"""core.postgresql: a reused connection is pinged before a request only after it sat idle."""

import subprocess
import sys
import time

import psycopg
import pytest
from django.db import connection

from tests.support.processes import ROOT, python_env

pytestmark = pytest.mark.django_db(transaction=True)


def _request_ends_or_starts():
    # What Django's request_finished and request_started signals do with the connection.
    connection.close_if_unusable_or_obsolete()


@pytest.fixture
def pings(monkeypatch):
    assert connection.health_check_enabled
    connection.ensure_connection()
    sent = []
    is_usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: sent.append("SELECT 1") or is_usable())
    return sent


def test_a_connection_used_a_moment_ago_is_not_pinged(settings, pings):
    # given
    settings.DATABASE_HEALTH_CHECK_IDLE_SECONDS = 60

    # when the next request comes at once
    _request_ends_or_starts()
    _request_ends_or_starts()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")

    # then
    assert pings == []


def test_an_idle_connection_that_the_database_dropped_is_replaced_before_the_request(settings, pings):
    # given a connection unused for longer than the setting, whose backend the database ended
    settings.DATABASE_HEALTH_CHECK_IDLE_SECONDS = 0.05
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    _request_ends_or_starts()
    time.sleep(0.1)
    _request_ends_or_starts()
    backend = connection.connection.info.backend_pid
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [backend])

    # when the next request queries
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")
        answer = cursor.fetchone()

    # then it was pinged, found dead, and a new connection answered
    assert pings == ["SELECT 1"]
    assert answer == (2,)
    assert connection.connection.info.backend_pid != backend


def test_the_wsgi_application_freezes_what_it_loaded_out_of_the_garbage_collector():
    code = "import gc, portfolio_project.wsgi; print(gc.get_freeze_count())"
    # Loading the application connects to no database: any address will do.
    env = python_env(DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 50_000
