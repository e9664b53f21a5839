"""The activity feed's partial index on the cash ledger takes FEE rows too (a SELL's fee in USD
is in the feed, docs/DESIGN.md "Fill model"), built beside the old one and then swapped,
concurrently, as 0008 did: the cash ledger stays writable while it is built."""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("balances", "0010_fee_ledger_rows")]

    operations = [
        AddIndexConcurrently(
            model_name="cashtransaction",
            index=models.Index(
                condition=models.Q(("transaction_type__in", ["DEPOSIT", "WITHDRAWAL", "ADJUSTMENT", "RESET", "FEE"])),
                fields=["user", "-created_at", "-id"],
                name="cash_tx_user_feed_newest",
            ),
        ),
        RemoveIndexConcurrently(model_name="cashtransaction", name="cash_tx_user_not_fills_newest"),
    ]
