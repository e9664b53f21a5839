"""``python manage.py prune_price_history [--days N] [--batch-size N]``: keep the price
history bounded (run it daily, e.g. from cron). Rows older than the retention are thinned to
the last price of each asset and UTC day; newer rows are untouched."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from assets.price_history import prune_price_history


class Command(BaseCommand):
    help = "Thin price history older than PRICE_HISTORY_RETENTION_DAYS to one price per asset and day."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=None, help="Full-resolution days to keep (PRICE_HISTORY_RETENTION_DAYS)."
        )
        parser.add_argument("--batch-size", type=int, default=10_000, help="Rows deleted per transaction.")

    def handle(self, *args, days: int | None, batch_size: int, verbosity: int, **options):
        days = settings.PRICE_HISTORY_RETENTION_DAYS if days is None else days
        if days < 1 or batch_size < 1:
            raise CommandError("--days and --batch-size must be at least 1.")

        def progress(asset_id: str, deleted: int, total: int) -> None:
            if verbosity > 0:
                self.stdout.write(f"  {asset_id}: {deleted} deleted ({total} in all)")

        total = prune_price_history(retention_days=days, batch_size=batch_size, progress=progress)
        self.stdout.write(f"Deleted {total} price record(s) older than {days} day(s), keeping each day's last price.")
