"""A small equity chart for the back office's user page: an inline SVG drawn on the server
from ``balances.history.get_portfolio_history``. No JavaScript and nothing fetched from a CDN,
so it renders in any browser the admin does, offline included. Coordinates are floats (they
are pixels); every figure shown as text is the exact Decimal from the history."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.utils.html import format_html
from django.utils.safestring import SafeString

from assets.selectors import Timeframe
from balances.history import Period, PortfolioHistory, get_portfolio_history
from core.admin import admin_time

WIDTH, HEIGHT = 640, 160
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 8, 8, 10, 22


def equity_chart_svg(
    *, user: AbstractBaseUser, period: Period = Period.WEEK_1, timeframe: Timeframe = Timeframe.HOUR_1
) -> SafeString:
    """The user's equity over ``period`` as an SVG line with its low, high, first and last
    values written out (two queries: the history, and for ``all`` where it starts)."""
    history = get_portfolio_history(user=user, period=period, timeframe=timeframe)
    return render_equity_chart(history, caption=f"Period {period.value}, {timeframe.value} buckets")


def render_equity_chart(history: PortfolioHistory, *, caption: str) -> SafeString:
    """The history as an SVG line from its first bucket (when the account opened, if within
    the period) to its last; one bucket is a flat line across; none, a sentence."""
    equity = history.equity
    if not equity:
        return format_html('<p class="equity-summary">{}: no history, the account opened after it.</p>', caption)
    low, high = min(equity), max(equity)
    span = float(high - low)
    inner_w, inner_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def y(value) -> float:  # a flat history is drawn across the middle
        return PAD_TOP + inner_h * ((1 - float(value - low) / span) if span else 0.5)

    drawn = equity if len(equity) > 1 else equity * 2
    points = " ".join(
        f"{PAD_LEFT + inner_w * i / (len(drawn) - 1):.1f},{y(value):.1f}" for i, value in enumerate(drawn)
    )
    first_at, last_at = admin_time(history.timestamp[0]), admin_time(history.timestamp[-1])
    change = history.profit_loss[-1]
    colour = "#2e7d32" if change >= 0 else "#c62828"
    return format_html(
        '<svg id="equity-chart" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"'
        ' role="img" aria-label="Equity from {first_at} to {last_at}: {first} to {last} USD">'
        '<rect x="0" y="0" width="{w}" height="{h}" fill="#fafafa" stroke="#ddd"/>'
        '<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'
        '<text x="{pad}" y="{label_y}" font-size="11" fill="#555">{first_at}</text>'
        '<text x="{right}" y="{label_y}" font-size="11" fill="#555" text-anchor="end">{last_at}</text>'
        "</svg>"
        '<p class="equity-summary">{caption}: now <b>{last}</b> USD, low {low}, high {high};'
        ' P&amp;L <span style="color:{colour}">{change}</span> USD (deposits and withdrawals excluded).</p>',
        w=WIDTH,
        h=HEIGHT,
        first_at=first_at,
        last_at=last_at,
        first=equity[0],
        last=equity[-1],
        colour=colour,
        points=points,
        pad=PAD_LEFT,
        right=WIDTH - PAD_RIGHT,
        label_y=HEIGHT - 6,
        caption=caption,
        low=low,
        high=high,
        change=change,
    )
