"""What the API's own documentation says: the browsable API's page descriptions and Swagger
UI's "Authorize" dialog (the OpenAPI document's security schemes)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from core.api.descriptions import markup
from orders.services import place_order
from orders.validation import OrderRequest

pytestmark = pytest.mark.django_db


def _description(html: str) -> str:
    return re.search(r'<div class="pull-left">\s*(.*?)\s*</div>', html, re.S).group(1)


def test_an_orders_page_in_the_browsable_api_describes_that_order_with_its_code_as_code(
    api_client, user, btc, set_price
):
    # given alice's order, and alice logged in as in the browser
    set_price("BTC", "50000")
    order = place_order(
        user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01"))
    ).order
    api_client.force_login(user)

    # when
    detail = api_client.get(f"/api/v1/orders/{order.pk}/", HTTP_ACCEPT="text/html").content.decode()
    listing = api_client.get("/api/v1/orders/", HTTP_ACCEPT="text/html").content.decode()

    # then the order's page describes one order, not the list; no backtick is left
    assert _description(detail) == (
        "<p>One of your orders, by its <code>order_id</code>: its kind, prices, time in force, status, "
        "hold and fill. <code>PATCH</code> replaces it and <code>POST .../cancel/</code> cancels it while "
        "it is PENDING. Another user&#x27;s order is 404.</p>"
    )
    assert (
        _description(listing) == "<p>Your orders, newest first. Back-office staff may add <code>?username=</code>.</p>"
    )


def test_the_openapi_document_describes_an_order_as_its_page_does(api_client):
    # when
    schema = api_client.get("/api/v1/schema/?format=json").json()

    # then
    detail = schema["paths"]["/api/v1/orders/{order_id}/"]["get"]["description"]
    assert detail.startswith("One of your orders, by its `order_id`")


def test_markup_escapes_sets_code_and_joins_wrapped_lines():
    assert markup("Send `<key>` or ``a&b``\nwrapped.\n\nNext <b>.") == (
        "<p>Send <code>&lt;key&gt;</code> or <code>a&amp;b</code> wrapped.</p><p>Next &lt;b&gt;.</p>"
    )


def test_swagger_offers_the_readmes_token_first_and_each_scheme_says_when_to_use_it(api_client):
    # when
    schemes = api_client.get("/api/v1/schema/?format=json").json()["components"]["securitySchemes"]

    # then the token (Authorization: Token <key>, sent as Bearer by Swagger UI) leads
    assert list(schemes) == ["tokenAuth", "apiKeyId", "apiSecretKey", "cookieAuth"]
    says = {name: scheme["description"] for name, scheme in schemes.items()}
    assert says["tokenAuth"].startswith("**Use this one** to try the API here")
    assert "`Authorization: Token <key>`" in says["tokenAuth"]
    assert says["apiKeyId"].startswith("For programs")
    assert says["apiSecretKey"].startswith("The API key's secret_key")
    assert says["cookieAuth"].startswith("Only for the browsable API")


def test_the_order_schema_says_stop_orders_hold_too(api_client):
    # when
    order = api_client.get("/api/v1/schema/?format=json").json()["components"]["schemas"]["Order"]["properties"]

    # then
    assert order["held_amount"]["description"] == (
        "USD reserved for what is left to fill while a BUY limit, stop or stop-limit order rests; "
        "0 for a SELL (its quantity is held instead) and once the order ends."
    )
    assert order["held_quantity"]["description"] == (
        "Quantity reserved while a SELL limit, stop or stop-limit order rests."
    )
