"""Renaming a user in the admin: usernames are unique in any case, and the form says so."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
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
