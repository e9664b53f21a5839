"""core.postgresql's prepared cursor: the statements of every market order and portfolio read
are planned once per connection, and behind PgBouncer in transaction pooling nothing is prepared."""

from decimal import Decimal as D

import pytest
from django.db import connection

from balances.services import deposit
from orders.models import Order

pytestmark = pytest.mark.django_db(transaction=True)

ORDER = {"asset_id": "BTC", "order_type": "BUY", "quantity": "0.01"}


def _runs_of_prepared_statements() -> dict[str, int]:
    """This connection's prepared statements, named by what they do, with how often each ran."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        rows = cursor.fetchall()
    names = {
        "WITH debit AS": "market buy",
        'FROM "authtoken_token"': "token lookup",
        "FROM balances_assetbalance b JOIN assets_asset": "holdings",
        "FROM assets_lastgoodprice": "last good prices",
    }

    def name_of(statement: str) -> str:
        return next((name for text, name in names.items() if text in statement), statement)

    return {name_of(statement): runs for statement, runs in rows}


@pytest.fixture
def funded(user, btc, set_price):
    set_price("BTC", "50000")
    deposit(user=user, amount=D("10000.00"))
    # prepare_threshold is set when a connection opens: each test starts on a new one
    connection.close()
    yield
    connection.close()


def test_the_statements_of_every_order_and_portfolio_are_planned_once_per_connection(funded, auth_client, user):
    # when three orders go through the whole stack on one connection
    for _ in range(3):
        response = auth_client.post("/api/v1/orders/", ORDER, format="json")
        assert response.status_code == 201, response.content

    # and the portfolio is read twice
    for _ in range(2):
        assert auth_client.get("/api/v1/portfolio/").status_code == 200

    # then each statement was prepared once and run each time
    assert _runs_of_prepared_statements() == {"market buy": 3, "token lookup": 5, "holdings": 2, "last good prices": 5}
    assert Order.objects.filter(user=user, status=Order.Status.COMPLETED).count() == 3


def test_behind_pgbouncer_in_transaction_pooling_nothing_is_prepared(funded, settings, auth_client, user):
    # given a prepared statement would be left on one server connection and looked for on another
    settings.DATABASE_POOLING = "transaction"
    connection.close()

    # when
    for _ in range(2):
        response = auth_client.post("/api/v1/orders/", ORDER, format="json")
        assert response.status_code == 201, response.content

    # then the parameters are still bound on the server, and nothing is prepared
    assert _runs_of_prepared_statements() == {}
    assert Order.objects.filter(user=user, status=Order.Status.COMPLETED).count() == 2


def test_a_long_statement_binds_each_calls_own_values_though_its_conversion_is_kept(db):
    # given a statement over psycopg's 4 KB conversion cache, with named placeholders used
    # more than once (as the settlement statements have)
    padding = " ".join(f"%(a)s::int AS c{n}," for n in range(400))
    sql = f"SELECT {padding} %(b)s::text AS last, %(a)s::int + 1 AS next"
    assert len(sql) > 4096
    # when it runs twice on the prepared cursor with different values
    rows = []
    for a, b in ((1, "one"), (2, "two")):
        with connection.prepared_cursor() as cursor:
            cursor.execute(sql, {"a": a, "b": b})
            rows.append(cursor.fetchone())
    # then each run answered its own values
    assert (rows[0][0], *rows[0][-2:]) == (1, "one", 2)
    assert (rows[1][0], *rows[1][-2:]) == (2, "two", 3)
