"""The user page's equity chart: an inline SVG of the last week (since the account opened,
if later), drawn on the server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import time_machine
from django.urls import reverse

from assets.selectors import Timeframe, bucket_start
from balances.equity_chart import HEIGHT, PAD_BOTTOM, PAD_TOP, render_equity_chart
from balances.history import Period, PortfolioHistory
from balances.services import deposit
from core.admin import admin_time


def test_the_user_page_shows_the_equity_since_the_account_opened_as_inline_svg(support_client, make_user):
    # given dana, opened three days ago with 10,000.00, deposited 1,000.00 two days ago
    now = datetime.now(tz=UTC)
    opened = now - timedelta(days=3)
    with time_machine.travel(opened, tick=False):
        dana = make_user("dana")
    with time_machine.travel(now - timedelta(days=2), tick=False):
        deposit(user=dana, amount=Decimal("1000.00"))

    # when (at the same instant: an hour turning meanwhile would add a point)
    with time_machine.travel(now, tick=False):
        page = support_client.get(reverse("admin:auth_user_change", args=[dana.pk])).content.decode()

    # then hours from the one she opened in to this one (none before), no script and
    # nothing fetched from elsewhere
    svg = re.search(r'<svg id="equity-chart".*?</svg>', page, re.S).group(0)
    points = re.search(r'points="([^"]+)"', svg).group(1).split()
    assert len(points) == 3 * 24 + 1
    assert "<script" not in svg
    assert re.findall(r'(?:href|src)="', svg) == []
    assert f">{admin_time(bucket_start(opened, Timeframe.HOUR_1))}</text>" in svg
    assert "now <b>11000.00</b> USD, low 10000.00, high 11000.00" in page
    assert "P&amp;L <span" in page


def test_a_new_accounts_chart_is_flat_at_its_opening_deposit(support_client, make_user):
    # given carol, opened now with 10,000.00
    now = datetime.now(tz=UTC)
    with time_machine.travel(now, tick=False):
        carol = make_user("carol")

        # when
        page = support_client.get(reverse("admin:auth_user_change", args=[carol.pk])).content.decode()

    # then one bucket, drawn across, and no zero before it
    points = re.search(r'<polyline[^>]* points="([^"]+)"', page).group(1).split()
    assert len(points) == 2
    assert len({point.split(",")[1] for point in points}) == 1
    assert "now <b>10000.00</b> USD, low 10000.00, high 10000.00" in page


def test_the_line_spans_the_chart_from_the_lowest_to_the_highest_value():
    # given
    start = datetime(2026, 3, 1, tzinfo=UTC)
    history = PortfolioHistory(
        period=Period.WEEK_1,
        timeframe=Timeframe.DAY_1,
        timestamp=[start + timedelta(days=i) for i in range(3)],
        equity=[Decimal("100.00"), Decimal("50.00"), Decimal("150.00")],
        profit_loss=[Decimal("0.00"), Decimal("-50.00"), Decimal("50.00")],
        profit_loss_pct=[Decimal(0), Decimal(-50), Decimal(50)],
        cash_flow=[Decimal(0)] * 3,
        base_value=Decimal("100.00"),
    )

    # when
    svg = render_equity_chart(history, caption="three days")

    # then the low at the bottom of the plot, the high at its top
    points = [tuple(map(float, p.split(","))) for p in re.search(r'points="([^"]+)"', svg).group(1).split()]
    bottom, top = HEIGHT - PAD_BOTTOM, PAD_TOP
    assert [y for _, y in points] == [bottom - (bottom - top) / 2, bottom, top]
    assert points[0][0] < points[1][0] < points[2][0]
    assert "three days: now <b>150.00</b> USD, low 50.00, high 150.00" in svg
