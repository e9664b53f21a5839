"""The fault suite's system: a PostgreSQL and a Redis of its own (never the machine's shared
servers), the local CoinGecko, the production server and process_orders, all real processes, which the
tests restart, kill and freeze under a bounded load of orders (docs/DESIGN.md, "Faults").

One system serves the whole suite (setting it up costs an initdb and a migrate); each test
leaves it running and healthy for the next.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import requests

from scripts.cluster.nodes import server_command
from tests.support.processes import PYTHON, ROOT, OwnPostgres, OwnRedis, free_port, python_env, wait_for

BTC_PRICE = "50000"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


class System:
    def __init__(self, coingecko) -> None:
        self.coingecko = coingecko
        self.pg = OwnPostgres().start()
        self.redis = OwnRedis().start()
        self.database_url = self.pg.create_database("portfolio")
        self.port = free_port()
        self.env = python_env(
            DATABASE_URL=self.database_url,
            CACHE_URL=self.redis.url,
            PRICE_PROVIDER="coingecko",
            COINGECKO_API_URL=coingecko.url,
            COINGECKO_TIMEOUT_SECONDS="0.5",
            COINGECKO_RETRIES="0",
            PRICE_CACHE_SECONDS="1",
            THROTTLE_USER_RATE="1000000/min",
            THROTTLE_ORDER_RATE="1000000/min",
            THROTTLE_AUTH_RATE="1000000/min",
            # The load's users serve every test: enough cash for all of their orders.
            INITIAL_USD_BALANCE="1000000.00",
        )
        self._load_users: list[tuple[str, str]] = []
        self.web_log = self.pg.root / "gunicorn.log"
        self.processor_log = self.pg.root / "process_orders.log"
        self.set_market()
        for command in (["migrate", "--no-input", "-v", "0"], ["seed_assets"]):
            self.manage(*command)
        self.web = subprocess.Popen(
            server_command(self.port, workers=2),
            cwd=ROOT,
            env={**self.env, "WEB_THREADS": "4"},
            stdout=subprocess.DEVNULL,
            stderr=self.web_log.open("a"),
        )
        self.processor = self.start_processor()
        wait_for(self._serves, timeout=60, interval=0.2, what="gunicorn to serve")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def set_market(self, btc: str = BTC_PRICE) -> None:
        self.coingecko.set_price("bitcoin", btc)
        self.coingecko.set_price("ethereum", "2500")

    def start_processor(self) -> subprocess.Popen:
        return subprocess.Popen(
            [PYTHON, "manage.py", "process_orders", "--interval", "0.2", "--max-backoff", "1"],
            cwd=ROOT,
            env=self.env,
            stdout=self.processor_log.open("a"),
            stderr=subprocess.STDOUT,
        )

    def load_users(self, count: int) -> list[tuple[str, str]]:
        """(username, token) of ``count`` users, registered once for the whole suite (a
        registration hashes a password: seconds on a busy machine)."""
        while len(self._load_users) < count:
            username = f"load-{uuid.uuid4().hex[:12]}"
            credentials = {"username": username, "password": "a-long-passphrase-42"}
            response = requests.post(f"{self.url}/auth/register/", json=credentials, timeout=30)
            assert response.status_code == 201, response.text
            self._load_users.append((username, response.json()["token"]))
        return self._load_users[:count]

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300
        )

    def _serves(self) -> bool:
        try:
            return requests.get(f"{self.url}/health/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def sql(self, query: str, *params) -> list[tuple]:
        with self.pg.connect("portfolio") as conn:
            return conn.execute(query, params).fetchall()

    def repair(self) -> None:
        if self.redis.process is None or self.redis.process.poll() is not None:
            self.redis.start()
        else:
            self.redis.thaw()
        if (self.pg.pgdata / "postmaster.pid").exists():
            self.pg.thaw(self.pg.pids())
        if not self.pg.is_ready():
            self.pg.start_again()

    def healthy(self) -> bool:
        return self.pg.is_ready() and self._serves()

    def stop(self) -> None:
        for process in (self.processor, self.web):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (self.processor, self.web):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.redis.stop()
        self.pg.destroy()


@pytest.fixture(scope="session")
def system(coingecko_http_server):
    system = System(coingecko_http_server)
    yield system
    system.stop()


@pytest.fixture
def healthy_system(system):
    """The system with its market set and everything answering, as each test expects it
    (a test that failed half-way may have left a server stopped, frozen or dead)."""
    system.set_market()
    system.repair()
    wait_for(system.healthy, timeout=30, interval=0.2, what="the system to be healthy")
    assert system.processor.poll() is None, system.processor_log.read_text()
    return system


# --- load -------------------------------------------------------------------------------


@dataclass
class Answer:
    sent: float
    received: float
    status: int  # 0: no HTTP answer at all
    code: str = ""


@dataclass
class Outcome:
    client_order_id: str
    username: str
    answers: list[Answer] = field(default_factory=list)
    order_id: str | None = None  # from the final 200/201

    @property
    def final(self) -> int:
        return self.answers[-1].status if self.answers else 0


class Load:
    """``clients`` threads, each a registered user placing orders (market BUYs and resting
    limit BUYs, a unique client_order_id each) until stopped. A 503 or a lost connection is
    retried with the same client_order_id, as a careful client would."""

    def __init__(self, system: System, clients: int = 4) -> None:
        self.system = system
        self.stopping = threading.Event()
        self.outcomes: list[Outcome] = []
        self.tokens = system.load_users(clients)
        self.prefix = uuid.uuid4().hex[:8]  # this load's client_order_ids start with it
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in self.threads), "a load client is stuck"

    def _client(self, index: int) -> None:
        username, token = self.tokens[index]
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        n = 0
        while not self.stopping.is_set():
            n += 1
            body = {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.001"}
            if n % 2 == 0:
                body["order_price"] = "45000"  # rests until the market falls to it
            outcome = Outcome(client_order_id=f"{self.prefix}-{index}-{n}", username=username)
            body["client_order_id"] = outcome.client_order_id
            self.outcomes.append(outcome)
            self._place(session, body, outcome)
            time.sleep(0.02)

    def _place(self, session: requests.Session, body: dict, outcome: Outcome) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                response = session.post(f"{self.system.url}/orders/", json=body, timeout=30)
            except requests.RequestException:
                outcome.answers.append(Answer(sent, time.monotonic(), 0))
                time.sleep(0.2)
                continue
            code = ""
            if response.status_code >= 400 and response.headers.get("Content-Type", "").startswith("application/json"):
                code = response.json().get("error", {}).get("code", "")
            outcome.answers.append(Answer(sent, time.monotonic(), response.status_code, code))
            if response.status_code in (200, 201):
                outcome.order_id = response.json()["order_id"]
                return
            if response.status_code != 503:
                return
            time.sleep(0.2)

    def answers(self) -> list[Answer]:
        return [answer for outcome in self.outcomes for answer in outcome.answers]

    def statuses(self) -> Counter:
        return Counter(answer.status for answer in self.answers())


def assert_nothing_lost_or_doubled(system: System, load: Load) -> None:
    """Every order answered 200/201 exists exactly once with that id; no client_order_id is
    stored twice; every stored order of the load was asked for."""
    rows = system.sql(
        "SELECT client_order_id, order_id::text FROM orders_order WHERE client_order_id LIKE %s",
        f"{load.prefix}-%",
    )
    stored = Counter(client_order_id for client_order_id, _ in rows)
    assert [key for key, count in stored.items() if count > 1] == []
    by_client_id = dict(rows)
    asked = {outcome.client_order_id for outcome in load.outcomes}
    assert set(by_client_id) <= asked
    for outcome in load.outcomes:
        if outcome.order_id is not None:
            assert by_client_id.get(outcome.client_order_id) == outcome.order_id, outcome


def assert_ledger_reconciles(system: System) -> None:
    result = system.manage("reconcile_ledger")
    assert result.returncode == 0, result.stdout + result.stderr


def pending_crossed_at(system: System, price: str) -> int:
    [(count,)] = system.sql(
        "SELECT count(*) FROM orders_order WHERE status = 'PENDING' AND order_type = 'BUY' AND order_price >= %s",
        Decimal(price),
    )
    return count
