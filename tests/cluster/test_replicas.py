"""Read replicas (docs/DESIGN.md, "Scaling") on a real streaming replica: history lists and changelists
are served by it, a read after a write never is, and a replica that is down is skipped."""

from __future__ import annotations

import re
import threading
import time
import uuid
from datetime import datetime
from decimal import Decimal

import pytest
import requests

from tests.cluster.conftest import DEPOSIT_SCRIPT, get

# path, table, rows of a quiet user: one market buy; cash = opening deposit, seed deposit, the buy
HISTORY = [
    ("orders/", "orders_order", 1),
    ("transactions/", "balances_assettransaction", 1),
    ("cash-transactions/", "balances_cashtransaction", 3),
]


def statement_on_replica(log: str, table: str, user_id: int) -> bool:
    return re.search(rf'statement: SELECT .*"{table}"\."user_id" = {user_id}\b', log) is not None


@pytest.mark.parametrize(("path", "table", "rows"), HISTORY)
def test_history_lists_are_served_by_the_replica(replica_cluster, path, table, rows):
    # given a user who has not written through the API (no read-your-writes pin)
    user = replica_cluster.users[0]
    on_primary = replica_cluster.primary.sql(
        f"SELECT count(*) FROM {table} WHERE user_id = %s", [user["id"]], database="portfolio"
    )[0][0]
    assert not statement_on_replica(replica_cluster.replica_log(), table, user["id"])

    # when
    response = get(replica_cluster.api(0, path), user["token"])

    # then the replica ran the query, and the answer says so
    assert response.status_code == 200
    assert response.headers["X-Served-By"] == "replica"
    assert datetime.fromisoformat(response.headers["X-Data-As-Of"]).tzinfo is not None
    assert len(response.json()["results"]) == on_primary == rows
    assert statement_on_replica(replica_cluster.replica_log(), table, user["id"])


def test_everything_else_is_read_from_the_primary(replica_cluster):
    # given
    user = replica_cluster.users[0]

    # when
    answers = {path: get(replica_cluster.api(1, path), user["token"]) for path in ("balance/", "portfolio/")}

    # then
    assert {path: (r.status_code, r.headers["X-Served-By"]) for path, r in answers.items()} == {
        "balance/": (200, "primary"),
        "portfolio/": (200, "primary"),
    }


def test_an_admin_changelist_is_served_by_the_replica(replica_cluster):
    # given a staff session made without a login request (a POST would pin the staff user)
    cookies = {"sessionid": replica_cluster.staff_session}

    # when
    response = requests.get(f"{replica_cluster.apps[0]}/admin/orders/order/", cookies=cookies, timeout=10)

    # then
    assert response.status_code == 200
    assert response.headers["X-Served-By"] == "replica"
    assert "quiet0" in response.text


def test_a_replica_whose_replay_is_paused_serves_its_stale_copy(replica_cluster):
    # given the replica stops replaying (still within REPLICA_MAX_LAG_SECONDS) and a deposit
    # commits on the primary outside any request of this user
    user = replica_cluster.users[1]
    replica_cluster.replica.sql("SELECT pg_wal_replay_pause()")
    try:
        replica_cluster.manage_shell(DEPOSIT_SCRIPT.format(user_id=user["id"], amount="7.00", ref="behind-the-back"))

        # when
        stale = get(replica_cluster.api(0, "cash-transactions/"), user["token"])
        fresh = get(replica_cluster.api(0, "balance/"), user["token"])
    finally:
        replica_cluster.replica.sql("SELECT pg_wal_replay_resume()")

    # then the list came from the replica, which has not seen the deposit; the balance did not
    assert stale.headers["X-Served-By"] == "replica"
    assert "behind-the-back" not in [row["client_reference"] for row in stale.json()["results"]]
    assert Decimal(fresh.json()["current_balance"]) == Decimal(
        replica_cluster.primary.sql(
            "SELECT current_balance FROM balances_usdbalance WHERE user_id = %s", [user["id"]], database="portfolio"
        )[0][0]
    )
    replica_cluster.caught_up()
    caught_up = get(replica_cluster.api(0, "cash-transactions/"), user["token"])
    assert caught_up.json()["results"][0]["client_reference"] == "behind-the-back"


def test_reads_after_writes_see_the_writes_under_load(replica_cluster):
    # given a replica that replays nothing while the load runs: any read after a write that
    # went to it would miss the write
    replica_cluster.replica.sql("SELECT pg_wal_replay_pause()")
    stale_reads: list[str] = []
    errors: list[str] = []
    quiet_served_by: list[str] = []
    done = threading.Event()
    rounds = 6

    def writer(number: int) -> None:
        session = requests.Session()
        try:
            name = f"rw{number}-{uuid.uuid4().hex[:8]}"
            registered = session.post(
                replica_cluster.api(number % 2, "auth/register/"),
                json={"username": name, "password": "correct-horse-battery-42"},
                timeout=10,
            )
            session.headers["Authorization"] = f"Token {registered.json()['token']}"
            for i in range(rounds):
                write_on, read_on = (i + number) % 2, (i + number + 1) % 2  # write on one app, read on the other
                ref = f"{name}-{i}"
                deposit = session.post(
                    replica_cluster.api(write_on, "balance/deposit/"),
                    json={"amount": "3.00", "client_reference": ref},
                    timeout=10,
                )
                listed = session.get(replica_cluster.api(read_on, "cash-transactions/"), timeout=10)
                if deposit.status_code != 201 or listed.status_code != 200:
                    errors.append(f"{ref}: {deposit.status_code} {listed.status_code}")
                    continue
                rows = listed.json()["results"]
                if not rows or rows[0]["client_reference"] != ref or listed.headers["X-Served-By"] != "primary":
                    stale_reads.append(f"{ref} cash-transactions via {listed.headers['X-Served-By']}")
                order = session.post(
                    replica_cluster.api(write_on, "orders/"),
                    json={"asset_id": "ETH", "order_type": "BUY", "quantity": "0.001", "client_order_id": ref},
                    timeout=10,
                ).json()
                for path in ("orders/", "transactions/"):
                    rows = session.get(replica_cluster.api(read_on, path), timeout=10).json()["results"]
                    if not rows or rows[0]["order_id"] != order["order_id"]:
                        stale_reads.append(f"{ref} {path}")
        except Exception as error:  # a thread's exception would vanish: record it for the assert
            errors.append(f"writer {number}: {error!r}")

    def quiet_reader() -> None:
        user = replica_cluster.users[2]
        while not done.is_set():
            response = get(replica_cluster.api(len(quiet_served_by) % 2, "orders/"), user["token"])
            quiet_served_by.append(response.headers.get("X-Served-By", str(response.status_code)))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    reader = threading.Thread(target=quiet_reader)
    try:
        # when
        reader.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        done.set()
        reader.join(timeout=30)
        replica_cluster.replica.sql("SELECT pg_wal_replay_resume()")

    # then every read after a write saw it, while reads of a user who wrote nothing used the replica
    assert errors == []
    assert stale_reads == []
    assert quiet_served_by
    assert set(quiet_served_by) == {"replica"}


def test_a_replica_further_behind_than_the_limit_is_skipped(replica_cluster):
    # given an instance with REPLICA_MAX_LAG_SECONDS=1 that reads a quiet user's orders from the replica
    user = replica_cluster.users[1]
    url = f"{replica_cluster.strict_app}/api/v1/orders/"
    assert get(url, user["token"]).headers["X-Served-By"] == "replica"

    # when the replica stops replaying while the primary writes, for longer than the limit
    replica_cluster.replica.sql("SELECT pg_wal_replay_pause()")
    try:
        replica_cluster.primary.sql("CREATE TABLE lag_probe (id integer)", database="portfolio")
        time.sleep(1.5)
        behind = [get(url, user["token"]) for _ in range(3)]
    finally:
        replica_cluster.replica.sql("SELECT pg_wal_replay_resume()")
        replica_cluster.primary.sql("DROP TABLE lag_probe", database="portfolio")

    # then the primary answers, and the replica serves again once it has caught up
    assert [(r.status_code, r.headers["X-Served-By"]) for r in behind] == [(200, "primary")] * 3
    replica_cluster.caught_up()
    time.sleep(0.3)  # REPLICA_CHECK_SECONDS: the next check sees it caught up
    assert get(url, user["token"]).headers["X-Served-By"] == "replica"


def test_a_replica_that_is_down_is_skipped_and_used_again_once_back(replica_cluster):
    # given
    user = replica_cluster.users[3]
    assert get(replica_cluster.api(0, "orders/"), user["token"]).headers["X-Served-By"] == "replica"

    # when the replica dies
    replica_cluster.replica.kill()
    try:
        answers = [get(replica_cluster.api(n % 2, "orders/"), user["token"]) for n in range(8)]
    finally:
        replica_cluster.replica.start()

    # then every read was answered, by the primary, and the replica serves again once back
    assert [(r.status_code, r.headers["X-Served-By"]) for r in answers] == [(200, "primary")] * 8
    replica_cluster.caught_up()
    back = [get(replica_cluster.api(n % 2, "orders/"), user["token"]).headers["X-Served-By"] for n in range(20)]
    assert back[-1] == "replica"


@pytest.mark.parametrize("path", ["/v2/orders?status=all", "/v2/account/activities"])
def test_alpaca_lists_are_served_by_the_replica(replica_cluster, path):
    # given the user's API key, sent in Alpaca's headers
    key_id, secret = replica_cluster.users[0]["key"]
    headers = {"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret}

    # when
    response = requests.get(f"{replica_cluster.apps[0]}{path}", headers=headers, timeout=10)

    # then
    assert response.status_code == 200
    assert response.headers["X-Served-By"] == "replica"
    assert len(response.json()) >= 1


# The activity feed and portfolio history are single SQL statements over the ledgers, run on the
# connection the router picks for reads; market data reads the recorded prices.
HISTORY_VIEWS = [
    ("activities/", "balances_cashtransaction"),
    ("portfolio/history/?period=1W&timeframe=1H", "balances_assettransaction"),
    ("market/bars/?asset_id=BTC&timeframe=1Min", "assets_pricerecord"),
]


@pytest.mark.parametrize(("path", "table"), HISTORY_VIEWS)
def test_activities_portfolio_history_and_market_data_are_served_by_the_replica(replica_cluster, path, table):
    # given a user who has not written through the API
    user = replica_cluster.users[0]
    before = statements_naming(replica_cluster.replica_log(), table)

    # when
    response = get(replica_cluster.api(1, path), user["token"])

    # then the replica ran the statement, and the answer says so
    assert response.status_code == 200
    assert response.headers["X-Served-By"] == "replica"
    assert statements_naming(replica_cluster.replica_log(), table) > before


def statements_naming(log: str, table: str) -> int:
    """Statements in the server log (one entry per timestamped line, SQL over several) naming a table."""
    entries = re.split(r"\n(?=\d{4}-\d\d-\d\d )", log)
    return sum(1 for entry in entries if "statement: " in entry and re.search(rf"\b{table}\b", entry))
