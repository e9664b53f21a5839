"""Raw SQL built from the models, for the few statements the ORM cannot say in one round trip
(``orders.settlement``) and for bulk loads (``scripts/bench``); and what PostgreSQL says of a
broken constraint."""

from __future__ import annotations

from django.db import IntegrityError, connection, connections, models


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


class RowWithRelated:
    """``Model.objects.select_related(relation).get(<where>)`` as one raw statement built once
    per process, for lookups made on every request (the API token, the API key).

    The ORM builds and compiles that query again on each call (the QuerySet, its clone on
    ``get()``, the join, the column list): about a third of a millisecond of CPU per request,
    a tenth of a market order's, to produce the same text each time. Here the text is made
    once from both models' concrete columns, and a row becomes the two instances with
    ``from_db``, as the ORM would make them (the related one is in the foreign key's cache).
    ``where`` is SQL on the aliases ``m`` (the model) and ``r`` (the related model), with
    ``%s`` parameters. It runs on a prepared cursor: PostgreSQL plans it once per connection."""

    def __init__(self, model: type[models.Model], relation: str, where: str) -> None:
        self.model = model
        self.field = model._meta.get_field(relation)
        related = self.field.related_model
        self.main_names = [field.attname for field in model._meta.concrete_fields]
        self.related_names = [field.attname for field in related._meta.concrete_fields]
        columns = [f"m.{connection.ops.quote_name(field.column)}" for field in model._meta.concrete_fields]
        columns += [f"r.{connection.ops.quote_name(field.column)}" for field in related._meta.concrete_fields]
        self.sql = (
            f"SELECT {', '.join(columns)} FROM {connection.ops.quote_name(model._meta.db_table)} m"
            f" JOIN {connection.ops.quote_name(related._meta.db_table)} r"
            f" ON r.{connection.ops.quote_name(self.field.target_field.column)}"
            f" = m.{connection.ops.quote_name(self.field.column)}"
            f" WHERE {where}"
        )

    def get(self, *params, using: str = "default") -> models.Model | None:
        """The instance, its related one loaded, or None when no row matches."""
        with connections[using].prepared_cursor() as cursor:
            cursor.execute(self.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        split = len(self.main_names)
        instance = self.model.from_db(using, self.main_names, row[:split])
        related = self.field.related_model.from_db(using, self.related_names, row[split:])
        self.field.set_cached_value(instance, related)
        return instance
