"""No anonymous market-data caller can slow another user: the service as production runs it
(gunicorn, three sync workers, throttles counted in a Redis of the test's own), six key-less
clients asking a century of daily bars for 22 symbols in a loop, and a user's ``/balance/``
measured meanwhile. The bound comes from the design: an anonymous address gets
THROTTLE_ANON_MARKET_RATE requests a minute (60), each bounded by its ``limit``, so the
anonymous load is at most 60 pages a minute however many clients share the address."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import requests

from assets.models import Asset
from tests.faults.servers import AppServer
from tests.support.price_records import record_series
from tests.support.processes import PYTHON, ROOT, OwnRedis

SYMBOLS = [f"C{k:02d}" for k in range(22)]
LOAD_SECONDS = 12


@pytest.fixture
def redis_server():
    server = OwnRedis().start()
    yield server
    server.kill()


def balance_latencies(url: str, token: str, *, count: int | None = None, seconds: float | None = None) -> list[float]:
    """Seconds each ``GET /api/v1/balance/`` took, one after another with a short pause."""
    samples: list[float] = []
    until = time.monotonic() + (seconds or 0)
    with requests.Session() as session:
        while (count is not None and len(samples) < count) or (seconds is not None and time.monotonic() < until):
            started = time.perf_counter()
            response = session.get(f"{url}/api/v1/balance/", headers={"Authorization": f"Token {token}"}, timeout=30)
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            time.sleep(0.02)
    return samples


@pytest.mark.django_db(transaction=True)
def test_six_anonymous_clients_polling_a_century_of_bars_leave_another_users_balance_within_twice_its_idle_latency(
    make_user, redis_server
):
    # given 22 assets with a price a day since 2000, a user, and the service under gunicorn
    Asset.objects.bulk_create(
        [Asset(asset_id=a, name=a, coingecko_id=a.lower(), reference_price=Decimal(100)) for a in SYMBOLS]
    )
    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC)
    record_series(SYMBOLS, start=start, end=end, step=timedelta(days=1))
    alice = make_user("alice")
    server = AppServer(CACHE_URL=redis_server.url).start(workers=3)
    try:
        token = server.token(alice)
        query = {"symbols": ",".join(f"{a}/USD" for a in SYMBOLS), "timeframe": "1Day", "start": "2000-01-01"}
        bars_url = f"{server.url}/v1beta3/crypto/us/bars?{urlencode({**query, 'end': '2100-01-01'})}"
        balance_latencies(server.url, token, count=10)  # every worker connected and warm
        idle = balance_latencies(server.url, token, count=60)

        # when six anonymous clients ask for the bars in a loop meanwhile
        clients = subprocess.Popen(
            [PYTHON, "-m", "tests.alpaca_compat.anonymous_clients", bars_url, "6", str(LOAD_SECONDS + 2)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            loaded = balance_latencies(server.url, token, seconds=LOAD_SECONDS)
            output, _ = clients.communicate(timeout=60)
        finally:
            if clients.poll() is None:
                clients.kill()
                clients.wait(10)
        answered = json.loads(output)
    finally:
        server.stop()

    # then the clients were answered (bars, then 429 once the address's minute was spent),
    # and the user's balance stayed within twice its idle latency
    assert set(answered) == {"200", "429"}, answered
    assert 1 <= answered["200"] <= 2 * 60, answered  # a window's allowance, twice if the minute turned
    assert statistics.median(loaded) <= 2 * statistics.median(idle), (
        f"idle median {statistics.median(idle) * 1000:.1f} ms, loaded {statistics.median(loaded) * 1000:.1f} ms"
    )
