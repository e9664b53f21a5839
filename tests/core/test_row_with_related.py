"""core.sql.RowWithRelated: a select_related get() built once, made into the ORM's instances."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from accounts.models import ApiKey
from core.sql import RowWithRelated

pytestmark = pytest.mark.django_db

TOKEN_WITH_USER = RowWithRelated(Token, "user", "m.key = %s")


def test_a_row_becomes_the_same_instances_the_orm_would_load(user, django_assert_num_queries):
    # given
    token = Token.objects.create(user=user, key="k" * 40)
    expected = Token.objects.select_related("user").get(key=token.key)

    # when: one query, and reading the user costs none
    with django_assert_num_queries(1):
        found = TOKEN_WITH_USER.get(token.key)
        found_user = found.user

    # then every column of both models is as the ORM reads it, and they are saved rows
    def columns(instance):
        return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}

    assert columns(found) == columns(expected)
    assert columns(found_user) == columns(expected.user)
    assert not found._state.adding
    assert not found_user._state.adding
    assert isinstance(found_user, get_user_model())


def test_no_row_is_none(db):
    assert TOKEN_WITH_USER.get("missing") is None


def test_the_where_clause_takes_several_parameters_and_conditions(user):
    # given
    lookup = RowWithRelated(ApiKey, "user", "m.key_id = %s AND r.username = %s AND m.revoked_at IS NULL")
    ApiKey.objects.create(
        user=user, key_id="PKTEST0000000000", secret_hash="x" * 64, password_fingerprint="f" * 64, name="bot"
    )

    # then
    assert lookup.get("PKTEST0000000000", user.username).user == user
    assert lookup.get("PKTEST0000000000", "someone-else") is None
