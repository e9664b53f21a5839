from django.core.management.base import BaseCommand, CommandError

from orders.selectors import reconcile_ledger


class Command(BaseCommand):
    help = "Check that every balance and hold is explained by its ledger and open orders."

    def handle(self, *args, **options):
        mismatches = reconcile_ledger()
        for mismatch in mismatches:
            self.stderr.write(str(mismatch))
        if mismatches:
            raise CommandError(f"{len(mismatches)} mismatch(es) between balances and ledgers.")
        self.stdout.write(self.style.SUCCESS("Ledger reconciled: every balance and hold is explained."))
