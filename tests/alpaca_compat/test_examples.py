"""The example bot and the demo key it uses out of the box, run for real."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path

from django.core.management import call_command
from rest_framework.test import APIClient

from alpaca_compat.management.commands import alpaca_demo_key
from orders.models import Order

BOT = Path(__file__).resolve().parents[2] / "examples" / "alpaca_bot.py"


def _env_file_values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_the_demo_key_command_writes_a_key_pair_that_authenticates(db, tmp_path, monkeypatch):
    # given
    env_file = tmp_path / "alpaca-demo.env"
    monkeypatch.setattr(alpaca_demo_key, "ENV_FILE", env_file)

    # when: twice, as every `make run` does
    call_command("alpaca_demo_key", stdout=StringIO())
    first = env_file.read_text()
    call_command("alpaca_demo_key", stdout=StringIO())

    # then
    assert env_file.read_text() == first
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    values = _env_file_values(env_file)
    client = APIClient(
        HTTP_APCA_API_KEY_ID=values["APCA_API_KEY_ID"], HTTP_APCA_API_SECRET_KEY=values["APCA_API_SECRET_KEY"]
    )
    account = client.get("/v2/account").json()
    assert (account["status"], account["cash"]) == ("ACTIVE", "10000.00")


def test_the_demo_key_file_names_the_server_make_run_serves_on(db, tmp_path, monkeypatch):
    # given
    env_file = tmp_path / "alpaca-demo.env"
    monkeypatch.setattr(alpaca_demo_key, "ENV_FILE", env_file)

    # when: make run on port 8765 writes it, then the command is run by hand without a URL
    call_command("alpaca_demo_key", base_url="http://127.0.0.1:8765", stdout=StringIO())
    first = _env_file_values(env_file)
    call_command("alpaca_demo_key", stdout=StringIO())

    # then: the URL the example bot reads is make run's, and stays so
    assert first["APCA_API_BASE_URL"] == "http://127.0.0.1:8765"
    assert _env_file_values(env_file) == first


def test_the_example_bot_trades_and_tidies_up(live_server, credentials, user, btc, set_price, ledger_reconciles):
    # given: a flat market, so the bot buys at once and its take-profit never fills
    set_price("BTC", "50000")
    key_id, secret = credentials
    env = {
        **os.environ,
        "APCA_API_BASE_URL": live_server.url,
        "APCA_API_KEY_ID": key_id,
        "APCA_API_SECRET_KEY": secret,
        "BOT_SECONDS": "1",
        "BOT_INTERVAL": "0.2",
        "BOT_DIP_PCT": "0",
    }

    # when
    run = subprocess.run([sys.executable, str(BOT)], env=env, capture_output=True, text=True, timeout=60)

    # then: bought 100 USD worth, rested a take-profit, cancelled it and sold at the end
    assert run.returncode == 0, run.stdout + run.stderr
    assert "dip: bought 0.002 at 50000; take-profit at 50025.00 (accepted)" in run.stdout
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
    assert "done: cash 10000.00, equity 10000.00" in run.stdout
    ledger_reconciles()
