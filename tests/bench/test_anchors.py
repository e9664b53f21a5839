"""make bench's pgbench anchors (scripts/bench/anchors.py) run as the bench runs them, with the
prepared protocol, and do the work they stand for: each transaction of the service anchor is
one whole market order (order, both ledger rows, balances that reconcile), each of the lean
anchor one lean buy. Without this the anchors were first run by a full `make bench`."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from decimal import Decimal as D

import pytest
from django.db import connection
from django.utils import timezone

from accounts.services import issue_token
from assets.prices import Quote
from balances.models import UsdBalance
from balances.services import deposit
from orders.models import Order
from orders.selectors import reconcile_ledger
from tests.support.processes import ROOT

sys.path.insert(0, str(ROOT / "scripts" / "bench"))
import anchors
from anchors import LEAN_SCRIPT, capture_market_order, create_lean_tables, find_pgbench, service_script

pytestmark = pytest.mark.django_db(transaction=True)

TRANSACTIONS = 5
COST = D("5.00")  # pgbench's -D cost of the lean buy: 0.0001 at 50,000


def _pgbench(script: str, *, uid: int, **extra) -> None:
    """``TRANSACTIONS`` transactions of ``script`` on the test database, as make bench sends them."""
    params = connection.get_connection_params()
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as file:
        file.write(script)
        file.flush()
        defines = {"minuid": uid, "maxuid": uid, "asset": "BTC", "qty": "0.0001", "price": "50000", "cost": COST}
        defines.update(extra)
        command = [find_pgbench(), "-n", "-M", "prepared", "-c", "1", "-t", str(TRANSACTIONS), "-f", file.name]
        command += [arg for name, value in defines.items() for arg in ("-D", f"{name}={value}")]
        command += ["-h", str(params.get("host") or ""), "-p", str(params.get("port") or 5432)]
        command += ["-U", params["user"], params["dbname"]]
        env = {"PGPASSWORD": str(params.get("password") or "")}
        finished = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert finished.returncode == 0, finished.stderr
    assert "number of failed transactions: 0" in finished.stdout, finished.stdout


def test_each_transaction_of_the_service_anchor_is_one_whole_market_order(user, btc, set_price):
    # given the statements of a real order, captured as make bench captures them
    set_price("BTC", "50000")
    deposit(user=user, amount=D("1000.00"))
    before = UsdBalance.objects.get(user=user).current_balance
    token = issue_token(user=user).key
    status, statements = capture_market_order(
        token=token, body='{"asset_id": "BTC", "order_type": "BUY", "quantity": "0.0001"}'
    )
    assert status == 201
    script = service_script(statements, user_id=user.pk, token=token)

    # when pgbench sends them, prepared
    _pgbench(script, uid=user.pk)

    # then each transaction placed, filled and booked one more order, and the ledgers explain it all
    orders = Order.objects.filter(user=user, status=Order.Status.COMPLETED)
    assert orders.count() == 2 + TRANSACTIONS  # the capture's warm-up and captured orders, then pgbench's
    assert UsdBalance.objects.get(user=user).current_balance == before - sum(o.total_amount for o in orders)
    assert reconcile_ledger() == []


def test_each_transaction_of_the_lean_anchor_is_one_lean_buy(user):
    # given
    with connection.cursor() as cursor:
        create_lean_tables(cursor, user_ids=range(user.pk, user.pk + 1), balance="100.00")
    try:
        # when
        _pgbench(LEAN_SCRIPT, uid=user.pk)

        # then
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT array_agg(DISTINCT asset_id) FROM lean_order), (SELECT balance FROM lean_usd)"
            )
            assert cursor.fetchone() == (["BTC"], D("100.00") - TRANSACTIONS * COST)
            cursor.execute("SELECT count(*), sum(quantity) FROM lean_asset_tx")
            assert cursor.fetchone() == (TRANSACTIONS, TRANSACTIONS * D("0.0001"))
            cursor.execute("SELECT count(*), sum(amount) FROM lean_cash")
            assert cursor.fetchone() == (TRANSACTIONS, -TRANSACTIONS * COST)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE lean_asset_tx, lean_cash, lean_order, lean_holding, lean_usd")


def test_each_transaction_of_the_fill_anchor_fills_one_resting_order_as_process_orders_does(user, btc):
    # given the anchor's resting BUYs (1 at 50, holding 50.00 each: g = 0 to 5), and the
    # statements of a real fill of order 0 at 40, captured as make bench captures them
    deposit(user=user, amount=D("1000.00"))
    with connection.cursor() as cursor:
        orders = {"base": 0, "clients": 1, "first_user": user.pk, "users": 1, "asset_id": "BTC"}
        cursor.execute(anchors.fill_anchor_orders_sql(per_client=TRANSACTIONS + 1, first=0, **orders))
        cursor.execute("SELECT md5('0')::uuid")
        (first,) = cursor.fetchone()
    quote = Quote(asset_id="BTC", price=D("40"), as_of=timezone.now(), source="bench")
    captured = anchors.capture_resting_fill(order_id=first, quote=quote)
    script = anchors.fill_script(captured, user_id=user.pk, order_id=first)

    # when pgbench sends them, prepared, for the client's orders 1 to 5
    _pgbench(script, uid=user.pk, k=0, base=0, nusers=1)

    # then each transaction filled one order at 40, and the ledgers explain it all
    filled = Order.objects.filter(user=user, status=Order.Status.COMPLETED)
    assert (filled.count(), {o.total_amount for o in filled}) == (TRANSACTIONS + 1, {D("40.00")})
    balance = UsdBalance.objects.get(user=user)
    assert (balance.current_balance, balance.held) == (D("11000.00") - (TRANSACTIONS + 1) * D("40.00"), D("0.00"))
    assert reconcile_ledger() == []
