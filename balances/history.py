"""Selectors of an account's past (docs/DESIGN.md, "Ledgers"): the activity feed over both ledgers,
and the portfolio's value over time from the ledgers and the recorded price history.

Kept apart from ``balances.selectors`` (the present: balances, holdings, reconciliation)
because these read the ledgers as time series, in hand-written SQL, and are what the
Alpaca-compatible layer (``/v2/account/activities``, ``/v2/account/portfolio/history``)
exposes too: keyword-only, typed, and independent of DRF.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from assets.selectors import Timeframe, bucket_start
from balances.models import AssetTransaction, CashTransaction
from core.exceptions import InvalidRequest
from core.money import CENT, ZERO
from core.replicas import read_connection

# --- Activities ----------------------------------------------------------------------------


class ActivityType(enum.StrEnum):
    FILL = "FILL"  # a BUY or SELL fill (the asset ledger's row; its cash side is the same event)
    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"
    CASH_ADJUSTMENT = "CASH_ADJUSTMENT"  # a back-office correction of the USD balance
    ASSET_ADJUSTMENT = "ASSET_ADJUSTMENT"  # a back-office correction of a holding
    RESET = "RESET"  # an account reset: its cash row (the cash set), and a row per holding taken out
    FEE = "FEE"  # a fill's fee: a BUY's in the asset (asset ledger), a SELL's in USD (cash ledger)


# Which ledger rows each activity type is, by ledger: "A" the asset ledger, "C" the cash ledger.
_ASSET_ROWS = {
    ActivityType.FILL: ("BUY", "SELL"),
    ActivityType.ASSET_ADJUSTMENT: ("ADJUSTMENT",),
    ActivityType.RESET: ("RESET",),
    ActivityType.FEE: ("FEE",),
}
_CASH_ROWS = {
    ActivityType.DEPOSIT: ("DEPOSIT",),
    ActivityType.WITHDRAWAL: ("WITHDRAWAL",),
    ActivityType.CASH_ADJUSTMENT: ("ADJUSTMENT",),
    ActivityType.RESET: ("RESET",),
    ActivityType.FEE: ("FEE",),
}


@dataclass(frozen=True, slots=True)
class Activity:
    """One entry of the feed. USD amounts are signed as they move the cash balance."""

    activity_id: str  # "<created_at as YYYYMMDDhhmmssffffff>::<A|C><row id>": ordered and unique
    activity_type: ActivityType
    created_at: datetime
    asset_id: str | None
    side: str | None  # BUY / SELL for fills
    quantity: Decimal | None  # positive for fills; signed for asset adjustments and resets (taken out)
    price: Decimal | None  # the fill price per unit
    net_amount: Decimal | None  # USD: -cost of a buy, +proceeds of a sell, the cash movement (a reset's: new - old)
    realized_pnl: Decimal | None
    order_id: str | None
    client_reference: str | None
    note: str
    balance_after: Decimal | None  # the USD balance after a cash movement


# ASCII digits only (re.ASCII), and \Z: "$" would let a trailing newline through.
_ACTIVITY_ID = re.compile(r"(\d{20})::([AC])(\d{1,19})\Z", re.ASCII)


def _activity_id(created_at: datetime, ledger: str, row_id: int) -> str:
    return f"{created_at.astimezone(UTC):%Y%m%d%H%M%S%f}::{ledger}{row_id}"


def parse_activity_id(activity_id: str) -> tuple[datetime, str, int]:
    """(created_at, ledger, row id) of an activity id; raises InvalidRequest if it is not one."""
    match = _ACTIVITY_ID.match(activity_id)
    if match is None:
        raise InvalidRequest("Not an activity id.", details={"page_token": ["Not an activity id."]})
    stamp, ledger, row_id = match.groups()
    try:
        created_at = datetime.strptime(stamp, "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequest("Not an activity id.", details={"page_token": ["Not an activity id."]})
    return created_at, ledger, int(row_id)


_ASSET_BRANCH = """
    SELECT 'A' AS ledger, t.id, t.created_at,
           CASE t.transaction_type WHEN 'ADJUSTMENT' THEN 'ASSET_ADJUSTMENT' WHEN 'RESET' THEN 'RESET'
                WHEN 'FEE' THEN 'FEE' ELSE 'FILL' END,
           t.asset_id, CASE WHEN t.transaction_type IN ('BUY', 'SELL') THEN t.transaction_type END,
           t.quantity, t.price_per_unit,
           CASE t.transaction_type WHEN 'BUY' THEN -t.total_amount WHEN 'SELL' THEN t.total_amount END,
           t.realized_pnl, t.order_id::text, t.client_reference, t.note, NULL::numeric
    FROM balances_assettransaction t
    WHERE t.user_id = %(user_id)s AND t.status = 'COMPLETED' AND t.transaction_type = ANY(%(asset_types)s) {where}
    ORDER BY t.created_at {direction}, t.id {direction} LIMIT %(limit)s
"""
_CASH_BRANCH = """
    SELECT 'C' AS ledger, t.id, t.created_at,
           CASE WHEN t.transaction_type = 'ADJUSTMENT' THEN 'CASH_ADJUSTMENT' ELSE t.transaction_type END,
           NULL, NULL, NULL::numeric, NULL::numeric, t.amount, NULL::numeric, t.order_id::text,
           t.client_reference, t.note, t.balance_after
    FROM balances_cashtransaction t
    WHERE t.user_id = %(user_id)s AND t.transaction_type = ANY(%(cash_types)s) {where}
    ORDER BY t.created_at {direction}, t.id {direction} LIMIT %(limit)s
"""


def _keyset(ledger: str, cursor: tuple[datetime, str, int], *, newest_first: bool) -> str:
    """The rows of one ledger that come after ``cursor`` in (created_at, ledger, id) order,
    as a condition that an index on (user, created_at, id) serves."""
    _, cursor_ledger, _ = cursor
    before = "<" if newest_first else ">"
    if ledger == cursor_ledger:
        return f"AND (t.created_at, t.id) {before} (%(cursor_at)s, %(cursor_id)s)"
    # This ledger sorts before the cursor's within one instant: in the walk's direction its
    # rows of the cursor's instant are still to come, or already passed.
    still_to_come = (ledger < cursor_ledger) == newest_first
    return f"AND t.created_at {before}= %(cursor_at)s" if still_to_come else f"AND t.created_at {before} %(cursor_at)s"


def get_activities(
    *,
    user: AbstractBaseUser,
    activity_types: Sequence[ActivityType] | None = None,
    asset_ids: Sequence[str] | None = None,
    after: datetime | None = None,
    until: datetime | None = None,
    page_token: str | None = None,
    page_size: int = 50,
    newest_first: bool = True,
    reset_ledgers: str = "AC",
) -> list[Activity]:
    """One page of the user's fills and cash movements from both ledgers, newest first (or
    oldest first), in one query: a UNION ALL of two index scans, each limited to the page.

    ``after`` / ``until`` bound ``created_at`` (both exclusive); ``asset_ids`` keeps the
    rows of those assets (cash movements have none, so they drop out); ``page_token`` is the
    last activity id of the previous page; ``reset_ledgers``: a reset's rows of the asset
    ledger ("A", the holdings taken out), of the cash ledger ("C", the cash set), or both
    (Alpaca tells the two apart). Raises InvalidRequest for a malformed token."""
    types = set(activity_types or ActivityType)
    asset_rows = {**_ASSET_ROWS, ActivityType.RESET: ("RESET",) if "A" in reset_ledgers else ()}
    cash_rows = {**_CASH_ROWS, ActivityType.RESET: ("RESET",) if "C" in reset_ledgers else ()}
    asset_types = [row for kind in types for row in asset_rows.get(kind, ())]
    cash_types = [] if asset_ids else [row for kind in types for row in cash_rows.get(kind, ())]
    cursor = parse_activity_id(page_token) if page_token else None
    params: dict[str, object] = {
        "user_id": user.pk,
        "asset_types": asset_types,
        "cash_types": cash_types,
        "limit": page_size,
    }
    common = []
    if after is not None:
        common.append("AND t.created_at > %(after)s")
        params["after"] = after
    if until is not None:
        common.append("AND t.created_at < %(until)s")
        params["until"] = until
    if cursor is not None:
        params.update(cursor_at=cursor[0], cursor_id=cursor[2])
    direction = "DESC" if newest_first else "ASC"
    branches = []
    for ledger, template, kinds in (("A", _ASSET_BRANCH, asset_types), ("C", _CASH_BRANCH, cash_types)):
        if not kinds:
            continue
        where = list(common)
        if ledger == "A" and asset_ids:
            where.append("AND t.asset_id = ANY(%(asset_ids)s)")
            params["asset_ids"] = list(asset_ids)
        if cursor is not None:
            where.append(_keyset(ledger, cursor, newest_first=newest_first))
        branches.append(f"({template.format(where=' '.join(where), direction=direction)})")
    if not branches:
        return []
    union = " UNION ALL ".join(branches)
    sql = f"SELECT * FROM ({union}) AS feed ORDER BY 3 {direction}, 1 {direction}, 2 {direction} LIMIT %(limit)s"
    with read_connection(CashTransaction).cursor() as db:
        db.execute(sql, params)
        rows = db.fetchall()
    return [Activity(_activity_id(row[2], row[0], row[1]), ActivityType(row[3]), row[2], *row[4:]) for row in rows]


# --- Portfolio history -----------------------------------------------------------------


class Period(enum.Enum):
    DAY_1 = "1D"
    WEEK_1 = "1W"
    MONTH_1 = "1M"
    MONTH_3 = "3M"
    YEAR_1 = "1A"
    ALL = "all"

    @property
    def length(self) -> timedelta | None:
        """How far back the history reaches; None for ``all`` (from the first ledger row)."""
        return _PERIOD_LENGTHS.get(self)

    @property
    def default_timeframe(self) -> Timeframe:
        """As Alpaca: minutes within a day, quarter hours within a week, days beyond."""
        if self is Period.DAY_1:
            return Timeframe.MIN_1
        if self is Period.WEEK_1:
            return Timeframe.MIN_15
        return Timeframe.DAY_1


_PERIOD_LENGTHS = {
    Period.DAY_1: timedelta(days=1),
    Period.WEEK_1: timedelta(days=7),
    Period.MONTH_1: timedelta(days=30),
    Period.MONTH_3: timedelta(days=90),
    Period.YEAR_1: timedelta(days=365),
}
MAX_POINTS = 10_080  # a week of minutes


@dataclass(frozen=True)
class PortfolioHistory:
    """The portfolio's value at the close of each bucket (``timestamp`` is the bucket's
    start): cash then plus each holding then at the last price recorded before the close,
    each holding rounded to the cent (half even) as ``calculate_portfolio_value`` does.

    The history starts when the account does, and starts over when it is reset: an account
    opened or reset within the period has no buckets before the one it opened (or was last
    reset) in (none at all when that was after the period). The account opens with its
    first ledger row (the opening deposit), or, while it has none, when its USD balance was
    created; a reset at its ``AccountReset.created_at``, stamped after every row it wrote.

    ``base_value`` is the value when the history starts: when the first bucket opens, or,
    for an account opened or reset within the period, just after that (every row up to that
    instant, holdings at the last price recorded by then: after a reset, its cash).
    ``profit_loss`` is the change since then less the net cash deposited, withdrawn or
    adjusted since then (so money moved in is not profit); ``profit_loss_pct`` is that over
    base_value plus the net cash moved in, in percent, None when that is not positive."""

    period: Period
    timeframe: Timeframe
    timestamp: list[datetime]
    equity: list[Decimal]
    profit_loss: list[Decimal]
    profit_loss_pct: list[Decimal | None]
    cash_flow: list[Decimal]  # net deposits, withdrawals and cash adjustments since the start
    base_value: Decimal


# When the account's history starts: its latest reset before the history's end (stamped
# after every row the reset wrote; a history that ends before a reset is the one before
# it); else when it opened: its first ledger row (the opening deposit), or, while it has
# none, when its USD balance was created; NULL for a user without any. Four index probes
# (the resets' and each ledger's (user, created_at) index, the balance's user key).
_OPENED_AT = """
    coalesce(
        (SELECT max(created_at) FROM balances_accountreset WHERE user_id = %(user_id)s AND created_at < %(end)s),
        least(
            (SELECT min(created_at) FROM balances_cashtransaction WHERE user_id = %(user_id)s),
            (SELECT min(created_at) FROM balances_assettransaction WHERE user_id = %(user_id)s AND status = 'COMPLETED')
        ),
        (SELECT created_at FROM balances_usdbalance WHERE user_id = %(user_id)s)
    )
"""
_OPENED_AT_SQL = f"SELECT {_OPENED_AT}"

# Half even to the cent per holding (v its exact value, r round(v, 2)): round() breaks ties
# away from zero, so a tie (v exactly half a cent from r) that landed on an odd cent steps
# back towards zero.
_HALF_EVEN = "CASE WHEN abs(v - r) = 0.005 AND mod(r, 0.02) <> 0 THEN r - sign(v) * 0.01 ELSE r END"

# One statement: the bucket closes from generate_series; cash and quantities per bucket from
# the ledgers (one grouped scan of the user's rows each) accumulated by window sums; then
# each non-zero holding at each close valued at the last price recorded before it, rounded
# half even to the cent per holding. The first bucket (b0 - step) closes when the period
# opens: its value is base_value. Two ways to find those prices (_PRICES_BY_PROBE,
# _PRICES_BY_SCAN) share the ledger part before them and the totals after them. The base's
# row also carries when the history starts (the account opened, or was last reset), its
# value just after (every row up to that instant, at the prices recorded by then) and the
# cash moved in within the period up to then: the history of an account opened or reset
# within the period starts there (get_portfolio_history). Only that row: the same three
# values on every row cost 10 ms in 1,440 (measured).
_LEDGER_SQL = f"""
WITH opened AS (
    SELECT {_OPENED_AT} AS at
),
-- Every row up to the opening instant (the opening deposit, or everything up to and with a
-- reset): its cash, the cash moved in from the period's start to then (in the base, not in
-- cash_flow), and its holdings at the last price recorded by then. Read only when the
-- history starts within the period (o.at >= first); otherwise nothing is scanned.
opening AS (
    SELECT o.at,
           coalesce((
               SELECT sum(c.amount) FROM balances_cashtransaction c
               WHERE c.user_id = %(user_id)s AND c.created_at <= o.at AND o.at >= %(first)s
           ), 0) AS cash,
           coalesce((
               SELECT sum(c.amount) FROM balances_cashtransaction c
               WHERE c.user_id = %(user_id)s AND c.created_at <= o.at AND c.created_at >= %(first)s
                     AND c.transaction_type IN ('DEPOSIT', 'WITHDRAWAL', 'ADJUSTMENT')
           ), 0) AS flow
    FROM opened o
),
opening_market AS (
    SELECT coalesce(sum({_HALF_EVEN}), 0) AS value
    FROM (
        SELECT h.quantity * p.price AS v, round(h.quantity * p.price, 2) AS r
        FROM opened o
        CROSS JOIN LATERAL (
            SELECT t.asset_id,
                   sum(CASE WHEN t.transaction_type = 'SELL' THEN -t.quantity ELSE t.quantity END) AS quantity
            FROM balances_assettransaction t
            WHERE t.user_id = %(user_id)s AND t.status = 'COMPLETED' AND t.created_at <= o.at
                  AND o.at >= %(first)s
            GROUP BY t.asset_id
        ) h
        CROSS JOIN LATERAL (
            SELECT r.price FROM assets_pricerecord r
            WHERE r.asset_id = h.asset_id AND r.as_of <= o.at
            ORDER BY r.as_of DESC LIMIT 1
        ) p
        WHERE h.quantity <> 0
    ) held_at_opening
),
buckets AS (
    -- An integer series, not a timestamp one: PostgreSQL knows how many rows it makes.
    SELECT %(first)s::timestamptz + i * %(step)s AS b, %(first)s::timestamptz + (i + 1) * %(step)s AS closes
    FROM generate_series(-1, %(points)s - 1) AS i
),
cash AS (
    SELECT date_bin(%(step)s, created_at, %(first)s) AS b, sum(amount) AS amount,
           coalesce(sum(amount) FILTER (WHERE transaction_type IN ('DEPOSIT', 'WITHDRAWAL', 'ADJUSTMENT')), 0) AS flow
    FROM balances_cashtransaction
    WHERE user_id = %(user_id)s AND created_at >= %(first)s AND created_at < %(end)s
    GROUP BY 1
),
opening_cash AS (
    SELECT coalesce(sum(amount), 0) AS amount FROM balances_cashtransaction
    WHERE user_id = %(user_id)s AND created_at < %(first)s
),
-- Every row before the period falls in the bucket before it (the base), so one running sum
-- per asset over the buckets gives the quantity at each close. Materialized: read per asset.
moves AS MATERIALIZED (
    SELECT asset_id, greatest(date_bin(%(step)s, created_at, %(first)s), %(first)s::timestamptz - %(step)s) AS b,
           sum(CASE WHEN transaction_type = 'SELL' THEN -quantity ELSE quantity END) AS quantity
    FROM balances_assettransaction
    WHERE user_id = %(user_id)s AND status = 'COMPLETED' AND created_at < %(end)s
    GROUP BY 1, 2
),
held AS (
    SELECT DISTINCT asset_id FROM moves
),
"""

# Long buckets: each (bucket, held asset) probes the price index for the last record before
# the close, one index descent per point, whatever the records in between.
_PRICES_BY_PROBE = """
holdings AS (
    SELECT k.b, k.closes, a.asset_id,
           sum(coalesce(m.quantity, 0)) OVER (PARTITION BY a.asset_id ORDER BY k.b) AS quantity
    FROM buckets k
    CROSS JOIN held a
    LEFT JOIN moves m ON m.asset_id = a.asset_id AND m.b = k.b
),
valued AS MATERIALIZED (
    SELECT h.b, h.quantity * p.price AS v, round(h.quantity * p.price, 2) AS r
    FROM holdings h
    CROSS JOIN LATERAL (
        SELECT r.price FROM assets_pricerecord r
        WHERE r.asset_id = h.asset_id AND r.as_of < h.closes
        ORDER BY r.as_of DESC LIMIT 1
    ) p
    WHERE h.quantity <> 0
),
"""

# Short buckets, where a probe per point costs more than reading every record: per held
# asset, one range scan of its records in the period keeps the last of each bucket, one
# probe finds the last before the period (the base's), and buckets without a record carry
# the last known price forward: count(price) numbers each run of buckets that starts with a
# priced one, and first_value takes that price across the run.
_PRICES_BY_SCAN = """
valued AS MATERIALIZED (
    SELECT h.b, h.quantity * h.price AS v, round(h.quantity * h.price, 2) AS r
    FROM held a
    CROSS JOIN LATERAL (
        SELECT b, quantity, first_value(price) OVER (PARTITION BY run ORDER BY b) AS price
        FROM (
            SELECT k.b, p.price, sum(coalesce(m.quantity, 0)) OVER w AS quantity, count(p.price) OVER w AS run
            FROM buckets k
            LEFT JOIN moves m ON m.asset_id = a.asset_id AND m.b = k.b
            LEFT JOIN (
                SELECT %(first)s::timestamptz - %(step)s AS b, (
                    SELECT r.price FROM assets_pricerecord r
                    WHERE r.asset_id = a.asset_id AND r.as_of < %(first)s
                    ORDER BY r.as_of DESC LIMIT 1
                ) AS price
                UNION ALL
                (
                    SELECT DISTINCT ON (1) date_bin(%(step)s, r.as_of, %(first)s), r.price
                    FROM assets_pricerecord r
                    WHERE r.asset_id = a.asset_id AND r.as_of >= %(first)s AND r.as_of < %(end)s
                    ORDER BY 1, r.as_of DESC
                )
            ) p ON p.b = k.b
            WINDOW w AS (ORDER BY k.b)
        ) running
    ) h
    WHERE h.quantity <> 0 AND h.price IS NOT NULL
),
"""

# Half even to the cent per holding (_HALF_EVEN). valued is materialized so that v and r
# are computed once per row, not once per use here.
_TOTALS_SQL = f"""
market AS (
    SELECT b, sum({_HALF_EVEN}) AS value
    FROM valued GROUP BY b
)
SELECT o.amount + sum(coalesce(c.amount, 0)) OVER w + coalesce(m.value, 0) AS equity,
       sum(coalesce(c.flow, 0)) OVER w AS flow,
       s.at AS opened_at, s.value AS opening_value, s.flow AS opening_flow
FROM buckets k CROSS JOIN opening_cash o
LEFT JOIN (
    SELECT %(first)s::timestamptz - %(step)s AS b, a.at, a.cash + v.value AS value, a.flow
    FROM opening a CROSS JOIN opening_market v
) s ON s.b = k.b
LEFT JOIN cash c ON c.b = k.b
LEFT JOIN market m ON m.b = k.b
WINDOW w AS (ORDER BY k.b)
ORDER BY k.b
"""
HISTORY_BY_PROBE_SQL = _LEDGER_SQL + _PRICES_BY_PROBE + _TOTALS_SQL
HISTORY_BY_SCAN_SQL = _LEDGER_SQL + _PRICES_BY_SCAN + _TOTALS_SQL
# Measured on 30 days of minute records (docs/PERFORMANCE.md): the scan wins clearly at one
# record per bucket, breaks even near five, and loses beyond.
SCAN_MAX_RECORDS_PER_BUCKET = 5


def history_sql(timeframe: Timeframe) -> str:
    """The history statement for ``timeframe``'s buckets: scan the price records when a
    bucket holds few of them (at most one per PRICE_RECORD_SECONDS), probe otherwise."""
    records = timeframe.step.total_seconds() / settings.PRICE_RECORD_SECONDS
    return HISTORY_BY_SCAN_SQL if records <= SCAN_MAX_RECORDS_PER_BUCKET else HISTORY_BY_PROBE_SQL


_PCT = Decimal("0.0001")


def history_range(
    *, user: AbstractBaseUser, period: Period, timeframe: Timeframe, end: datetime | None = None
) -> tuple[datetime, datetime]:
    """The first and last bucket starts of a history; raises InvalidRequest when it would
    have more than MAX_POINTS points."""
    end = end or timezone.now()
    step = timeframe.step
    last = bucket_start(end, timeframe)
    if period.length is None:
        with read_connection(CashTransaction).cursor() as db:
            db.execute(_OPENED_AT_SQL, {"user_id": user.pk, "end": last + step})
            (opened_at,) = db.fetchone()
        first = bucket_start(min(opened_at or end, end), timeframe)
    else:
        points = max(1, period.length // step)
        first = last - step * (points - 1)
    if (last - first) // step + 1 > MAX_POINTS:
        raise InvalidRequest(
            f"That is more than {MAX_POINTS} points: choose a longer timeframe or a shorter period.",
            details={"timeframe": [f"More than {MAX_POINTS} points for this period."]},
        )
    return first, last


def get_portfolio_history(
    *,
    user: AbstractBaseUser,
    period: Period = Period.MONTH_1,
    timeframe: Timeframe | None = None,
    end: datetime | None = None,
) -> PortfolioHistory:
    """The user's portfolio value over ``period`` in ``timeframe`` buckets up to ``end``
    (default now), from the ledgers and the recorded prices, from when the account opened
    or was last reset if that is later; see ``PortfolioHistory``. Two queries at most (when
    the history starts, for ``all``; the history). Raises InvalidRequest for more than
    MAX_POINTS points."""
    timeframe = timeframe or period.default_timeframe
    first, last = history_range(user=user, period=period, timeframe=timeframe, end=end)
    params = {
        "user_id": user.pk,
        "step": timeframe.step,
        "first": first,
        "points": (last - first) // timeframe.step + 1,
        "end": last + timeframe.step,
    }
    database = read_connection(AssetTransaction)
    # JIT off for this statement: PostgreSQL cannot foresee how few assets a user holds, and
    # on its estimate it spent 0.1 to 4 s compiling a query that runs in milliseconds. SET
    # LOCAL ends with the transaction, so nothing leaks to a pooled (PgBouncer) connection.
    with transaction.atomic(using=database.alias), database.cursor() as db:
        db.execute("SET LOCAL jit = off")
        db.execute(history_sql(timeframe), params)
        rows = db.fetchall()
    # Every term is whole cents already (the ledgers', and the rounded holdings'):
    # quantizing only trims the scale PostgreSQL's arithmetic left. One row per bucket in
    # order, the base first: the bucket starts are computed here, not parsed from the rows.
    (base_value, _, opened_at, opening_value, opening_flow), points = rows[0], rows[1:]
    flow_before = ZERO  # cash moved in before the history starts: in base_value, not flow
    if opened_at is not None and opened_at >= first:
        # Opened (or reset) within the period: no bucket before the one it opened in, and
        # the base is its value just after it opened.
        skipped = min((opened_at - first) // timeframe.step, len(points))
        first += skipped * timeframe.step
        points = points[skipped:]
        base_value, flow_before = (opening_value, opening_flow) if points else (ZERO, ZERO)
    base_value = base_value.quantize(CENT)
    timestamps, equity, profit_loss, pct, flows = [], [], [], [], []
    for i, (value, flow, *_) in enumerate(points):
        value, flow = value.quantize(CENT), (flow - flow_before).quantize(CENT)
        pnl = value - base_value - flow
        invested = base_value + flow
        timestamps.append(first + i * timeframe.step)
        equity.append(value)
        profit_loss.append(pnl)
        pct.append((pnl * 100 / invested).quantize(_PCT) if invested > ZERO else None)
        flows.append(flow)
    return PortfolioHistory(period, timeframe, timestamps, equity, profit_loss, pct, flows, base_value)
