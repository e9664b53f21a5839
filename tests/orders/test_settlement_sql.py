"""The raw INSERTs of the settlement's statements (the bench's pgbench anchors are captured
from them at run time) name every column of their table: Django's field defaults are applied by the ORM,
not by PostgreSQL, so a raw INSERT that missed a new NOT NULL column would fail only at the
first fill, or store NULL."""

from __future__ import annotations

import re

import pytest
from django.apps import apps
from django.db import models

from core.sql import insert_sql
from orders import settlement
from orders.models import Order, OrderEventRecord

_INSERT = re.compile(r"INSERT INTO (\w+)(?: AS \w+)? \(([^)]*)\)")


def _model_columns(table: str) -> list[str]:
    (model,) = [m for m in apps.get_models() if m._meta.db_table == table]
    return [f.column for f in model._meta.concrete_fields if not (f.primary_key and isinstance(f, models.AutoField))]


# The domain events' outbox (orders/events.py): a payload, the rest filled by the database.
OUTBOX_COLUMNS = {OrderEventRecord._meta.db_table: ["payload"]}


def _inserts(sql: str) -> list[tuple[str, list[str]]]:
    return [(table, [c.strip() for c in columns.split(",")]) for table, columns in _INSERT.findall(sql)]


@pytest.mark.parametrize(
    ("name", "sql", "tables"),
    [
        (
            "MARKET_BUY_SQL",
            settlement.MARKET_BUY_SQL,
            [
                "balances_assetbalance",
                "orders_order",
                "balances_cashtransaction",
                "balances_assettransaction",
                "orders_ordereventrecord",
            ],
        ),
        (
            "ARRIVAL_SELL_SQL",
            settlement.ARRIVAL_SELL_SQL,
            ["orders_order", "balances_cashtransaction", "balances_assettransaction", "orders_ordereventrecord"],
        ),
        (
            "RESTING_BUY_SQL",
            settlement.RESTING_BUY_SQL,
            [
                "balances_assetbalance",
                "balances_cashtransaction",
                "balances_assettransaction",
                "orders_ordereventrecord",
            ],
        ),
        (
            "RESTING_SELL_SQL",
            settlement.RESTING_SELL_SQL,
            ["balances_cashtransaction", "balances_assettransaction", "orders_ordereventrecord"],
        ),
    ],
)
def test_every_raw_insert_names_exactly_the_models_concrete_columns(name, sql, tables):
    # when
    inserts = _inserts(sql)

    # then
    assert [table for table, _ in inserts] == tables, name
    for table, columns in inserts:
        assert columns == (OUTBOX_COLUMNS.get(table) or _model_columns(table)), (name, table)


def test_a_raw_insert_that_leaves_out_a_column_is_refused_when_it_is_built():
    # given the order columns without one (as if the model had gained a NOT NULL column)
    values = {column: "NULL" for column in _model_columns("orders_order") if column != "failure_reason"}

    # when / then
    with pytest.raises(KeyError, match=r"orders_order: missing \['failure_reason'\], unknown \[\]"):
        insert_sql(Order, **values)


def test_a_raw_insert_with_a_column_the_model_lacks_is_refused():
    values = dict.fromkeys(_model_columns("orders_order"), "NULL")

    with pytest.raises(KeyError, match=r"missing \[\], unknown \['colour'\]"):
        insert_sql(Order, colour="'red'", **values)
