"""Buy the dip, take profit: a small BTC/USD trading bot written only against alpaca-py.

Nothing in it knows about this service: pointed at Alpaca's paper trading
(APCA_API_BASE_URL=https://paper-api.alpaca.markets, with your Alpaca keys) it trades there.
Out of the box it trades against `make run`, on whatever port it serves, with the demo key and
the server's URL that `make run` writes to .data/alpaca-demo.env.

    .venv/bin/python examples/alpaca_bot.py            # runs for BOT_SECONDS (60), then tidies up

It does not poll: prices come from alpaca-py's CryptoDataStream (quotes) and its own fills from
its TradingStream, both on the server's port. A market whose price nobody asks for is quiet
(the server announces a price when it fetches one): after BOT_INTERVAL seconds without a
quote the bot asks for the latest one once, which also wakes the stream.

The strategy: watch the last price; when it falls BOT_DIP_PCT below the recent high, buy
BOT_BUDGET_USD of BTC at the market and rest a limit sell BOT_TAKE_PROFIT_PCT above the
entry (the server's order processor fills it when the market gets there, and the fill arrives
on the trading stream). If the price instead falls BOT_STOP_LOSS_PCT below the entry, cancel
the take-profit and sell. At the end it cancels what is open and closes the position, so every
trade shows in the ledger.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections import deque
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

from alpaca.common.exceptions import APIError
from alpaca.data.historical import CryptoHistoricalDataClient
from alpaca.data.live import CryptoDataStream
from alpaca.data.models import Quote
from alpaca.data.requests import CryptoLatestQuoteRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest
from alpaca.trading.stream import TradingStream

SYMBOL = os.environ.get("BOT_SYMBOL", "BTC/USD")
BUDGET = Decimal(os.environ.get("BOT_BUDGET_USD", "100"))
DIP = Decimal(os.environ.get("BOT_DIP_PCT", "0.05")) / 100
TAKE_PROFIT = Decimal(os.environ.get("BOT_TAKE_PROFIT_PCT", "0.05")) / 100
STOP_LOSS = Decimal(os.environ.get("BOT_STOP_LOSS_PCT", "0.5")) / 100
SECONDS = float(os.environ.get("BOT_SECONDS", "60"))
INTERVAL = float(os.environ.get("BOT_INTERVAL", "2"))
DEMO_ENV = Path(__file__).resolve().parent.parent / ".data" / "alpaca-demo.env"
ALPACA_PAPER = "https://paper-api.alpaca.markets"


def settings() -> tuple[str, str, str]:
    """Base URL and keys from the environment; for `make run`, the demo key and URL it wrote
    (a base URL in the environment still wins)."""
    values = dict(os.environ)
    if "APCA_API_KEY_ID" not in values and DEMO_ENV.exists():
        pairs = (line.split("=", 1) for line in DEMO_ENV.read_text().splitlines() if "=" in line)
        values = {**dict(pairs), **values}
    if "APCA_API_KEY_ID" not in values:
        sys.exit("Set APCA_API_KEY_ID and APCA_API_SECRET_KEY, or start `make run` (it writes a demo key).")
    return (
        values.get("APCA_API_BASE_URL", "http://127.0.0.1:8000"),
        values["APCA_API_KEY_ID"],
        values["APCA_API_SECRET_KEY"],
    )


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def stream_urls(base_url: str) -> tuple[str | None, str | None]:
    """Where the streams are: on Alpaca, alpaca-py's defaults; elsewhere, the base URL's host
    and port (this service serves them on the API's port)."""
    if base_url.rstrip("/") == ALPACA_PAPER:
        return None, None
    ws = "wss" + base_url[len("https") :] if base_url.startswith("https") else "ws" + base_url[len("http") :]
    ws = ws.rstrip("/")
    return f"{ws}/stream", f"{ws}/v1beta3/crypto/us"


class Events:
    """What the streams tell the bot, in one queue for its main loop: ("quote", price) and
    ("fill", TradeUpdate). Each stream runs its own event loop on a thread of its own."""

    def __init__(self, base_url: str, key_id: str, secret: str) -> None:
        self.queue: queue.Queue = queue.Queue()
        trading_url, data_url = stream_urls(base_url)
        self.trading = TradingStream(key_id, secret, paper=True, url_override=trading_url)
        self.trading.subscribe_trade_updates(self._on_trade_update)
        self.data = CryptoDataStream(key_id, secret, url_override=data_url)
        self.data.subscribe_quotes(self._on_quote, SYMBOL)
        self.threads = [
            threading.Thread(target=stream.run, name=name, daemon=True)
            for name, stream in (("trading stream", self.trading), ("data stream", self.data))
        ]

    async def _on_quote(self, quote: Quote) -> None:
        self.queue.put(("quote", Decimal(str(quote.ask_price))))

    async def _on_trade_update(self, update: TradeUpdate) -> None:
        if update.event == "fill":
            self.queue.put(("fill", update))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def next(self, timeout: float):
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            return self.queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def stop(self) -> None:
        for stream in (self.trading, self.data):
            with contextlib.suppress(AttributeError, RuntimeError, TimeoutError):  # never started, or ended
                stream.stop()


def main() -> None:
    base_url, key_id, secret = settings()
    trading = TradingClient(key_id, secret, paper=True, url_override=base_url)
    data = CryptoHistoricalDataClient(key_id, secret, url_override=base_url)

    asset = trading.get_asset(SYMBOL)
    step = Decimal(str(asset.min_trade_increment))
    account = trading.get_account()
    log(f"{SYMBOL}: cash {account.cash}, buying power {account.buying_power}, equity {account.equity}")

    recent = deque(maxlen=10)
    entry: Decimal | None = None
    take_profit_id = None
    deadline = time.monotonic() + SECONDS if SECONDS > 0 else float("inf")
    events = Events(base_url, key_id, secret)
    events.start()

    def latest_price() -> Decimal:
        quote = data.get_crypto_latest_quote(CryptoLatestQuoteRequest(symbol_or_symbols=SYMBOL))[SYMBOL]
        return Decimal(str(quote.ask_price))

    try:
        event = ("quote", latest_price())  # the price now, before the stream has any
        while True:
            if event is None:  # the stream was quiet for INTERVAL: ask once
                event = ("quote", latest_price())
            kind, value = event
            if kind == "fill" and take_profit_id is not None and value.order.id == take_profit_id:
                log(f"take-profit filled at {value.order.filled_avg_price} (entry {entry})")
                entry = take_profit_id = None
            elif kind == "quote":
                price = value
                recent.append(price)
                if entry is not None and take_profit_id is not None and price <= entry * (1 - STOP_LOSS):
                    trading.cancel_order_by_id(take_profit_id)
                    sold = trading.close_position(SYMBOL)
                    log(f"stop-loss: sold {sold.qty} at {sold.filled_avg_price} (entry {entry})")
                    entry = take_profit_id = None
                elif entry is None and price <= max(recent) * (1 - DIP):
                    qty = (BUDGET / price).quantize(step, rounding=ROUND_DOWN)
                    bought = trading.submit_order(
                        MarketOrderRequest(
                            symbol=SYMBOL, qty=float(qty), side=OrderSide.BUY, time_in_force=TimeInForce.GTC
                        )
                    )
                    entry = Decimal(bought.filled_avg_price)
                    target = (entry * (1 + TAKE_PROFIT)).quantize(Decimal("0.01"))
                    resting = trading.submit_order(
                        LimitOrderRequest(
                            symbol=SYMBOL,
                            qty=float(qty),
                            side=OrderSide.SELL,
                            time_in_force=TimeInForce.GTC,
                            limit_price=float(target),
                        )
                    )
                    take_profit_id = resting.id
                    log(f"dip: bought {bought.qty} at {entry}; take-profit at {target} ({resting.status.value})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            event = events.next(min(INTERVAL, remaining))
            if event is None and time.monotonic() >= deadline:
                break
    except KeyboardInterrupt:
        log("interrupted")
    except APIError as error:
        log(f"the API refused: {error.status_code} {error.code} {error.message}")
    finally:
        events.stop()
        closed = trading.close_all_positions(cancel_orders=True)
        for answer in closed:
            log(f"closed {answer.symbol}: {answer.status}")
        account = trading.get_account()
        log(f"done: cash {account.cash}, equity {account.equity}")


if __name__ == "__main__":
    main()
