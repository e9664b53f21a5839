"""Crafted input to any changelist is answered, never a 500: a selection posted to an
action runs nothing, and a malformed filter or date drill-down gets Django's "incorrect
lookup" answer.

Before ``SafeChangelistMixin``, ``abc`` for an integer id or a malformed UUID in
``_selected_action``, and a year of ``-1`` or ``10**23`` in a date filter, were 500s."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.urls import reverse

from balances.models import UsdBalance
from core.admin import SafeChangelistMixin
from orders.models import Order
from tests.backoffice.changelists import ALL_CHANGELISTS

ACTIONS = ["delete_selected", "export_csv", "cancel_pending_orders", "suspend_trading"]
BAD_VALUES = ["abc", "\x00", "1\x00", "-1", "99999999999999999999999", "00000000-0000-0000-0000-00000000000g"]


@pytest.mark.parametrize("changelist", ALL_CHANGELISTS)
def test_a_malformed_selection_runs_no_action(admin_client, customer, resting_buy, changelist):
    # given
    held_before = UsdBalance.objects.get(user=resting_buy.user).held
    url = reverse(changelist)

    for action in ACTIONS:
        for value in BAD_VALUES:
            # when
            response = admin_client.post(url, {"action": action, "_selected_action": [str(resting_buy.pk), value]})

            # then: back to the list (or Django's own "no such action"), never a 500, nothing changed
            assert response.status_code in (200, 302), (action, value, response.status_code)

    resting_buy.refresh_from_db()
    assert resting_buy.status == Order.Status.PENDING
    assert UsdBalance.objects.get(user=resting_buy.user).held == held_before


def test_the_user_is_told_the_selection_was_not_valid(admin_client, resting_buy):
    # when
    response = admin_client.post(
        reverse("admin:orders_order_changelist"), {"action": "cancel_pending_orders", "_selected_action": ["abc"]}
    )

    # then
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "The selection is not valid; reload the list and select again."
    ]


BAD_LOOKUPS = [
    "created_at__year=99999999999999999999999",
    "created_at__year=-1",
    "created_at__year=2026&created_at__month=13",
    "created_at__year=2026&created_at__month=2&created_at__day=31",
    "created_at__gte=not-a-date",
    "user=abc",
    "user=99999999999999999999999",
    "id=abc",
    "p=abc",
    "o=abc.-9",
]


@pytest.mark.parametrize("changelist", ALL_CHANGELISTS)
def test_a_malformed_filter_is_answered_not_a_500(admin_client, resting_buy, changelist):
    for query in BAD_LOOKUPS:
        # when
        response = admin_client.get(f"{reverse(changelist)}?{query}")

        # then: the list, or Django's redirect to its "?e=1" page for incorrect lookups
        assert response.status_code in (200, 302), (query, response.status_code)
        if response.status_code == 302:
            assert admin_client.get(response.url).status_code == 200


def test_every_registered_admin_answers_malformed_input():
    # an admin registered without the mixin would bring the 500s back
    assert [
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if not isinstance(model_admin, SafeChangelistMixin)
    ] == []
