"""The ledgers are append-only in the database itself, not only in the code that writes them.

A row-level trigger refuses UPDATE and DELETE on both ledger tables, whoever connects: a
service bug, a shell session, a data fix run by hand. A mistake is corrected the way the
back office does it, with an opposite ADJUSTMENT row. The SQLSTATE is restrict_violation
(class 23), which Django raises as IntegrityError. TRUNCATE (test database flushes) is a
statement on the whole table, not a row change, and stays possible for the table's owner.
"""

from django.db import migrations

LEDGER_TABLES = {"balances_cashtransaction": "cash_tx", "balances_assettransaction": "asset_tx"}

FUNCTION = """
CREATE FUNCTION ledger_row_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% of a % row refused: the ledger is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation',
              HINT = 'Correct a ledger row with an opposite ADJUSTMENT row.';
END
$$;
"""

TRIGGERS = "".join(
    f"CREATE TRIGGER {prefix}_append_only BEFORE UPDATE OR DELETE ON {table} "
    "FOR EACH ROW EXECUTE FUNCTION ledger_row_is_append_only();\n"
    for table, prefix in LEDGER_TABLES.items()
)

DROP = "".join(f"DROP TRIGGER {prefix}_append_only ON {table};\n" for table, prefix in LEDGER_TABLES.items())


class Migration(migrations.Migration):
    dependencies = [("balances", "0003_asset_transaction_client_reference")]

    operations = [
        migrations.RunSQL(
            sql=FUNCTION + TRIGGERS,
            reverse_sql=DROP + "DROP FUNCTION ledger_row_is_append_only();",
        )
    ]
