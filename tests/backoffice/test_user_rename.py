"""Renaming a user in the admin: usernames are unique in any case, and the form says so."""

import threading
import time

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.test import RequestFactory

pytestmark = pytest.mark.django_db

User = get_user_model()


def _change_form(superuser, user, **changes):
    request = RequestFactory().post("/")
    request.user = superuser
    form_class = admin.site._registry[User].get_form(request, user, change=True)
    data = {**model_to_dict(user, exclude=["password", "groups", "user_permissions"]), **changes}
    # The admin's date and time widgets post two fields each.
    data.pop("last_login")
    joined = data.pop("date_joined")
    data.update(date_joined_0=joined.strftime("%Y-%m-%d"), date_joined_1=joined.strftime("%H:%M:%S"))
    return form_class(data=data, instance=user)


@pytest.mark.parametrize("taken", ["CAROL", "Carol", "carol"])
def test_a_username_taken_in_any_case_is_refused_by_the_form_not_the_index(superuser, make_user, taken):
    # given
    make_user("carol")
    bob = make_user("bob")

    # when
    form = _change_form(superuser, bob, username=taken)

    # then
    assert not form.is_valid()
    assert form.errors["username"] == ["A user with that username already exists."]


@pytest.mark.parametrize("new_name", ["Bob", "robert"])
def test_a_user_can_be_renamed_to_a_free_name_or_their_own_in_another_case(superuser, make_user, new_name):
    # given
    make_user("carol")
    bob = make_user("bob")

    # when
    form = _change_form(superuser, bob, username=new_name)

    # then
    assert form.is_valid(), form.errors
    form.save()
    assert User.objects.get(pk=bob.pk).username == new_name


ready = threading.Event()  # the other agent's rename is made, not yet committed


def _wait_until_a_backend_waits_on_a_lock(cursor) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        if cursor.fetchone()[0]:
            return
        time.sleep(0.01)
    raise AssertionError("the admin's save never waited on the other rename")


def _rename_and_commit_once_the_admin_waits(user_id: int, new_name: str) -> None:
    """Another agent's rename, uncommitted while the admin's form checks the name (it sees
    nothing), committed once the admin's UPDATE waits on the unique index behind it."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            User.objects.filter(pk=user_id).update(username=new_name)
            ready.set()
            _wait_until_a_backend_waits_on_a_lock(cursor)
    finally:
        connection.close()


def _rename_bob(superuser, make_user, name):
    bob = make_user("bob")
    form = _change_form(superuser, bob, username=name)
    no_api_keys = {"api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0"}  # the inline's management form
    return f"/admin/auth/user/{bob.pk}/change/", {**form.data, **no_api_keys}


def _add_user(superuser, make_user, name):
    password = "a-long-passphrase-42"
    return "/admin/auth/user/add/", {
        "username": name,
        "password1": password,
        "password2": password,
        "usable_password": "true",
    }


@pytest.mark.parametrize("page", [_rename_bob, _add_user])
@pytest.mark.parametrize("in_other_case", ["DAVE", "dave"])
@pytest.mark.django_db(transaction=True)
def test_a_user_page_that_loses_a_race_for_a_name_gets_the_forms_answer_not_a_500(
    superuser, superuser_client, make_user, page, in_other_case
):
    # given: carol is being renamed "dave" by another agent, not committed yet
    carol = make_user("carol")
    url, data = page(superuser, make_user, in_other_case)
    users_before = set(User.objects.values_list("pk", "username"))
    ready.clear()
    other = threading.Thread(target=_rename_and_commit_once_the_admin_waits, args=(carol.pk, "dave"))
    other.start()
    assert ready.wait(timeout=10)

    # when: the admin saves the same name, its check passing before the other commits
    response = superuser_client.post(url, data)
    other.join(timeout=10)

    # then: the page again, with the form's error; nobody else is renamed or added
    assert response.status_code == 200
    assert "A user with that username already exists." in response.content.decode()
    assert set(User.objects.values_list("pk", "username")) == users_before - {(carol.pk, "carol")} | {
        (carol.pk, "dave")
    }
