"""The service in a real browser, as a newcomer meets it: Support finds a user, opens an order
and cancels it with the admin action, then Operations makes an adjustment; every list shows
every column whole on a 1,400 x 900 screen (measured, cell by cell), with the orders' stop
price and kind; every page writes its times one way; a user places an order through the
browsable API's form, and calls the API from Swagger UI with a pasted key. Screenshots of
each step go to ``test-artifacts/screenshots/``."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from accounts.services import create_api_key
from balances.forms import new_submission_key
from balances.models import CashTransaction, UsdBalance
from balances.services import adjust_usd_balance
from orders.models import Order
from orders.selectors import reconcile_ledger
from orders.services import place_order, reset_account
from orders.validation import OrderOrigin, OrderRequest
from tests.backoffice.changelists import BACK_OFFICE_CHANGELISTS

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct-horse-battery"
SCREENSHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
SCREEN = {"width": 1400, "height": 900}

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")

# A developer without chromium skips this test; CI sets REQUIRE_BROWSER=1 so a failed
# chromium install fails the run instead of silently skipping the only browser test.
if shutil.which(CHROMIUM) is None and os.environ.get("REQUIRE_BROWSER") == "1":
    pytest.fail(f"REQUIRE_BROWSER=1 but Chromium is not at {CHROMIUM}", pytrace=False)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None, reason=f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    ),
]


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test
    # itself are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def _login(browser, base_url: str, username: str):
    page = browser.new_context(viewport=SCREEN).new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")
    return page


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


# --- One way of writing times ------------------------------------------------------------

# The back office writes every time as "2026-12-07 01:33:06 UTC". What it must not write:
# Django's "Dec. 7, 2026, 1:33 a.m.", ISO's "2026-12-07T01:33:06+00:00", or a time to the
# minute or without its zone.
OUR_TIME = re.compile(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC\b")
OTHER_TIMES = {
    "Django's month names": re.compile(
        r"\b(?:Jan|Feb|March|April|May|June|July|Aug|Sept|Oct|Nov|Dec)\.? \d{1,2}, \d{4}"
    ),
    "a.m./p.m.": re.compile(r"\d(?::\d{2})? ?[ap]\.m\.|\bmidnight\b|\bnoon\b"),
    "ISO 8601 with T": re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}"),
    "without seconds or zone": re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?!:\d{2} UTC)"),
}


def _times_written(page, selector: str) -> list[str]:
    """The times in the text of every element ``selector`` matches; fails on any written
    another way."""
    text = "\n".join(page.locator(selector).all_inner_texts())
    others = {style: pattern.findall(text) for style, pattern in OTHER_TIMES.items() if pattern.search(text)}
    assert others == {}, f"{page.url} {selector}: {others}"
    return OUR_TIME.findall(text)


# --- Every column whole ----------------------------------------------------------------

# Each header and cell of the changelist: its right edge within the results' box and the
# window (nothing behind the horizontal scroll bar), and its content within its own width
# (nothing clipped or spilling into the next column). Sizes are the browser's layout, in px.
CLIPPED_CELLS = """
() => {
  const results = document.querySelector('.results');
  const box = results.getBoundingClientRect();
  const limit = Math.min(box.right, window.innerWidth);
  const clipped = [];
  const name = (cell) => (cell.className.match(/(?:column|field)-(\\S+)/) || [null, cell.tagName])[1];
  for (const cell of results.querySelectorAll('thead th, tbody td, tbody th')) {
    const edge = cell.getBoundingClientRect().right;
    if (edge > limit + 0.5) clipped.push(`${name(cell)} ends at ${edge} px, past ${limit} px`);
    if (cell.scrollWidth > cell.clientWidth + 1)
      clipped.push(`${name(cell)} "${cell.innerText.trim()}" is ${cell.scrollWidth} px in ${cell.clientWidth} px`);
    for (const part of cell.querySelectorAll('.text, a, span')) {
      const right = part.getBoundingClientRect().right;
      if (right > cell.getBoundingClientRect().right + 0.5)
        clipped.push(`${name(cell)} "${part.innerText.trim()}" ends at ${right} px, past its cell`);
    }
  }
  return {
    clipped,
    table: [results.scrollWidth, results.clientWidth],
    page: [document.documentElement.scrollWidth, window.innerWidth],
  };
}
"""


def _assert_every_column_whole(page, name: str) -> None:
    measured = page.evaluate(CLIPPED_CELLS)
    assert measured["clipped"] == [], f"{name}: {measured['clipped']}"
    scroll, visible = measured["table"]
    assert scroll <= visible, f"{name}: the table is {scroll} px wide in {visible} px"
    page_width, window = measured["page"]
    assert page_width <= window, f"{name}: the page is {page_width} px wide in a {window} px window"


def _a_busy_account(make_user, make_staff, *, username: str = "margaret_hamilton"):
    """A customer whose rows are as wide as real ones get: a market buy and a limit buy with
    its own client order id, a stop-limit BUY and a stop SELL placed through Alpaca's API
    with a key (a UUID client order id, as Alpaca's SDKs send), and an adjustment by
    Operations with its reason. Returns the stop-limit."""
    customer = make_user(username)
    key = create_api_key(user=customer, name="trading bot").api_key
    place_order(
        user=customer,
        request=OrderRequest(
            asset_id="BTC",
            order_type=Order.Type.BUY,
            quantity=Decimal("0.01234567"),
            client_order_id="rebalance-2026-12-07-morning",
        ),
    )
    place_order(
        user=customer,
        request=OrderRequest(
            asset_id="BTC", order_type=Order.Type.BUY, quantity=Decimal("0.01"), order_price=Decimal("1000.123456")
        ),
    )
    stop_limit = place_order(
        user=customer,
        request=OrderRequest(
            asset_id="BTC",
            order_type=Order.Type.BUY,
            quantity=Decimal("0.05"),
            stop_price=Decimal("70000.5"),
            order_price=Decimal("70100.25"),
            client_order_id=str(uuid.uuid4()),
        ),
        origin=OrderOrigin(placed_via=Order.PlacedVia.ALPACA, api_key=key),
    ).order
    place_order(
        user=customer,
        request=OrderRequest(
            asset_id="BTC",
            order_type=Order.Type.SELL,
            quantity=Decimal("0.005"),
            stop_price=Decimal("40000.75"),
            client_order_id=str(uuid.uuid4()),
        ),
        origin=OrderOrigin(placed_via=Order.PlacedVia.ALPACA, api_key=key),
    )
    adjust_usd_balance(
        user=customer,
        amount=Decimal("-12.34"),
        reason="Refund of a duplicated goodwill credit, ticket 4711",
        actor=make_staff("olivia_operations", "Operations"),
        client_reference=new_submission_key(),  # as the adjustment form sends it
    )
    return stop_limit


def test_support_cancels_an_order_and_operations_adjusts_a_balance(browser, live_server, make_staff, make_user, btc):
    # given
    make_staff("sue_support", "Support")
    make_staff("olga_ops", "Operations")
    carol = make_user("carol")
    order = place_order(
        user=carol,
        request=OrderRequest(
            asset_id="BTC", order_type=Order.Type.BUY, quantity=Decimal("0.01"), order_price=Decimal("1000")
        ),
    ).order
    assert UsdBalance.objects.get(user=carol).held == Decimal("10.00")

    # when: Support finds carol by name ...
    page = _login(browser, live_server.url, "sue_support")
    page.goto(f"{live_server.url}/admin/auth/user/")
    page.fill("#searchbar", "carol")
    page.press("#searchbar", "Enter")
    page.click("#result_list a:text-is('carol')")
    assert page.inner_text("td.usd-held") == "10.00"
    _shot(page, "01-support-user-page")
    # (her balance's update, her order, her joining and her chart's ends: one style)
    assert len(_times_written(page, "#content-main")) >= 5

    # ... opens the order from her recent orders ...
    page.click(f"#recent-orders a:text-is('{str(order.pk)[:8]}')")
    assert page.inner_text(".field-status .readonly") == "Pending"
    _shot(page, "02-support-order-page")
    assert len(_times_written(page, "#content-main")) == 3  # created, updated, expires

    # ... and cancels it with the admin action
    page.goto(f"{live_server.url}/admin/orders/order/?q={order.pk}")
    page.check(f"input[name=_selected_action][value='{order.pk}']")
    page.select_option("select[name=action]", "cancel_pending_orders")
    page.click("button[name=index]")
    assert "Cancelled 1 order(s), holds released" in page.inner_text("ul.messagelist")
    _shot(page, "03-support-order-cancelled")

    page.goto(f"{live_server.url}/admin/auth/user/{carol.pk}/change/")
    assert page.inner_text("td.usd-held") == "0.00"
    assert page.inner_text("td.usd-available") == "10000.00"
    assert page.locator("text=Adjust USD").count() == 0
    _shot(page, "04-support-balance-released")

    # when: Operations credits carol through the adjustment form
    page = _login(browser, live_server.url, "olga_ops")
    page.goto(f"{live_server.url}/admin/auth/user/{carol.pk}/change/")
    page.click("text=Adjust USD")
    page.fill("#id_amount", "25.00")
    page.fill("#id_reason", "Goodwill credit, ticket 7")
    _shot(page, "05-operations-adjustment-form")
    form_url = page.url
    sent = page.evaluate("Object.fromEntries(new FormData(document.querySelector('#adjustment-form')))")
    page.click("input[name=_adjust]")
    page.wait_for_url(f"{live_server.url}/admin/auth/user/{carol.pk}/change/")
    assert page.inner_text("td.usd-current") == "10025.00"
    _shot(page, "06-operations-adjusted")

    # ... and the same form sent again (a second tab) is recorded once, and says when it was
    again = page.request.post(form_url, form=sent, max_redirects=0)
    assert again.status == 302
    page.goto(f"{live_server.url}/admin/auth/user/{carol.pk}/change/")
    assert "already submitted" in page.inner_text("ul.messagelist")
    assert len(_times_written(page, "ul.messagelist")) == 1
    _shot(page, "07-operations-adjustment-sent-twice")

    # ... and the USD balance page, with its readonly times
    page.goto(live_server.url + reverse("admin:balances_usdbalance_change", args=[carol.usd_balance.pk]))
    assert len(_times_written(page, "#content-main")) == 2  # created, updated
    _shot(page, "08-operations-balance-page")

    # then
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    adjustment = CashTransaction.objects.get(user=carol, transaction_type=CashTransaction.Type.ADJUSTMENT)
    assert (adjustment.amount, adjustment.note, adjustment.actor.username) == (
        Decimal("25.00"),
        "Goodwill credit, ticket 7",
        "olga_ops",
    )
    usd = UsdBalance.objects.get(user=carol)
    assert (usd.current_balance, usd.held) == (Decimal("10025.00"), Decimal("0.00"))
    assert reconcile_ledger() == []


def test_every_back_office_list_shows_every_column_whole_on_a_1400_by_900_screen(
    browser, live_server, make_staff, make_user, btc
):
    # given a customer with rows as wide as real ones: Alpaca orders with a key and a UUID
    # client order id, a stop-limit and a stop, an adjustment with its reason
    make_staff("sue_support", "Support")
    _a_busy_account(make_user, make_staff)
    # and another whose account Operations reset, with a long reason and a form's one-time key
    reset_customer = make_user("grace_brewster_murray_hopper")
    place_order(
        user=reset_customer,
        request=OrderRequest(asset_id="BTC", order_type=Order.Type.BUY, quantity=Decimal("0.01234567")),
    )
    reset_account(
        user=reset_customer,
        cash=Decimal("250000.00"),
        client_reference=new_submission_key(),
        actor=make_staff("otto_operations", "Operations"),
        reason="Restart for the spring trading contest, ticket 4712",
    )
    page = _login(browser, live_server.url, "sue_support")
    for name in BACK_OFFICE_CHANGELISTS:
        # when Support opens the list on a 1,400 x 900 screen
        page.goto(live_server.url + reverse(name))
        _shot(page, f"list-1400-{name.split(':')[1]}")
        # then every header and every value is whole: none behind the results' scroll bar,
        # none cut at its column's edge
        _assert_every_column_whole(page, name)
        # and its times are written one way
        assert _times_written(page, "#result_list"), f"{name} shows no time"


def test_the_orders_list_shows_each_orders_kind_stop_price_and_where_it_was_placed(
    browser, live_server, make_staff, make_user, btc
):
    # given
    make_staff("sue_support", "Support")
    stop_limit = _a_busy_account(make_user, make_staff)
    page = _login(browser, live_server.url, "sue_support")

    # when
    page.goto(f"{live_server.url}/admin/orders/order/")
    _shot(page, "orders-1400-columns")

    # then the columns, in order, and the stop-limit's row written out in full
    headers = [text.strip() for text in page.locator("#result_list thead th .text").all_inner_texts()]
    assert headers == [
        "",
        "ID",
        "CREATED",
        "USER",
        "ORDER",
        "KIND",
        "LIMIT PRICE",
        "STOP PRICE",
        "STATUS",
        "EXECUTED PRICE",
        "TOTAL AMOUNT",
        "CLIENT ORDER ID",
        "VIA",
    ]
    row = page.locator(f"#result_list tr:has(a:text-is('{str(stop_limit.pk)[:8]}'))")
    cells = [text.strip() for text in row.locator("td, th").all_inner_texts()]
    assert cells[3:] == [
        "margaret_hamilton",
        "BUY 0.05 BTC",
        "stop_limit",
        "70100.25",
        "70000.5",
        "Pending",
        "-",
        "-",
        stop_limit.client_order_id,
        f"Alpaca /v2 · {stop_limit.api_key_id}",
    ]
    assert OUR_TIME.fullmatch(cells[2])
    _assert_every_column_whole(page, "orders")


def test_a_user_places_an_order_with_the_browsable_apis_form(browser, live_server, make_user, btc):
    # given alice logged in to the browsable API
    alice = make_user("alice")
    page = browser.new_context(viewport=SCREEN).new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/api-auth/login/?next=/api/v1/orders/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("#submit-id-submit, input[type=submit], button[type=submit]")
    page.wait_for_url(f"{live_server.url}/api/v1/orders/")

    # when she fills the HTML form under the list (not the raw JSON box) and posts it
    form = page.locator("#post-object-form form")
    form.locator("[name=asset_id]").fill("BTC")
    form.locator("select[name=order_type]").select_option("BUY")
    form.locator("[name=quantity]").fill("0.001")
    _shot(page, "api-01-order-form")
    form.locator("button:has-text('POST')").click()

    # then the answer is the filled order, and it is hers
    page.wait_for_selector(".response-info")
    assert "HTTP 201 Created" in page.inner_text(".response-info")
    _shot(page, "api-02-order-placed")
    order = Order.objects.get(user=alice)
    assert (order.status, order.quantity, order.asset_id) == (Order.Status.COMPLETED, Decimal("0.001"), "BTC")
    assert reconcile_ledger() == []


def test_swagger_try_it_out_works_with_the_key_pasted_as_it_is(browser, live_server, make_user):
    # given a key from auth/token/
    make_user("alice")
    page = browser.new_context(viewport=SCREEN).new_page()
    page.set_default_timeout(15_000)
    answer = page.request.post(
        f"{live_server.url}/api/v1/auth/token/", data={"username": "alice", "password": PASSWORD}
    )
    key = answer.json()["token"]

    # when it is pasted, bare, into Swagger UI's Authorize dialog and GET balance/ is tried out
    page.goto(f"{live_server.url}/api/v1/docs/")
    page.click("button.authorize")
    # (the dialog offers the README's token first, and each scheme says when to use it)
    schemes = page.locator(".auth-container")
    schemes.first.wait_for()
    names = [text.split()[0] for text in schemes.locator("h4").all_inner_texts()]
    assert names == ["tokenAuth", "apiKeyId", "apiSecretKey", "cookieAuth"]
    says = [text.lower() for text in schemes.all_inner_texts()]
    assert ["use this one" in says[0], "for programs" in says[1], "api key" in says[2], "browsable api" in says[3]] == [
        True,
        True,
        True,
        True,
    ]
    page.locator(".modal-ux-content").evaluate("element => element.scrollTo(0, 0)")
    page.locator(".modal-ux").screenshot(path=str(SCREENSHOTS / "api-03-swagger-authorize-dialog.png"))
    page.fill("#auth-bearer-value", key)
    page.click(".auth-container:has(#auth-bearer-value) button[type=submit]")
    _shot(page, "api-04-swagger-authorized")
    page.click("button.btn-done >> nth=0")
    block = page.locator(".opblock:has(.opblock-summary-path[data-path='/api/v1/balance/'])")
    block.locator(".opblock-summary").click()
    block.locator("button.try-out__btn").click()
    block.locator("button.execute").click()

    # then the live answer is alice's balance, 200
    status = block.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    _shot(page, "api-05-swagger-try-it-out")
    assert status.inner_text().strip() == "200"
    assert '"current_balance": "10000.00"' in block.locator(".live-responses-table .microlight").first.inner_text()
