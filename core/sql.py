"""Raw SQL built from the models, for the few statements the ORM cannot say in one round trip
(``orders.settlement``) and for bulk loads (``scripts/bench``); and what PostgreSQL says of a
broken constraint."""

from __future__ import annotations

from django.db import IntegrityError, models


def insert_sql(model: type[models.Model], *, alias: str = "", source: str = "", **values: str) -> str:
    """``INSERT INTO <table> (<every concrete column>) SELECT <values> <source>``.

    ``values`` maps each column to an SQL expression (a ``%(name)s`` parameter, a literal, a
    column of ``source``). Every concrete column but a serial primary key must be given:
    Django's field defaults are applied by the ORM, not by PostgreSQL, so a raw INSERT that
    left one out would fail (NOT NULL) or store NULL. Raises KeyError naming what is
    missing or unknown."""
    columns = [
        field.column
        for field in model._meta.concrete_fields
        if not (field.primary_key and isinstance(field, models.AutoField))
    ]
    missing, unknown = set(columns) - set(values), set(values) - set(columns)
    if missing or unknown:
        raise KeyError(f"{model._meta.db_table}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    table = f"{model._meta.db_table} AS {alias}" if alias else model._meta.db_table
    return (
        f"INSERT INTO {table} ({', '.join(columns)})\n"
        f"    SELECT {', '.join(values[column] for column in columns)} {source}".rstrip()
    )


def violated_constraint(error: IntegrityError) -> str | None:
    """The name of the constraint or unique index an IntegrityError broke (PostgreSQL says
    which), or None when the driver did not say."""
    return getattr(getattr(error.__cause__, "diag", None), "constraint_name", None)
