"""The example bot (examples/alpaca_bot.py), run for real against a live server with the
streams: prices from CryptoDataStream, its take-profit's fill from TradingStream."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command

from orders.models import Order
from orders.selectors import reconcile_ledger
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

BOT = Path(__file__).resolve().parents[3] / "examples" / "alpaca_bot.py"


class Bot:
    """The bot in a process of its own, its output read line by line as it comes."""

    def __init__(self, streams, key: str, secret: str, **env: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(BOT)],
            env={
                **os.environ,
                "APCA_API_BASE_URL": f"http://127.0.0.1:{streams.port}",
                "APCA_API_KEY_ID": key,
                "APCA_API_SECRET_KEY": secret,
                **env,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(pipe, into), daemon=True)
            for pipe, into in ((self.process.stdout, self.lines), (self.process.stderr, self.errors))
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(pipe, into: list[str]) -> None:
        for line in pipe:
            into.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def finish(self) -> str:
        self.process.wait(timeout=60)
        for reader in self.readers:
            reader.join(timeout=5)
        err = "".join(self.errors)
        assert self.process.returncode == 0, "".join(self.lines) + err
        assert "Traceback" not in err, err  # the streams too stopped cleanly
        return "".join(self.lines)


def test_the_example_bot_trades_and_tidies_up(streams, user, make_key, btc, set_price):
    # given: a flat market, so the bot buys at once and its take-profit never fills
    set_price("BTC", "50000")
    key, secret = make_key(user)
    # when
    output = Bot(streams, key, secret, BOT_SECONDS="1", BOT_INTERVAL="0.2", BOT_DIP_PCT="0").finish()
    # then: bought 100 USD worth, rested a take-profit, cancelled it and sold at the end
    assert "dip: bought 0.002 at 50000; take-profit at 50025.00 (accepted)" in output
    orders = list(
        Order.objects.filter(user=user)
        .order_by("created_at")
        .values_list("order_type", "order_price", "status", "total_amount", "placed_via")
    )
    assert orders == [
        ("BUY", None, "COMPLETED", Decimal("100.00"), "alpaca"),
        ("SELL", Decimal("50025.00"), "CANCELLED", None, "alpaca"),
        ("SELL", None, "COMPLETED", Decimal("100.00"), "alpaca"),
    ]
    assert "done: cash 10000.00, equity 10000.00" in output
    assert reconcile_ledger() == []


def test_the_example_bot_hears_its_take_profit_fill_on_the_trading_stream(streams, user, make_key, btc, set_price):
    # given: the bot has bought and rests its take-profit
    set_price("BTC", "50000")
    key, secret = make_key(user)
    bot = Bot(streams, key, secret, BOT_SECONDS="4", BOT_INTERVAL="0.5", BOT_DIP_PCT="0")
    wait_for(lambda: bot.said("take-profit at 50025.00"), timeout=30, what="the bot to buy")
    wait_for(lambda: streams.trade_listeners(user.pk) == 1, timeout=10, what="the bot's trading stream")
    # when: the market rises through it and the order processor fills it
    set_price("BTC", "50100")
    call_command("process_orders", "--once", stdout=open(os.devnull, "w"))  # noqa: SIM115
    output = bot.finish()
    # then: the fill reached the bot through its stream (and it bought the next dip again)
    take_profit = Order.objects.get(user=user, order_type="SELL", order_price=Decimal("50025.00"))
    assert take_profit.status == "COMPLETED"
    assert "take-profit filled at 50100 (entry 50000)" in output, output
    assert "dip: bought 0.001996 at 50100" in output, output
    assert reconcile_ledger() == []
