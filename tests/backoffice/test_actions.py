"""What the back-office actions do: cancel through the service, adjustments through the
service with an ADJUSTMENT row, CSV export, asset toggles, the links between pages and the titles they show."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.urls import reverse

from balances.forms import new_submission_key
from balances.models import AssetBalance, AssetTransaction, CashTransaction, UsdBalance
from balances.services import adjust_usd_balance
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.validation import OrderRequest


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _cancel(client, *orders):
    return client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "cancel_pending_orders", "_selected_action": [str(o.pk) for o in orders]},
    )


# --- Cancel ---------------------------------------------------------------------------


def test_cancel_action_cancels_pending_order_and_releases_the_hold(support_client, support_user, resting_buy):
    # given
    usd = UsdBalance.objects.get(user=resting_buy.user)
    assert (usd.current_balance, usd.held) == (Decimal("10000.00"), Decimal("10.00"))

    # when
    response = _cancel(support_client, resting_buy)

    # then
    assert response.status_code == 302
    resting_buy.refresh_from_db()
    usd.refresh_from_db()
    assert (resting_buy.status, resting_buy.held_amount) == (Order.Status.CANCELLED, Decimal("0.00"))
    assert (usd.current_balance, usd.held) == (Decimal("10000.00"), Decimal("0.00"))
    assert CashTransaction.objects.filter(user=resting_buy.user).count() == 1  # the opening deposit only
    assert reconcile_ledger() == []
    assert LogEntry.objects.filter(object_id=str(resting_buy.pk), user=support_user).count() == 1
    assert any("Cancelled 1 order(s)" in m for m in _messages(response))


def test_cancel_action_records_the_staff_member_on_the_order_and_its_page_shows_them(
    support_client, support_user, resting_buy
):
    # when
    _cancel(support_client, resting_buy)

    # then
    resting_buy.refresh_from_db()
    assert (resting_buy.status, resting_buy.actor) == (Order.Status.CANCELLED, support_user)
    page = support_client.get(reverse("admin:orders_order_change", args=[resting_buy.pk])).content.decode()
    user_link = reverse("admin:auth_user_change", args=[support_user.pk])
    assert "<label>Back-office actor:</label>" in page
    assert f'<div class="readonly"><a href="{user_link}">sue_support</a></div>' in page


def test_cancel_action_refuses_a_completed_order_and_moves_nothing(support_client, completed_buy, resting_buy):
    # given
    usd = UsdBalance.objects.get(user=completed_buy.user)
    before = (usd.current_balance, usd.held)
    cash_rows = CashTransaction.objects.count()

    # when
    response = _cancel(support_client, completed_buy, resting_buy)

    # then: the pending one is cancelled, the completed one is reported, not a 500
    assert response.status_code == 302
    completed_buy.refresh_from_db()
    resting_buy.refresh_from_db()
    usd.refresh_from_db()
    assert completed_buy.status == Order.Status.COMPLETED
    assert resting_buy.status == Order.Status.CANCELLED
    assert (usd.current_balance, usd.held) == (before[0], before[1] - Decimal("10.00"))
    assert CashTransaction.objects.count() == cash_rows
    assert reconcile_ledger() == []
    messages = _messages(response)
    assert f"Not cancelled, only PENDING orders can be: {str(completed_buy.pk)[:8]} (COMPLETED)." in messages


def test_cancel_action_is_not_run_for_staff_without_cancel_permission(make_staff, client_for, resting_buy):
    # given: view permission on orders, no cancel permission
    from django.contrib.auth.models import Permission

    viewer = make_staff("viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_order"))

    # when
    response = _cancel(client_for(viewer), resting_buy)

    # then
    assert response.status_code in (200, 302)
    resting_buy.refresh_from_db()
    assert resting_buy.status == Order.Status.PENDING
    assert UsdBalance.objects.get(user=resting_buy.user).held == Decimal("10.00")


def test_the_cancel_action_names_each_refused_order_and_its_status(support_client, completed_buy, resting_buy):
    # when Support cancels a completed and a pending order at once
    response = support_client.post(
        "/admin/orders/order/",
        {"action": "cancel_pending_orders", "_selected_action": [completed_buy.pk, resting_buy.pk]},
        follow=True,
    )
    # then
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [
        f"Cancelled 1 order(s), holds released: {str(resting_buy.pk)[:8]}.",
        f"Not cancelled, only PENDING orders can be: {str(completed_buy.pk)[:8]} (COMPLETED).",
    ]


# --- Adjustments ------------------------------------------------------------------------


def _adjust_url(user, kind: str) -> str:
    balance = UsdBalance.objects.get(user=user)
    return reverse(f"admin:balances_usdbalance_adjust_{kind}", args=[balance.pk])


def _adjust_usd(client, user, **data):
    # each call is a new form, with the fresh one-time key the page would have minted
    return client.post(_adjust_url(user, "usd"), {"submission_key": new_submission_key(), **data})


def _adjust_asset(client, user, **data):
    return client.post(_adjust_url(user, "asset"), {"submission_key": new_submission_key(), **data})


def test_usd_adjustment_writes_an_adjustment_row_with_actor_and_reason(operations_client, operations_user, customer):
    # when
    response = _adjust_usd(operations_client, customer, amount="-123.45", reason="  Refund reversed, ticket 42  ")

    # then
    assert response.status_code == 302
    assert response.url == reverse("admin:auth_user_change", args=[customer.pk])
    row = CashTransaction.objects.get(user=customer, transaction_type=CashTransaction.Type.ADJUSTMENT)
    assert (row.amount, row.balance_after, row.note, row.actor) == (
        Decimal("-123.45"),
        Decimal("9876.55"),
        "Refund reversed, ticket 42",
        operations_user,
    )
    usd = UsdBalance.objects.get(user=customer)
    assert (usd.current_balance, usd.held) == (Decimal("9876.55"), Decimal("0.00"))
    assert reconcile_ledger() == []


def test_the_adjustment_form_carries_a_new_one_time_key_each_time_it_is_shown(operations_client, customer):
    # when
    pages = [operations_client.get(_adjust_url(customer, kind)) for kind in ("usd", "usd", "asset")]

    # then
    keys = [page.context["form"]["submission_key"].value() for page in pages]
    assert all(key.startswith("admin-") for key in keys)
    assert len(set(keys)) == 3
    for key, page in zip(keys, pages, strict=True):
        assert f'type="hidden" name="submission_key" value="{key}"' in page.text


def test_submitting_one_usd_adjustment_form_twice_adjusts_once(operations_client, customer):
    # given the same form posted twice (a double click, or the browser resending the POST)
    data = {"amount": "25.00", "reason": "goodwill", "submission_key": new_submission_key()}

    # when
    first = operations_client.post(_adjust_url(customer, "usd"), data)
    again = operations_client.post(_adjust_url(customer, "usd"), data)

    # then
    assert first.status_code == again.status_code == 302
    assert CashTransaction.objects.filter(user=customer, transaction_type="ADJUSTMENT").count() == 1
    assert UsdBalance.objects.get(user=customer).current_balance == Decimal("10025.00")
    assert "already submitted" in _messages(again)[-1]
    assert reconcile_ledger() == []


def test_submitting_one_asset_adjustment_form_twice_adjusts_once(operations_client, customer, btc):
    # given
    data = {"asset": "BTC", "quantity": "0.5", "reason": "airdrop", "submission_key": new_submission_key()}

    # when
    first = operations_client.post(_adjust_url(customer, "asset"), data)
    again = operations_client.post(_adjust_url(customer, "asset"), data)

    # then
    assert first.status_code == again.status_code == 302
    row = AssetTransaction.objects.get(user=customer)
    assert (row.quantity, row.client_reference) == (Decimal("0.5"), data["submission_key"])
    assert AssetBalance.objects.get(user=customer, asset=btc).quantity == Decimal("0.5")
    assert "already submitted" in _messages(again)[-1]
    assert reconcile_ledger() == []


def _ledger_ids() -> tuple[list[int], list[int]]:
    return (
        list(CashTransaction.objects.order_by("id").values_list("id", flat=True)),
        list(AssetTransaction.objects.order_by("id").values_list("id", flat=True)),
    )


@pytest.mark.parametrize("kind", ["usd", "asset"])
def test_a_used_form_resent_with_other_values_changes_nothing_and_offers_a_new_form(
    operations_client, customer, btc, kind
):
    # given an applied adjustment
    key = new_submission_key()
    values = {"usd": {"amount": "25.00"}, "asset": {"asset": "BTC", "quantity": "0.5"}}[kind]
    edited = {"usd": {"amount": "250.00"}, "asset": {"asset": "BTC", "quantity": "5"}}[kind]
    operations_client.post(_adjust_url(customer, kind), {**values, "reason": "first", "submission_key": key})
    before = (
        list(CashTransaction.objects.values_list("id", flat=True)),
        list(AssetTransaction.objects.values_list("id", flat=True)),
    )

    # when the browser goes back, the amount is edited and the old form is sent again
    response = operations_client.post(
        _adjust_url(customer, kind), {**edited, "reason": "second", "submission_key": key}
    )

    # then
    assert response.status_code == 302
    assert response.url == _adjust_url(customer, kind)
    assert "already used for a different adjustment" in _messages(response)[-1]
    after = (
        list(CashTransaction.objects.values_list("id", flat=True)),
        list(AssetTransaction.objects.values_list("id", flat=True)),
    )
    assert after == before
    assert reconcile_ledger() == []


@pytest.mark.parametrize("key", [None, "", "short", "k" * 65])
def test_an_adjustment_without_a_valid_one_time_key_is_refused(operations_client, customer, key):
    # given
    data = {"amount": "25.00", "reason": "goodwill"}
    if key is not None:
        data["submission_key"] = key

    # when
    response = operations_client.post(_adjust_url(customer, "usd"), data)

    # then
    assert response.status_code == 200
    assert "one-time key" in response.text
    assert not CashTransaction.objects.filter(user=customer, transaction_type="ADJUSTMENT").exists()


def test_usd_adjustment_needs_a_reason_and_writes_nothing_without(operations_client, customer):
    # when
    response = _adjust_usd(operations_client, customer, amount="50", reason="   ")

    # then
    assert response.status_code == 200
    assert "reason" in response.context["form"].errors
    assert CashTransaction.objects.filter(transaction_type=CashTransaction.Type.ADJUSTMENT).count() == 0
    assert UsdBalance.objects.get(user=customer).current_balance == Decimal("10000.00")


@pytest.mark.parametrize(
    ("amount", "error"), [("0", "must not be zero"), ("1.234", "2 decimal places"), ("x", "number")]
)
def test_usd_adjustment_rejects_bad_amounts(operations_client, customer, amount, error):
    response = _adjust_usd(operations_client, customer, amount=amount, reason="typo")
    assert response.status_code == 200
    assert error in " ".join(response.context["form"].errors["amount"])
    assert UsdBalance.objects.get(user=customer).current_balance == Decimal("10000.00")


def test_usd_adjustment_beyond_available_shows_the_domain_error_and_moves_nothing(
    operations_client, customer, resting_buy
):
    # given: 10000.00 with 10.00 held, so 9990.00 available
    # when
    response = _adjust_usd(operations_client, customer, amount="-9990.01", reason="clawback")

    # then
    assert response.status_code == 200
    assert "Not enough available USD." in _messages(response)
    usd = UsdBalance.objects.get(user=customer)
    assert (usd.current_balance, usd.held) == (Decimal("10000.00"), Decimal("10.00"))
    assert CashTransaction.objects.filter(transaction_type=CashTransaction.Type.ADJUSTMENT).count() == 0


def test_asset_adjustment_writes_an_adjustment_row_and_changes_the_holding(
    operations_client, operations_user, customer, btc
):
    # when
    response = _adjust_asset(operations_client, customer, asset="BTC", quantity="0.5", reason="airdrop")

    # then
    assert response.status_code == 302
    row = AssetTransaction.objects.get(user=customer)
    assert (row.transaction_type, row.asset_id, row.quantity, row.note, row.actor) == (
        AssetTransaction.Type.ADJUSTMENT,
        "BTC",
        Decimal("0.5"),
        "airdrop",
        operations_user,
    )
    holding = AssetBalance.objects.get(user=customer, asset=btc)
    assert (holding.quantity, holding.held_quantity) == (Decimal("0.5"), Decimal("0"))
    assert UsdBalance.objects.get(user=customer).current_balance == Decimal("10000.00")
    assert reconcile_ledger() == []


def test_asset_adjustment_cannot_take_more_than_held_and_rejects_too_many_decimals(operations_client, customer, btc):
    # when
    too_much = _adjust_asset(operations_client, customer, asset="BTC", quantity="-0.1", reason="clawback")
    too_fine = _adjust_asset(operations_client, customer, asset="BTC", quantity="0.000000001", reason="dust")

    # then
    assert too_much.status_code == 200
    assert "Not enough unheld BTC." in _messages(too_much)
    assert too_fine.status_code == 200
    assert too_fine.context["form"].errors["quantity"] == ["BTC quantities have at most 8 decimals."]
    assert AssetTransaction.objects.count() == 0
    assert not AssetBalance.objects.filter(user=customer).exists()


# --- CSV export -------------------------------------------------------------------------


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_cash_ledger_csv_export_has_the_selected_rows(support_client, customer, operations_user):
    # given
    adjust_usd_balance(user=customer, amount=Decimal("5.10"), reason="=HYPERLINK(evil)", actor=operations_user)
    deposit_row, adjustment = CashTransaction.objects.filter(user=customer).order_by("id")

    # when
    response = support_client.post(
        reverse("admin:balances_cashtransaction_changelist"),
        {"action": "export_csv", "_selected_action": [deposit_row.pk, adjustment.pk]},
    )

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="cashtransaction-')
    header = ["id", "created_at", "username", "transaction_type", "amount", "balance_after"]
    header += ["order_id", "client_reference", "note", "actor"]
    first = [str(deposit_row.pk), deposit_row.created_at.isoformat(), "carol", "DEPOSIT", "10000.00", "10000.00"]
    first += ["", "", "Initial balance", ""]
    second = [str(adjustment.pk), adjustment.created_at.isoformat(), "carol", "ADJUSTMENT", "5.10", "10005.10"]
    second += ["", "", "'=HYPERLINK(evil)", "olga_ops"]
    assert _csv(response) == [header, first, second]


def test_asset_ledger_csv_export(support_client, completed_buy):
    # given
    row = AssetTransaction.objects.get(order=completed_buy)

    # when
    response = support_client.post(
        reverse("admin:balances_assettransaction_changelist"), {"action": "export_csv", "_selected_action": [row.pk]}
    )

    # then
    header, line = _csv(response)
    assert header[:6] == ["id", "created_at", "username", "asset_id", "transaction_type", "quantity"]
    assert dict(zip(header, line, strict=True)) == {
        "id": str(row.pk),
        "created_at": row.created_at.isoformat(),
        "username": "carol",
        "asset_id": "BTC",
        "transaction_type": "BUY",
        "quantity": "0.002000000000000000",
        "price_per_unit": str(row.price_per_unit),
        "total_amount": str(completed_buy.total_amount),
        "realized_pnl": "",
        "status": "COMPLETED",
        "price_source": "simulated",
        "order_id": str(completed_buy.pk),
        "client_reference": "",
        "note": "",
        "actor": "",
    }


# --- Assets -----------------------------------------------------------------------------


def test_operations_suspend_and_reactivate_assets_with_actions(operations_client, btc, eth):
    url = reverse("admin:assets_asset_changelist")
    operations_client.post(url, {"action": "suspend_trading", "_selected_action": ["BTC", "ETH"]})
    btc.refresh_from_db()
    eth.refresh_from_db()
    assert (btc.is_active, eth.is_active) == (False, False)

    operations_client.post(url, {"action": "make_tradable", "_selected_action": ["ETH"]})
    btc.refresh_from_db()
    eth.refresh_from_db()
    assert (btc.is_active, eth.is_active) == (False, True)


def test_asset_list_shows_the_current_price(support_client, btc):
    from assets.prices import get_quotes

    response = support_client.get(reverse("admin:assets_asset_changelist"))
    price = get_quotes([btc])["BTC"].price  # the same last good price the page read
    assert format(price.normalize(), "f") in response.content.decode()


# --- Links and search -------------------------------------------------------------------


def test_user_page_shows_balance_holdings_and_recent_orders_with_links(support_client, completed_buy, resting_buy):
    # when
    page = support_client.get(reverse("admin:auth_user_change", args=[completed_buy.user_id])).content.decode()

    # then
    usd = UsdBalance.objects.get(user=completed_buy.user)
    assert f'<td class="usd-current">{usd.current_balance}</td>' in page
    assert '<td class="usd-held">10.00</td>' in page
    assert f'<td class="usd-available">{usd.available}</td>' in page
    assert '<table id="holdings">' in page
    assert "<td>BTC</td><td>0.002</td>" in page
    for order in (completed_buy, resting_buy):
        assert reverse("admin:orders_order_change", args=[order.pk]) in page
    assert f"{reverse('admin:orders_order_changelist')}?user={completed_buy.user_id}" in page


def test_links_from_user_to_filtered_lists_work(support_client, completed_buy, make_user):
    # given: someone else's rows that must not show
    make_user("dave")
    user_id = completed_buy.user_id

    for name, rows in [
        ("admin:orders_order_changelist", 1),
        ("admin:balances_cashtransaction_changelist", 3),  # opening deposit, deposit, buy
        ("admin:balances_assettransaction_changelist", 1),
    ]:
        response = support_client.get(f"{reverse(name)}?user={user_id}")
        assert response.status_code == 200
        assert response.context["cl"].result_count == rows


def test_ledger_rows_link_to_their_user_and_order_and_back(support_client, completed_buy):
    # when
    ledger = support_client.get(reverse("admin:balances_cashtransaction_changelist")).content.decode()
    order_page = support_client.get(reverse("admin:orders_order_change", args=[completed_buy.pk])).content.decode()
    by_order = support_client.get(f"{reverse('admin:balances_cashtransaction_changelist')}?order={completed_buy.pk}")

    # then
    assert reverse("admin:orders_order_change", args=[completed_buy.pk]) in ledger
    assert reverse("admin:auth_user_change", args=[completed_buy.user_id]) in ledger
    assert reverse("admin:auth_user_change", args=[completed_buy.user_id]) in order_page
    assert f"?order={completed_buy.pk}" in order_page
    assert by_order.context["cl"].result_count == 1


@pytest.mark.parametrize("term", ["carol", "my-client-id", "FULL_UUID"])
def test_order_search_by_username_order_id_and_client_order_id(support_client, customer, btc, make_user, term):
    from orders.services import place_order

    # given
    order = place_order(
        user=customer,
        request=OrderRequest(
            asset_id="BTC",
            order_type=Order.Type.BUY,
            quantity=Decimal("0.01"),
            order_price=Decimal("1000"),
            client_order_id="my-client-id",
        ),
    ).order
    place_order(
        user=make_user("erin"),
        request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.01"), order_price=Decimal("1000")),
    )
    term = str(order.pk) if term == "FULL_UUID" else term

    # when
    response = support_client.get(reverse("admin:orders_order_changelist"), {"q": term})

    # then
    assert [o.pk for o in response.context["cl"].result_list] == [order.pk]


def test_order_list_filters_by_status_type_asset_and_date(support_client, resting_buy, completed_buy):
    url = reverse("admin:orders_order_changelist")
    day = resting_buy.created_at
    for params, expected in [
        ({"status__exact": "PENDING"}, [resting_buy.pk]),
        ({"order_type__exact": "BUY", "status__exact": "COMPLETED"}, [completed_buy.pk]),
        ({"asset__asset_id__exact": "BTC"}, sorted([resting_buy.pk, completed_buy.pk])),
        ({"created_at__year": day.year, "created_at__month": day.month, "created_at__day": day.day}, None),
    ]:
        response = support_client.get(url, params)
        assert response.status_code == 200
        pks = sorted(o.pk for o in response.context["cl"].result_list)
        assert pks == (expected if expected is not None else sorted([resting_buy.pk, completed_buy.pk]))


@pytest.mark.parametrize(
    ("path", "linked"),
    [("/admin/balances/usdbalance/", "usdbalance"), ("/admin/balances/assetbalance/", "assetbalance")],
)
def test_balance_rows_link_to_their_balance_with_visible_text(support_client, completed_buy, path, linked):
    # given carol's balances; when
    html = support_client.get(path).content.decode()
    # then every link to a balance page has text (not an anchor wrapped around the user link)
    links = re.findall(rf'<a href="/admin/balances/{linked}/\d+/change/[^"]*">([^<]*)</a>', html)
    assert links
    assert all(text.strip() for text in links)


def test_order_titles_have_no_trailing_zeros(resting_buy):
    assert str(resting_buy) == "BUY 0.01 BTC (PENDING)"
    assert str(Order(order_type="SELL", quantity=Decimal("10.000"), asset_id="ETH", status="FAILED")) == (
        "SELL 10 ETH (FAILED)"
    )
