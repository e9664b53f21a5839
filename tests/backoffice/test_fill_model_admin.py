"""Operations set an account's fill model on the user's page; Support sees it and cannot
(docs/DESIGN.md, "Fill model", "Permissions")."""

from __future__ import annotations

from decimal import Decimal

from django.urls import reverse

from orders.models import AccountFillModel


def _url(user) -> str:
    return reverse("admin:auth_user_fill_model", args=[user.pk])


def test_operations_set_the_realistic_profile_and_are_its_actor(operations_client, operations_user, user):
    # when
    page = operations_client.get(_url(user))
    response = operations_client.post(_url(user), {**_ideal_fields(), "profile": "realistic"})

    # then
    assert page.status_code == 200
    assert b"fill-model-form" in page.content
    assert response.status_code == 302
    row = AccountFillModel.objects.get(user=user)
    assert (row.profile, row.taker_fee_bps, row.actor_id) == ("realistic", Decimal(25), operations_user.pk)
    user_page = operations_client.get(reverse("admin:auth_user_change", args=[user.pk]))
    assert b'id="fill-model"' in user_page.content
    assert b"<strong>realistic</strong>" in user_page.content


def test_operations_set_each_parameter(operations_client, user):
    # when
    operations_client.post(_url(user), {**_ideal_fields(), "spread_bps": "4"})

    # then
    assert AccountFillModel.objects.get(user=user).profile == "custom"


def test_a_bad_parameter_shows_the_form_again_and_saves_nothing(operations_client, user):
    response = operations_client.post(_url(user), {**_ideal_fields(), "spread_bps": "-3"})
    assert response.status_code == 200
    assert not AccountFillModel.objects.exists()


def test_support_sees_the_model_but_cannot_change_it(support_client, user):
    assert support_client.get(_url(user)).status_code == 403
    assert support_client.post(_url(user), {"profile": "realistic"}).status_code == 403
    assert (
        b"ideal</strong> (the deployment"
        in support_client.get(reverse("admin:auth_user_change", args=[user.pk])).content
    )


def _ideal_fields() -> dict:
    return {
        "profile": "",
        "spread_bps": "0",
        "slippage": "none",
        "volume_limit": "0.025",
        "price_impact": "0.1",
        "fill_participation": "",
        "maker_fee_bps": "0",
        "taker_fee_bps": "0",
        "seed": "0",
    }


def test_an_orders_page_shows_its_fills_and_fees_and_the_model_in_force(support_client, user, btc, set_price):
    # given a realistic market buy
    from orders.services import place_order, set_account_fill_model
    from orders.validation import OrderRequest

    set_account_fill_model(user=user, profile="realistic")
    set_price("BTC", "50000", volume=Decimal("10"))
    order = place_order(
        user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.1"))
    ).order

    # when
    page = support_client.get(reverse("admin:orders_order_change", args=[order.pk]))

    # then
    assert page.status_code == 200
    assert b'id="order-fills"' in page.content
    assert b"<td>FEE</td><td>-0.00025</td>" in page.content
    assert b"realistic (the account&#x27;s own)" in page.content
