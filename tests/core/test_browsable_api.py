"""What a newcomer meets in the browser (issue 13): usable forms and a root that links
everything."""

from decimal import Decimal

from balances.models import UsdBalance
from orders.models import Order


def test_options_on_orders_describes_the_fields_a_post_takes(auth_client, db):
    # when
    post = auth_client.options("/api/v1/orders/").json()["actions"]["POST"]
    # then: writable, not the read-only fields of an answer
    assert set(post) == {
        "asset_id",
        "order_type",
        "quantity",
        "notional",
        "order_price",
        "stop_price",
        "time_in_force",
        "expires_at",
        "client_order_id",
    }
    assert not any(field["read_only"] for field in post.values())
    assert [c["value"] for c in post["order_type"]["choices"]] == ["BUY", "SELL"]


def test_the_orders_page_has_a_form_with_the_order_fields(api_client, user, db):
    # given a session login, as in the browser
    api_client.force_login(user)
    # when
    html = api_client.get("/api/v1/orders/", HTTP_ACCEPT="text/html").content.decode()
    # then
    for name in ("asset_id", "order_type", "quantity", "order_price", "client_order_id"):
        assert f'name="{name}"' in html, name
    assert 'placeholder="0.01"' in html


def test_the_order_form_places_an_order(api_client, user, btc, set_price):
    # given
    set_price("BTC", "50000")
    api_client.force_login(user)
    form = {"asset_id": "btc", "order_type": "BUY", "quantity": "0.01", "order_price": "", "stop_price": ""}
    form.update({"notional": "", "time_in_force": "gtc", "expires_at": ""})
    # when: posted as the HTML form posts it (empty optional fields included)
    response = api_client.post("/api/v1/orders/", {**form, "client_order_id": ""}, HTTP_ACCEPT="application/json")
    # then
    assert response.status_code == 201, response.content
    assert Order.objects.get().total_amount == Decimal("500.00")


def test_deposit_and_withdraw_pages_have_a_form_with_an_example(api_client, user):
    api_client.force_login(user)
    for path in ("/api/v1/balance/deposit/", "/api/v1/balance/withdraw/"):
        # when
        response = api_client.get(path, HTTP_ACCEPT="text/html")
        # then: GET is not allowed, but the page shows the POST form
        assert response.status_code == 405
        html = response.content.decode()
        assert 'name="amount"' in html, path
        assert 'placeholder="250.00"' in html, path
    assert UsdBalance.objects.get(user=user).current_balance == Decimal("10000.00")


def test_the_api_root_links_every_endpoint_without_an_identifier(api_client, db):
    # when
    links = api_client.get("/api/v1/").json()
    # then
    for route in (
        "auth/register",
        "auth/token",
        "balance",
        "balance/deposit",
        "balance/withdraw",
        "portfolio",
        "portfolio/history",
        "activities",
        "market/latest",
        "market/bars",
        "health",
        "schema",
        "docs",
        "assets",
        "orders",
        "transactions",
        "cash-transactions",
        "asset-balances",
    ):
        assert links[route] == f"http://testserver/api/v1/{route}/", route
    assert all(link.startswith("http://testserver/api/v1/") for link in links.values())
