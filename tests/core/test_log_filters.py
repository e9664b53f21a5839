"""Client errors are logged as one line, without a traceback (issue 13: `make run` printed
a full traceback for every 403 of the admin)."""

import logging

import pytest


@pytest.mark.django_db
def test_a_forbidden_admin_page_logs_one_line_without_a_traceback(client, make_user, caplog):
    # given: staff without any permission
    client.force_login(make_user("sam", is_staff=True))

    # when
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/admin/auth/user/")

    # then
    assert response.status_code == 403
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.getMessage() == "Forbidden (Permission denied): /admin/auth/user/"
    assert record.exc_info is None
    assert "Traceback" not in caplog.text


@pytest.mark.django_db
def test_a_server_error_keeps_its_traceback(client, caplog, settings):
    # given: a view that fails (an admin page whose changelist raises is out of reach, so a
    # view is mounted for the test)
    settings.ROOT_URLCONF = "tests.core.failing_urls"

    # when
    with caplog.at_level(logging.ERROR, logger="django.request"):
        client.raise_request_exception = False
        response = client.get("/api/boom/")

    # then
    assert response.status_code == 500
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.exc_info[0] is ZeroDivisionError
