"""The activity feed's partial index on the cash ledger takes RESET rows too (the feed shows
resets), built beside the old one and then swapped, concurrently: the cash ledger stays
writable while it is built."""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("balances", "0007_account_reset")]

    operations = [
        AddIndexConcurrently(
            model_name="cashtransaction",
            index=models.Index(
                condition=models.Q(("transaction_type__in", ["DEPOSIT", "WITHDRAWAL", "ADJUSTMENT", "RESET"])),
                fields=["user", "-created_at", "-id"],
                name="cash_tx_user_not_fills_newest",
            ),
        ),
        RemoveIndexConcurrently(model_name="cashtransaction", name="cash_tx_user_movements_newest"),
    ]
